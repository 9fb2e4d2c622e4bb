"""Lazy Newton (arXiv:2212.00781).

No public reference implementation was found; trajectories are checked
against a float64 NumPy re-derivation that uses the Hessian at the snapshot
points x_0, x_m, x_2m, ... (tolerance rtol 1e-9). Properties: M = 0 solves a
quadratic in one step; the Hessian is refreshed only every m steps (state
check, and m = 1 gives another trajectory: negative control); the cubic step
solves the cubic model's optimality conditions on an indefinite Hessian;
convergence on logistic regression to a gradient norm of 1e-10 with m = d.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit


def _logreg(seed=0, n=40, d=4):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, d))
  y = (x @ rng.standard_normal(d) + 0.5 * rng.standard_normal(n) > 0).astype(float)

  def loss(p):
    z = jnp.asarray(x) @ p["w"]
    return jnp.mean(jax.nn.softplus(z) - jnp.asarray(y) * z) + 0.05 * jnp.sum(p["w"] ** 2)

  def np_grad_hess(w):
    s = 1 / (1 + np.exp(-(x @ w)))
    g = x.T @ (s - y) / n + 0.1 * w
    h = (x.T * (s * (1 - s))) @ x / n + 0.1 * np.eye(d)
    return g, h

  return loss, np_grad_hess


def test_newton_solves_a_quadratic_in_one_step():
  rng = np.random.default_rng(0)
  m = rng.standard_normal((6, 6)).astype(np.float32)
  a = jnp.asarray(m @ m.T + np.eye(6, dtype=np.float32))
  c = jnp.asarray(rng.standard_normal(6).astype(np.float32))
  loss = lambda p: 0.5 * (p["x"] - c) @ (a @ (p["x"] - c))
  params = {"x": jnp.zeros(6)}
  tx = optkit.lazy_newton(1.0, update_every=10, M=0.0)
  u, _ = tx.update(jax.grad(loss)(params), tx.init(params), params, value_fn=loss)
  np.testing.assert_allclose(params["x"] + u["x"], c, rtol=1e-4, atol=1e-4)


def test_hand_computed_first_step():
  """d = (A + sqrt(M ||g||) I)^-1 g; A = diag(1, 4), g = (3, 4): ||g|| = 5,
  M = 5: lambda = 5, d = (3/6, 4/9)."""
  a = jnp.array([1.0, 4.0])
  loss = lambda p: 0.5 * jnp.sum(a * p ** 2)
  p = jnp.array([3.0, 1.0])
  tx = optkit.scale_by_lazy_newton(update_every=3, M=5.0)
  u, state = tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)
  np.testing.assert_allclose(u, [3.0 / 6.0, 4.0 / 9.0], rtol=1e-6)
  np.testing.assert_allclose(state.eigvals, [1.0, 4.0], rtol=1e-6)
  assert int(state.count) == 1


def _numpy_lazy(np_grad_hess, w0, m, M, steps):
  w, out, h = w0.copy(), [], None
  for t in range(steps):
    g, h_now = np_grad_hess(w)
    if t % m == 0:
      h = h_now
    lam = np.sqrt(M * np.linalg.norm(g))
    w = w - np.linalg.solve(h + lam * np.eye(len(w)), g)
    out.append(w.copy())
  return out


def test_hessian_is_refreshed_every_m_steps_only():
  with jax.enable_x64(True):
    loss, np_grad_hess = _logreg()
    w0 = np.array([2.0, -1.0, 0.5, 1.0])
    m, M, steps = 3, 0.5, 8
    expected = _numpy_lazy(np_grad_hess, w0, m, M, steps)
    every = _numpy_lazy(np_grad_hess, w0, 1, M, steps)
    tx = optkit.lazy_newton(1.0, update_every=m, M=M)
    params = {"w": jnp.asarray(w0)}
    state = tx.init(params)
    eigvals = []
    for t in range(steps):
      u, state = tx.update(jax.grad(loss)(params), state, params, value_fn=loss)
      params = optax.apply_updates(params, u)
      eigvals.append(np.asarray(state[0].eigvals))
      np.testing.assert_allclose(params["w"], expected[t], rtol=1e-9, atol=1e-12)
    for t in range(steps):  # the stored Hessian changes exactly at t = 0, m, 2m, ...
      if t % m:
        np.testing.assert_array_equal(eigvals[t], eigvals[t - 1])
      elif t:
        assert not np.allclose(eigvals[t], eigvals[t - 1])
    # Negative control: refreshing every step is another (observable) trajectory.
    assert np.max(np.abs(expected[-2] - every[-2])) > 1e-6


def test_cubic_step_solves_the_cubic_model_on_an_indefinite_hessian():
  with jax.enable_x64(True):
    h = np.diag([-2.0, 0.5, 3.0])
    q = np.linalg.qr(np.random.default_rng(1).standard_normal((3, 3)))[0]
    h = q @ h @ q.T
    loss = lambda p: 0.5 * p @ (jnp.asarray(h) @ p)
    p = jnp.array([0.3, -0.2, 0.1])
    g = np.asarray(jax.grad(loss)(p))
    M = 2.0
    tx = optkit.scale_by_lazy_newton(update_every=1, M=M, reg="cubic")
    d = -np.asarray(tx.update(jnp.asarray(g), tx.init(p), p, value_fn=loss)[0])
    r = np.linalg.norm(d)
    # Optimality of min_d <g, d> + 1/2 d'Hd + M/6 |d|^3 (Nesterov-Polyak):
    np.testing.assert_allclose(g + h @ d + 0.5 * M * r * d, 0.0, atol=1e-9)
    assert np.min(np.linalg.eigvalsh(h + 0.5 * M * r * np.eye(3))) >= -1e-9
    model = g @ d + 0.5 * d @ h @ d + M / 6 * r ** 3
    assert model < 0
    # The cubic step moves AWAY from the saddle at 0 (a Newton step would land on it).
    assert float(loss(p + d)) < float(loss(p))
    newton = -np.linalg.solve(h, g)
    np.testing.assert_allclose(np.asarray(p) + newton, 0.0, atol=1e-12)


def test_logistic_regression_converges_with_m_equal_d():
  with jax.enable_x64(True):
    loss, np_grad_hess = _logreg(seed=2, d=4)
    params = {"w": jnp.full((4,), 3.0)}
    tx = optkit.lazy_newton(1.0, update_every=4, M=1.0)
    state = tx.init(params)
    step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p, value_fn=loss))
    for _ in range(40):
      u, state = step(params, state)
      params = optax.apply_updates(params, u)
    g, _ = np_grad_hess(np.asarray(params["w"]))
    assert np.linalg.norm(g) < 1e-10


def test_bad_hyperparameters_and_missing_value_fn():
  with pytest.raises(ValueError, match="lazy_newton.*update_every"):
    optkit.lazy_newton(1.0, update_every=0)
  with pytest.raises(ValueError, match="lazy_newton.*reg"):
    optkit.scale_by_lazy_newton(2, reg="quartic")
  with pytest.raises(ValueError, match="lazy_newton.*M"):
    optkit.scale_by_lazy_newton(2, M=-1.0)
  with pytest.raises(ValueError, match="lazy_newton.*M"):
    optkit.scale_by_lazy_newton(2, M=0.0, reg="cubic")
  with pytest.raises(ValueError, match="lazy_newton.*learning_rate"):
    optkit.lazy_newton(-1.0, update_every=2)
  tx = optkit.lazy_newton(1.0, update_every=2)
  p = jnp.ones(2)
  with pytest.raises(ValueError, match="lazy_newton.*value_fn"):
    tx.update(p, tx.init(p), p)
