"""Regenerates tests/fixtures/reference/multi_objective_bloop.npz.

A float64 NumPy port of apple/ml-bloop (``src/bloop/optim.py``:
``bloop_direction``, ``dynamic_barrier_direction``, ``pcgrad_direction``;
``src/bloop/utils.py``: ``tree_proj``, ``update_ema``), restated from the
reference (read through the code index) with its conventions kept:

* ``init_bloop(grad_main=g_1)`` copies the first main gradient (init 'grad') or
  starts at zeros (init 'zeros'); the EMA is updated before the projection.
* ``tree_proj(t1, t2, bound)``: ratio = <t1, t2>/(||t1||² + eps), clipped above at
  ``bound`` (None for Bloop, 1/λ for the dynamic barrier, 0 for PCGrad); returns
  t2 - ratio·t1.
* Bloop/dynamic barrier: d = s·(g + λ·proj), s = (1.0 / 1.0 + λ) if rescale (the
  reference's precedence slip: 1 + λ), else 1. Only rescale=False is stored.
* PCGrad: both EMAs updated, d = s·(proj(g; ã) + λ·proj(g_aux; g̃)),
  s = 1/(1 + λ) if rescale. Stored with init 'zeros' only (the reference's
  ``init_pcgrad`` copies the *main* tree into the auxiliary EMA, which a
  transformation cannot reproduce; see optkit/multi_objective/bloop.py).

Run with the reference environment: ``python tools/make_bloop_fixtures.py``.
Arrays: ``main`` and ``aux`` (T, n) gradient sequences per case (two leaves of
sizes 5 and 6, flattened in order "a", "b"), ``d_<case>`` (T, n) directions.
"""

from __future__ import annotations

import sys
import os

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import _fixtures  # noqa: E402

T, N = 6, 11
EPS = 1e-7


def tree_proj(t1, t2, bound):
  ratio = float(t1 @ t2) / (float(t1 @ t1) + EPS)
  if bound is not None:
    ratio = min(ratio, bound)
  return t2 - ratio * t1


def update_ema(g, ema, m):
  return m + ema * (g - m)


def run_bloop(main, aux, lbda, ema, init, barrier):
  m = main[0].copy() if init == "grad" else np.zeros(N)
  out = []
  for g, ga in zip(main, aux):
    m = update_ema(g, ema, m)
    proj = tree_proj(m, ga, 1.0 / lbda if barrier else None)
    out.append(g + lbda * proj)
  return np.stack(out)


def run_pcgrad(main, aux, lbda, ema, rescale):
  m = np.zeros(N)
  a = np.zeros(N)
  out = []
  for g, ga in zip(main, aux):
    m = update_ema(g, ema, m)
    a = update_ema(ga, ema, a)
    proj_aux = tree_proj(m, ga, 0.0)
    proj_main = tree_proj(a, g, 0.0)
    scale = 1.0 / (1.0 + lbda) if rescale else 1.0
    out.append(scale * (proj_main + lbda * proj_aux))
  return np.stack(out)


def main_():
  out_dir = _fixtures.output_dir()
  rng = np.random.default_rng(0)
  base = rng.standard_normal(N)
  main = (base[None, :] + 0.5 * rng.standard_normal((T, N))).astype(np.float32)
  # Auxiliary gradients: conflicting with the main direction at some steps,
  # strongly aligned at others (ratio above 1/λ, so the barrier is active).
  coef = np.array([-1.5, 0.5, 4.0, -0.7, 3.0, 1.0])
  aux = (coef[:, None] * base[None, :] + rng.standard_normal((T, N))).astype(np.float32)
  main64, aux64 = main.astype(np.float64), aux.astype(np.float64)
  arrays = {"main": main, "aux": aux}
  for init in ("grad", "zeros"):
    for lbda, ema in ((0.1, 0.1), (0.5, 0.3)):
      tag = f"{init}_{lbda}_{ema}"
      arrays[f"d_bloop_{tag}"] = run_bloop(main64, aux64, lbda, ema, init, False)
      arrays[f"d_barrier_{tag}"] = run_bloop(main64, aux64, lbda, ema, init, True)
  for rescale in (False, True):
    arrays[f"d_pcgrad_zeros_{rescale}"] = run_pcgrad(main64, aux64, 0.5, 0.3, rescale)
  _fixtures.save(out_dir, "multi_objective_bloop.npz", arrays)


if __name__ == "__main__":
  main_()
