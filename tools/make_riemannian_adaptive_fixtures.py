"""Reference trajectories of geoopt 0.5.1's RiemannianAdam (float64) for
tests/constraints/test_riemannian_adaptive.py.

Run with the reference venv: /work/refvenv/bin/python tools/make_riemannian_adaptive_fixtures.py
Writes tests/fixtures/reference/constraints_riemannian_adam.npz with, for the
Poincare ball (geoopt.PoincareBallExact, c = 1: exact exp map and gyration
transport) and the sphere (geoopt.SphereExact), the iterates of 25 steps of
RiemannianAdam (amsgrad False and True) on fixed losses:
  ball:   f(X) = 0.5 ||X - A||^2            (rows of X are points, A fixed)
  sphere: f(X) = sum_i x_i^T B x_i           (rows of X are unit vectors)
"""

import os

import geoopt
import numpy as np
import torch

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference",
                   "constraints_riemannian_adam.npz")
STEPS, LR = 25, 0.05


def problem_data():
  rng = np.random.default_rng(0)
  x_ball = 0.3 * rng.standard_normal((4, 3))
  a = 0.7 * rng.standard_normal((4, 3))
  x_sph = rng.standard_normal((4, 3))
  x_sph /= np.linalg.norm(x_sph, axis=1, keepdims=True)
  m = rng.standard_normal((3, 3))
  b = m + m.T
  return x_ball, a, x_sph, b


def run(manifold, x0, loss, amsgrad):
  p = geoopt.ManifoldParameter(torch.tensor(x0), manifold=manifold)
  opt = geoopt.optim.RiemannianAdam([p], lr=LR, amsgrad=amsgrad, betas=(0.9, 0.999), eps=1e-8)
  traj = [p.detach().numpy().copy()]
  for _ in range(STEPS):
    opt.zero_grad()
    loss(p).backward()
    opt.step()
    traj.append(p.detach().numpy().copy())
  return np.stack(traj)


def main():
  x_ball, a, x_sph, b = problem_data()
  at, bt = torch.tensor(a), torch.tensor(b)
  ball_loss = lambda x: 0.5 * ((x - at) ** 2).sum()
  sph_loss = lambda x: torch.einsum("ij,jk,ik->", x, bt, x)
  out = dict(x_ball=x_ball, a=a, x_sph=x_sph, b=b, lr=LR)
  for ams in (False, True):
    tag = "amsgrad" if ams else "adam"
    out[f"ball_{tag}"] = run(geoopt.PoincareBallExact(c=1.0), x_ball, ball_loss, ams)
    out[f"sphere_{tag}"] = run(geoopt.SphereExact(), x_sph, sph_loss, ams)
  np.savez(OUT, **out)
  print("wrote", os.path.abspath(OUT), {k: np.shape(v) for k, v in out.items()})


if __name__ == "__main__":
  main()
