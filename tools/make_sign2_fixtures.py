"""Regenerates tests/fixtures/reference/sign_grams.npz and sign_ano.npz.

Runs pytorch_optimizer 4.1.0's ``Grams`` (eps = 1e-6, its default) and
``Ano`` (eps outside the square root, as pytorch_optimizer has it; plain and
``logarithmic_schedule=True``) for 20 steps, float32, CPU, per-parameter path
(``foreach=False``), on two small deterministic problems (a quadratic and a
logistic regression), and records the parameter trajectories, the problem
data and the hyperparameters. ``tests/sign/test_grams.py`` and
``tests/sign/test_ano.py`` replay them with optkit from the same start.

Run with the reference environment:
  /work/refvenv/bin/python tools/make_sign2_fixtures.py
"""

from __future__ import annotations

import importlib.metadata
import os

import numpy as np
import pytorch_optimizer
import torch

STEPS = 20
HERE = os.path.dirname(__file__)
OUT_DIR = os.path.join(HERE, "..", "tests", "fixtures", "reference")


def quadratic_problem():
  rng = np.random.default_rng(10)
  d = 6
  m = rng.standard_normal((d, d)).astype(np.float32)
  a = (m @ m.T / d + 0.5 * np.eye(d)).astype(np.float32)
  b = rng.standard_normal(d).astype(np.float32)
  p0 = {"x": (2.0 * rng.standard_normal(d)).astype(np.float32)}

  def loss(p):
    x = p["x"]
    return 0.5 * x @ (torch.from_numpy(a) @ x) - torch.from_numpy(b) @ x

  return {"A": a, "b": b}, p0, loss


def logreg_problem():
  rng = np.random.default_rng(11)
  n, d = 40, 5
  x = rng.standard_normal((n, d)).astype(np.float32)
  w_true = rng.standard_normal(d)
  y = (x @ w_true + 0.3 * rng.standard_normal(n) > 0).astype(np.float32)
  p0 = {"w": rng.standard_normal(d).astype(np.float32), "b": np.asarray(0.5, np.float32)}

  def loss(p):
    z = torch.from_numpy(x) @ p["w"] + p["b"]
    return torch.mean(torch.nn.functional.softplus(z) - torch.from_numpy(y) * z)

  return {"X": x, "y": y}, p0, loss


PROBLEMS = (("quadratic", quadratic_problem), ("logreg", logreg_problem))

# (case name, problem, optimizer class, constructor kwargs recorded as hparams)
GRAMS_CASES = (
    ("quadratic", "quadratic", {"lr": 0.05, "b1": 0.9, "b2": 0.999, "eps": 1e-6,
                                "weight_decay": 0.1}),
    ("logreg", "logreg", {"lr": 0.02, "b1": 0.8, "b2": 0.99, "eps": 1e-6,
                          "weight_decay": 0.0}),
)
ANO_CASES = (
    ("quadratic", "quadratic", {"lr": 0.05, "b1": 0.92, "b2": 0.99, "eps": 1e-8,
                                "weight_decay": 0.1, "log": 0.0}),
    ("logreg", "logreg", {"lr": 0.02, "b1": 0.9, "b2": 0.95, "eps": 1e-6,
                          "weight_decay": 0.0, "log": 0.0}),
    ("quadratic_log", "quadratic", {"lr": 0.05, "b1": 0.92, "b2": 0.99, "eps": 1e-8,
                                    "weight_decay": 0.0, "log": 1.0}),
)


def make_optimizer(kind, params, hp):
  if kind == "grams":
    return pytorch_optimizer.Grams(params, lr=hp["lr"], betas=(hp["b1"], hp["b2"]),
                                   weight_decay=hp["weight_decay"], weight_decouple=True,
                                   eps=hp["eps"], foreach=False)
  return pytorch_optimizer.Ano(params, lr=hp["lr"], betas=(hp["b1"], hp["b2"]),
                               weight_decay=hp["weight_decay"], weight_decouple=True,
                               fixed_decay=False, logarithmic_schedule=bool(hp["log"]),
                               eps=hp["eps"], foreach=False)


def trajectory(kind, p0, loss, hp):
  params = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in p0.items()}
  names = sorted(params)
  opt = make_optimizer(kind, [params[k] for k in names], hp)
  traj = {k: [params[k].detach().numpy().copy()] for k in names}
  for _ in range(STEPS):
    opt.zero_grad()
    loss(params).backward()
    opt.step()
    for k in names:
      traj[k].append(params[k].detach().numpy().copy())
  return {k: np.stack(v).astype(np.float32) for k, v in traj.items()}


def build(kind, cases):
  out = {"version": np.asarray(importlib.metadata.version("pytorch_optimizer")),
         "torch_version": np.asarray(torch.__version__)}
  problems = dict(PROBLEMS)
  for name, _ in PROBLEMS:
    data, _, _ = problems[name]()
    for k, v in data.items():
      out[f"{name}__data__{k}"] = v
  for case, problem, hp in cases:
    _, p0, loss = problems[problem]()
    out[f"{case}__problem"] = np.asarray(problem)
    for k, v in hp.items():
      out[f"{case}__hparam__{k}"] = np.asarray(v, np.float64)
    for k, v in trajectory(kind, p0, loss, hp).items():
      out[f"{case}__traj__{k}"] = v
  return out


def main():
  os.makedirs(OUT_DIR, exist_ok=True)
  for kind, cases in (("grams", GRAMS_CASES), ("ano", ANO_CASES)):
    path = os.path.normpath(os.path.join(OUT_DIR, f"sign_{kind}.npz"))
    out = build(kind, cases)
    np.savez(path, **out)
    print(f"wrote {path}: {len(out)} arrays")


if __name__ == "__main__":
  main()
