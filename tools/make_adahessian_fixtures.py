"""Writes tests/fixtures/reference/adahessian.npz from pytorch_optimizer's AdaHessian.

Run with the reference environment (torch + pytorch-optimizer):

  python tools/make_adahessian_fixtures.py [--out DIR]

Problem: a separable quartic with a diagonal Hessian,

  f(x) = sum_i a_i (x_i - c_i)^2 / 2 + q_i x_i^4 / 4,   H = diag(a + 3 q x^2),

over two tensors ``b`` (shape (4,)) and ``w`` (shape (3, 4)). Since H is
diagonal, a Rademacher probe gives z * Hz = diag(H) exactly, so the trajectory
does not depend on the probe draw and optkit can reproduce it with any seed.
The Hessian still changes every step (it depends on x), so the refresh period
matters. Everything runs in float64.

Saved keys: ``problem/{a,c,q,x0}/{b,w}``; for each config ``cfg``:
``cfg/traj/{b,w}`` (steps + 1 iterates, the first is x0) and the
hyperparameters ``cfg/{lr,b1,b2,eps,weight_decay,hessian_power,update_period}``.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_optimizer import AdaHessian

try:
  from tools import _fixtures
except ImportError:  # run as a script: tools/ itself is on sys.path
  import _fixtures

STEPS = 20
SHAPES = {"b": (4,), "w": (3, 4)}
CONFIGS = {
    # pytorch_optimizer's defaults: lr 0.1, betas (0.9, 0.999), eps 1e-16.
    "defaults": dict(lr=0.1, b1=0.9, b2=0.999, eps=1e-16, weight_decay=0.0,
                     hessian_power=1.0, update_period=1),
    # Decoupled decay, a fractional power and a delayed Hessian (v frozen
    # between refreshes in pytorch_optimizer).
    "decay_power_period": dict(lr=0.05, b1=0.8, b2=0.99, eps=1e-16, weight_decay=0.05,
                               hessian_power=0.5, update_period=3),
}


def _run(cfg: dict, a, c, q, x0):
  torch.manual_seed(0)
  params = _fixtures.torch_params(x0, torch.float64)
  opt = AdaHessian(
      [params[k] for k in sorted(params)], lr=cfg["lr"], betas=(cfg["b1"], cfg["b2"]),
      weight_decay=cfg["weight_decay"], weight_decouple=True, fixed_decay=False,
      hessian_power=cfg["hessian_power"], update_period=cfg["update_period"],
      num_samples=1, hessian_distribution="rademacher", eps=cfg["eps"])
  return _fixtures.record_trajectory(opt, params, _fixtures.quartic_loss(a, c, q), STEPS,
                                     create_graph=True)


def main(argv=None):
  a, c, q, x0 = _fixtures.quartic_problem(SHAPES)
  out = {}
  for name, tree in (("a", a), ("c", c), ("q", q), ("x0", x0)):
    for k, v in tree.items():
      out[f"problem/{name}/{k}"] = v
  for cfg_name, cfg in CONFIGS.items():
    traj = _run(cfg, a, c, q, x0)
    for k, v in traj.items():
      out[f"{cfg_name}/traj/{k}"] = v
    for h, v in cfg.items():
      out[f"{cfg_name}/{h}"] = np.asarray(v)
  _fixtures.save(_fixtures.output_dir(argv), "adahessian.npz", out)


if __name__ == "__main__":
  main()
