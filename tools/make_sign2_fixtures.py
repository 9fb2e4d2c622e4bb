"""Regenerates tests/fixtures/reference/sign_grams.npz and sign_ano.npz.

Runs pytorch_optimizer 4.1.0's ``Grams`` (eps = 1e-6, its default) and
``Ano`` (eps outside the square root, as pytorch_optimizer has it; plain and
``logarithmic_schedule=True``) for 20 steps, float32, CPU, per-parameter path
(``foreach=False``), on two small deterministic problems (a quadratic and a
logistic regression), and records the parameter trajectories, the problem
data and the hyperparameters. ``tests/sign/test_grams.py`` and
``tests/sign/test_ano.py`` replay them with optkit from the same start.

Run with the reference environment (``--out DIR`` writes elsewhere):
  /work/refvenv/bin/python tools/make_sign2_fixtures.py
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

STEPS = 20
PROBLEMS = (("quadratic", lambda: _fixtures.quadratic_problem(10)),
            ("logreg", lambda: _fixtures.logreg_problem(11)))

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
  params = _fixtures.torch_params(p0, torch.float32)
  opt = make_optimizer(kind, [params[k] for k in sorted(params)], hp)
  return _fixtures.record_trajectory(opt, params, loss, STEPS)


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


def main(argv=None):
  out_dir = _fixtures.output_dir(argv)
  for kind, cases in (("grams", GRAMS_CASES), ("ano", ANO_CASES)):
    _fixtures.save(out_dir, f"sign_{kind}.npz", build(kind, cases))


if __name__ == "__main__":
  main()
