"""What makes O2NC itself (arXiv:2302.03775); the contract suite covers the rest."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.momentum import o2nc, o2nc_eval_params, scale_by_o2nc
from tests import helpers

_CURV = np.array([1.0, 4.0, 0.5, 2.0])
_CENTER = np.array([0.5, -1.0, 2.0, 0.0])


def _grad_np(w):
  return _CURV * (w - _CENTER)


def _loss(p):
  return 0.5 * jnp.sum(jnp.asarray(_CURV, p["a"].dtype) * (p["a"] - jnp.asarray(_CENTER, p["a"].dtype)) ** 2)


def _run(tx, steps, x0, dtype=jnp.float32):
  """Closed loop: the gradient is taken at the visible params, as a user would."""
  return helpers.run_closed_loop(tx, _loss, {"a": jnp.asarray(x0, dtype)}, steps)


def _project(v, radius):
  n = np.linalg.norm(v)
  return v * min(1.0, radius / n) if n > 0 else v


def test_hand_computed_first_step():
  """Delta_1 = 0, so w_1 = x_0; Delta_2 = Pi_D(-eta g_1); w_2 = x_1 + s_2 Delta_2 (x_1 = x_0)."""
  eta, radius = 0.1, 0.05
  tx = scale_by_o2nc(eta, radius, seed=4)
  w = jnp.array([3.0, 4.0])
  u, state = tx.update(w, tx.init(w), w)
  delta = _project(-eta * np.array([3.0, 4.0]), radius)
  np.testing.assert_allclose(state.delta, delta, rtol=1e-6)
  np.testing.assert_allclose(state.anchor, [3.0, 4.0])
  # (x_1 + s Delta_2) - w in float32: cancellation error ~ 1 ulp of |w| = 5.
  np.testing.assert_allclose(u, float(state.scale) * delta, rtol=1e-6, atol=1e-6)
  assert 0.0 < float(state.scale) < 1.0


def test_delta_stays_in_the_ball_negative_control_unprojected():
  """Test (1): ||Delta|| <= D after every step; plain (unprojected) OGD leaves the ball."""
  radius, eta = 0.3, 0.2
  outs = _run(scale_by_o2nc(eta, radius), 30, np.full(4, 5.0))
  norms = [float(optax.tree.norm(s.delta)) for _, s, _ in outs]
  assert max(norms) <= radius * (1 + 1e-6)
  assert max(norms) > 0.99 * radius  # the constraint is active
  # Negative control: the same gradients fed to unprojected OGD exceed D.
  delta = np.zeros(4)
  free = []
  for _, _, g in outs:
    delta = delta - eta * np.asarray(g["a"])
    free.append(np.linalg.norm(delta))
  assert max(free) > 2 * radius


def test_scale_one_is_projected_online_gd_on_x():
  """Test (2): with s = 1 the visible params are x_n and follow
  x_{n+1} = x_n + Pi_D(Delta_n - eta grad f(x_n)) (float64 re-derivation)."""
  eta, radius, x0 = 0.05, 0.4, np.array([3.0, 2.0, -1.0, 4.0])
  with jax.enable_x64(True):
    outs = _run(scale_by_o2nc(eta, radius, sample_fn=lambda k: 1.0), 40, x0, jnp.float64)
  x, delta = x0.copy(), np.zeros(4)
  for params, _, _ in outs:
    delta = _project(delta - eta * _grad_np(x), radius)
    x = x + delta
    np.testing.assert_allclose(params["a"], x, rtol=1e-12, atol=1e-12)


def test_trajectory_matches_numpy_float64_with_the_drawn_scales():
  """Algorithm 1 re-derived in float64 with the s_n the state recorded; the visible
  params are x_n + s_{n+1} Delta_{n+1} (test (3)) and s is redrawn every round."""
  eta, radius, x0 = 0.05, 0.5, np.array([3.0, 2.0, -1.0, 4.0])
  with jax.enable_x64(True):
    outs = _run(scale_by_o2nc(eta, radius, seed=2), 40, x0, jnp.float64)
  x_prev, delta, s = x0.copy(), np.zeros(4), 0.0
  scales = []
  for params, state, _ in outs:
    w = x_prev + s * delta                     # where g_n was taken
    new_delta = _project(delta - eta * _grad_np(w), radius)
    x_prev, delta = x_prev + delta, new_delta  # x_n = x_{n-1} + Delta_n
    s = float(state.scale)
    scales.append(s)
    np.testing.assert_allclose(state.delta["a"], delta, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state.anchor["a"], x_prev, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(params["a"], x_prev + s * delta, rtol=1e-12, atol=1e-12)
  assert len(set(scales)) == len(scales) and min(scales) >= 0 and max(scales) <= 1
  assert abs(np.mean(scales) - 0.5) < 0.15


def test_period_average_is_the_mean_of_the_evaluation_points():
  period = 4
  outs = _run(o2nc(0.05, 0.5, period=period, seed=1), 10, np.array([3.0, 2.0, -1.0, 4.0]))
  visible = [np.array([3.0, 2.0, -1.0, 4.0])] + [np.asarray(p["a"]) for p, _, _ in outs]
  # After 8 rounds the last completed period holds the points of rounds 5..8
  # (w_5 .. w_8 = the visible params before updates 5..8).
  state8 = outs[7][1]
  np.testing.assert_allclose(o2nc_eval_params(state8)["a"], np.mean(visible[4:8], axis=0),
                             rtol=1e-5)
  state10 = outs[9][1]  # mid-period: still the mean of the last completed one
  np.testing.assert_allclose(o2nc_eval_params(state10)["a"], np.mean(visible[4:8], axis=0),
                             rtol=1e-5)
  # Without a period, the eval point is the anchor x_n.
  no_avg = _run(o2nc(0.05, 0.5, seed=1), 3, np.zeros(4))
  np.testing.assert_allclose(o2nc_eval_params(no_avg[-1][1])["a"], no_avg[-1][1][1].anchor["a"])


def test_bf16_visible_params_do_not_drift_from_the_float32_anchor():
  outs = _run(scale_by_o2nc(0.01, 0.05, seed=3), 60, np.array([3.0, 2.0, -1.0, 4.0]),
              jnp.bfloat16)
  params, state, _ = outs[-1]
  target = np.asarray(state.anchor["a"]) + float(state.scale) * np.asarray(state.delta["a"])
  np.testing.assert_allclose(np.asarray(params["a"], np.float32), target, rtol=1e-2, atol=2e-2)


def test_weight_decay_is_an_l2_term_on_the_gradient():
  lam = 0.5
  w = jnp.array([1.0, -2.0])
  g = jnp.array([0.1, 0.2])
  a, _ = o2nc(0.1, 10.0, weight_decay=lam, sample_fn=lambda k: 1.0).update(
      g, o2nc(0.1, 10.0).init(w), w)
  np.testing.assert_allclose(a, -0.1 * (np.asarray(g) + lam * np.asarray(w)), rtol=1e-6)


@pytest.mark.parametrize("kwargs", [{"learning_rate": -1.0, "radius": 1.0},
                                    {"learning_rate": 0.1, "radius": 0.0},
                                    {"learning_rate": 0.1, "radius": 1.0, "period": 0}])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="o2nc"):
    o2nc(**kwargs)


def test_params_are_required():
  tx = scale_by_o2nc(0.1, 1.0)
  w = jnp.ones(3)
  with pytest.raises(ValueError, match="o2nc"):
    tx.update(w, tx.init(w))
