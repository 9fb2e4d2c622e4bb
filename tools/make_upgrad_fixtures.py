"""Regenerates tests/fixtures/reference/upgrad_torchjd.npz from torchjd's UPGrad.

Run with the reference environment (torchjd 0.18 + qpsolvers + quadprog):

    python tools/make_upgrad_fixtures.py

For each case k the file stores

* ``J_k``          the (m, n) Jacobian, float32 values (torchjd sees them as float64);
* ``pref_k``       the preference vector, or an empty array for torchjd's default
                   (uniform 1/m, i.e. ``pref_vector=None``);
* ``A_default_k``  ``UPGrad(pref_vector)(J)``, torchjd's defaults
                   (``QuadprogProjector(norm_eps=1e-4, reg_eps=1e-4)``);
* ``A_exact_k``    ``UPGrad(pref_vector, projector=QuadprogProjector(norm_eps=...,
                   reg_eps=0.0))(J)``, the exact (unregularized) aggregation;
* ``exact_norm_eps_k``  the norm_eps of that exact run: 1e-4, except for cases whose
                   Gramian trace is below 1e-4 (there G would be zeroed and quadprog
                   rejects the all-zero QP), which use norm_eps = 0.

Case families (``kind_k``): "gaussian" (i.i.d. normal rows), "conflict" (rows built
to have negative pairwise inner products), "aligned" (non-negative pairwise inner
products), "scaled" (gaussian/conflict scaled by 1e-3, some with a Gramian trace
below norm_eps), "large" (scaled by 1e3), and some of them with a random positive
preference vector.
"""

from __future__ import annotations

import importlib.metadata
import os

import numpy as np
import torch
from torchjd.aggregation import UPGrad
from torchjd.linalg import QuadprogProjector

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "reference",
                   "upgrad_torchjd.npz")
SHAPES = ((2, 5), (3, 7), (5, 10), (4, 6), (2, 3), (6, 12), (8, 16))


def _conflicting(rng, m, n):
  """Rows with a shared part and strongly opposed private parts."""
  base = rng.normal(size=n)
  opp = rng.normal(size=n)
  signs = np.where(np.arange(m) % 2 == 0, 1.0, -1.0)
  coef = signs * rng.uniform(1.0, 3.0, size=m)
  return base[None, :] * rng.uniform(0.1, 0.5, size=(m, 1)) + coef[:, None] * opp[None, :] \
      + 0.3 * rng.normal(size=(m, n))


def _aligned(rng, m, n):
  base = rng.normal(size=n)
  j = base[None, :] + 0.2 * rng.normal(size=(m, n))
  g = j @ j.T
  assert (g >= 0).all()
  return j


def _cases(rng):
  cases = []
  for rep in range(2):
    for m, n in SHAPES:
      cases.append(("gaussian", rng.normal(size=(m, n)), rep == 1))
      cases.append(("conflict", _conflicting(rng, m, n), False))
  for m, n in SHAPES:
    cases.append(("aligned", _aligned(rng, m, n), False))
  for m, n in SHAPES[:4]:
    cases.append(("scaled", 1e-3 * rng.normal(size=(m, n)), False))
    cases.append(("scaled", 1e-3 * _conflicting(rng, m, n), False))
    cases.append(("scaled", 3e-3 * _conflicting(rng, m, n), False))
    cases.append(("large", 1e3 * _conflicting(rng, m, n), False))
  return cases


def main():
  rng = np.random.default_rng(20240624)
  out = {"torchjd_version": np.array(importlib.metadata.version("torchjd"))}
  cases = _cases(rng)
  for k, (kind, j, with_pref) in enumerate(cases):
    j32 = j.astype(np.float32)
    jt = torch.as_tensor(j32.astype(np.float64))
    m = j.shape[0]
    pref = rng.uniform(0.2, 1.0, size=m).astype(np.float32) if with_pref else None
    pref_t = None if pref is None else torch.as_tensor(pref.astype(np.float64))
    a_default = UPGrad(pref_t)(jt)
    trace = float((jt @ jt.T).trace())
    exact_norm_eps = 1e-4 if trace >= 1e-4 else 0.0
    a_exact = UPGrad(pref_t, projector=QuadprogProjector(norm_eps=exact_norm_eps,
                                                         reg_eps=0.0))(jt)
    out[f"J_{k}"] = j32
    out[f"pref_{k}"] = np.zeros((0,), np.float32) if pref is None else pref
    out[f"A_default_{k}"] = a_default.numpy()
    out[f"A_exact_{k}"] = a_exact.numpy()
    out[f"exact_norm_eps_{k}"] = np.array(exact_norm_eps)
    out[f"kind_{k}"] = np.array(kind)
  out["num_cases"] = np.array(len(cases))
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  np.savez_compressed(OUT, **out)
  kinds = [c[0] for c in cases]
  print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}:",
        {k: kinds.count(k) for k in sorted(set(kinds))})


if __name__ == "__main__":
  main()
