"""What makes QASGD / QASVRG themselves (arXiv:2305.04736); the contract suite covers the rest."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.momentum import (
    qasgd,
    qasgd_eval_params,
    qasvrg,
    qasvrg_is_snapshot_step,
    scale_by_qasgd,
)

# A gamma-quasar-convex, non-convex loss: sum_i lam_i h(x_i - c_i) with
# h(u) = u^2 + 3 sin^2(u); min_u u h'(u) / h(u) ~= 0.496, so gamma = 0.49;
# smoothness L = 8 max(lam).
_LAM = np.array([1.0, 0.1, 0.02, 0.01])
_C = np.array([0.3, -0.2, 0.5, 1.0])
_X0 = _C + np.array([4.0, -5.0, 6.0, -7.0])
_GAMMA = 0.49
_L = 8 * _LAM.max()


def _h(u):
  return u ** 2 + 3 * jnp.sin(u) ** 2


def _loss(p):
  a = p["a"]
  return jnp.sum(jnp.asarray(_LAM, a.dtype) * _h(a - jnp.asarray(_C, a.dtype)))


def _grad_np(x):
  u = x - _C
  return _LAM * (2 * u + 3 * np.sin(2 * u))


def test_the_test_loss_is_quasar_convex_and_not_convex():
  u = np.linspace(-30, 30, 200_001)
  u = u[u != 0]
  h, hp, hpp = u ** 2 + 3 * np.sin(u) ** 2, 2 * u + 3 * np.sin(2 * u), 2 + 6 * np.cos(2 * u)
  assert np.min(u * hp / h) >= _GAMMA   # f(x*) >= f(x) + <f'(x), x* - x> / gamma
  assert np.min(hpp) < 0                # not convex


def _run(tx, steps, dtype=jnp.float32, x0=_X0):
  params = {"a": jnp.asarray(x0, dtype)}
  state = tx.init(params)

  @jax.jit
  def step(p, s):
    g = jax.grad(_loss)(p)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  out = []
  for _ in range(steps):
    params, state = step(params, state)
    out.append((params, state))
  return out


def test_hand_computed_first_step():
  """k = 0: x_1 = x_0 (y_0 = z_0); y_1 = x_0 - eta g; z_1 = x_0 - gamma 3 eta / (4 rho) g;
  x_2 = (1 - 5/9) y_1 + (5/9) z_1."""
  eta, gamma, rho = 0.1, 0.5, 2.0
  tx = scale_by_qasgd(eta, gamma, rho)
  x = jnp.array([1.0, -2.0])
  g = jnp.array([0.4, 0.8])
  u, state = tx.update(g, tx.init(x), x)
  y1 = np.array([1.0, -2.0]) - eta * np.array([0.4, 0.8])
  z1 = np.array([1.0, -2.0]) - gamma * 3 * eta / (4 * rho) * np.array([0.4, 0.8])
  np.testing.assert_allclose(state.y, y1, rtol=1e-6)
  np.testing.assert_allclose(state.z, z1, rtol=1e-6)
  np.testing.assert_allclose(u, (4 / 9) * y1 + (5 / 9) * z1 - np.array([1.0, -2.0]),
                             rtol=1e-5, atol=1e-7)


def test_trajectory_matches_numpy_float64():
  """The coupled recursion (authors' code with the line search's guess), float64."""
  eta, gamma, rho = 1 / _L, _GAMMA, 1.5
  with jax.enable_x64(True):
    outs = _run(qasgd(eta, gamma, rho), 40, jnp.float64)
  y, z = _X0.copy(), _X0.copy()
  for k, (params, state) in enumerate(outs):
    w = (2 * k + 3) / (k + 2) ** 2
    x = (1 - w) * y + w * z
    g = _grad_np(x)
    y, z = x - eta * g, z - gamma * (2 * k + 3) * eta / (4 * rho) * g
    w1 = (2 * k + 5) / (k + 3) ** 2
    np.testing.assert_allclose(qasgd_eval_params(state)["a"], y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(params["a"], (1 - w1) * y + w1 * z, rtol=1e-12, atol=1e-12)


def test_gamma_one_is_nesterovs_linear_coupling():
  """Reduction: gamma = rho = 1, eta = 1/L is Nesterov's method in linear-coupling form
  with A_k = (k + 1)^2 / (4 L): x = (A_k y + a_{k+1} z) / A_{k+1}, y = x - g / L,
  z = z - a_{k+1} g."""
  with jax.enable_x64(True):
    outs = _run(qasgd(1 / _L, 1.0), 30, jnp.float64)
  A = lambda k: (k + 1) ** 2 / (4 * _L)
  y, z = _X0.copy(), _X0.copy()
  for k, (params, state) in enumerate(outs):
    a = A(k + 1) - A(k)
    x = (A(k) * y + a * z) / A(k + 1)
    g = _grad_np(x)
    y, z = x - g / _L, z - a * g
    np.testing.assert_allclose(state[1].y["a"], y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state[1].z["a"], z, rtol=1e-12, atol=1e-12)


def _first_hit(tx, steps, tol=1e-6):
  params = {"a": jnp.asarray(_X0, jnp.float32)}

  def body(carry, _):
    p, s = carry
    g = jax.grad(_loss)(p)
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), _loss(p)

  _, losses = jax.jit(lambda p, s: jax.lax.scan(body, (p, s), None, length=steps))(
      params, tx.init(params))
  hits = np.nonzero(np.asarray(losses) <= tol)[0]
  return int(hits[0]) if hits.size else steps


def test_accelerates_on_a_quasar_convex_loss_negative_control_gd():
  """Entry test: f <= 1e-6 reached much sooner than by (S)GD at the same eta = 1/L."""
  eta = 1 / _L
  fast = _first_hit(qasgd(eta, _GAMMA), 1000)
  slow = _first_hit(optax.sgd(eta), 2500)
  assert fast < 1000 and slow < 2500, (fast, slow)
  assert fast < 0.5 * slow, (fast, slow)


# ---------------------------------------------------------------- QASVRG

_N, _D = 32, 4
_RNG = np.random.default_rng(0)
_A = _RNG.standard_normal((_N, _D))
_B = _A @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.5 * _RNG.standard_normal(_N)  # inconsistent
_BATCHES = [_RNG.choice(_N, 2, replace=False) for _ in range(400)]


def _ls_loss(p, idx):
  a, b = jnp.asarray(_A, p["a"].dtype)[idx], jnp.asarray(_B, p["a"].dtype)[idx]
  return 0.5 * jnp.mean((a @ p["a"] - b) ** 2)


def _ls_grad_np(x, idx):
  return _A[idx].T @ (_A[idx] @ x - _B[idx]) / len(idx)


def _run_vr(tx, steps, m, dtype=jnp.float32, variance_reduced=True):
  """Full gradient on each stage's first step, 2-example batches otherwise."""
  full = np.arange(_N)
  params = {"a": jnp.zeros(_D, dtype)}
  state = tx.init(params)

  @jax.jit
  def step(p, s, idx):
    g = jax.grad(_ls_loss)(p, idx)
    u, s = tx.update(g, s, p, value_fn=lambda q: _ls_loss(q, idx))
    return optax.apply_updates(p, u), s

  out = []
  for t in range(steps):
    snap = bool(qasvrg_is_snapshot_step(state, m)) if variance_reduced else False
    idx = full if snap else _BATCHES[t]
    params, state = step(params, state, jnp.asarray(idx))
    out.append((params, state, idx))
  return out


def test_qasvrg_matches_numpy_float64():
  """SVRG estimate, mirror step gamma (2k+3) eta / 8, stage reset omega = z = y."""
  eta, gamma, m = 0.05, 0.8, 5
  with jax.enable_x64(True):
    outs = _run_vr(qasvrg(eta, gamma, epoch_length=m), 13, m, jnp.float64)
  y, z = np.zeros(_D), np.zeros(_D)
  omega, mu = None, None
  for t, (params, state, idx) in enumerate(outs):
    k = t % m
    w = (2 * k + 3) / (k + 2) ** 2
    x = (1 - w) * y + w * z
    if k == 0:
      omega, mu = x.copy(), _ls_grad_np(x, np.arange(_N))
      big_g = mu
    else:
      big_g = _ls_grad_np(x, idx) - _ls_grad_np(omega, idx) + mu
    y, z = x - eta * big_g, z - gamma * (2 * k + 3) * eta / 8 * big_g
    if k == m - 1:
      z = y.copy()
    kn = (k + 1) % m
    wn = (2 * kn + 3) / (kn + 2) ** 2
    np.testing.assert_allclose(params["a"], (1 - wn) * y + wn * z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state.snapshot["a"], omega, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(state.full_grad["a"], mu, rtol=1e-12, atol=1e-12)


def test_qasvrg_reduces_variance_negative_control_qasgd():
  """Variance reduction: on noisy least squares with 2-example batches QASVRG reaches the
  minimizer; QASGD fed the same stochastic gradients stalls at its noise floor."""
  x_star = np.linalg.lstsq(_A, _B, rcond=None)[0]
  f = lambda x: 0.5 * np.mean((_A @ x - _B) ** 2)
  m = 10
  vr = _run_vr(qasvrg(0.05, 1.0, epoch_length=m), 300, m)
  gap_vr = f(np.asarray(qasgd_eval_params(vr[-1][1])["a"], np.float64)) - f(x_star)
  plain = _run_vr(qasgd(0.05, 1.0), 300, m, variance_reduced=False)
  gap_plain = f(np.asarray(qasgd_eval_params(plain[-1][1])["a"], np.float64)) - f(x_star)
  assert gap_vr < 1e-5, gap_vr
  assert gap_plain > 100 * gap_vr, (gap_plain, gap_vr)


@pytest.mark.parametrize("kwargs", [{"learning_rate": -0.1}, {"learning_rate": 0.1, "gamma": 0.0},
                                    {"learning_rate": 0.1, "gamma": 1.5}])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="qasgd"):
    qasgd(**kwargs)
  with pytest.raises(ValueError, match="qasvrg"):
    qasvrg(**kwargs)
  with pytest.raises(ValueError, match="qasvrg"):
    qasvrg(0.1, epoch_length=0)


def test_qasvrg_requires_value_fn_and_params():
  tx = qasvrg(0.1)
  w = jnp.ones(3)
  with pytest.raises(ValueError, match="qasvrg.*value_fn"):
    tx.update(w, tx.init(w), w)
  with pytest.raises(ValueError, match="qasvrg"):
    tx.update(w, tx.init(w), value_fn=lambda p: jnp.sum(p))
