"""loss_normalized_sgd / scale_by_inverse_loss (Tyurin, 2412.08424)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers


def _separable_data():
  """60 points in 2-D, labels from a direction w*, margin >= 0.02 (no bias)."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((200, 2))
  m = x @ (np.array([1.0, 3.0]) / np.sqrt(10.0))
  keep = np.abs(m) > 0.02
  return (jnp.asarray(x[keep][:60], jnp.float32),
          jnp.asarray(np.sign(m[keep][:60]), jnp.float32))


def _iterations_to_zero_error(opt, x, y, steps=1000):
  loss = lambda w: jnp.mean(jax.nn.softplus(-y * (x @ w)))  # log1p(exp(-z)), no underflow
  w = jnp.array([-1.0, 0.5])
  state = opt.init(w)

  @jax.jit
  def step(w, s):
    u, s = opt.update(jax.grad(loss)(w), s, w, value=loss(w))
    return w + u, s

  for t in range(steps):
    if int(jnp.sum(jnp.sign(x @ w) != y)) == 0:
      return t
    w, state = step(w, state)
  return steps


def test_hand_computed_first_step():
  g = {"a": jnp.array([0.5, -1.0]), "b": jnp.array(2.0)}
  opt = optkit.loss_normalized_sgd(learning_rate=0.2)
  u, _ = opt.update(g, opt.init(g), g, value=jnp.asarray(4.0))
  np.testing.assert_allclose(u["a"], [-0.025, 0.05], rtol=1e-6)  # −0.2/4 · g
  np.testing.assert_allclose(u["b"], -0.1, rtol=1e-6)


def test_equals_sgd_with_learning_rate_over_loss():
  g = helpers.random_tree(0)
  f = 0.37
  ours, _ = optkit.loss_normalized_sgd(0.5).update(g, optkit.loss_normalized_sgd(0.5).init(g),
                                                   g, value=f)
  ref, _ = optax.sgd(0.5 / f).update(g, optax.sgd(0.5 / f).init(g))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ours, ref)


def test_direction_is_minus_gradient():
  g = helpers.random_tree(1, scale=3.0)
  opt = optkit.loss_normalized_sgd(1.0)
  for f in (1e-6, 0.01, 1.0, 50.0):
    u, _ = opt.update(g, opt.init(g), g, value=f)
    cos = float(optax.tree.vdot(u, g)) / float(optax.tree.norm(u) * optax.tree.norm(g))
    np.testing.assert_allclose(cos, -1.0, rtol=1e-6)
    np.testing.assert_allclose(float(optax.tree.norm(u)), float(optax.tree.norm(g)) / f,
                               rtol=1e-5)


@pytest.mark.parametrize("gamma", [0.1, 0.3, 1.0])
def test_reaches_zero_training_error_faster_than_lr_gd(gamma):
  """Separable data: Normalized LR+GD separates in fewer iterations than LR+GD
  with the same step γ (the paper's claim; LR+GD is the negative control)."""
  x, y = _separable_data()
  n_norm = _iterations_to_zero_error(optkit.loss_normalized_sgd(gamma), x, y)
  n_gd = _iterations_to_zero_error(optax.with_extra_args_support(optax.sgd(gamma)), x, y)
  assert n_norm < n_gd, (n_norm, n_gd)
  assert n_norm < 1000


def test_zero_loss_is_guarded_by_eps():
  g = jnp.array([1e-3, -2e-3])
  tx = optkit.scale_by_inverse_loss(eps=1e-6)
  out, _ = tx.update(g, tx.init(g), value=jnp.asarray(0.0))
  np.testing.assert_allclose(out, g / 1e-6, rtol=1e-5)


def test_missing_value_and_bad_hyperparameters_raise():
  g = jnp.ones(2)
  opt = optkit.loss_normalized_sgd(0.1)
  with pytest.raises(ValueError, match="loss_normalized_sgd.*value"):
    opt.update(g, opt.init(g), g)
  with pytest.raises(ValueError, match="loss_normalized_sgd"):
    optkit.loss_normalized_sgd(-0.1)
  with pytest.raises(ValueError, match="loss_normalized_sgd"):
    optkit.loss_normalized_sgd(0.1, eps=0.0)
  with pytest.raises(ValueError, match="inverse_loss"):
    optkit.scale_by_inverse_loss(eps=-1.0)
  with pytest.raises(ValueError, match="inverse_loss"):
    tx = optkit.scale_by_inverse_loss()
    tx.update(g, tx.init(g), value=jnp.ones(3))
