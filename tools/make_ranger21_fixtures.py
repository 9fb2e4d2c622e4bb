"""Regenerates tests/fixtures/reference/adaptive_ranger21.npz.

Runs pytorch_optimizer's ``Ranger21`` (float32, CPU, per-parameter path:
``foreach=False``) on two small deterministic problems and records the
parameter trajectories, the final optimizer state, the problem data and the
hyperparameters. ``tests/adaptive/test_ranger21.py`` replays them with
``optkit.ranger21`` from the same start and data.

- ``quadratic``: a separable quadratic over a scalar, a vector, an (out, in)
  matrix and a 4-D kernel (every unit-norm / centralization / normalization
  branch), reference defaults, ``num_iterations = 12``, 12 steps (warm-up of
  2 steps, warm-down from step 8, lookahead syncs at steps 5 and 10), lr 0.05.
- ``mlp``: a 2-layer tanh network with a logistic loss and non-default
  hyperparameters (b1 0.8, b2 0.99, beta0 0.5, wd 0.1, norm loss 0.01,
  AGC 0.05 / 0.01, softplus beta 20, lookahead 3 / 0.6, min lr 1e-3),
  ``num_iterations = 30``, 20 steps, lr 0.02.

Run with the reference environment:
  /work/refvenv/bin/python tools/make_ranger21_fixtures.py
"""

from __future__ import annotations

import importlib.metadata
import os

import numpy as np
import torch
from pytorch_optimizer import Ranger21

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference",
                   "adaptive_ranger21.npz")


def quadratic_problem():
  rng = np.random.default_rng(0)
  shapes = {"c": (), "b": (3,), "w": (4, 3), "k": (2, 3, 2, 2)}
  arr = lambda x: np.asarray(x, np.float32)
  curv = {k: arr(np.abs(rng.standard_normal(s)) + 0.5) for k, s in shapes.items()}
  center = {k: arr(rng.standard_normal(s)) for k, s in shapes.items()}
  p0 = {k: arr(rng.standard_normal(s) + 1.0) for k, s in shapes.items()}
  data = {**{f"curv_{k}": v for k, v in curv.items()},
          **{f"center_{k}": v for k, v in center.items()}}

  def loss(p):
    return sum(0.5 * torch.sum(torch.from_numpy(curv[k]) * (p[k] - torch.from_numpy(center[k])) ** 2)
               for k in shapes)

  return data, p0, loss


def mlp_problem():
  rng = np.random.default_rng(1)
  n, d, h = 16, 3, 5
  x = rng.standard_normal((n, d)).astype(np.float32)
  y = (x[:, 0] - x[:, 1] > 0).astype(np.float32)
  p0 = {"w1": (0.5 * rng.standard_normal((h, d))).astype(np.float32),
        "b1": np.zeros(h, np.float32) + 0.1,
        "w2": (0.5 * rng.standard_normal((1, h))).astype(np.float32)}

  def loss(p):
    z = torch.tanh(torch.from_numpy(x) @ p["w1"].T + p["b1"]) @ p["w2"].T
    z = z[:, 0]
    return torch.mean(torch.nn.functional.softplus(z) - torch.from_numpy(y) * z)

  return {"X": x, "y": y}, p0, loss


CONFIGS = {
    "quadratic": (quadratic_problem, 12,
                  {"lr": 0.05, "num_iterations": 12}),
    "mlp": (mlp_problem, 20,
            {"lr": 0.02, "num_iterations": 30, "b1": 0.8, "b2": 0.99, "beta0": 0.5,
             "weight_decay": 0.1, "norm_loss_factor": 0.01, "agc_clip": 0.05,
             "agc_eps": 0.01, "softplus_beta": 20.0, "lookahead_k": 3,
             "lookahead_alpha": 0.6, "warmdown_min_lr": 1e-3}),
}


def run(make, steps, hp):
  data, p0, loss = make()
  params = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in p0.items()}
  names = sorted(params)
  kwargs = dict(lr=hp["lr"], num_iterations=hp["num_iterations"], foreach=False)
  mapping = {"b1": None, "b2": None, "beta0": "beta0", "weight_decay": "weight_decay",
             "norm_loss_factor": "norm_loss_factor", "agc_clip": "agc_clipping_value",
             "agc_eps": "agc_eps", "softplus_beta": "beta_softplus",
             "lookahead_k": "lookahead_merge_time", "lookahead_alpha": "lookahead_blending_alpha",
             "warmdown_min_lr": "warm_down_min_lr"}
  for mine, theirs in mapping.items():
    if theirs is not None and mine in hp:
      kwargs[theirs] = hp[mine]
  if "b1" in hp:
    kwargs["betas"] = (hp["b1"], hp["b2"])
  opt = Ranger21([params[k] for k in names], **kwargs)
  traj = {k: [params[k].detach().numpy().copy()] for k in names}
  for _ in range(steps):
    opt.zero_grad()
    loss(params).backward()
    opt.step()
    for k in names:
      traj[k].append(params[k].detach().numpy().copy())
  out = {f"traj__{k}": np.stack(v).astype(np.float32) for k, v in traj.items()}
  for k in names:
    st = opt.state[params[k]]
    for key in ("grad_ma", "neg_grad_ma", "variance_ma", "max_variance_ma", "lookahead_params"):
      out[f"state__{key}__{k}"] = st[key].detach().numpy().copy()
  out.update({f"p0__{k}": v for k, v in p0.items()})
  out.update({f"data__{k}": v for k, v in data.items()})
  return out


def main():
  out = {"torch_version": np.asarray(torch.__version__),
         "pytorch_optimizer_version": np.asarray(importlib.metadata.version("pytorch_optimizer"))}
  for name, (make, steps, hp) in CONFIGS.items():
    for k, v in run(make, steps, hp).items():
      out[f"{name}__{k}"] = v
    out[f"{name}__steps"] = np.asarray(steps)
    for k, v in hp.items():
      out[f"{name}__hparam__{k}"] = np.asarray(v, np.float64)
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  np.savez(OUT, **out)
  print(f"wrote {os.path.normpath(OUT)}: {len(out)} arrays")


if __name__ == "__main__":
  main()
