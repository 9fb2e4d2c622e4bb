"""What makes random-scaled SGDM itself (arXiv:2405.09742); the contract suite covers the rest."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.momentum import random_scaled_sgdm, scale_by_exponential_random
from tests import helpers

_tree = helpers.random_tree
_grads = helpers.gradient_sequence
_run_open_loop = helpers.run_open_loop


def _expected_scales(seed, n):
  """The s_t the key schedule of the state gives: split, draw from the second half."""
  key = jax.random.key(seed)
  out = []
  for _ in range(n):
    key, sub = jax.random.split(key)
    out.append(float(jax.random.exponential(sub, dtype=jnp.float32)))
  return np.array(out)


def test_hand_computed_first_step():
  lr, beta, seed = 0.1, 0.8, 3
  opt = random_scaled_sgdm(lr, beta, seed=seed)
  p = jnp.array([1.0, -1.0, 2.0])
  g = jnp.array([0.3, -2.0, 0.0])
  u, state = opt.update(g, opt.init(p), p)
  s = _expected_scales(seed, 1)[0]
  np.testing.assert_allclose(float(state[1].scale), s, rtol=0, atol=0)
  np.testing.assert_allclose(u, -lr * s * (1 - beta) * np.asarray(g, np.float64),
                             rtol=1e-6, atol=1e-8)


def test_scale_fixed_to_one_is_ema_sgdm_and_default_is_not():
  """Test (1) of the entry; negative control: the Exp(1) scaling changes every step."""
  params, grads = _tree(1), _grads(10, seed=2)
  mine = _run_open_loop(random_scaled_sgdm(0.05, 0.9, sample_fn=lambda k: 1.0), params, grads)
  ref = _run_open_loop(optax.chain(optax.ema(0.9, debias=False),
                                   optax.scale_by_learning_rate(0.05)), params, grads)
  for (u, _), (ur, _) in zip(mine, ref):
    chex.assert_trees_all_equal(u, ur)
  scaled = _run_open_loop(random_scaled_sgdm(0.05, 0.9), params, grads)
  for (u, s), (ur, _) in zip(scaled, ref):
    ratio = float(s[1].scale)
    assert abs(ratio - 1.0) > 1e-3
    chex.assert_trees_all_close(u, jax.tree.map(lambda x: ratio * x, ur), rtol=1e-5, atol=1e-7)


def test_trajectory_matches_numpy_float64():
  """x <- x - lr s_t m_t, m EMA, against a float64 re-derivation using the drawn s_t."""
  lr, beta, wd = 0.05, 0.7, 0.1
  with jax.enable_x64(True):
    params = {"a": jnp.asarray(np.random.default_rng(0).standard_normal(4), jnp.float64)}
    grads = [{"a": jnp.asarray(np.random.default_rng(i + 1).standard_normal(4), jnp.float64)}
             for i in range(12)]
    outs = _run_open_loop(random_scaled_sgdm(lr, beta, wd, seed=5), params, grads)
  x = np.asarray(params["a"])
  m = np.zeros(4)
  for (u, state), g in zip(outs, grads):
    s = float(state[1].scale)
    m = beta * m + (1 - beta) * np.asarray(g["a"])
    step = -lr * (s * m + wd * x)
    np.testing.assert_allclose(u["a"], step, rtol=1e-12, atol=1e-14)
    x = x + step


def test_one_scalar_per_step_shared_by_all_leaves():
  tx = scale_by_exponential_random(seed=7)
  g = _tree(3)
  state = tx.init(g)
  for _ in range(3):
    u, state = tx.update(g, state)
    ratios = np.concatenate([np.ravel(np.asarray(u[k]) / np.asarray(g[k])) for k in g])
    np.testing.assert_allclose(ratios, float(state.scale), rtol=1e-6)


def test_exponential_distribution_of_the_scale():
  """Test (2): mean of s over 1e4 steps is 1 +- 0.05; Exp(1) also has var 1 and
  P(s > 1) = 1/e. Negative control: plain SGDM (s = 1) has no spread at all."""
  def scales(tx, n=10_000):
    g = jnp.ones((1,))
    def body(state, _):
      _, state = tx.update(g, state)
      return state, state.scale
    return np.asarray(jax.jit(lambda s: jax.lax.scan(body, s, None, length=n))(tx.init(g))[1])

  s = scales(scale_by_exponential_random(seed=0))
  assert abs(s.mean() - 1.0) < 0.05
  assert abs(s.var() - 1.0) < 0.1
  assert abs((s > 1.0).mean() - np.exp(-1.0)) < 0.02
  assert s.min() >= 0.0
  const = scales(scale_by_exponential_random(sample_fn=lambda k: 1.0))
  assert abs(const.mean() - 1.0) < 0.05      # same mean ...
  assert not abs(const.var() - 1.0) < 0.1    # ... but not Exp(1)


def test_key_advances_and_seed_determines_the_draws():
  """Test (3): the key changes every step; same seed, same run; other seed, other run."""
  params, grads = _tree(4), _grads(5, seed=6)
  a = _run_open_loop(random_scaled_sgdm(0.1, seed=11), params, grads)
  b = _run_open_loop(random_scaled_sgdm(0.1, seed=11), params, grads)
  c = _run_open_loop(random_scaled_sgdm(0.1, seed=12), params, grads)
  keys = [np.asarray(s[1].key) for _, s in a]
  assert all(not np.array_equal(k1, k2) for k1, k2 in zip(keys, keys[1:]))
  for (ua, sa), (ub, sb) in zip(a, b):
    chex.assert_trees_all_equal(ua, ub)
    chex.assert_trees_all_equal(sa, sb)
  np.testing.assert_allclose([float(s[1].scale) for _, s in a], _expected_scales(11, 5), rtol=0)
  assert not np.allclose([float(s[1].scale) for _, s in a], [float(s[1].scale) for _, s in c])


@pytest.mark.parametrize("kwargs", [{"learning_rate": -0.1}, {"learning_rate": 0.1, "beta": 1.0},
                                    {"learning_rate": 0.1, "weight_decay": -1.0}])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="random_scaled_sgdm"):
    random_scaled_sgdm(**kwargs)


def test_mismatched_tree_raises():
  tx = scale_by_exponential_random()
  state = tx.init({"a": jnp.ones(2), "b": jnp.ones(3)})
  with pytest.raises(ValueError, match="scale_by_exponential_random"):
    tx.update({"a": jnp.ones(2)}, state)
