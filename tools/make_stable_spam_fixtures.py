"""Regenerates tests/fixtures/reference/clipping_stable_spam.npz and clipping_spam.npz.

Runs pytorch_optimizer 4.1.0's ``StableSPAM`` and ``SPAM`` (per-parameter
path, ``foreach=False``), float32, CPU, for 30 steps on two small
deterministic problems (a quadratic and a logistic regression), with small
reset periods / thresholds so that every mechanism (AdaClip, AdaGN, the
moment resets, the cosine decay of b1 and gamma1, SPAM's spike clipping and
post-reset warm-up) is active within 30 steps, and records the parameter
trajectories, the problem data and the hyperparameters.
``tests/clipping/test_stable_spam.py`` replays them with optkit.

Run with the reference environment (``--out DIR`` writes elsewhere):
  /work/refvenv/bin/python tools/make_stable_spam_fixtures.py
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

STEPS = 30
PROBLEMS = (("quadratic", lambda: _fixtures.quadratic_problem(20)),
            ("logreg", lambda: _fixtures.logreg_problem(21)))
NO_TMAX = -1.0   # recorded for t_max = None

STABLE_CASES = (
    ("quadratic", "quadratic", {"lr": 0.05, "b1": 0.9, "b2": 0.999, "gamma1": 0.7,
                                "gamma2": 0.9, "theta": 0.9, "update_proj_gap": 10,
                                "t_max": NO_TMAX, "eta_min": 0.5, "eps": 1e-8,
                                "weight_decay": 0.1}),
    ("logreg_tmax", "logreg", {"lr": 0.02, "b1": 0.85, "b2": 0.99, "gamma1": 0.6,
                               "gamma2": 0.95, "theta": 0.99, "update_proj_gap": 12,
                               "t_max": 20.0, "eta_min": 0.3, "eps": 1e-8,
                               "weight_decay": 0.0}),
    ("quadratic_tmax", "quadratic", {"lr": 0.03, "b1": 0.9, "b2": 0.999, "gamma1": 0.7,
                                     "gamma2": 0.9, "theta": 0.999, "update_proj_gap": 1000,
                                     "t_max": 15.0, "eta_min": 0.5, "eps": 1e-6,
                                     "weight_decay": 0.05}),
    # Large steps on the logistic regression: the max |g| grows, AdaClip clips.
    ("logreg_clip", "logreg", {"lr": 0.3, "b1": 0.9, "b2": 0.999, "gamma1": 0.7,
                               "gamma2": 0.9, "theta": 0.9, "update_proj_gap": 10,
                               "t_max": NO_TMAX, "eta_min": 0.5, "eps": 1e-8,
                               "weight_decay": 0.01}),
)
SPAM_CASES = (
    ("quadratic", "quadratic", {"lr": 0.05, "b1": 0.9, "b2": 0.999, "threshold": 1.5,
                                "grad_accu_steps": 3, "update_proj_gap": 10,
                                "warmup_steps": 4, "eps": 1e-6}),
    ("logreg", "logreg", {"lr": 0.02, "b1": 0.8, "b2": 0.99, "threshold": 2.0,
                          "grad_accu_steps": 2, "update_proj_gap": 8,
                          "warmup_steps": 3, "eps": 1e-8}),
)


def make_optimizer(kind, params, hp):
  if kind == "stable_spam":
    t_max = None if hp["t_max"] == NO_TMAX else int(hp["t_max"])
    return pytorch_optimizer.StableSPAM(
        params, lr=hp["lr"], betas=(hp["b1"], hp["b2"]), gamma1=hp["gamma1"],
        gamma2=hp["gamma2"], theta=hp["theta"], t_max=t_max, eta_min=hp["eta_min"],
        weight_decay=hp["weight_decay"], update_proj_gap=int(hp["update_proj_gap"]),
        eps=hp["eps"], foreach=False)
  return pytorch_optimizer.SPAM(
      params, lr=hp["lr"], betas=(hp["b1"], hp["b2"]), density=1.0, weight_decay=0.0,
      warmup_epoch=int(hp["warmup_steps"]), threshold=hp["threshold"],
      grad_accu_steps=int(hp["grad_accu_steps"]),
      update_proj_gap=int(hp["update_proj_gap"]), eps=hp["eps"], foreach=False)


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
  for kind, cases in (("stable_spam", STABLE_CASES), ("spam", SPAM_CASES)):
    _fixtures.save(out_dir, f"clipping_{kind}.npz", build(kind, cases))


if __name__ == "__main__":
  main()
