"""Regenerates tests/fixtures/reference/adaptive_torch.npz.

Runs ``torch.optim`` Adam, AdamW, Adamax and Adam(amsgrad=True) (float32, CPU,
single-tensor path: ``foreach=False``) for 40 steps on two small deterministic
problems (a convex quadratic and a logistic regression) and records the
parameter trajectories, the problem data and the hyperparameters. The tests
``tests/adaptive/test_adam.py`` and ``tests/adaptive/test_amsgrad.py`` replay
them with optkit from the same start and data.

Formulas torch uses (read in torch/optim/adam.py, adamax.py):
- Adam: denom = sqrt(v) / sqrt(1 - b2^t) + eps, step = lr / (1 - b1^t) * m / denom,
  i.e. eps is added to sqrt(v_hat) exactly as in optax.
- AdamW: p *= 1 - lr * wd before the Adam step (optax: -lr * wd * p added to the
  update; algebraically identical).
- Adamax: u = max(b2 u, |g| + eps), step = lr / (1 - b1^t) * m / u (as optax).
- Adam(amsgrad=True): vmax = max(vmax, v) over the RAW v, then divided by
  (1 - b2^t): optkit's ``max_before_bias_correction=True``.

Run with the reference environment (``--out DIR`` writes elsewhere):
  python tools/make_adaptive_fixtures.py
"""

from __future__ import annotations

import numpy as np
import torch

try:
  from tools import _fixtures
except ImportError:  # run as a script: tools/ itself is on sys.path
  import _fixtures

STEPS = 40
FILENAME = "adaptive_torch.npz"
PROBLEMS = (("quadratic", _fixtures.quadratic_problem, 0),
            ("logreg", _fixtures.logreg_problem, 1))

# name -> (torch class, hyperparameters; keys used by the tests).
OPTIMIZERS = {
    "adam": (torch.optim.Adam, {"lr": 0.05, "b1": 0.9, "b2": 0.999, "eps": 1e-8,
                                "weight_decay": 0.0}),
    "adamw": (torch.optim.AdamW, {"lr": 0.05, "b1": 0.8, "b2": 0.99, "eps": 1e-6,
                                  "weight_decay": 0.1}),
    "adamax": (torch.optim.Adamax, {"lr": 0.05, "b1": 0.9, "b2": 0.999, "eps": 1e-8,
                                    "weight_decay": 0.0}),
    # b2 = 0.9 so that v shrinks within 40 steps and the max is active.
    "amsgrad": (torch.optim.Adam, {"lr": 0.05, "b1": 0.9, "b2": 0.9, "eps": 1e-8,
                                   "weight_decay": 0.0}),
}


def trajectory(name, p0, loss):
  cls, hp = OPTIMIZERS[name]
  params = _fixtures.torch_params(p0, torch.float32)
  kwargs = dict(lr=hp["lr"], betas=(hp["b1"], hp["b2"]), eps=hp["eps"],
                weight_decay=hp["weight_decay"], foreach=False)
  if name == "amsgrad":
    kwargs["amsgrad"] = True
  opt = cls([params[k] for k in sorted(params)], **kwargs)
  return _fixtures.record_trajectory(opt, params, loss, STEPS)


def main(argv=None):
  out = {"torch_version": np.asarray(torch.__version__)}
  for prefix, make, seed in PROBLEMS:
    data, p0, loss = make(seed)
    for k, v in data.items():
      out[f"{prefix}__data__{k}"] = v
    for name in OPTIMIZERS:
      for k, v in trajectory(name, p0, loss).items():
        out[f"{prefix}__{name}__traj__{k}"] = v
  for name, (_, hp) in OPTIMIZERS.items():
    for k, v in hp.items():
      out[f"hparam__{name}__{k}"] = np.asarray(v, np.float64)
  _fixtures.save(_fixtures.output_dir(argv), FILENAME, out)


if __name__ == "__main__":
  main()
