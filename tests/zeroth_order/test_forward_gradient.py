"""forward_gradient: what makes it the forward-gradient estimator."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit

A = jnp.asarray(np.diag([1.0, 2.0, 3.0, 4.0, 5.0]) + 0.3, jnp.float32)
B = jnp.asarray([1.0, -1.0, 0.5, 2.0, 0.0], jnp.float32)


def loss(p):
  x = p["x"]
  return 0.5 * x @ A @ x - B @ x + jnp.sum(p["y"] ** 2)


def params():
  return {"x": jnp.asarray([1.0, 2.0, -1.0, 0.5, 3.0]), "y": jnp.asarray([[0.5, -1.5]])}


def _estimates(tx, p, n):
  """The estimator's output for n different keys (vmapped over the state's key)."""
  state = tx.init(p)
  keys = jax.random.key_data(jax.random.split(jax.random.key(123), n))
  zeros = jax.tree.map(jnp.zeros_like, p)
  return jax.jit(jax.vmap(lambda k: tx.update(zeros, state._replace(key=k), p,
                                              value_fn=loss)[0]))(keys)


def _flat(tree):
  return np.concatenate([np.asarray(x).reshape(-1) for x in jax.tree.leaves(tree)])


def test_guess_equal_to_the_gradient_returns_the_gradient_exactly():
  p = params()
  g = jax.grad(loss)(p)
  tx = optkit.forward_gradient(guess=lambda q, key: jax.grad(loss)(q))  # projection scaling
  est, _ = tx.update(jax.tree.map(jnp.zeros_like, p), tx.init(p), p, value_fn=loss)
  np.testing.assert_allclose(_flat(est), _flat(g), rtol=1e-6, atol=1e-6)
  # Negative control: the unbiased scaling of the same guess gives ||g||^2 g, not g.
  tx_u = optkit.forward_gradient(guess=lambda q, key: jax.grad(loss)(q), scaling="unbiased")
  est_u, _ = tx_u.update(jax.tree.map(jnp.zeros_like, p), tx_u.init(p), p, value_fn=loss)
  assert not np.allclose(_flat(est_u), _flat(g), rtol=1e-2)


def test_random_guesses_are_unbiased_with_monte_carlo_tolerance():
  """E[<g, v> v] = g for v ~ N(0, I); Var_i = ||g||^2 + g_i^2, so the mean of N
  estimates is within 4 sqrt((||g||^2 + g_i^2)/N) of g_i (4 sigma per coordinate)."""
  n = 10_000
  p = params()
  g = _flat(jax.grad(loss)(p))
  est = _estimates(optkit.forward_gradient(), p, n)
  mean = _flat(jax.tree.map(lambda e: e.mean(0), est))
  tol = 4 * np.sqrt((g @ g + g ** 2) / n)
  assert np.all(np.abs(mean - g) <= tol), (mean, g, tol)
  assert np.linalg.norm(mean - g) <= 0.05 * np.linalg.norm(g)   # catalog: within 5%
  # Negative control: the projection form d v / ||v||^2 has mean g / d.
  est_p = _estimates(optkit.forward_gradient(scaling="projection"), p, n)
  mean_p = _flat(jax.tree.map(lambda e: e.mean(0), est_p))
  assert not np.all(np.abs(mean_p - g) <= tol)
  np.testing.assert_allclose(mean_p, g / g.size, atol=float(np.max(tol)))


def test_k_guesses_cost_exactly_k_jvps_and_no_backward_pass():
  calls = {"f": 0, "jvp": 0}

  @jax.custom_jvp
  def sq(x):
    return jnp.sum(x ** 2)

  @sq.defjvp
  def sq_jvp(primals, tangents):
    calls["jvp"] += 1
    (x,), (t,) = primals, tangents
    return sq(x), jnp.sum(2 * x * t)

  def value_fn(p):
    calls["f"] += 1
    return sq(p["x"]) + sq(p["y"])

  p = params()
  for k in (1, 3):
    calls.update(f=0, jvp=0)
    tx = optkit.forward_gradient(num_guesses=k)
    with jax.disable_jit():
      tx.update(jax.tree.map(jnp.zeros_like, p), tx.init(p), p, value_fn=value_fn)
    assert calls == {"f": k, "jvp": 2 * k}   # two custom_jvp leaves per call
  # Negative control: a reverse-mode gradient would show up in the counters.
  calls.update(f=0, jvp=0)
  with jax.disable_jit():
    jax.grad(value_fn)(p)
  assert calls["jvp"] == 2 and calls["f"] == 1


def test_mean_of_k_guesses_and_seed_determinism():
  p = params()
  zeros = jax.tree.map(jnp.zeros_like, p)
  a = optkit.forward_gradient(num_guesses=4, seed=3)
  b = optkit.forward_gradient(num_guesses=4, seed=3)
  c = optkit.forward_gradient(num_guesses=4, seed=4)
  ua, sa = a.update(zeros, a.init(p), p, value_fn=loss)
  ub, _ = b.update(zeros, b.init(p), p, value_fn=loss)
  uc, _ = c.update(zeros, c.init(p), p, value_fn=loss)
  np.testing.assert_array_equal(_flat(ua), _flat(ub))
  assert not np.allclose(_flat(ua), _flat(uc))
  # The key is split every step: the next estimate differs.
  ua2, _ = a.update(zeros, sa, p, value_fn=loss)
  assert not np.allclose(_flat(ua), _flat(ua2))


def test_forward_gradient_descent_converges_with_jvps_only():
  tx = optax.chain(optkit.forward_gradient(num_guesses=4), optax.sgd(0.02))
  p = params()
  state = tx.init(p)

  @jax.jit
  def step(p, s):
    u, s = tx.update(jax.tree.map(jnp.zeros_like, p), s, p, value_fn=loss)
    return optax.apply_updates(p, u), s

  opt = float(loss({"x": jnp.linalg.solve(A, B), "y": jnp.zeros((1, 2))}))
  start = float(loss(p)) - opt
  for _ in range(400):
    p, state = step(p, state)
  assert float(loss(p)) - opt < 1e-2 * start


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="forward_gradient"):
    optkit.forward_gradient(num_guesses=0)
  with pytest.raises(ValueError, match="forward_gradient"):
    optkit.forward_gradient(scaling="biased")
  with pytest.raises(ValueError, match="forward_gradient"):
    optkit.forward_gradient(guess="local")
  tx = optkit.forward_gradient()
  p = params()
  with pytest.raises(ValueError, match="forward_gradient.*value_fn"):
    tx.update(p, tx.init(p), p)
