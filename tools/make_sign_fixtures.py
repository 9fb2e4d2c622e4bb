"""Regenerates tests/fixtures/reference/lion_pytorch_optimizer.npz.

Runs pytorch_optimizer's ``Lion`` (float32, CPU, per-parameter path) for 30
steps on two small deterministic problems and records the parameter
trajectories, the problem data and the hyperparameters. The test
``tests/sign/test_lion.py`` replays them with ``optkit.lion`` (and
``optkit.lion_k(grad_k='sign')``) from the same start and data.

pytorch_optimizer applies decoupled decay as ``p *= 1 - lr * weight_decay``
before the sign step; optkit/optax add ``-lr * weight_decay * p`` to the update.
The two are algebraically identical (only float rounding differs).

Run with the reference environment (``--out DIR`` writes elsewhere):
  python tools/make_sign_fixtures.py
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
FILENAME = "lion_pytorch_optimizer.npz"

# problem -> (problem maker, its seed, Lion hyperparameters)
PROBLEMS = {
    "quadratic": (_fixtures.quadratic_problem, 0,
                  {"lr": 0.05, "b1": 0.9, "b2": 0.99, "weight_decay": 0.1}),
    "logreg": (_fixtures.logreg_problem, 1,
               {"lr": 0.02, "b1": 0.95, "b2": 0.98, "weight_decay": 1e-3}),
}


def trajectory(p0, loss, hparams):
  params = _fixtures.torch_params(p0, torch.float32)
  opt = pytorch_optimizer.Lion(
      [params[k] for k in sorted(params)], lr=hparams["lr"],
      betas=(hparams["b1"], hparams["b2"]), weight_decay=hparams["weight_decay"],
      weight_decouple=True, fixed_decay=False, foreach=False)
  return _fixtures.record_trajectory(opt, params, loss, STEPS)


def main(argv=None):
  out = {"version": np.asarray(importlib.metadata.version("pytorch_optimizer")),
         "torch_version": np.asarray(torch.__version__)}
  for prefix, (make, seed, hparams) in PROBLEMS.items():
    data, p0, loss = make(seed)
    for k, v in data.items():
      out[f"{prefix}__data__{k}"] = v
    for k, v in hparams.items():
      out[f"{prefix}__hparam__{k}"] = np.asarray(v, np.float64)
    for k, v in trajectory(p0, loss, hparams).items():
      out[f"{prefix}__traj__{k}"] = v
  _fixtures.save(_fixtures.output_dir(argv), FILENAME, out)


if __name__ == "__main__":
  main()
