"""Writes tests/fixtures/reference/curvature_sophia.npz from pytorch_optimizer's SophiaH.

Run with the reference environment (torch + pytorch-optimizer):

  python tools/make_sophia_fixtures.py [--out DIR]

Problem: a separable quartic with a diagonal Hessian,

  f(x) = sum_i a_i (x_i - c_i)^2 / 2 + q_i x_i^4 / 4,   H = diag(a + 3 q x^2),

over two tensors ``b`` (shape (4,)) and ``w`` (shape (3, 4)). With Rademacher
probes z * Hz = diag(H) exactly, so the trajectory does not depend on the probe
draw (pytorch_optimizer's default distribution is Gaussian, for which it would:
the fixture passes ``hessian_distribution='rademacher'``). The Hessian changes
with x, so the refresh period matters. Everything runs in float64.

Saved keys: ``problem/{a,c,q,x0}/{b,w}``; for each config ``cfg``:
``cfg/traj/{b,w}`` (steps + 1 iterates, the first is x0), the final state
``cfg/momentum/{b,w}`` and ``cfg/hessian_moment/{b,w}``, and the
hyperparameters ``cfg/{lr,b1,b2,weight_decay,p,update_period,eps}``.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_optimizer import SophiaH

try:
  from tools import _fixtures
except ImportError:  # run as a script: tools/ itself is on sys.path
  import _fixtures

STEPS = 25
SHAPES = {"b": (4,), "w": (3, 4)}
CONFIGS = {
    # pytorch_optimizer's defaults: lr 6e-2, betas (0.96, 0.99), p 1e-2,
    # update_period 10, eps 1e-12, no weight decay.
    "defaults": dict(lr=6e-2, b1=0.96, b2=0.99, weight_decay=0.0, p=1e-2,
                     update_period=10, eps=1e-12),
    # A wide box (many unclipped coordinates), decoupled decay, period 3.
    "wide_box_decay": dict(lr=0.05, b1=0.9, b2=0.9, weight_decay=0.05, p=1.0,
                           update_period=3, eps=1e-12),
}


def _run(cfg: dict, a, c, q, x0):
  torch.manual_seed(0)
  names = sorted(x0)
  params = _fixtures.torch_params(x0, torch.float64)
  opt = SophiaH(
      [params[k] for k in names], lr=cfg["lr"], betas=(cfg["b1"], cfg["b2"]),
      weight_decay=cfg["weight_decay"], weight_decouple=True, fixed_decay=False,
      p=cfg["p"], update_period=cfg["update_period"], num_samples=1,
      hessian_distribution="rademacher", eps=cfg["eps"])
  traj = _fixtures.record_trajectory(opt, params, _fixtures.quartic_loss(a, c, q), STEPS,
                                     create_graph=True)
  state = {k: opt.state[params[k]] for k in names}
  return (traj,
          {k: s["momentum"].detach().numpy().copy() for k, s in state.items()},
          {k: s["hessian_moment"].detach().numpy().copy() for k, s in state.items()})


def main(argv=None):
  a, c, q, x0 = _fixtures.quartic_problem(SHAPES)
  out = {}
  for name, tree in (("a", a), ("c", c), ("q", q), ("x0", x0)):
    for k, v in tree.items():
      out[f"problem/{name}/{k}"] = v
  for cfg_name, cfg in CONFIGS.items():
    traj, mom, hess = _run(cfg, a, c, q, x0)
    for k in traj:
      out[f"{cfg_name}/traj/{k}"] = traj[k]
      out[f"{cfg_name}/momentum/{k}"] = mom[k]
      out[f"{cfg_name}/hessian_moment/{k}"] = hess[k]
    for h, v in cfg.items():
      out[f"{cfg_name}/{h}"] = np.asarray(v)
  _fixtures.save(_fixtures.output_dir(argv), "curvature_sophia.npz", out)


if __name__ == "__main__":
  main()
