"""Regenerates tests/fixtures/reference/clipping_global_norm.npz.

Runs ``torch.nn.utils.clip_grad_norm_`` (torch 2.x, float32, CPU) on a few
random gradient trees at several thresholds (clipping active and inactive)
and records the inputs, the thresholds, the returned total norms and the
clipped gradients. ``tests/clipping/test_global_norm.py`` compares optkit's
``clip_by_global_norm`` with them.

Run with the reference environment (``--out DIR`` writes elsewhere):
  /work/refvenv/bin/python tools/make_global_norm_fixtures.py
"""

from __future__ import annotations

import numpy as np
import torch

try:
  from tools import _fixtures
except ImportError:  # run as a script: tools/ itself is on sys.path
  import _fixtures

SHAPES = {"a": (5,), "b": (2, 3), "c": ()}
CASES = ((0, 1.0), (1, 0.1), (2, 100.0), (3, 2.5))   # (seed, max_norm)


def main(argv=None):
  out_dir = _fixtures.output_dir(argv)
  out = {"torch_version": np.asarray(torch.__version__)}
  for i, (seed, max_norm) in enumerate(CASES):
    rng = np.random.default_rng(seed)
    grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
    params = {k: torch.zeros(s, dtype=torch.float32, requires_grad=True)
              for k, s in SHAPES.items()}
    for k in sorted(params):
      params[k].grad = torch.from_numpy(grads[k].copy())
    total = torch.nn.utils.clip_grad_norm_([params[k] for k in sorted(params)], max_norm)
    out[f"case{i}__max_norm"] = np.asarray(max_norm, np.float64)
    out[f"case{i}__total_norm"] = np.asarray(total.item(), np.float64)
    for k in sorted(params):
      out[f"case{i}__grad__{k}"] = grads[k]
      out[f"case{i}__clipped__{k}"] = params[k].grad.numpy().copy()
  _fixtures.save(out_dir, "clipping_global_norm.npz", out)


if __name__ == "__main__":
  main()
