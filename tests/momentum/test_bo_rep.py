"""What makes BO-REP BO-REP (arXiv:2401.09587).

Bilevel problem from the paper's setting (hyperparameter optimization): the
ridge penalty exp(x) of a regression fitted on a training set (lower level)
is tuned on a validation set (upper level). y*(x) and Phi'(x) are closed form.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.momentum import (
    bo_rep,
    bo_rep_hypergradient,
    scale_by_normalized_momentum,
)
from tests import helpers

M, D = 30, 5


def _problem():
  rng = np.random.default_rng(0)
  w_true = rng.standard_normal(D)
  a_t = rng.standard_normal((M, D))
  b_t = a_t @ w_true + 1.5 * rng.standard_normal(M)
  a_v = rng.standard_normal((M, D))
  b_v = a_v @ w_true + 0.1 * rng.standard_normal(M)
  return a_t, b_t, a_v, b_v


def _fns(a_t, b_t, a_v, b_v):
  upper = lambda x, y, batch: 0.5 * jnp.mean((a_v @ y - b_v) ** 2)
  lower = lambda x, y, batch: 0.5 * jnp.mean((a_t @ y - b_t) ** 2) + 0.5 * jnp.exp(x) * y @ y
  return upper, lower


def _y_star(x, a_t, b_t):
  h = a_t.T @ a_t / M + np.exp(x) * np.eye(D)
  return np.linalg.solve(h, a_t.T @ b_t / M), h


def _phi_prime(x, a_t, b_t, a_v, b_v):
  y, h = _y_star(x, a_t, b_t)
  grad_y_f = a_v.T @ (a_v @ y - b_v) / M
  return -grad_y_f @ np.linalg.solve(h, np.exp(x) * y)  # -f_y^T H^-1 d(grad_y g)/dx


def _x_star(prob):
  lo, hi = -6.0, 4.0
  assert _phi_prime(lo, *prob) < 0 < _phi_prime(hi, *prob)  # interior optimum
  for _ in range(100):
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if _phi_prime(mid, *prob) < 0 else (lo, mid)
  return (lo + hi) / 2


def _lipschitz(prob, x):
  return float(np.linalg.eigvalsh(_y_star(x, prob[0], prob[1])[1]).max())


# ---------------------------------------------------------------- hypergradient


def test_hypergradient_matches_the_analytic_one():
  prob = _problem()
  with jax.enable_x64(True):
    upper, lower = _fns(*map(jnp.asarray, prob))
    for x in (-2.0, 0.0, 1.0):
      y, _ = _y_star(x, prob[0], prob[1])
      lr = 1.0 / _lipschitz(prob, x)
      h = bo_rep_hypergradient(upper, lower, jnp.asarray(x), jnp.asarray(y), 2000, lr)
      np.testing.assert_allclose(h, _phi_prime(x, *prob), rtol=1e-5, atol=1e-10)
      # Negative control: one Neumann term (v = gamma grad_y f) is far off.
      h1 = bo_rep_hypergradient(upper, lower, jnp.asarray(x), jnp.asarray(y), 1, lr)
      assert abs(float(h1) - _phi_prime(x, *prob)) > 1e-2 * abs(_phi_prime(x, *prob))


# ---------------------------------------------------------------- solver


def test_solver_finds_the_optimal_ridge_penalty():
  prob = _problem()
  x_star = _x_star(prob)
  with jax.enable_x64(True):
    upper, lower = _fns(*map(jnp.asarray, prob))
    l_g = _lipschitz(prob, 2.0)  # exp(x) stays below e^2 on this run
    # Phi is very flat below x* (Phi' = -1e-3 at x = -5), so the lower level
    # must track y*(x) closely (N = 10 steps every I = 2) and eta must decay.
    run = jax.jit(lambda init_steps, lower_steps: bo_rep(
        upper, lower, jnp.asarray(0.0), jnp.zeros(D), lambda t: 0.1 * 0.99 ** t, 400,
        lower_learning_rate=1.0 / l_g, neumann_learning_rate=1.0 / l_g,
        init_steps=init_steps, lower_steps=lower_steps, neumann_steps=200),
        static_argnums=(0, 1))
    x, y = run(200, 10)
    assert abs(float(x) - x_star) < 1e-3, (float(x), x_star)
    np.testing.assert_allclose(y, _y_star(float(x), prob[0], prob[1])[0], atol=1e-3)
    # Negative control: without the lower-level refinement and updates, y stays
    # at 0 and the hypergradient points elsewhere.
    x_bad, _ = run(0, 0)
    assert abs(float(x_bad) - x_star) > 0.5


def test_solver_with_batches_is_jittable_and_runs():
  prob = _problem()
  upper = lambda x, y, batch: 0.5 * jnp.mean((batch[0] @ y - batch[1]) ** 2)
  lower = lambda x, y, batch: (0.5 * jnp.mean((batch[0] @ y - batch[1]) ** 2)
                               + 0.5 * jnp.exp(x) * y @ y)
  a_t, b_t, a_v, b_v = (jnp.asarray(p, jnp.float32) for p in prob)
  ub = (a_v.reshape(3, 10, D), b_v.reshape(3, 10))
  lb = (a_t.reshape(3, 10, D), b_t.reshape(3, 10))
  x, y = bo_rep(upper, lower, jnp.asarray(0.0), jnp.zeros(D), 0.05, 20,
                lower_learning_rate=0.1, neumann_learning_rate=0.1,
                upper_batches=ub, lower_batches=lb)
  assert x.dtype == jnp.float32 and y.shape == (D,)
  chex.assert_tree_all_finite((x, y))


# ---------------------------------------------------------------- transformation


def test_normalized_momentum_hand_computed_and_unit_norm():
  tx = scale_by_normalized_momentum(beta=0.5)
  grads = helpers.gradient_sequence(4, seed=3)
  state = tx.init(grads[0])
  m = jax.tree.map(jnp.zeros_like, grads[0])
  for g in grads:
    u, state = tx.update(g, state)
    m = jax.tree.map(lambda a, b: 0.5 * a + 0.5 * b, m, g)
    norm = jnp.sqrt(sum(jnp.sum(a ** 2) for a in jax.tree.leaves(m)))
    chex.assert_trees_all_close(u, jax.tree.map(lambda a: a / norm, m), rtol=1e-6)
    np.testing.assert_allclose(optax.tree.norm(u), 1.0, rtol=1e-6)


def test_normalized_momentum_beta_zero_is_normalized_gradient_and_zero_is_safe():
  tx = scale_by_normalized_momentum(beta=0.0)
  g = {"a": jnp.array([3.0, 0.0]), "b": jnp.array(4.0)}
  u, state = tx.update(g, tx.init(g))
  chex.assert_trees_all_close(u, {"a": jnp.array([0.6, 0.0]), "b": jnp.array(0.8)})
  z = jax.tree.map(jnp.zeros_like, g)
  u0, _ = tx.update(z, tx.init(z))
  chex.assert_trees_all_equal(u0, z)


def test_normalized_momentum_step_is_independent_of_gradient_scale():
  """The defining property under unbounded smoothness: the step length is eta,
  whatever the gradient's scale; plain momentum (negative control) scales."""
  g = helpers.random_tree(5)
  big = jax.tree.map(lambda a: 1e4 * a, g)
  tx = scale_by_normalized_momentum(0.9)
  u1, _ = tx.update(g, tx.init(g))
  u2, _ = tx.update(big, tx.init(big))
  chex.assert_trees_all_close(u1, u2, rtol=1e-5)
  plain = optax.trace(decay=0.9)
  p1, _ = plain.update(g, plain.init(g))
  p2, _ = plain.update(big, plain.init(big))
  assert float(optax.tree.norm(p2)) > 1e3 * float(optax.tree.norm(p1))


def test_bad_arguments_raise():
  upper, lower = _fns(*map(jnp.asarray, _problem()))
  with pytest.raises(ValueError, match="normalized_momentum.*beta"):
    scale_by_normalized_momentum(beta=1.0)
  with pytest.raises(ValueError, match="bo_rep.*learning_rate"):
    bo_rep(upper, lower, 0.0, jnp.zeros(D), -1.0, 5, lower_learning_rate=0.1,
           neumann_learning_rate=0.1)
  with pytest.raises(ValueError, match="bo_rep.*neumann_steps"):
    bo_rep(upper, lower, 0.0, jnp.zeros(D), 0.1, 5, lower_learning_rate=0.1,
           neumann_learning_rate=0.1, neumann_steps=0)
  with pytest.raises(ValueError, match="bo_rep.*lower_learning_rate"):
    bo_rep(upper, lower, 0.0, jnp.zeros(D), 0.1, 5, lower_learning_rate=0.0,
           neumann_learning_rate=0.1)
  with pytest.raises(ValueError, match="normalized_momentum"):
    tx = scale_by_normalized_momentum()
    tx.update({"a": jnp.zeros(2)}, tx.init({"b": jnp.zeros(2)}))
