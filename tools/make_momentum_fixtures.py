"""Regenerates tests/fixtures/reference/momentum_{ademamix,mars}.npz.

Runs pytorch_optimizer 4.1.0's ``AdEMAMix`` and ``MARS`` in float64 on CPU for
``STEPS`` steps on two small deterministic problems and records the parameter
trajectories (params after every step), the problem data and the
hyperparameters. ``tests/momentum/test_ademamix.py`` and
``tests/momentum/test_mars.py`` replay them with optkit (float64, same start,
same data) and only load these files.

Problems (params: a matrix ``w`` (4, 3) and a vector ``b`` (3,), so MARS's 2-D
rule and its 1-D AdamW fallback are both exercised):
  quadratic: 0.5 sum(A * (w - W*)^2) + 0.5 sum(d * (b - b*)^2)
  logreg:    mean softmax cross-entropy of X @ w + b (X: 24 x 4, 3 classes)

Configurations: see ``CONFIGS`` (the ``<opt>__<config>__<problem>`` keys).
pytorch_optimizer's decoupled decay (``p *= 1 - lr wd`` before the step) is
algebraically ``optax.add_decayed_weights`` before ``scale_by_learning_rate``.

Run with the reference environment (``--out DIR`` writes elsewhere):
  python tools/make_momentum_fixtures.py
"""

from __future__ import annotations

import importlib.metadata
import json

import numpy as np
import pytorch_optimizer
import torch

try:
  from tools import _fixtures
except ImportError:  # run as a script: tools/ itself is on sys.path
  import _fixtures

STEPS = 25

ADEMAMIX_CONFIGS = {
    # name: pytorch_optimizer kwargs
    "constant": dict(lr=0.05, betas=(0.9, 0.999, 0.9999), alpha=5.0, eps=1e-8,
                     weight_decay=0.0),
    "warmup_decay": dict(lr=0.05, betas=(0.85, 0.99, 0.999), alpha=8.0, eps=1e-8,
                         t_alpha_beta3=10, weight_decay=0.1, weight_decouple=True),
}
MARS_CONFIGS = {
    "adamw": dict(lr=0.02, betas=(0.95, 0.99), gamma=0.025, mars_type="adamw",
                  lr_1d=0.01, betas_1d=(0.9, 0.95), weight_decay=0.1,
                  weight_decay_1d=0.1, eps=1e-8),
    "adamw_big_gamma": dict(lr=0.02, betas=(0.9, 0.99), gamma=0.5, mars_type="adamw",
                            lr_1d=0.03, betas_1d=(0.8, 0.9), weight_decay=0.0,
                            weight_decay_1d=0.05, eps=1e-8),
    "lion": dict(lr=0.01, betas=(0.95, 0.99), gamma=0.025, mars_type="lion",
                 lr_1d=0.01, betas_1d=(0.9, 0.95), weight_decay=0.1,
                 weight_decay_1d=0.1, eps=1e-8),
}


def run(opt_cls, kwargs, name, data):
  params = _fixtures.torch_params({"b": data["b0"], "w": data["w0"]}, torch.float64)
  opt = opt_cls([params["w"], params["b"]], **kwargs)
  traj = _fixtures.record_trajectory(
      opt, params, lambda p: _fixtures.multiclass_loss(name, data, p["w"], p["b"]), STEPS,
      include_start=False)
  return traj["w"], traj["b"]


def main(argv=None):
  torch.set_default_dtype(torch.float64)
  probs = _fixtures.multiclass_problems(7, w0_scale=2.0, b0_scale=1.0)
  out_dir = _fixtures.output_dir(argv)
  version = importlib.metadata.version("pytorch_optimizer")
  for fname, cls, configs in (("momentum_ademamix.npz", pytorch_optimizer.AdEMAMix,
                               ADEMAMIX_CONFIGS),
                              ("momentum_mars.npz", pytorch_optimizer.MARS, MARS_CONFIGS)):
    out = {"version": np.array(version), "steps": np.array(STEPS),
           "configs": np.array(json.dumps(configs))}
    for pname, data in probs.items():
      for k, v in data.items():
        out[f"{pname}__{k}"] = np.asarray(v)
    for cname, kwargs in configs.items():
      for pname, data in probs.items():
        ws, bs = run(cls, kwargs, pname, data)
        out[f"{cname}__{pname}__w"] = ws
        out[f"{cname}__{pname}__b"] = bs
    _fixtures.save(out_dir, fname, out)


if __name__ == "__main__":
  main()
