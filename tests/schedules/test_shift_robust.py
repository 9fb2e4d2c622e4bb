"""Tests of the shift-robust schedule (optkit.schedules.shift_robust):
reduction to the stationary 1/t schedule without drift (closed form, rtol
1e-6), a positive floor with drift equal to the closed-form fixed point
(rtol 1e-5), optimality of the greedy schedule against perturbed schedules in
a float64 evaluation of the error recursion, and a Monte Carlo check of the
error recursion itself (5%)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optkit
from optkit.schedules.shift_robust import shift_robust_floor


def _vals(s, n):
  return np.asarray(jax.jit(s)(jnp.arange(n)), np.float64)


def _mse(etas, m0, lam, s2, d):
  """Cumulative E e_t^2 of the model's recursion for a given schedule."""
  m, total = m0, 0.0
  for eta in etas:
    m = (1 - eta * lam) ** 2 * m + eta ** 2 * s2 + d
    total += m
  return total


def test_zero_drift_is_the_stationary_one_over_t_schedule():
  T, eta0, lam = 300, 0.4, 2.0
  v = _vals(optkit.shift_robust_schedule(T, 0.0, 0.7, eta0, curvature=lam), T)
  np.testing.assert_allclose(v, eta0 / (1 + eta0 * lam * np.arange(T)), rtol=1e-6)


def test_drift_gives_a_positive_floor_above_the_stationary_schedule():
  T = 400
  drift = _vals(optkit.shift_robust_schedule(T, 0.05, 1.0, 0.5), T)
  still = _vals(optkit.shift_robust_schedule(T, 0.0, 1.0, 0.5), T)
  floor = shift_robust_floor(0.05, 1.0)
  assert floor > 0.04
  np.testing.assert_allclose(drift[-1], floor, rtol=1e-5)
  assert np.all(drift >= floor * (1 - 1e-6))
  assert np.all(drift >= still - 1e-7) and drift[-1] > 10 * still[-1]
  # Starting below the floor, the optimal schedule INCREASES towards it.
  low = _vals(optkit.shift_robust_schedule(T, 0.05, 1.0, 0.01), T)
  assert np.all(np.diff(low) >= -1e-7) and low[-1] == pytest.approx(floor, rel=1e-4)


def test_greedy_schedule_is_optimal_for_the_model():
  T, eta0, lam, sigma, delta = 60, 0.3, 1.0, 0.8, 0.1
  eta = np.asarray(optkit.shift_robust_schedule(T, delta, sigma, eta0)(jnp.arange(T)),
                   np.float64)
  m0 = eta0 * sigma ** 2 / (lam * (1 - eta0 * lam))
  best = _mse(eta, m0, lam, sigma ** 2, delta ** 2)
  rng = np.random.default_rng(0)
  for _ in range(20):
    other = eta * np.exp(0.2 * rng.standard_normal(T))
    assert _mse(other, m0, lam, sigma ** 2, delta ** 2) > best
  # Negative control: the no-drift schedule is worse under drift.
  still = np.asarray(optkit.shift_robust_schedule(T, 0.0, sigma, eta0)(jnp.arange(T)))
  assert _mse(still, m0, lam, sigma ** 2, delta ** 2) > best * 1.05


def test_error_recursion_matches_simulation():
  T, eta0, sigma, delta, n = 40, 0.3, 0.8, 0.1, 20000
  eta = np.asarray(optkit.shift_robust_schedule(T, delta, sigma, eta0)(jnp.arange(T)),
                   np.float64)
  rng = np.random.default_rng(1)
  m0 = eta0 * sigma ** 2 / (1 - eta0)
  e = np.sqrt(m0) * rng.standard_normal(n)
  for t in range(T):
    e = (1 - eta[t]) * e - eta[t] * sigma * rng.standard_normal(n) + delta * rng.standard_normal(n)
  m_pred = m0
  for t in range(T):
    m_pred = (1 - eta[t]) ** 2 * m_pred + eta[t] ** 2 * sigma ** 2 + delta ** 2
  assert np.mean(e ** 2) == pytest.approx(m_pred, rel=0.05)


def test_bad_arguments():
  with pytest.raises(ValueError, match="shift_robust_schedule"):
    optkit.shift_robust_schedule(10, 0.1, 1.0, base_lr=1.0)
  with pytest.raises(ValueError, match="shift_robust_schedule"):
    optkit.shift_robust_schedule(10, -0.1, 1.0, base_lr=0.1)
  with pytest.raises(ValueError, match="shift_robust_schedule.*model"):
    optkit.shift_robust_schedule(10, 0.1, 1.0, base_lr=0.1, model="convex")
