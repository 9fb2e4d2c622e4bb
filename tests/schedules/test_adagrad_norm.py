"""Tests of AdaGrad-Norm and the adaptive batch-size tests
(optkit.schedules.adagrad_norm). References: hand-computed steps and a
float64 NumPy re-derivation of the AdaGrad-Norm recursion over 30 random
gradients (rtol 1e-5); the norm and inner-product tests against NumPy
formulas (exact integers)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers


def test_first_steps_hand_computed():
  tx = optkit.adagrad_norm(0.5, b0=1.0)
  p = jnp.array([3.0, 4.0])
  s = tx.init(p)
  u, s = tx.update(p, s, p)                  # b1^2 = 1 + 25
  np.testing.assert_allclose(u, -0.5 * np.array([3.0, 4.0]) / np.sqrt(26.0), rtol=1e-6)
  u, s = tx.update(jnp.array([0.0, 1.0]), s, p)   # b2^2 = 27
  np.testing.assert_allclose(u, -0.5 * np.array([0.0, 1.0]) / np.sqrt(27.0), rtol=1e-6)


def test_matches_numpy_and_step_sizes_do_not_increase():
  grads = helpers.gradient_sequence(30, seed=3)
  params = helpers.random_tree(1)
  outs = helpers.run_open_loop(optkit.adagrad_norm(0.1), params, grads)
  acc = 1e-16
  steps = []
  for g, (u, state) in zip(grads, outs):
    acc += sum(float(np.sum(np.asarray(x, np.float64) ** 2)) for x in jax.tree.leaves(g))
    for k in g:
      np.testing.assert_allclose(u[k], -0.1 * np.asarray(g[k], np.float64) / np.sqrt(acc),
                                 rtol=1e-5, atol=1e-7)
    steps.append(0.1 / np.sqrt(float(state[0].sum_sq)))
  assert np.all(np.diff(steps) <= 0)
  # Negative control: Adam's per-coordinate effective step is not monotone.
  adam = helpers.run_open_loop(optax.adam(0.1), params, grads)
  ratios = [float(jnp.abs(u["c"] / g["c"])) for g, (u, _) in zip(grads, adam)]
  assert np.any(np.diff(ratios) > 0)


def test_zero_gradient_is_safe_and_bf16_dtype_kept():
  tx = optkit.adagrad_norm(1.0)
  p = {"a": jnp.zeros(3, jnp.bfloat16)}
  u, s = tx.update(p, tx.init(p), p)
  assert u["a"].dtype == jnp.bfloat16 and np.all(np.asarray(u["a"], np.float32) == 0)
  assert s[0].sum_sq.dtype == jnp.float32


def test_norm_test_keeps_size_without_noise_and_grows_with_noise():
  same = {"w": jnp.tile(jnp.array([[1.0, -2.0]]), (16, 1)), "b": jnp.ones((16,))}
  assert int(optkit.adaptive_batch_size_test(same, eta=0.1, b_max=4096)) == 16
  rng = np.random.default_rng(0)
  g = 0.3 + rng.standard_normal((16, 5))
  mean = g.mean(0)
  var = np.sum((g - mean) ** 2) / 15
  expected = min(max(math.ceil(var / (0.5 ** 2 * np.sum(mean ** 2))), 16), 4096)
  got = int(optkit.adaptive_batch_size_test(jnp.asarray(g, jnp.float32), 0.5, 4096))
  assert got == expected and got > 16
  pure_noise = np.concatenate([g - mean, -(g - mean)])   # exact zero mean
  assert int(optkit.adaptive_batch_size_test(jnp.asarray(pure_noise), 0.5, 999)) == 999


def test_inner_product_test_matches_numpy():
  rng = np.random.default_rng(1)
  g = 1.0 + 0.8 * rng.standard_normal((10, 4))
  m = g.mean(0)
  m2 = m @ m
  ip = g @ m
  var_ip = np.sum((ip - m2) ** 2) / 9
  resid = g - np.outer(ip / m2, m)
  var_orth = np.sum(resid ** 2) / 9
  theta, nu = 0.3, 0.5
  need = max(math.ceil(var_ip / (theta ** 2 * m2 ** 2)), math.ceil(var_orth / (nu ** 2 * m2)))
  got = int(optkit.adaptive_batch_size_test(jnp.asarray(g, jnp.float32), theta, 10 ** 6,
                                            test="inner_product", nu=nu))
  assert got == max(need, 10)
  # Jittable.
  f = jax.jit(lambda x: optkit.adaptive_batch_size_test(x, 0.3, 512, "inner_product", nu=nu))
  assert int(f(jnp.asarray(g, jnp.float32))) == min(max(need, 10), 512)


def test_bad_arguments():
  with pytest.raises(ValueError, match="adagrad_norm"):
    optkit.adagrad_norm(0.1, b0=0.0)
  with pytest.raises(ValueError, match="adagrad_norm"):
    optkit.adagrad_norm(-0.1)
  with pytest.raises(ValueError, match="adaptive_batch_size_test"):
    optkit.adaptive_batch_size_test(jnp.ones((1, 3)), 0.5, 10)
  with pytest.raises(ValueError, match="adaptive_batch_size_test"):
    optkit.adaptive_batch_size_test(jnp.ones((4, 3)), 0.5, 10, test="coordinate")
  tx = optkit.adagrad_norm(0.1)
  p = {"a": jnp.ones(2), "b": jnp.ones(3)}
  with pytest.raises(ValueError, match="adagrad_norm"):
    tx.update({"a": jnp.ones(2)}, tx.init(p), p)
