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

Run with the reference environment:
  python tools/make_adaptive_fixtures.py
"""

from __future__ import annotations

import os

import numpy as np
import torch

STEPS = 40
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference",
                   "adaptive_torch.npz")


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

  return {"A": a, "b": b}, x0, loss


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

  return {"X": x, "y": y}, p0, loss


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
  params = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in p0.items()}
  names = sorted(params)
  kwargs = dict(lr=hp["lr"], betas=(hp["b1"], hp["b2"]), eps=hp["eps"],
                weight_decay=hp["weight_decay"], foreach=False)
  if name == "amsgrad":
    kwargs["amsgrad"] = True
  opt = cls([params[k] for k in names], **kwargs)
  traj = {k: [params[k].detach().numpy().copy()] for k in names}
  for _ in range(STEPS):
    opt.zero_grad()
    loss(params).backward()
    opt.step()
    for k in names:
      traj[k].append(params[k].detach().numpy().copy())
  return {k: np.stack(v).astype(np.float32) for k, v in traj.items()}


def main():
  out = {"torch_version": np.asarray(torch.__version__)}
  for prefix, make in (("quadratic", quadratic_problem), ("logreg", logreg_problem)):
    data, p0, loss = make()
    for k, v in data.items():
      out[f"{prefix}__data__{k}"] = v
    for name in OPTIMIZERS:
      for k, v in trajectory(name, p0, loss).items():
        out[f"{prefix}__{name}__traj__{k}"] = v
  for name, (_, hp) in OPTIMIZERS.items():
    for k, v in hp.items():
      out[f"hparam__{name}__{k}"] = np.asarray(v, np.float64)
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  np.savez(OUT, **out)
  print(f"wrote {os.path.normpath(OUT)}: {len(out)} arrays")


if __name__ == "__main__":
  main()
