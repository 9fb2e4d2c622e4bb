"""Reference trajectories of the nonconvex AG method from the authors' package.

Run with the reference environment (``pip install nonconvexag==1.1.6`` there):

    /work/refvenv/bin/python tools/make_nonconvex_penalties_fixtures.py [--out DIR]

Yang, Asgharian & Bhatnagar's PyPI package ``nonconvexAG`` (1.1.6) implements
the paper's method as ``UAG_LM_SCAD_MCP`` (penalized least squares, intercept
in column 0 not penalized). Its functions are decorated with ``numba.jit``;
numba is not needed to read them, so this script installs stand-ins for
``numba`` (identity decorators) and ``multiprocess``, and restores NumPy 2's
removed alias ``np.infty``, before importing the package, and runs the authors' code as plain NumPy in float64.

``UAG_LM_SCAD_MCP(..., maxit=M, tol=0)`` returns x^md of iteration M + 1, so
calling it for M = 0 .. STEPS - 1 records the x^md trajectory. The authors'
loop adds adaptive restarts (alpha reset to 1 when the x^md speed drops);
optkit does not, so the fixture keeps the steps before the first restart,
found by replaying the loop's restart rule on the recorded trajectory.

Writes tests/fixtures/reference/constraints_nonconvex_ag.npz with, per
penalty ``<pen>`` in (scad, mcp): ``<pen>__md`` (steps, p + 1) the x^md
iterates (column 0 the intercept), ``<pen>__hparams`` [lambda, a, gamma,
L_convex, beta]; and the data ``X`` (n, p + 1, column 0 ones), ``y``, ``beta0``.
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _stub_modules():
  numba = types.ModuleType("numba")

  def jit(*args, **kwargs):
    if args and callable(args[0]) and not kwargs:
      return args[0]
    return lambda f: f

  numba.jit = numba.njit = jit
  sys.modules["numba"] = numba
  sys.modules.setdefault("multiprocess", types.ModuleType("multiprocess"))
  if not hasattr(np, "infty"):  # the package predates NumPy 2 (np.infty removed)
    np.infty = np.inf


STEPS = 25


def main(argv=None):
  import argparse
  parser = argparse.ArgumentParser()
  parser.add_argument("--out", default=os.path.normpath(os.path.join(
      os.path.dirname(__file__), "..", "tests", "fixtures", "reference")))
  out_dir = parser.parse_args(argv).out
  _stub_modules()
  import nonconvexAG as ref  # noqa: E402  (after the stubs)

  rng = np.random.default_rng(0)
  n, p = 60, 8
  # centred, small-scale features (curvature <= ~0.2 while the intercept
  # column sets L_convex ~ 1) and a start at 0 far from the solution: the
  # x^md speed grows for many steps before the authors' first restart
  feats = 0.3 * rng.standard_normal((n, p))
  feats -= feats.mean(0)
  truth = np.zeros(p)
  truth[[0, 3, 6]] = [2.0, -1.5, 3.0]
  y = feats @ truth + 0.05 * rng.standard_normal(n)
  y -= y.mean()
  x = np.hstack([np.ones((n, 1)), feats])
  beta0 = np.zeros(p + 1)
  l_convex = np.linalg.eigvalsh(x @ x.T)[-1] / n
  arrays = {"X": x, "y": y, "beta0": beta0}
  for pen, lam in (("scad", 0.2), ("mcp", 0.2)):
    a, gamma = 3.7, 2.0
    mds = []
    for m in range(STEPS):
      _, md = ref.UAG_LM_SCAD_MCP(x, y, beta_0=beta0.copy(), tol=0.0, maxit=m, _lambda=lam,
                                  penalty=pen.upper(), a=a, gamma=gamma, L_convex=l_convex,
                                  add_intercept_column=False)
      mds.append(np.array(md))
    mds = np.array(mds)
    # the restart rule of the authors' loop, replayed: at iteration k >= 3
    # (1-based, no restart yet) it restarts when ||md_{k-1} - md_{k-2}|| <
    # ||md_{k-2} - md_{k-3}|| (with md_0 = beta0, and speed 1 before).
    traj = np.vstack([beta0[None, :], mds])
    speeds = [1.0] + [np.linalg.norm(traj[i] - traj[i - 1]) for i in range(1, len(traj))]
    keep = STEPS
    for k in range(3, STEPS + 1):
      if speeds[k - 2] > speeds[k - 1]:
        keep = k - 1        # iteration k restarts: keep iterations 1 .. k - 1
        break
    scale = max(l_convex, 1 / (a - 1)) if pen == "scad" else max(l_convex, 1 / gamma)
    arrays[f"{pen}__md"] = mds[:keep]
    arrays[f"{pen}__hparams"] = np.array([lam, a, gamma, l_convex, 0.99 / scale])
    print(pen, "steps before the first restart:", keep, np.round(speeds[:8], 4))
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, "constraints_nonconvex_ag.npz")
  np.savez(path, **arrays)
  print("wrote", path)


if __name__ == "__main__":
  main()
