"""optkit.core.numerics: float32-careful bias correction and small helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.core import numerics

_BETAS = [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999]
_STEPS = np.array([1, 2, 3, 10, 100, 1000, 10000], np.int32)


def _exact(b, t):
  """1 - b**t in float64 (b taken exactly as the Python double)."""
  return 1.0 - np.power(b, t.astype(np.float64))


@pytest.mark.parametrize("b", _BETAS)
def test_bias_correction_matches_float64(b):
  """Relative error <= 4 float32 ulps (5e-7) against float64, every t."""
  got = np.asarray(numerics.bias_correction(b, jnp.asarray(_STEPS)))
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, _exact(b, _STEPS), rtol=5e-7, atol=0)


def test_naive_float32_power_misses():
  """Negative control: optax's float32 ``1 - b**t`` is 1.3e-5 relative off at
  b = 0.999, t = 1 (float32(0.999) != 0.999), 25x the tolerance above."""
  t = jnp.asarray(_STEPS)
  naive = np.asarray(1 - jnp.asarray(0.999, jnp.float32) ** t.astype(jnp.float32))
  err = np.abs(naive / _exact(0.999, _STEPS) - 1)
  assert err[0] > 1e-5
  with pytest.raises(AssertionError):
    np.testing.assert_allclose(naive, _exact(0.999, _STEPS), rtol=5e-7, atol=0)
  # optax's own bias correction is the naive one.
  mu = {"x": jnp.ones(())}
  optax_bc = float(optax.tree.bias_correction(mu, 0.999, jnp.asarray(1, jnp.int32))["x"])
  assert abs(1 / optax_bc / 0.001 - 1) > 1e-5


def test_bias_correction_traced_and_jitted():
  """Works with a traced decay (inject_hyperparams) and a traced count."""
  f = jax.jit(numerics.bias_correction)
  got = np.asarray(f(jnp.asarray(0.9, jnp.float32), jnp.asarray(_STEPS)))
  np.testing.assert_allclose(got, _exact(np.float32(0.9).item(), _STEPS), rtol=5e-7, atol=0)
  assert float(f(jnp.asarray(0.0), jnp.asarray(3))) == 1.0


def test_bias_correction_keeps_float_count_dtype():
  t = jnp.asarray([1.0, 5.0], jnp.float32)
  assert numerics.bias_correction(0.99, t).dtype == jnp.float32
  with jax.enable_x64(True):
    t64 = jnp.asarray(np.array([1, 5, 50]), jnp.int64)
    got = numerics.bias_correction(0.999, t64)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got), _exact(0.999, np.array([1, 5, 50])),
                               rtol=1e-14, atol=0)


def test_stat_zeros_dtypes():
  z = numerics.stat_zeros({"a": jnp.ones((2, 3), jnp.bfloat16), "b": jnp.ones(4)})
  assert z["a"].dtype == jnp.float32 and z["a"].shape == (2, 3)
  assert z["b"].dtype == jnp.float32 and not np.any(np.asarray(z["b"]))


def test_safe_div_zero_denominator_and_grad():
  num, den = jnp.array([1.0, 2.0, 3.0]), jnp.array([2.0, 0.0, -1.0])
  np.testing.assert_array_equal(np.asarray(numerics.safe_div(num, den)), [0.5, 0.0, 0.0])
  g = jax.grad(lambda d: numerics.safe_div(num, d).sum())(den)
  assert np.all(np.isfinite(np.asarray(g)))
