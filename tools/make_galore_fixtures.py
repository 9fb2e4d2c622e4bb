"""Regenerates tests/fixtures/reference/memory_galore.npz and memory_subset_norm.npz.

Runs pytorch_optimizer 4.1.0 in float64 on CPU, closed loop, on one small
least-squares problem with params ``w1`` (6, 4) (m >= n), ``w2`` (3, 5)
(m < n) and a vector ``b`` (4,)::

  L = 0.5 |X1 w1 - Y1|^2 + 0.5 |X2 w2 - Y2|^2 + 0.5 sum(d * (b - c)^2)

and records the params after every step (``<config>__traj__<name>``, shape
(STEPS + 1, ...)) together with the problem data.

* memory_galore.npz: ``GaLore`` (AdamW in the subspace) with
  ``projection_type='reverse_std'`` (left singular vectors for m >= n, right
  ones for m < n: optax.contrib.galore's side choice), rank 2, scale 0.25,
  eps 1e-12 (so that PyTorch's eps-before-correction and optax's
  eps-after-correction agree to ~1e-11), the vector in a group without
  ``rank`` (plain AdamW). Configs: ``gap1`` (update_proj_gap = 1: refresh at
  every step, where both conventions refresh at the same steps) and
  ``gap100`` (one projector for all steps). pytorch_optimizer refreshes at
  1-based steps 1, T, 2T, ... and optax at 0-based counts 0, T, 2T, ..., so
  for 1 < T <= STEPS the two differ by design; they are not compared.
* memory_subset_norm.npz: ``AdamWSN`` with ``sn=True`` on the matrices
  (``subset_size`` -1, the default: closest divisor of numel <= sqrt(numel),
  and 5) and ``sn=False`` on the vector (plain AdamW), eps 1e-8.

Run with the reference environment (``--out DIR`` writes elsewhere):
  /work/refvenv/bin/python tools/make_galore_fixtures.py
"""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytorch_optimizer
import torch

try:
  from tools import _fixtures
except ImportError:  # run as a script: tools/ itself is on sys.path
  import _fixtures

STEPS = 10
LR = 0.05


def problem():
  rng = np.random.default_rng(11)
  data = {
      "X1": rng.standard_normal((8, 6)) * np.logspace(0, -1, 6),
      "Y1": rng.standard_normal((8, 4)),
      "X2": rng.standard_normal((5, 3)),
      "Y2": rng.standard_normal((5, 5)),
      "d": np.abs(rng.standard_normal(4)) + 0.5,
      "c": rng.standard_normal(4),
  }
  p0 = {"w1": rng.standard_normal((6, 4)), "w2": rng.standard_normal((3, 5)),
        "b": rng.standard_normal(4)}
  return data, p0


def torch_loss(data, p):
  t = {k: torch.from_numpy(v) for k, v in data.items()}
  return (0.5 * torch.sum((t["X1"] @ p["w1"] - t["Y1"]) ** 2)
          + 0.5 * torch.sum((t["X2"] @ p["w2"] - t["Y2"]) ** 2)
          + 0.5 * torch.sum(t["d"] * (p["b"] - t["c"]) ** 2))


def trajectory(make_opt, data, p0):
  params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p0.items()}
  opt = make_opt(params)
  traj = {k: [v.copy()] for k, v in p0.items()}
  for _ in range(STEPS):
    opt.zero_grad()
    torch_loss(data, params).backward()
    opt.step()
    for k, v in params.items():
      traj[k].append(v.detach().numpy().copy())
  return {k: np.stack(v) for k, v in traj.items()}


def galore(gap):
  def make(p):
    return pytorch_optimizer.GaLore(
        [{"params": [p["w1"], p["w2"]], "rank": 2, "update_proj_gap": gap, "scale": 0.25,
          "projection_type": "reverse_std"},
         {"params": [p["b"]]}],
        lr=LR, betas=(0.9, 0.999), eps=1e-12, weight_decay=0.0)
  return make


def adamwsn(subset_size):
  def make(p):
    return pytorch_optimizer.AdamWSN(
        [{"params": [p["w1"], p["w2"]], "sn": True}, {"params": [p["b"]], "sn": False}],
        lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, subset_size=subset_size)
  return make


def main(argv=None):
  out = _fixtures.output_dir(argv)
  torch.set_default_dtype(torch.float64)
  data, p0 = problem()
  base = {f"data__{k}": v for k, v in data.items()}
  g = dict(base)
  for name, gap in (("gap1", 1), ("gap100", 100)):
    for k, v in trajectory(galore(gap), data, p0).items():
      g[f"{name}__traj__{k}"] = v
  _fixtures.save(out, "memory_galore.npz", g)
  s = dict(base)
  for name, size in (("sqrt", -1), ("five", 5)):
    for k, v in trajectory(adamwsn(size), data, p0).items():
      s[f"{name}__traj__{k}"] = v
  _fixtures.save(out, "memory_subset_norm.npz", s)
  print("pytorch_optimizer", importlib.metadata.version("pytorch_optimizer"))


if __name__ == "__main__":
  main()
