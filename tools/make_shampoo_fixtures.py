"""Writes tests/fixtures/reference/curvature_shampoo.npz from pytorch_optimizer.

Run with the reference environment (torch + pytorch-optimizer 4.1.0):

  /work/refvenv/bin/python tools/make_shampoo_fixtures.py

Open loop: a fixed sequence of random float64 gradients (independent of the
params) is fed to pytorch_optimizer's ``ScalableShampoo`` (three settings) and
``Shampoo`` (the original, un-grafted method); the params after every step are
saved. Leaves: ``w`` (6, 5) (cut into blocks by a small block size), ``m``
(3, 4), ``k`` (3, 2, 4) (order 3: exponent -1/6), ``b`` (5,) and ``c`` ()
(graft direction in ScalableShampoo; a 5 x 5 statistic in Shampoo).

ScalableShampoo runs with ``shape_interpretation=False`` (its
``merge_small_dims`` differs from google-research's, see the catalog entry),
``use_svd=True`` (exact root, no ridge beyond the ``matrix_eps * I`` initial
statistics) and ``preconditioning_compute_steps=1``.

Saved keys: ``grads/{leaf}`` (steps, *shape), ``x0/{leaf}``, and for each
config ``cfg``: ``cfg/traj/{leaf}`` (steps + 1 iterates, the first is x0).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from pytorch_optimizer import ScalableShampoo, Shampoo
from pytorch_optimizer.optimizer.utils.graft import LayerWiseGrafting

STEPS = 12
SHAPES = {"b": (5,), "c": (), "k": (3, 2, 4), "m": (3, 4), "w": (6, 5)}
SCALABLE = {
    "scalable_sgd": dict(lr=0.1, betas=(0.9, 0.999), start_preconditioning_step=1,
                         block_size=4, graft_type=LayerWiseGrafting.SGD, nesterov=True),
    "scalable_adagrad": dict(lr=0.05, betas=(0.8, 0.99), start_preconditioning_step=4,
                             block_size=4, graft_type=LayerWiseGrafting.ADAGRAD,
                             nesterov=False),
    "scalable_rmsprop": dict(lr=0.02, betas=(0.9, 0.95), start_preconditioning_step=1,
                             block_size=3, graft_type=LayerWiseGrafting.RMSPROP,
                             nesterov=True),
}
SHAMPOO = {"shampoo": dict(lr=0.1, momentum=0.0, matrix_eps=1e-6)}


def _data(seed: int = 0):
  rng = np.random.default_rng(seed)
  x0 = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
  grads = {k: np.stack([rng.standard_normal(s) / (1.0 + 0.1 * i) for i in range(STEPS)])
           for k, s in SHAPES.items()}
  return x0, grads


def _run(make_opt, x0, grads):
  names = sorted(SHAPES)
  params = [torch.tensor(x0[k], dtype=torch.float64) for k in names]
  for p in params:
    p.requires_grad_(True)
  opt = make_opt(params)
  traj = {k: [x0[k].copy()] for k in names}
  for i in range(STEPS):
    for p, k in zip(params, names):
      p.grad = torch.tensor(grads[k][i], dtype=torch.float64)
    opt.step()
    for p, k in zip(params, names):
      traj[k].append(p.detach().numpy().copy())
  return {k: np.stack(v) for k, v in traj.items()}


def main():
  x0, grads = _data()
  out = {}
  for k in SHAPES:
    out[f"x0/{k}"] = x0[k]
    out[f"grads/{k}"] = grads[k]
  for name, cfg in SCALABLE.items():
    traj = _run(lambda ps, cfg=cfg: ScalableShampoo(
        ps, preconditioning_compute_steps=1, statistics_compute_steps=1,
        shape_interpretation=False, use_svd=True, matrix_eps=1e-6, diagonal_eps=1e-10,
        **cfg), x0, grads)
    for k, v in traj.items():
      out[f"{name}/traj/{k}"] = v
  for name, cfg in SHAMPOO.items():
    traj = _run(lambda ps, cfg=cfg: Shampoo(ps, preconditioning_compute_steps=1, **cfg),
                x0, grads)
    for k, v in traj.items():
      out[f"{name}/traj/{k}"] = v
  path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference",
                      "curvature_shampoo.npz")
  np.savez(path, **out)
  print("wrote", os.path.normpath(path), len(out), "arrays")


if __name__ == "__main__":
  main()
