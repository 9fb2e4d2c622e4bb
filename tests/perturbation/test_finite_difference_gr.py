"""Tests of finite-difference gradient regularization
(optkit.perturbation.finite_difference_gr).

What makes FD-GR FD-GR: its output approximates the exact gradient of the
regularized loss L + (gamma/2)||grad L||^2, i.e. g + gamma H g (computed here
with jax.grad of the penalty), with an O(epsilon) error that shrinks linearly
with epsilon; on a quadratic it is exact for any epsilon; forward with
epsilon = gamma is unnormalized SAM.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.perturbation.finite_difference_gr import fd_regularized_gradient

NAME = "fd_gradient_regularization"


def _net_data(dtype=np.float64):
  """A small two-layer tanh network on a fixed regression batch."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 3)).astype(dtype)
  y = rng.normal(size=(8, 2)).astype(dtype)
  params = {"b1": 0.1 * rng.normal(size=(4,)).astype(dtype),
            "w1": rng.normal(size=(3, 4)).astype(dtype),
            "w2": 0.5 * rng.normal(size=(4, 2)).astype(dtype)}
  return x, y, params


def _net_loss(x, y):
  def loss(p):
    h = jnp.tanh(x @ p["w1"] + p["b1"])
    return 0.5 * jnp.mean(jnp.sum((h @ p["w2"] - y) ** 2, axis=1))
  return loss


def _exact_gr_gradient(loss, gamma):
  """grad of L + (gamma/2)||grad L||^2 by differentiating the penalty."""
  def reg(p):
    g = jax.grad(loss)(p)
    return loss(p) + 0.5 * gamma * optax.tree.norm(g, squared=True)
  return jax.grad(reg)


def _flat(t):
  return np.concatenate([np.ravel(np.asarray(v, np.float64))
                         for v in jax.tree.leaves(t)])


def _update(tx, loss, params):
  return jax.jit(lambda p: tx.update(jax.grad(loss)(p), tx.init(p), p,
                                     value_fn=loss)[0])(params)


def test_registry_record():
  rec = optkit.registry.get(NAME)
  assert rec.extra_args == ("value_fn",)
  assert optkit.fd_gradient_regularization is rec.factory
  assert {"mode", "normalize"} <= set(rec.static_hparams)


@pytest.mark.parametrize("mode", ["forward", "backward"])
@pytest.mark.parametrize("eps", [1e-3, 0.5])
def test_exact_on_a_quadratic_for_any_epsilon(mode, eps):
  # L = 0.5 theta^T A theta: g = A theta, H g = A^2 theta, and the finite
  # difference of a linear gradient is exact.
  a = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 3.0]])
  theta = np.array([1.0, -2.0, 0.5])
  gamma = 0.2
  loss = lambda p: 0.5 * p @ jnp.asarray(a) @ p
  expected = a @ theta + gamma * a @ (a @ theta)
  with jax.enable_x64(True):
    tx = optkit.fd_gradient_regularization(gamma, eps, mode=mode)
    u = _update(tx, loss, jnp.asarray(theta))
    np.testing.assert_allclose(u, expected, rtol=1e-10)
    # normalize=True is exact too (the correction is rescaled by ||g||).
    txn = optkit.fd_gradient_regularization(gamma, eps, mode=mode,
                                            normalize=True)
    np.testing.assert_allclose(_update(txn, loss, jnp.asarray(theta)),
                               expected, rtol=1e-10)
  # Negative control: the plain gradient misses the gamma H g term.
  assert np.max(np.abs(a @ theta - expected)) > 0.1


def test_float32_first_step_by_hand():
  a = np.array([1.0, 3.0])
  loss = lambda p: 0.5 * jnp.sum(jnp.asarray(a, jnp.float32) * p ** 2)
  p = jnp.array([1.0, -1.0], jnp.float32)
  tx = optkit.fd_gradient_regularization(0.1, 0.05, mode="backward")
  u = _update(tx, loss, p)
  assert u.dtype == jnp.float32
  np.testing.assert_allclose(u, a * np.array([1.0, -1.0]) * (1 + 0.1 * a),
                             rtol=1e-5)


@pytest.mark.parametrize("mode", ["forward", "backward"])
@pytest.mark.parametrize("normalize", [False, True])
def test_error_against_exact_gr_gradient_is_linear_in_epsilon(mode, normalize):
  gamma = 0.1
  with jax.enable_x64(True):
    x, y, params = _net_data()
    loss = _net_loss(jnp.asarray(x), jnp.asarray(y))
    params = jax.tree.map(jnp.asarray, params)
    exact = _flat(jax.jit(_exact_gr_gradient(loss, gamma))(params))
    plain = _flat(jax.jit(jax.grad(loss))(params))
    # One compilation: epsilon is traced (as under inject_hyperparams).
    ghat = jax.jit(lambda p, eps: optkit.fd_gradient_regularization(
        gamma, eps, mode=mode, normalize=normalize).update(
            jax.grad(loss)(p), optax.EmptyState(), p, value_fn=loss)[0])
    errors = [np.linalg.norm(_flat(ghat(params, eps)) - exact)
              for eps in (4e-3, 2e-3, 1e-3, 5e-4)]
  errors = np.asarray(errors)
  # Halving epsilon halves the error (first order): ratios near 2 ...
  ratios = errors[:-1] / errors[1:]
  np.testing.assert_allclose(ratios, 2.0, rtol=0.05)
  # ... and the error is small against the size of the GR correction.
  correction = np.linalg.norm(exact - plain)
  assert correction > 1e-2
  assert errors[-1] < 1e-2 * correction
  # Negative control: the plain gradient's error does not shrink with epsilon
  # (it is the whole correction).
  assert np.linalg.norm(plain - exact) > 50 * errors[-1]


def test_forward_and_backward_errors_have_opposite_signs():
  # The O(epsilon) terms of forward and backward differences cancel: their
  # mean is a central difference, second-order accurate.
  gamma, eps = 0.1, 1e-3
  with jax.enable_x64(True):
    x, y, params = _net_data()
    loss = _net_loss(jnp.asarray(x), jnp.asarray(y))
    params = jax.tree.map(jnp.asarray, params)
    exact = _flat(jax.jit(_exact_gr_gradient(loss, gamma))(params))
    fwd = _flat(_update(optkit.fd_gradient_regularization(gamma, eps), loss,
                        params))
    bwd = _flat(_update(optkit.fd_gradient_regularization(
        gamma, eps, mode="backward"), loss, params))
  err_f = np.linalg.norm(fwd - exact)
  assert np.linalg.norm(0.5 * (fwd + bwd) - exact) < 1e-2 * err_f


def test_forward_with_epsilon_equal_gamma_is_unnormalized_sam():
  x, y, params = _net_data(np.float32)
  loss = _net_loss(jnp.asarray(x), jnp.asarray(y))
  gamma = 0.3
  grad = jax.jit(jax.grad(loss))
  g = grad(params)
  sam = grad(jax.tree.map(lambda p, gi: p + gamma * gi, params, g))
  u = _update(optkit.fd_gradient_regularization(gamma, gamma), loss, params)
  chex.assert_trees_all_close(u, sam, rtol=1e-5, atol=1e-6)
  # Negative control: the plain gradient differs.
  assert np.linalg.norm(_flat(sam) - _flat(g)) > 1e-2


def test_gamma_zero_returns_the_gradient():
  x, y, params = _net_data(np.float32)
  loss = _net_loss(jnp.asarray(x), jnp.asarray(y))
  u = _update(optkit.fd_gradient_regularization(0.0, 0.1), loss, params)
  chex.assert_trees_all_close(u, jax.grad(loss)(params), rtol=1e-6,
                              atol=1e-7)


def test_chained_with_sgd_descends_the_regularized_loss():
  gamma = 0.1
  x, y, params = _net_data(np.float32)
  loss = _net_loss(jnp.asarray(x), jnp.asarray(y))
  reg = lambda p: loss(p) + 0.5 * gamma * optax.tree.norm(
      jax.grad(loss)(p), squared=True)
  tx = optax.chain(optkit.fd_gradient_regularization(gamma, 1e-2),
                   optax.sgd(0.05))
  state = tx.init(params)

  @jax.jit
  def step(p, s):
    u, s = tx.update(jax.grad(loss)(p), s, p, value_fn=loss)
    return optax.apply_updates(p, u), s

  p = params
  for _ in range(100):
    p, state = step(p, state)
  assert float(reg(p)) < 0.5 * float(reg(params))


def test_zero_gradient_with_normalize_is_finite():
  p = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
  zeros = optax.tree.zeros_like(p)
  loss = lambda q: 0.0 * optax.tree.norm(q)
  out = jax.jit(lambda z, q: fd_regularized_gradient(
      z, q, loss, 0.1, 0.1, normalize=True))(zeros, p)
  chex.assert_trees_all_equal(out, zeros)


def test_bf16_params_keep_dtype():
  p = {"w": jnp.ones((3, 2), jnp.bfloat16)}
  loss = lambda q: jnp.sum(q["w"].astype(jnp.float32) ** 2)
  u = _update(optkit.fd_gradient_regularization(0.1, 0.1), loss, p)
  assert u["w"].dtype == jnp.bfloat16


@pytest.mark.parametrize("kwargs", [
    {"gamma": 0.1, "epsilon": 0.0},
    {"gamma": 0.1, "epsilon": -1e-3},
    {"gamma": -0.1, "epsilon": 0.1},
    {"gamma": 0.1, "epsilon": 0.1, "mode": "central"},
])
def test_bad_hyperparameters_raise(kwargs):
  arg = "mode" if "mode" in kwargs else (
      "epsilon" if kwargs["epsilon"] <= 0 else "gamma")
  with pytest.raises(ValueError, match=f"{NAME}.*{arg}"):
    optkit.fd_gradient_regularization(**kwargs)


def test_missing_value_fn_and_params_raise():
  p = {"w": jnp.ones(3)}
  tx = optkit.fd_gradient_regularization(0.1, 0.1)
  state = tx.init(p)
  with pytest.raises(ValueError, match=f"{NAME}.*value_fn"):
    tx.update(p, state, p)
  with pytest.raises(ValueError, match=f"{NAME}.*params"):
    tx.update(p, state, None, value_fn=lambda q: jnp.sum(q["w"]))
