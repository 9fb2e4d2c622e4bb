"""Writes tests/fixtures/reference/curvature_sophia.npz from pytorch_optimizer's SophiaH.

Run with the reference environment (torch + pytorch-optimizer):

  python tools/make_sophia_fixtures.py

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

import os

import numpy as np
import torch
from pytorch_optimizer import SophiaH

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


def _problem(seed: int = 0):
  rng = np.random.default_rng(seed)
  a = {k: rng.uniform(0.1, 10.0, s) for k, s in SHAPES.items()}
  c = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
  q = {k: rng.uniform(0.0, 0.5, s) for k, s in SHAPES.items()}
  x0 = {k: rng.standard_normal(s) + 1.0 for k, s in SHAPES.items()}
  return a, c, q, x0


def _run(cfg: dict, a, c, q, x0):
  torch.manual_seed(0)
  names = sorted(x0)
  params = {k: torch.tensor(x0[k], dtype=torch.float64, requires_grad=True) for k in names}
  ta = {k: torch.tensor(v) for k, v in a.items()}
  tc = {k: torch.tensor(v) for k, v in c.items()}
  tq = {k: torch.tensor(v) for k, v in q.items()}
  opt = SophiaH(
      [params[k] for k in names], lr=cfg["lr"], betas=(cfg["b1"], cfg["b2"]),
      weight_decay=cfg["weight_decay"], weight_decouple=True, fixed_decay=False,
      p=cfg["p"], update_period=cfg["update_period"], num_samples=1,
      hessian_distribution="rademacher", eps=cfg["eps"])
  traj = {k: [x0[k].copy()] for k in names}
  for _ in range(STEPS):
    opt.zero_grad()
    loss = sum(torch.sum(0.5 * ta[k] * (params[k] - tc[k]) ** 2 + 0.25 * tq[k] * params[k] ** 4)
               for k in names)
    loss.backward(create_graph=True)
    opt.step()
    for k in names:
      traj[k].append(params[k].detach().numpy().copy())
  state = {k: opt.state[params[k]] for k in names}
  return ({k: np.stack(v) for k, v in traj.items()},
          {k: s["momentum"].detach().numpy().copy() for k, s in state.items()},
          {k: s["hessian_moment"].detach().numpy().copy() for k, s in state.items()})


def main():
  a, c, q, x0 = _problem()
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
  path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference",
                      "curvature_sophia.npz")
  np.savez(os.path.normpath(path), **out)
  print("wrote", os.path.normpath(path), "with", len(out), "arrays")


if __name__ == "__main__":
  main()
