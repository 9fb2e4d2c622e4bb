"""Regenerates tests/fixtures/reference/lion_pytorch_optimizer.npz.

Runs pytorch_optimizer's ``Lion`` (float32, CPU, per-parameter path) for 30
steps on two small deterministic problems and records the parameter
trajectories, the problem data and the hyperparameters. The test
``tests/sign/test_lion.py`` replays them with ``optkit.lion`` (and
``optkit.lion_k(grad_k='sign')``) from the same start and data.

pytorch_optimizer applies decoupled decay as ``p *= 1 - lr * weight_decay``
before the sign step; optkit/optax add ``-lr * weight_decay * p`` to the update.
The two are algebraically identical (only float rounding differs).

Run with the reference environment:
  python tools/make_sign_fixtures.py
"""

from __future__ import annotations

import importlib.metadata
import os

import numpy as np
import pytorch_optimizer
import torch

STEPS = 30
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference",
                   "lion_pytorch_optimizer.npz")


def quadratic_problem():
  rng = np.random.default_rng(0)
  d = 6
  m = rng.standard_normal((d, d)).astype(np.float32)
  a = (m @ m.T / d + 0.5 * np.eye(d)).astype(np.float32)
  b = rng.standard_normal(d).astype(np.float32)
  x0 = {"x": (2.0 * rng.standard_normal(d)).astype(np.float32)}

  def loss(p):
    x = p["x"]
    return 0.5 * x @ (torch.from_numpy(a) @ x) - torch.from_numpy(b) @ x

  data = {"A": a, "b": b}
  hparams = {"lr": 0.05, "b1": 0.9, "b2": 0.99, "weight_decay": 0.1}
  return data, x0, loss, hparams


def logreg_problem():
  rng = np.random.default_rng(1)
  n, d = 40, 5
  x = rng.standard_normal((n, d)).astype(np.float32)
  w_true = rng.standard_normal(d)
  y = (x @ w_true + 0.3 * rng.standard_normal(n) > 0).astype(np.float32)
  p0 = {"w": rng.standard_normal(d).astype(np.float32), "b": np.asarray(0.5, np.float32)}

  def loss(p):
    z = torch.from_numpy(x) @ p["w"] + p["b"]
    return torch.mean(torch.nn.functional.softplus(z) - torch.from_numpy(y) * z)

  data = {"X": x, "y": y}
  hparams = {"lr": 0.02, "b1": 0.95, "b2": 0.98, "weight_decay": 1e-3}
  return data, p0, loss, hparams


def trajectory(p0, loss, hparams):
  params = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in p0.items()}
  names = sorted(params)
  opt = pytorch_optimizer.Lion(
      [params[k] for k in names], lr=hparams["lr"], betas=(hparams["b1"], hparams["b2"]),
      weight_decay=hparams["weight_decay"], weight_decouple=True, fixed_decay=False,
      foreach=False)
  traj = {k: [params[k].detach().numpy().copy()] for k in names}
  for _ in range(STEPS):
    opt.zero_grad()
    loss(params).backward()
    opt.step()
    for k in names:
      traj[k].append(params[k].detach().numpy().copy())
  return {k: np.stack(v).astype(np.float32) for k, v in traj.items()}


def main():
  out = {"version": np.asarray(importlib.metadata.version("pytorch_optimizer")),
         "torch_version": np.asarray(torch.__version__)}
  for prefix, make in (("quadratic", quadratic_problem), ("logreg", logreg_problem)):
    data, p0, loss, hparams = make()
    for k, v in data.items():
      out[f"{prefix}__data__{k}"] = v
    for k, v in hparams.items():
      out[f"{prefix}__hparam__{k}"] = np.asarray(v, np.float64)
    for k, v in trajectory(p0, loss, hparams).items():
      out[f"{prefix}__traj__{k}"] = v
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  np.savez(OUT, **out)
  print(f"wrote {os.path.normpath(OUT)}: {sorted(out)}")


if __name__ == "__main__":
  main()
