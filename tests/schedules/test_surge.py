"""Tests of the surge rule (optkit.schedules.surge): peak value and location,
log-symmetry, the rise-then-fall shape (negative control: the SGD rule is
monotone), and a hand-computed value (exact to float32 rounding, 1e-7)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optkit


def test_peak_at_noise_batch_size_equals_lr_max():
  b = jnp.logspace(0, 4, 401)
  lr = np.asarray(optkit.surge_optimal_lr(b, 100.0, 3e-4))
  assert np.argmax(lr) == 200          # b[200] = 100
  np.testing.assert_allclose(lr[200], 3e-4, rtol=1e-6)
  assert np.all(lr <= 3e-4 * (1 + 1e-6))


def test_symmetric_in_log_batch_size():
  c = np.array([1.5, 2.0, 10.0, 37.0])
  up = optkit.surge_optimal_lr(50.0 * c, 50.0, 1.0)
  down = optkit.surge_optimal_lr(50.0 / c, 50.0, 1.0)
  np.testing.assert_allclose(up, down, rtol=1e-6)


def test_hand_computed_value_and_surge_shape():
  # B = 4 B_noise: 1 / (0.5 (0.5 + 2)) = 0.8.
  assert float(optkit.surge_optimal_lr(400.0, 100.0, 1.0)) == pytest.approx(0.8, abs=1e-7)
  b = jnp.asarray([10.0, 100.0, 1000.0, 10000.0])
  adam = np.asarray(optkit.surge_optimal_lr(b, 1000.0, 1.0))
  assert adam[0] < adam[1] < adam[2] > adam[3]          # rises, then falls
  sgd = np.asarray(optkit.surge_optimal_lr(b, 1000.0, 1.0, optimizer="sgd"))
  assert np.all(np.diff(sgd) > 0)                        # negative control: monotone
  np.testing.assert_allclose(sgd, 1.0 / (1.0 + 1000.0 / np.asarray(b)), rtol=1e-6)


def test_growing_noise_scale_moves_the_peak():
  b = jnp.logspace(1, 5, 81)
  peaks = [float(b[np.argmax(optkit.surge_optimal_lr(b, bn, 1.0))]) for bn in (100.0, 1000.0)]
  assert peaks[1] > peaks[0]


def test_jittable_and_bad_arguments():
  f = jax.jit(lambda bb, bn: optkit.surge_optimal_lr(bb, bn, 1.0))
  np.testing.assert_allclose(f(400.0, 100.0), 0.8, rtol=1e-6)
  with pytest.raises(ValueError, match="surge_optimal_lr"):
    optkit.surge_optimal_lr(0.0, 100.0, 1.0)
  with pytest.raises(ValueError, match="surge_optimal_lr"):
    optkit.surge_optimal_lr(10.0, -1.0, 1.0)
  with pytest.raises(ValueError, match="surge_optimal_lr"):
    optkit.surge_optimal_lr(10.0, 1.0, 1.0, optimizer="lion")
