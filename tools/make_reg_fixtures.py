"""Reference trajectories of pytorch_optimizer's RACS (for scale_by_racs).

Run with the reference environment:

    /work/refvenv/bin/python tools/make_reg_fixtures.py

Writes tests/fixtures/reference/clipping_racs.npz. Closed loop, float64, on a
separable loss over a tree with a 0-D, a 1-D, a 2-D and a 3-D leaf:

    L(p) = sum_leaf [ 0.5 * sum(d * (p - t)^2) + 0.1 * sum(log cosh(3 p)) ]

Keys: ``<cfg>__hp__<name>`` (hyperparameters), ``data__d__<leaf>``,
``data__t__<leaf>``, ``<cfg>__traj__<leaf>`` with shape (steps + 1, ...) (the
params after each step, row 0 the start).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from pytorch_optimizer import RACS

SHAPES = {"a": (), "b": (3,), "k": (2, 3, 2), "w": (4, 3)}
STEPS = 12
CONFIGS = {
    "default": dict(lr=1.0, beta=0.9, alpha=0.05, gamma=1.01, weight_decay=0.0, eps=1e-8),
    "tuned": dict(lr=0.5, beta=0.5, alpha=0.3, gamma=1.2, weight_decay=0.05, eps=1e-8),
}


def main():
  rng = np.random.default_rng(0)
  d = {k: np.abs(rng.standard_normal(s)) + 0.5 for k, s in SHAPES.items()}
  t = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
  x0 = {k: rng.standard_normal(s) + 1.0 for k, s in SHAPES.items()}
  out = {}
  for k in SHAPES:
    out[f"data__d__{k}"] = d[k]
    out[f"data__t__{k}"] = t[k]
  for cfg, hp in CONFIGS.items():
    params = {k: torch.tensor(x0[k], dtype=torch.float64, requires_grad=True) for k in SHAPES}
    opt = RACS([params[k] for k in sorted(SHAPES)], weight_decouple=True, **hp)
    traj = {k: [x0[k].copy()] for k in SHAPES}
    for _ in range(STEPS):
      opt.zero_grad()
      loss = sum(0.5 * torch.sum(torch.tensor(d[k]) * (params[k] - torch.tensor(t[k])) ** 2)
                 + 0.1 * torch.sum(torch.log(torch.cosh(3.0 * params[k])))
                 for k in SHAPES)
      loss.backward()
      opt.step()
      for k in SHAPES:
        traj[k].append(params[k].detach().numpy().copy())
    for k in SHAPES:
      out[f"{cfg}__traj__{k}"] = np.stack(traj[k])
    for name, v in hp.items():
      out[f"{cfg}__hp__{name}"] = np.asarray(v, np.float64)
  path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference",
                      "clipping_racs.npz")
  np.savez(path, **out)
  print("wrote", os.path.normpath(path), "keys:", len(out))


if __name__ == "__main__":
  main()
