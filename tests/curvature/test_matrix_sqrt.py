"""Matrix Taylor / Pade square roots (arXiv:2201.08663), against a float64
eigendecomposition.

Measured accuracy (8 x 8 SPD, relative Frobenius error of the root): spectrum
in [1, 2]: [5/5] 5.5e-6, [10/10] 1.2e-10, Taylor K=10 9.8e-4; spectrum in
[1, 10]: [5/5] 9.8e-4, [10/10] 4.1e-6; spectrum in [1, 100]: [5/5] 2.5e-2
(the eigenvalue 1 maps to z = 1 - 1/||A||_F ~ 0.994, next to the branch point
of sqrt(1 - z)). The tolerances below are these numbers with a 2x margin.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ms = importlib.import_module("optkit.curvature.matrix_sqrt")


def _spd(top, n=8, seed=0):
  q = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))[0]
  lam = np.logspace(0, np.log10(top), n)
  return (q * lam) @ q.T, (q * np.sqrt(lam)) @ q.T, (q / np.sqrt(lam)) @ q.T


def _rel(x, ref):
  return np.linalg.norm(np.asarray(x) - ref) / np.linalg.norm(ref)


def test_pade_coefficients_match_the_taylor_series_to_order_m_plus_n():
  for m, n in [(1, 1), (3, 2), (5, 5), (2, 4)]:
    p, q = ms.pade_coefficients(m, n)
    c = ms.taylor_coefficients(m + n + 1)
    # q(z) * sqrt(1 - z) - p(z) = O(z^(m+n+1)): its first m+n+1 coefficients vanish.
    prod = np.convolve(q, c)[: m + n + 2]
    prod[: m + 1] -= p
    np.testing.assert_allclose(prod[: m + n + 1], 0.0, atol=1e-14)
    assert abs(prod[m + n + 1]) > 1e-9  # and not beyond (the check can fail)
  np.testing.assert_allclose(ms.taylor_coefficients(3), [1.0, -0.5, -0.125, -0.0625])


def test_pade_root_matches_eigendecomposition_in_float64():
  with jax.enable_x64(True):
    a, root, _ = _spd(2.0)
    assert _rel(ms.matrix_sqrt_pade(jnp.asarray(a), 5, 5), root) < 1.1e-5
    assert _rel(ms.matrix_sqrt_pade(jnp.asarray(a), 10, 10), root) < 2.4e-10
    a, root, _ = _spd(10.0)
    assert _rel(ms.matrix_sqrt_pade(jnp.asarray(a), 5, 5), root) < 2e-3
    assert _rel(ms.matrix_sqrt_pade(jnp.asarray(a), 10, 10), root) < 8.3e-6
    a, root, _ = _spd(100.0)
    err55 = _rel(ms.matrix_sqrt_pade(jnp.asarray(a), 5, 5), root)
    assert err55 < 5e-2
    x = np.asarray(ms.matrix_sqrt_pade(jnp.asarray(a), 10, 10))
    assert _rel(x, root) < err55 / 4  # higher order helps where it is hard
    np.testing.assert_allclose(x, x.T, atol=1e-12)  # symmetric


def test_taylor_converges_slower_than_pade():
  """Negative control for the paper's claim: at the same order the Taylor
  polynomial is far less accurate than the Pade approximant."""
  with jax.enable_x64(True):
    a, root, _ = _spd(2.0)
    errs = [_rel(ms.matrix_sqrt_taylor(jnp.asarray(a), k), root) for k in (5, 10, 20)]
    assert errs[0] > errs[1] > errs[2]           # converges with K ...
    assert errs[1] > 100 * _rel(ms.matrix_sqrt_pade(jnp.asarray(a), 5, 5), root)


def test_inverse_root_times_root_is_identity_and_matches_eigendecomposition():
  with jax.enable_x64(True):
    a, _, inv_root = _spd(10.0)
    x = np.asarray(ms.matrix_sqrt_pade(jnp.asarray(a)))
    y = np.asarray(ms.matrix_inv_sqrt_pade(jnp.asarray(a)))
    np.testing.assert_allclose(y @ x, np.eye(8), atol=1e-12)
    assert _rel(y, inv_root) < 6e-3  # measured 3.0e-3 ([5/5], spectrum [1, 10])
    a, _, inv_root = _spd(2.0)
    assert _rel(ms.matrix_inv_sqrt_pade(jnp.asarray(a), 10, 10), inv_root) < 2.4e-10


def test_stacks_dtypes_and_bad_input():
  a1, _, _ = _spd(3.0, n=4, seed=1)
  a2, _, _ = _spd(5.0, n=4, seed=2)
  stack = jnp.asarray(np.stack([a1, a2]), jnp.float32)
  for fn in (ms.matrix_sqrt_pade, ms.matrix_inv_sqrt_pade, ms.matrix_sqrt_taylor):
    out = fn(stack)
    assert out.dtype == jnp.float32 and out.shape == (2, 4, 4)
    np.testing.assert_allclose(out[1], fn(stack[1]), rtol=1e-5, atol=1e-6)
  out = jax.jit(ms.matrix_sqrt_pade)(jnp.asarray(a1, jnp.bfloat16))
  assert out.dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="matrix_sqrt_pade"):
    ms.matrix_sqrt_pade(jnp.ones((3, 4)))
  with pytest.raises(ValueError, match="matrix_sqrt_taylor.*num_terms"):
    ms.matrix_sqrt_taylor(jnp.eye(2), num_terms=-1)
