"""Gradient-regularized Newton with gradient-normalized smoothness (arXiv:2506.13710).

Reference: a float64 NumPy re-derivation of the authors' ``grad_norm_smooth``
(epfml/grad-norm-smooth ``src/methods.py``, Algorithm 1: lambda = ||g|| /
(gamma + eps), accept when f_k - f_new >= ||g_new||^2 / (8 lambda), then gamma
doubles, else it halves; 40 trials), tolerance rtol 1e-9 on the iterates and
on gamma. Defining property (catalog): global convergence on logistic
regression from a far start, where pure Newton diverges (negative control).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit


def _numpy_grad_norm_smooth(f, grad, hess, x0, steps, gamma0=1.0, eps=1e-8,
                            gamma_min=1e-9):
  x, gamma = x0.copy(), gamma0
  xs, gammas = [], []
  for _ in range(steps):
    g, h = grad(x), hess(x)
    gn = np.linalg.norm(g)
    for i in range(41):
      if i == 40:
        break
      lam = gn / (gamma + eps)
      delta = np.linalg.solve(h + lam * np.eye(len(x)), -g)
      f_new, g_new = f(x + delta), grad(x + delta)
      if f(x) - f_new >= g_new @ g_new / (8 * lam):
        gamma = max(2 * gamma, gamma_min)
        break
      gamma *= 0.5
    x = x + delta
    xs.append(x.copy())
    gammas.append(gamma)
  return xs, gammas


def test_matches_float64_rederivation_of_the_authors_code():
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((30, 3))
    y = (a @ np.array([1.0, -2.0, 0.5]) > 0).astype(float)

    def f(w):
      z = a @ w
      return np.mean(np.logaddexp(0, z) - y * z) + 0.01 * w @ w

    def grad(w):
      s = 1 / (1 + np.exp(-(a @ w)))
      return a.T @ (s - y) / len(y) + 0.02 * w

    def hess(w):
      s = 1 / (1 + np.exp(-(a @ w)))
      return (a.T * (s * (1 - s))) @ a / len(y) + 0.02 * np.eye(3)

    loss = lambda p: (jnp.mean(jnp.logaddexp(0, jnp.asarray(a) @ p["w"])
                               - jnp.asarray(y) * (jnp.asarray(a) @ p["w"]))
                      + 0.01 * p["w"] @ p["w"])
    x0 = np.array([5.0, 5.0, -5.0])
    xs, gammas = _numpy_grad_norm_smooth(f, grad, hess, x0, 10)
    tx = optkit.regularized_newton(1.0)
    params = {"w": jnp.asarray(x0)}
    state = tx.init(params)
    for t in range(10):
      u, state = tx.update(jax.grad(loss)(params), state, params, value_fn=loss)
      params = optax.apply_updates(params, u)
      np.testing.assert_allclose(params["w"], xs[t], rtol=1e-9, atol=1e-12)
      np.testing.assert_allclose(state[0].gamma, gammas[t], rtol=1e-9)
    assert len(set(gammas)) > 2  # the search did move gamma both ways


def test_hand_computed_first_step_without_search():
  """A = diag(1, 4), x = (3, 1): g = (3, 4), ||g|| = 5, gamma0 = 5: lambda = 1,
  direction = (3 / 2, 4 / 5)."""
  loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * p ** 2)
  p = jnp.array([3.0, 1.0])
  tx = optkit.scale_by_regularized_newton(gamma0=5.0, adaptive=False, eps=0.0)
  u, state = tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)
  np.testing.assert_allclose(u, [1.5, 0.8], rtol=1e-6)
  np.testing.assert_allclose(state.gamma, 5.0)


def test_global_convergence_where_pure_newton_diverges():
  """Logistic regression with two examples (x = 1, y = 0 and y = 1): f(w) =
  softplus(w) + softplus(-w) (mean), minimum at 0. Newton's step is
  w - sinh(w): it diverges from w = 5."""
  loss = lambda p: 0.5 * (jax.nn.softplus(p["w"][0]) + jax.nn.softplus(-p["w"][0]))
  params = {"w": jnp.array([5.0])}
  tx = optkit.regularized_newton(1.0)
  state = tx.init(params)
  for _ in range(30):
    u, state = tx.update(jax.grad(loss)(params), state, params, value_fn=loss)
    params = optax.apply_updates(params, u)
  assert abs(float(params["w"][0])) < 1e-4
  # Negative control: pure Newton from the same start.
  w = jnp.array([5.0])
  f1 = lambda v: loss({"w": v})
  for _ in range(3):
    w = w - jnp.linalg.solve(jax.hessian(f1)(w), jax.grad(f1)(w))
  assert not abs(float(w[0])) < 5.0  # |w| grows (or overflows): divergence


def test_zero_gradient_gives_zero_step_and_keeps_gamma():
  loss = lambda p: 0.5 * jnp.sum(p ** 2)
  p = jnp.zeros(3)
  tx = optkit.scale_by_regularized_newton(gamma0=2.0)
  u, state = tx.update(jnp.zeros(3), tx.init(p), p, value_fn=loss)
  np.testing.assert_array_equal(u, jnp.zeros(3))
  assert float(state.gamma) == 2.0


def test_bad_hyperparameters_and_missing_value_fn():
  with pytest.raises(ValueError, match="regularized_newton.*gamma0"):
    optkit.regularized_newton(1.0, gamma0=0.0)
  with pytest.raises(ValueError, match="regularized_newton.*curvature"):
    optkit.scale_by_regularized_newton(curvature="fisher")
  with pytest.raises(ValueError, match="regularized_newton.*max_backtracks"):
    optkit.scale_by_regularized_newton(max_backtracks=0)
  with pytest.raises(ValueError, match="regularized_newton.*learning_rate"):
    optkit.regularized_newton(-1.0)
  tx = optkit.regularized_newton(1.0)
  p = jnp.ones(2)
  with pytest.raises(ValueError, match="regularized_newton.*value_fn"):
    tx.update(p, tx.init(p), p)
