"""Tests of the 1cycle schedules and the LR range test (optkit.schedules.onecycle).

Reference: PyTorch OneCycleLR (fixture tests/fixtures/reference/
schedules_onecycle.npz, made by tools/make_onecycle_fixtures.py with torch
2.13), learning rate and momentum at every step, tolerance 1e-6 relative +
1e-7 absolute (float32 values); optax.linear_onecycle_schedule exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers

CASES = ("linear_paper", "linear_fastai", "cosine_fastai", "cosine_short")


def _vals(s, n):
  return np.asarray(jax.jit(s)(jnp.arange(n)))


@pytest.mark.parametrize("case", CASES)
def test_matches_pytorch_onecycle(case):
  d = np.load(helpers.fixture("schedules_onecycle.npz"))
  T, peak, a, b, div, fdiv, mx, mn = d[f"{case}/config"]
  shape = str(d[f"{case}/shape"])
  lr = optkit.onecycle_schedule(int(T), peak, a, b, div, fdiv, shape=shape)
  mom = optkit.onecycle_momentum_schedule(int(T), mx, mn, a, b, shape=shape)
  np.testing.assert_allclose(_vals(lr, int(T) + 1), d[f"{case}/lr"], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(_vals(mom, int(T) + 1), d[f"{case}/momentum"],
                             rtol=1e-6, atol=1e-7)


def test_equals_optax_with_optax_defaults():
  ours = optkit.onecycle_schedule(200, 0.7, pct_start=0.3, pct_final=0.85,
                                  div_factor=25.0, final_div_factor=1e4)
  ref = optax.linear_onecycle_schedule(200, 0.7)
  for t in range(0, 205):
    assert float(ours(t)) == float(ref(t)), t


def test_equals_optax_cosine():
  ours = optkit.onecycle_schedule(50, 0.2, pct_start=0.3, shape="cosine")
  ref = optax.cosine_onecycle_schedule(50, 0.2, pct_start=0.3, div_factor=10.0,
                                       final_div_factor=100.0)
  np.testing.assert_allclose(_vals(ours, 55), np.asarray([ref(t) for t in range(55)]),
                             rtol=1e-6, atol=1e-9)


def test_phase_boundary_values():
  T, peak, div, fdiv = 200, 0.4, 10.0, 100.0
  s = optkit.onecycle_schedule(T, peak, 0.45, 0.9, div, fdiv)
  eta_min = peak / div
  np.testing.assert_allclose(
      [float(s(0)), float(s(90)), float(s(180)), float(s(200)), float(s(500))],
      [eta_min, peak, eta_min, eta_min / fdiv, eta_min / fdiv], rtol=1e-6)
  # Linear in between: the midpoint of the rise.
  np.testing.assert_allclose(float(s(45)), (eta_min + peak) / 2, rtol=1e-6)


def test_momentum_mirrors_the_learning_rate():
  T, peak, div, hi, lo = 120, 1.0, 10.0, 0.95, 0.85
  lr = _vals(optkit.onecycle_schedule(T, peak, 0.45, 0.9, div), T + 5)
  m = _vals(optkit.onecycle_momentum_schedule(T, hi, lo, 0.45, 0.9), T + 5)
  eta_min = peak / div
  t = np.arange(T + 5)
  cycle = t <= int(0.9 * T)
  expected = hi - (lr - eta_min) / (peak - eta_min) * (hi - lo)
  np.testing.assert_allclose(m[cycle], expected[cycle], atol=1e-6)
  np.testing.assert_allclose(m[~cycle], hi, atol=1e-7)
  # Negative control: a constant momentum does not mirror the cycle.
  assert not np.allclose(np.full_like(m[cycle], hi), expected[cycle], atol=1e-3)


def test_momentum_through_inject_hyperparams():
  m = optkit.onecycle_momentum_schedule(10)
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=optkit.onecycle_schedule(10, 1.0),
                                           momentum=m)
  p = jnp.ones(2)
  s = tx.init(p)
  for _ in range(4):
    _, s = tx.update(p, s, p)
  np.testing.assert_allclose(float(s.hyperparams["momentum"]), float(m(3)), rtol=1e-6)


def test_lr_range_test_schedule_and_peak():
  s = optkit.lr_range_test(1e-3, 1.0, 100)
  v = _vals(s, 102)
  np.testing.assert_allclose(v[:101], np.linspace(1e-3, 1.0, 101), rtol=1e-6, atol=1e-9)
  assert v[101] == pytest.approx(1.0)
  # A loss that improves until lr = 0.3 and then blows up.
  lrs = np.linspace(0.01, 1.0, 100)
  losses = np.where(lrs < 0.3, 1.0 - lrs, 0.7 + 50 * (lrs - 0.3) ** 2)
  losses[-3:] = np.nan
  peak = optkit.lr_range_test_peak(lrs, losses)
  assert abs(peak - 0.3) <= 0.011
  # Smoothing delays noisy minima but still lands near the bend.
  noisy = losses + 0.002 * np.random.default_rng(0).standard_normal(100)
  assert abs(optkit.lr_range_test_peak(lrs, noisy, smoothing=0.5) - 0.3) < 0.06


def test_bad_arguments():
  with pytest.raises(ValueError, match="onecycle_schedule"):
    optkit.onecycle_schedule(100, -1.0)
  with pytest.raises(ValueError, match="onecycle_schedule.*pct_final"):
    optkit.onecycle_schedule(100, 1.0, pct_start=0.5, pct_final=0.4)
  with pytest.raises(ValueError, match="onecycle_schedule.*shape"):
    optkit.onecycle_schedule(100, 1.0, shape="triangle")
  with pytest.raises(ValueError, match="onecycle_momentum_schedule"):
    optkit.onecycle_momentum_schedule(100, max_momentum=0.8, min_momentum=0.9)
  with pytest.raises(ValueError, match="lr_range_test"):
    optkit.lr_range_test(1.0, 0.1, 10)
  with pytest.raises(ValueError, match="lr_range_test_peak"):
    optkit.lr_range_test_peak(np.ones(3), np.ones(4))
