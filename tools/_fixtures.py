"""Shared pieces of the tools/make_*_fixtures.py scripts (reference env only).

The small deterministic test problems (NumPy data plus a torch loss), a loop
that records a torch optimizer's trajectory, and the output location
(tests/fixtures/reference, or ``--out DIR`` to write elsewhere, e.g. to check
that a script still reproduces the committed fixtures bit for bit).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

REFERENCE_DIR = os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference"))


def output_dir(argv=None) -> str:
  """The ``--out DIR`` command-line option (default: tests/fixtures/reference)."""
  parser = argparse.ArgumentParser()
  parser.add_argument("--out", default=REFERENCE_DIR,
                      help="directory to write the .npz files to (default: %(default)s)")
  return parser.parse_args(argv).out


def save(out_dir: str, filename: str, arrays: dict) -> str:
  """``np.savez`` of ``arrays`` to ``out_dir/filename``; prints and returns the path."""
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.normpath(os.path.join(out_dir, filename))
  np.savez(path, **arrays)
  print(f"wrote {path}: {len(arrays)} arrays")
  return path


# ------------------------------------------------ float32 vector problems


def quadratic_problem(seed: int):
  """0.5 x'Ax - b'x in R^6 (A SPD); returns (data, p0, torch loss), float32."""
  rng = np.random.default_rng(seed)
  d = 6
  m = rng.standard_normal((d, d)).astype(np.float32)
  a = (m @ m.T / d + 0.5 * np.eye(d)).astype(np.float32)
  b = rng.standard_normal(d).astype(np.float32)
  p0 = {"x": (2.0 * rng.standard_normal(d)).astype(np.float32)}

  def loss(p):
    x = p["x"]
    return 0.5 * x @ (torch.from_numpy(a) @ x) - torch.from_numpy(b) @ x

  return {"A": a, "b": b}, p0, loss


def logreg_problem(seed: int):
  """Binary logistic regression, 40 x 5 data, params w (5,), b (); float32."""
  rng = np.random.default_rng(seed)
  n, d = 40, 5
  x = rng.standard_normal((n, d)).astype(np.float32)
  w_true = rng.standard_normal(d)
  y = (x @ w_true + 0.3 * rng.standard_normal(n) > 0).astype(np.float32)
  p0 = {"w": rng.standard_normal(d).astype(np.float32), "b": np.asarray(0.5, np.float32)}

  def loss(p):
    z = torch.from_numpy(x) @ p["w"] + p["b"]
    return torch.mean(torch.nn.functional.softplus(z) - torch.from_numpy(y) * z)

  return {"X": x, "y": y}, p0, loss


# ------------------------------------------------ float64 (4, 3) / (3,) problems


def multiclass_problems(seed: int, w0_scale: float, b0_scale: float):
  """A separable quadratic and a 3-class softmax regression, both on w (4, 3)
  and b (3,); the quadratic starts at (w0_scale, b0_scale) times a normal draw,
  the softmax regression at 0.5 times one."""
  rng = np.random.default_rng(seed)
  quad = {
      "A": rng.uniform(0.5, 4.0, (4, 3)),
      "W_star": rng.standard_normal((4, 3)),
      "d": rng.uniform(0.5, 2.0, 3),
      "b_star": rng.standard_normal(3),
      "w0": w0_scale * rng.standard_normal((4, 3)),
      "b0": b0_scale * rng.standard_normal(3),
  }
  logreg = {
      "X": rng.standard_normal((24, 4)),
      "y": rng.integers(0, 3, 24),
      "w0": 0.5 * rng.standard_normal((4, 3)),
      "b0": 0.5 * rng.standard_normal(3),
  }
  return {"quadratic": quad, "logreg": logreg}


def multiclass_loss(name: str, data: dict, w, b):
  """The torch loss of ``multiclass_problems()[name]`` at (w, b)."""
  t = lambda k: torch.from_numpy(np.asarray(data[k]))
  if name == "quadratic":
    return (0.5 * (t("A") * (w - t("W_star")) ** 2).sum()
            + 0.5 * (t("d") * (b - t("b_star")) ** 2).sum())
  logits = t("X") @ w + b
  return torch.nn.functional.cross_entropy(logits, t("y").long())


# ------------------------------------------------ float64 quartic (Hessian methods)


def quartic_problem(shapes: dict, seed: int = 0):
  """sum_k 0.5 a_k (x_k - c_k)^2 + 0.25 q_k x_k^4 over leaves of ``shapes``;
  returns the NumPy trees (a, c, q, x0)."""
  rng = np.random.default_rng(seed)
  a = {k: rng.uniform(0.1, 10.0, s) for k, s in shapes.items()}
  c = {k: rng.standard_normal(s) for k, s in shapes.items()}
  q = {k: rng.uniform(0.0, 0.5, s) for k, s in shapes.items()}
  x0 = {k: rng.standard_normal(s) + 1.0 for k, s in shapes.items()}
  return a, c, q, x0


def quartic_loss(a: dict, c: dict, q: dict):
  """The torch loss of ``quartic_problem``'s (a, c, q), summed in key order."""
  ta = {k: torch.tensor(v) for k, v in a.items()}
  tc = {k: torch.tensor(v) for k, v in c.items()}
  tq = {k: torch.tensor(v) for k, v in q.items()}

  def loss(params):
    return sum(torch.sum(0.5 * ta[k] * (params[k] - tc[k]) ** 2 + 0.25 * tq[k] * params[k] ** 4)
               for k in sorted(params))

  return loss


# ------------------------------------------------ running a torch optimizer


def torch_params(p0: dict, dtype) -> dict:
  """``{name: leaf tensor requiring grad}`` from NumPy start values."""
  return {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in p0.items()}


def record_trajectory(opt, params: dict, loss, steps: int, include_start: bool = True,
                      create_graph: bool = False) -> dict:
  """Runs ``steps`` of ``opt`` (built over ``params``' tensors) on ``loss(params)``;
  returns ``{name: stacked params}`` (sorted names), one row a step, with the
  start as row 0 when ``include_start``."""
  names = sorted(params)
  traj = {k: [params[k].detach().numpy().copy()] if include_start else [] for k in names}
  for _ in range(steps):
    opt.zero_grad()
    loss(params).backward(create_graph=create_graph)
    opt.step()
    for k in names:
      traj[k].append(params[k].detach().numpy().copy())
  return {k: np.stack(v) for k, v in traj.items()}
