"""optkit.core.linalg: Newton-Schulz, exact polar factor, inverse roots, power iteration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optkit.core import linalg


def _rand(shape, seed=0, dtype=np.float64):
  return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape", [(8, 8), (12, 5), (5, 12)])
def test_newton_schulz_quintic_singular_values_in_band(shape):
  g = jnp.asarray(_rand(shape, 1), jnp.float32)
  s = np.linalg.svd(np.asarray(linalg.newton_schulz(g)), compute_uv=False)
  assert s.min() > 0.6 and s.max() < 1.25, s
  assert s.max() / s.min() < 1.25 / 0.6
  # Negative control: the raw matrix's singular values are far more spread out.
  s_raw = np.linalg.svd(np.asarray(g), compute_uv=False)
  assert s_raw.max() / s_raw.min() > 1.25 / 0.6


def test_newton_schulz_keeps_singular_vectors():
  g = _rand((10, 6), 2)
  u, _, vt = np.linalg.svd(g, full_matrices=False)
  o = np.asarray(linalg.newton_schulz(jnp.asarray(g, jnp.float32)), np.float64)
  # U^T O V is diagonal (same singular vectors), with the band's values.
  core = u.T @ o @ vt.T
  off = core - np.diag(np.diag(core))
  assert np.abs(off).max() < 1e-4
  assert np.all(np.diag(core) > 0.6)


def test_newton_schulz_cubic_converges_to_polar_factor():
  g = _rand((9, 4), 3)
  exact = np.asarray(linalg.orthogonalize_svd(jnp.asarray(g)))
  with jax.enable_x64(True):
    o = np.asarray(linalg.newton_schulz(jnp.asarray(g), steps=60, coeffs=linalg.CUBIC_COEFFS))
  np.testing.assert_allclose(o, exact, atol=1e-6)


def test_newton_schulz_per_step_coeffs_match_repeated():
  g = jnp.asarray(_rand((6, 4), 4), jnp.float32)
  a = linalg.newton_schulz(g, steps=3)
  b = linalg.newton_schulz(g, steps=3, coeffs=[linalg.MUON_COEFFS] * 3)
  np.testing.assert_allclose(a, b, rtol=1e-6)


def test_newton_schulz_matches_reference_iteration_in_numpy():
  """Re-derivation in float64 NumPy of the quintic iteration on the short side."""
  g = _rand((7, 5), 5)
  a, b, c = linalg.MUON_COEFFS
  x = g.T / (np.linalg.norm(g) + 1e-7)
  for _ in range(5):
    gram = x @ x.T
    x = a * x + (b * gram + c * gram @ gram) @ x
  ours = np.asarray(linalg.newton_schulz(jnp.asarray(g, jnp.float32)))
  np.testing.assert_allclose(ours, x.T, atol=2e-5)


def test_newton_schulz_zero_matrix_is_finite_and_dtype_kept():
  z = jnp.zeros((4, 3), jnp.bfloat16)
  o = linalg.newton_schulz(z)
  assert o.dtype == jnp.bfloat16
  assert np.all(np.asarray(o, np.float32) == 0)


def test_newton_schulz_rejects_bad_input():
  with pytest.raises(ValueError, match="newton_schulz.*steps"):
    linalg.newton_schulz(jnp.ones((2, 2)), steps=0)
  with pytest.raises(ValueError, match="newton_schulz.*2-D"):
    linalg.newton_schulz(jnp.ones((2, 2, 2)))
  with pytest.raises(ValueError, match="newton_schulz.*coeffs"):
    linalg.newton_schulz(jnp.ones((2, 2)), coeffs=(1.0, 2.0))


def test_orthogonalize_svd_is_exact_and_handles_rank_deficiency():
  g = _rand((6, 4), 6)
  o = np.asarray(linalg.orthogonalize_svd(jnp.asarray(g, jnp.float32)))
  np.testing.assert_allclose(np.linalg.svd(o, compute_uv=False), 1.0, atol=1e-5)
  low = np.outer(_rand(6, 7), _rand(4, 8))  # rank 1
  o = np.asarray(linalg.orthogonalize_svd(jnp.asarray(low, jnp.float32)))
  s = np.linalg.svd(o, compute_uv=False)
  np.testing.assert_allclose(s, [1, 0, 0, 0], atol=1e-5)


def test_inverse_pth_root_matches_eig_in_float64():
  a = _rand((6, 6), 9)
  a = a @ a.T + 0.1 * np.eye(6)
  w, v = np.linalg.eigh(a)
  for p in (2, 4):
    expected = (v * w ** (-1.0 / p)) @ v.T
    with jax.enable_x64(True):
      ours = np.asarray(linalg.inverse_pth_root(jnp.asarray(a), p, ridge_epsilon=0.0))
    np.testing.assert_allclose(ours, expected, rtol=1e-8, atol=1e-10)


def test_inverse_pth_root_singular_matrix_is_finite():
  a = jnp.zeros((3, 3))
  out = linalg.inverse_pth_root(a, 4)
  assert np.all(np.isfinite(np.asarray(out)))
  r = np.outer([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
  out = np.asarray(linalg.inverse_pth_root(jnp.asarray(r, jnp.float32), 2, 1e-6))
  assert np.all(np.isfinite(out))
  with pytest.raises(ValueError, match="inverse_pth_root"):
    linalg.inverse_pth_root(jnp.ones((2, 3)), 2)


def test_power_iteration_top_eigenvalue():
  a = _rand((8, 8), 10)
  a = (a + a.T) / 2 + 10 * np.diag(np.arange(8))  # a dominant eigenvalue
  top = np.linalg.eigvalsh(a)[-1]
  lam, v = linalg.power_iteration(jnp.asarray(a, jnp.float32), jnp.ones(8), num_iters=500)
  np.testing.assert_allclose(float(lam), top, rtol=1e-4)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(v)), 1.0, rtol=1e-5)
  lam2, _ = jax.jit(lambda x: linalg.power_iteration(lambda u: x @ u, jnp.ones(8), 500))(
      jnp.asarray(a, jnp.float32))
  np.testing.assert_allclose(float(lam2), top, rtol=1e-4)


def test_as_matrix_round_trip_and_dimension_numbers():
  x = jnp.arange(72.0).reshape(3, 3, 2, 4)
  m, back = linalg.as_matrix(x)
  assert m.shape == (18, 4)
  np.testing.assert_array_equal(back(m), x)
  m, back = linalg.as_matrix(x, ((3,), (0, 1, 2)))  # PyTorch-like (out, in*kh*kw)
  assert m.shape == (4, 18)
  np.testing.assert_array_equal(back(m), x)
  assert linalg.matrix_dims((5,)) is None
  with pytest.raises(ValueError, match="partition"):
    linalg.as_matrix(x, ((0,), (1,)))
