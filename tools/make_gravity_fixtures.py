"""Regenerates tests/fixtures/reference/momentum_gravity.npz.

Runs pytorch_optimizer 4.1.0's ``Gravity`` in float64 on CPU for ``STEPS``
steps on two small deterministic problems and records the parameter
trajectories (params after every step), the problem data, the
hyperparameters and the INITIAL VELOCITY. Gravity draws its initial velocity
V_0 ~ N(0, (alpha/lr)^2) with torch's RNG; to compare with optkit (which draws
from a JAX key), this script draws V_0 with NumPy (seeded), writes it into the
optimizer state before the first step (``opt.state[p]['v']``: pytorch_optimizer
only draws when the state is empty) and stores it. ``tests/momentum/test_gravity.py``
injects the same V_0 into optkit's state (``state[0]._replace(v=...)``) and
replays the steps; it only loads this file.

Problems (params: a matrix ``w`` (4, 3) and a vector ``b`` (3,); gradients of
order 0.1-10 so that both the linear and the saturating part of
zeta = g / (1 + (g max|g|)^2) are exercised):
  quadratic: 0.5 sum(A * (w - W*)^2) + 0.5 sum(d * (b - b*)^2)
  logreg:    mean softmax cross-entropy of X @ w + b (X: 24 x 4, 3 classes)

Run with the reference environment (``--out DIR`` writes elsewhere):
  /work/refvenv/bin/python tools/make_gravity_fixtures.py
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

STEPS = 12
CONFIGS = {
    # name: pytorch_optimizer kwargs
    "paper": dict(lr=0.1, alpha=0.01, beta=0.9),
    "fast": dict(lr=0.5, alpha=0.05, beta=0.5),
}


def run(kwargs, name, data, v0_w, v0_b):
  params = _fixtures.torch_params({"b": data["b0"], "w": data["w0"]}, torch.float64)
  w, b = params["w"], params["b"]
  opt = pytorch_optimizer.Gravity([w, b], **kwargs)
  # Inject V_0 (pytorch_optimizer draws only when the state is empty).
  opt.state[w]["v"] = torch.tensor(v0_w, dtype=torch.float64)
  opt.state[b]["v"] = torch.tensor(v0_b, dtype=torch.float64)
  traj = _fixtures.record_trajectory(
      opt, params, lambda p: _fixtures.multiclass_loss(name, data, p["w"], p["b"]), STEPS,
      include_start=False)
  return traj["w"], traj["b"]


def main(argv=None):
  torch.set_default_dtype(torch.float64)
  probs = _fixtures.multiclass_problems(11, w0_scale=0.5, b0_scale=0.5)
  rng = np.random.default_rng(12)
  out = {"version": np.array(importlib.metadata.version("pytorch_optimizer")),
         "steps": np.array(STEPS), "configs": np.array(json.dumps(CONFIGS))}
  for pname, data in probs.items():
    for k, v in data.items():
      out[f"{pname}__{k}"] = np.asarray(v)
  for cname, kwargs in CONFIGS.items():
    std = kwargs["alpha"] / kwargs["lr"]
    for pname, data in probs.items():
      v0_w = std * rng.standard_normal((4, 3))
      v0_b = std * rng.standard_normal(3)
      ws, bs = run(kwargs, pname, data, v0_w, v0_b)
      out[f"{cname}__{pname}__v0_w"] = v0_w
      out[f"{cname}__{pname}__v0_b"] = v0_b
      out[f"{cname}__{pname}__w"] = ws
      out[f"{cname}__{pname}__b"] = bs
  _fixtures.save(_fixtures.output_dir(argv), "momentum_gravity.npz", out)


if __name__ == "__main__":
  main()
