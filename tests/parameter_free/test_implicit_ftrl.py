"""Generalized implicit FTRL (aProx instance): the implicit step solves its
proximal problem, reduces to dual averaging / SGD, and is robust to large lrs.

No reference implementation was found (catalog); the checks are the defining
optimality conditions (float64, tolerance 1e-10) and the reductions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers

SHAPES = {"a": (5,), "b": (2, 3), "c": ()}


def _flat(tree):
  return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def test_hand_computed_step():
  x = jnp.array([2.0, 0.0])
  tx = optkit.implicit_ftrl(learning_rate=0.1)
  g = jnp.array([2.0, 1.0])
  # s = min(1, 3 / (0.1 * 5)) = 1: the plain step -0.1 g.
  u, s = tx.update(g, tx.init(x), x, value=3.0)
  np.testing.assert_allclose(u, [-0.2, -0.1], rtol=1e-6)
  # Large lr: s = 3 / (10 * 5) = 0.06, the step lands on the zero of the linear model.
  tx = optkit.implicit_ftrl(learning_rate=10.0)
  u, _ = tx.update(g, tx.init(x), x, value=3.0)
  np.testing.assert_allclose(u, [-1.2, -0.6], rtol=1e-6)
  assert abs(3.0 + float(g @ u)) < 1e-6


@pytest.mark.parametrize("lr", [0.05, 3.0, optax.linear_schedule(2.0, 0.5, 6)])
def test_implicit_step_solves_its_proximal_problem(lr):
  """x_{t+1} = argmin_x <theta_{t-1}, x> + ||x - x0||^2/(2 eta_{t+1}) + max(l_t + <g_t, x - x_t>, lb)."""
  lb = -0.3
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    x = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), helpers.random_tree(1, shapes=SHAPES))
    x0 = _flat(x)
    tx = optkit.implicit_ftrl(lr, lower_bound=lb)
    state = tx.init(x)
    seen = set()
    for t in range(8):
      g = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64),
                       helpers.random_tree(10 + t, scale=1.0 + t, shapes=SHAPES))
      value = float(lb + rng.uniform(0.0, 3.0))
      theta_prev, eta = _flat(state.theta), float(lr(t) if callable(lr) else lr)
      u, state = tx.update(g, state, x, value=value)
      x_next = optax.apply_updates(x, u)
      xt, xn, gf = _flat(x), _flat(x_next), _flat(g)
      model = lambda z: max(value + gf @ (z - xt), lb)
      objective = lambda z: theta_prev @ z + np.sum((z - x0) ** 2) / (2 * eta) + model(z)
      # Optimality: (x_{t+1} - x0)/eta + theta_{t-1} + s g = 0 with s in the
      # subdifferential of the truncation at x_{t+1}.
      r = (xn - x0) / eta + theta_prev
      s = -(r @ gf) / (gf @ gf)
      np.testing.assert_allclose(r + s * gf, 0.0, atol=1e-10)
      assert -1e-12 <= s <= 1 + 1e-12
      lin = value + gf @ (xn - xt)
      if s < 1 - 1e-9:
        assert abs(lin - lb) < 1e-9  # on the kink
        seen.add("kink")
      else:
        assert lin >= lb - 1e-9
        seen.add("linear")
      # And no nearby point does better.
      for _ in range(20):
        d = 1e-3 * rng.standard_normal(xn.shape)
        assert objective(xn) <= objective(xn + d) + 1e-12
      x = x_next
  if not callable(lr):  # both branches of the truncation are exercised
    assert ("linear" if lr < 0.1 else "kink") in seen, seen


def test_linear_variant_is_dual_averaging_and_sgd():
  x0 = helpers.random_tree(2, shapes=SHAPES)
  grads = helpers.gradient_sequence(15, seed=3, shapes=SHAPES)
  sched = optax.exponential_decay(0.5, 3, 0.7)
  outs = helpers.run_open_loop(optkit.implicit_ftrl(sched, variant="linear"), x0, grads)
  x, total = x0, jax.tree.map(jnp.zeros_like, x0)
  for t, ((u, _), g) in enumerate(zip(outs, grads)):
    total = jax.tree.map(jnp.add, total, g)
    x = optax.apply_updates(x, u)
    for k in SHAPES:  # x_{t+1} = x0 - eta_{t+1} sum_{i<=t} g_i
      np.testing.assert_allclose(x[k], x0[k] - sched(t) * total[k], rtol=1e-5, atol=1e-5)
  # A constant lr: exactly SGD.
  ours = helpers.run_open_loop(optkit.implicit_ftrl(0.1, variant="linear"), x0, grads)
  sgd = helpers.run_open_loop(optax.sgd(0.1), x0, grads)
  for (u, _), (v, _) in zip(ours, sgd):
    for k in SHAPES:
      np.testing.assert_allclose(u[k], v[k], rtol=1e-5, atol=1e-6)


def test_aprox_equals_linear_while_the_truncation_is_inactive():
  x0 = helpers.random_tree(4, shapes=SHAPES)
  grads = helpers.gradient_sequence(10, seed=5, shapes=SHAPES)
  tx_a = optkit.implicit_ftrl(1e-2)
  tx_l = optkit.implicit_ftrl(1e-2, variant="linear")
  sa, sl, x = tx_a.init(x0), tx_l.init(x0), x0
  for g in grads:
    ua, sa = tx_a.update(g, sa, x, value=1e3)  # l >= eta ||g||^2: s = 1
    ul, sl = tx_l.update(g, sl, x)
    for k in SHAPES:
      np.testing.assert_allclose(ua[k], ul[k], rtol=1e-6, atol=1e-7)
    x = optax.apply_updates(x, ua)


def _kaczmarz_problem():
  rng = np.random.default_rng(7)
  a = rng.standard_normal((20, 8)).astype(np.float32)
  x_star = rng.standard_normal(8).astype(np.float32)
  return jnp.asarray(a), jnp.asarray(a @ x_star)  # interpolation: every row is solvable


def _run_rows(tx, epochs=15):
  a, b = _kaczmarz_problem()
  row_loss = lambda x, i: 0.5 * (a[i] @ x - b[i]) ** 2
  x = jnp.zeros(8)
  s = tx.init(x)

  @jax.jit
  def step(x, s, i):
    v, g = jax.value_and_grad(row_loss)(x, i)
    u, s = tx.update(g, s, x, value=v)
    return optax.apply_updates(x, u), s, v, g, u

  overshoot = 0.0
  for _ in range(epochs):
    for i in range(a.shape[0]):
      x, s, v, g, u = step(x, s, i)
      overshoot = min(overshoot, float(v + g @ u))  # linear model after the step
  return float(0.5 * jnp.mean((a @ x - b) ** 2)), overshoot


def test_robust_to_large_learning_rates_where_sgd_diverges():
  start = _run_rows(optkit.implicit_ftrl(1e-6), epochs=0)[0]
  for lr in (1.0, 10.0, 1e4):
    final, overshoot = _run_rows(optkit.implicit_ftrl(lr))
    assert final < 1e-4 * start, (lr, final)
    # The step never goes past the zero of the linear model: l + <g, delta> >= 0.
    assert overshoot > -1e-3 * start, (lr, overshoot)
  # Negative control: linearized FTRL (= SGD here) with the same lrs diverges.
  for lr in (1.0, 10.0):
    final, _ = _run_rows(optkit.implicit_ftrl(lr, variant="linear"))
    assert not final < start, (lr, final)


def test_missing_value_and_params_raise():
  x0 = helpers.random_tree(0)
  tx = optkit.implicit_ftrl(0.1)
  s = tx.init(x0)
  with pytest.raises(ValueError, match="implicit_ftrl.*value"):
    tx.update(x0, s, x0)
  with pytest.raises(ValueError, match="implicit_ftrl"):
    tx.update(x0, s, None, value=1.0)
  optkit.implicit_ftrl(0.1, variant="linear").update(x0, s, x0)  # linear needs no value


@pytest.mark.parametrize("kwargs", [dict(learning_rate=0.0), dict(learning_rate=-1.0),
                                    dict(learning_rate=0.1, variant="prox")])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="implicit_ftrl"):
    optkit.implicit_ftrl(**kwargs)
