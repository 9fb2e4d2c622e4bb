"""Reference trajectories of the authors' Prospect for tests/momentum/test_prospect.py.

Runs the ``Prospect`` class of the authors' code (ronakdm/prospect,
``src/optim/prospect.py`` + ``smoothing.py`` + ``baselines.py``; torch,
float64) on the 20-example regression of the test, CVaR_0.25 spectrum, for
two shift costs, and records the sampled indices and every iterate.

The authors' files are read from a git checkout given on the command line
(default: the mirror ``/work/.mirror/ronakdm+prospect/repo``) into a temporary
directory at run time; nothing of theirs is stored in optkit. ``numba.jit`` is
replaced by the identity (numba is not needed for correctness).

Mapping: their ``l2_reg`` is n * optkit's ``l2_reg`` (they divide by n); their
``shift_cost`` is optkit's ``nu``; their default oracle_reg="prox".

Run: /work/refvenv/bin/python tools/make_prospect_fixtures.py [REPO]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch

N, D, MU, LR, STEPS = 20, 3, 0.1, 0.01, 300
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference",
                   "momentum_prospect.npz")


def _data():  # as tests/momentum/test_prospect.py::_data
  rng = np.random.default_rng(0)
  x = rng.standard_normal((N, D))
  y = x @ np.array([1.0, -2.0, 0.5]) + 0.5 * rng.standard_normal(N)
  y[:3] += 4.0
  return x, y


def _load_authors(repo):
  tmp = tempfile.mkdtemp()
  os.makedirs(os.path.join(tmp, "src", "optim"))
  for sub in ("src/__init__.py", "src/optim/__init__.py"):
    open(os.path.join(tmp, sub), "w").close()
  for name in ("prospect.py", "smoothing.py", "baselines.py"):
    text = subprocess.run(["git", "--git-dir", repo, "show", f"HEAD:src/optim/{name}"],
                          check=True, capture_output=True, text=True).stdout
    with open(os.path.join(tmp, "src", "optim", name), "w") as f:
      f.write(text)
  numba = types.ModuleType("numba")
  numba.jit = lambda *a, **k: (a[0] if a and callable(a[0]) else (lambda f: f))
  sys.modules["numba"] = numba
  sys.path.insert(0, tmp)
  from src.optim.prospect import Prospect  # pylint: disable=import-outside-toplevel
  return Prospect


class _Objective:
  """The attributes Prospect reads, for squared error."""

  def __init__(self, x, y, sigmas, l2_reg):
    self.X = torch.tensor(x, dtype=torch.float64)
    self.y = torch.tensor(y, dtype=torch.float64)
    self.n, self.d = x.shape
    self.n_class = None
    self.sigmas = torch.tensor(sigmas, dtype=torch.float64)
    self.l2_reg = l2_reg

  def loss(self, w, x, y):
    return (0.5 * (y - x @ w) ** 2).sum()

  def get_indiv_loss(self, w):
    return 0.5 * (self.y - self.X @ w) ** 2

  def get_indiv_grad(self, w, x=None, y=None):
    x = self.X if x is None else x
    y = self.y if y is None else y
    return (x @ w - y)[:, None] * x


def main(repo):
  prospect_cls = _load_authors(repo)
  x, y = _data()
  sigma = np.zeros(N)
  sigma[N - 5:] = 0.2
  out = {"x": x, "y": y, "sigma": sigma, "mu": MU, "lr": LR}
  for tag, nu in (("nu02", 0.2), ("nu1", 1.0)):
    opt = prospect_cls(_Objective(x, y, sigma, N * MU), lrp=LR, shift_cost=nu)
    drawn = []
    rng = opt.rng_grad

    class _Recorder:  # the same stream, with the draws recorded
      def randint(self, lo, hi):
        drawn.append(rng.randint(lo, hi))
        return drawn[-1]

    opt.rng_grad = _Recorder()
    iterates = []
    for _ in range(STEPS):
      opt.step()
      iterates.append(opt.weights.detach().numpy().copy())
    out[f"{tag}_nu"] = nu
    out[f"{tag}_indices"] = np.array(drawn, np.int32)
    out[f"{tag}_iterates"] = np.array(iterates)
  np.savez(OUT, **out)
  print("wrote", os.path.abspath(OUT))


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/ronakdm+prospect/repo")
