"""Regenerates tests/fixtures/reference/orthogonal_asgo.npz.

A float64 torch port of the released ASGO code (infinity-stars/ASGO
``optimizers/asgo.py``, ``optimizers/dasgo.py`` and
``_matrix_inverse_root_PolarExpress`` in ``optimizers/utils/matrix_decom.py``,
read at commit d3ef14b; the repository is not a package, so its step is
restated here op for op). Per PyTorch-layout weight ``p`` (out, in):

ASGO: ``m.lerp_(g, 1 - momentum)``; ``S = g g^T`` if out < in else ``g^T g``;
``V.lerp_(S, 1 - beta2)``; ``P`` = PolarExpress coupled inverse square root of
``V`` (``s = 1.01 ||V + eps I||_F``, ``Y = V / s``, ``Z = I``, ``matalg_steps``
iterations with the safety-scaled coefficient schedule, ``P = Z / sqrt(s)``);
``U = P m`` (or ``m P``); ``U *= 0.2 sqrt(out in) / ||U||_F``;
``p *= 1 - lr wd``; ``p -= lr U``.

DASGO: ``m.lerp_(g, 1 - momentum)``; ``v.lerp_(sum(g^2, dim=0), 1 - beta2)``
(one per input feature); ``U = m (v + eps)^(-1/2)``; same RMS scaling, decay
and step.

Deviation from the code, on purpose: the code's PolarExpress casts ``V`` to
float32 (``G.float()``); the port stays in float64 so that the fixture is a
float64 trajectory (the code itself cannot multiply its float32 ``P`` with a
float64 momentum).

Open loop: fixed random gradients for ``STEPS`` steps; the file stores, in the
PyTorch layout, the initial params, the gradients and the params after every
step (the test transposes them into optkit's (in, out) layout). Weights:
``a`` (3, 7) (out < in: g g^T), ``b`` (6, 4) (out > in: g^T g), ``c`` (5, 5)
(square: the code's g^T g, the input side).

Run with the reference environment (``--out DIR`` writes elsewhere):
  /work/refvenv/bin/python tools/make_asgo_fixtures.py
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch

try:
  from tools import _fixtures
except ImportError:  # run as a script: tools/ itself is on sys.path
  import _fixtures

STEPS = 8
SHAPES = {"a": (3, 7), "b": (6, 4), "c": (5, 5)}
PE_COEFFS = [
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
]
CONFIGS = {
    "asgo_default": dict(diagonal=False, lr=0.01, momentum=0.9, weight_decay=0.1, beta2=0.8,
                         eps=1e-10, matalg_steps=10),
    "asgo_other": dict(diagonal=False, lr=0.05, momentum=0.5, weight_decay=0.0, beta2=0.95,
                       eps=1e-10, matalg_steps=12),
    "dasgo_default": dict(diagonal=True, lr=0.01, momentum=0.9, weight_decay=0.1, beta2=0.95,
                          eps=1e-8),
}


def _polar_express_inverse_sqrt(v, eps, steps):
  safe = [(a / 1.01, b / 1.01**3, c / 1.01**5) for a, b, c in PE_COEFFS[:-1]] + [PE_COEFFS[-1]]
  sched = safe[:steps] + [PE_COEFFS[-1]] * max(0, steps - len(safe))
  eye = torch.eye(v.size(-1), dtype=v.dtype)
  s = (v + eps * eye).norm() * 1.01
  y, z = v / s, eye
  for a, b, c in sched:
    zy = z @ y
    poly = b * zy + c * zy @ zy
    y = a * y + y @ poly
    z = a * z + poly @ z
  return z / torch.sqrt(s)


def _step(p, g, st, cfg):
  lr, beta, wd, beta2, eps = (cfg["lr"], cfg["momentum"], cfg["weight_decay"], cfg["beta2"],
                              cfg["eps"])
  st["m"].lerp_(g, 1 - beta)
  if cfg["diagonal"]:
    st["v"].lerp_(torch.sum(g * g, dim=0), 1 - beta2)
    update = st["m"] * st["v"].add(eps).pow(-0.5)
  else:
    left = g.size(0) < g.size(1)
    st["v"].lerp_(g @ g.t() if left else g.t() @ g, 1 - beta2)
    inv = _polar_express_inverse_sqrt(st["v"], eps, cfg["matalg_steps"])
    update = inv @ st["m"] if left else st["m"] @ inv
  update = update * (0.2 * math.sqrt(g.size(0) * g.size(1))) / torch.linalg.matrix_norm(update)
  if wd > 0:
    p.mul_(1 - lr * wd)
  p.add_(update, alpha=-lr)


def main(argv=None):
  out = _fixtures.output_dir(argv)
  rng = np.random.default_rng(20250326)
  p0 = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
  grads = [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(STEPS)]
  arrays = {f"p0__{k}": v for k, v in p0.items()}
  for t, g in enumerate(grads):
    for k, v in g.items():
      arrays[f"grad{t}__{k}"] = v
  for name, cfg in CONFIGS.items():
    params = {k: torch.tensor(v, dtype=torch.float64) for k, v in p0.items()}
    states = {}
    for k, (rows, cols) in SHAPES.items():
      if cfg["diagonal"]:
        v = torch.zeros(cols, dtype=torch.float64)
      else:
        dim = min(rows, cols)
        v = torch.zeros(dim, dim, dtype=torch.float64)
      states[k] = {"m": torch.zeros(rows, cols, dtype=torch.float64), "v": v}
    for t, g in enumerate(grads):
      for k in SHAPES:
        _step(params[k], torch.tensor(g[k], dtype=torch.float64), states[k], cfg)
        arrays[f"{name}__step{t}__{k}"] = params[k].numpy().copy()
  arrays["configs"] = np.array(json.dumps(CONFIGS))
  arrays["steps"] = np.array(STEPS)
  _fixtures.save(out, "orthogonal_asgo.npz", arrays)


if __name__ == "__main__":
  main()
