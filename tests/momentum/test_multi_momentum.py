"""What makes multi-momentum multi-momentum (arXiv:2111.11828); the contract suite
covers the rest."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.momentum import multi_momentum


def _stack(rows):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *rows)


# ---------------------------------------------------------------- first steps


def test_hand_computed_two_steps_with_an_absent_cluster():
  beta = 0.5
  tx = multi_momentum(3, beta)
  p = jnp.zeros(2)
  g1 = jnp.array([[1.0, 2.0], [3.0, -1.0], [0.0, 0.0]])   # cluster 2 absent
  d1, s = tx.update(g1, tx.init(p))
  np.testing.assert_allclose(d1, [2.0, 0.5])                # m = 0: mean of present rows
  m = np.array([[0.5, 1.0], [1.5, -0.5], [0.0, 0.0]])       # absent row untouched
  np.testing.assert_allclose(s.m, m)
  g2 = jnp.array([[0.0, 0.0], [1.0, 1.0], [2.0, 4.0]])     # cluster 0 absent
  d2, s = tx.update(g2, s)
  m_bar = m.mean(axis=0)
  expected = ((np.array([1.0, 1.0]) - m[1] + m_bar) + (np.array([2.0, 4.0]) - m[2] + m_bar)) / 2
  np.testing.assert_allclose(d2, expected, rtol=1e-6)
  np.testing.assert_allclose(s.m, [[0.5, 1.0], [1.25, 0.25], [1.0, 2.0]], rtol=1e-6)


# ---------------------------------------------------------------- reductions


def test_one_cluster_is_the_plain_gradient():
  tx = multi_momentum(1, 0.9)
  rng = np.random.default_rng(0)
  p = {"a": jnp.zeros((3,)), "b": jnp.zeros((2, 2))}
  state = tx.init(p)
  update = jax.jit(tx.update)
  for _ in range(5):
    g = {"a": jnp.asarray(rng.standard_normal((1, 3)), jnp.float32),
         "b": jnp.asarray(rng.standard_normal((1, 2, 2)), jnp.float32)}
    d, state = update(g, state)
    chex.assert_trees_all_close(d, jax.tree.map(lambda x: x[0], g), rtol=1e-6, atol=1e-6)
  # Negative control: the momenta are not the gradient (so g - m + m is a real identity).
  assert not np.allclose(state.m["a"][0], g["a"][0], atol=1e-2)


def test_identical_clusters_give_the_mean_gradient():
  k = 4
  tx = multi_momentum(k, 0.8)
  rng = np.random.default_rng(1)
  p = jnp.zeros(5)
  state = tx.init(p)
  for _ in range(5):
    g = jnp.asarray(rng.standard_normal(5), jnp.float32)
    d, state = tx.update(jnp.stack([g] * k), state)
    np.testing.assert_allclose(d, g, rtol=1e-5, atol=1e-6)


def test_all_rows_zero_gives_zero_and_keeps_state():
  tx = multi_momentum(2, 0.9)
  p = jnp.zeros(3)
  _, s = tx.update(jnp.array([[1.0, 2.0, 3.0], [0.5, 0.0, 1.0]]), tx.init(p))
  d, s2 = tx.update(jnp.zeros((2, 3)), s)
  np.testing.assert_array_equal(d, np.zeros(3))
  np.testing.assert_array_equal(s2.m, s.m)


# ---------------------------------------------------------------- defining property


def _noisy_cluster_run(use_multi: bool, steps: int = 150, k: int = 8, seed: int = 0):
  """SGD on f(x) = (1/K) sum_k 0.5 ||x - c_k||^2 where each batch holds 2 random
  clusters (plus small per-batch noise); returns the mean squared error of the
  direction against the full gradient x - mean(c), after a burn-in."""
  rng = np.random.default_rng(seed)
  dim = 6
  centers = 3.0 * rng.standard_normal((k, dim))
  x = np.zeros(dim, np.float32)
  tx = multi_momentum(k, 0.9)
  state = tx.init(jnp.asarray(x))
  update = jax.jit(tx.update)
  errs = []
  for t in range(steps):
    present = rng.choice(k, size=2, replace=False)
    rows = np.zeros((k, dim), np.float32)
    for j in present:
      rows[j] = x - centers[j] + 0.1 * rng.standard_normal(dim)
    if use_multi:
      d, state = update(jnp.asarray(rows), state)
      d = np.asarray(d)
    else:
      d = rows[present].mean(axis=0)         # plain minibatch SGD estimate
    full = x - centers.mean(axis=0)
    if t >= 50:
      errs.append(np.sum((d - full) ** 2))
    x = (x - 0.02 * d).astype(np.float32)
  return float(np.mean(errs))


def test_variance_lower_than_plain_sgd():
  """Test (3) of the entry: on a clustered noisy quadratic the aggregated gradient's
  error against the full gradient is far below the minibatch SGD estimate's."""
  mm = _noisy_cluster_run(True)
  sgd = _noisy_cluster_run(False)
  assert mm < 0.25 * sgd, (mm, sgd)


def test_composes_with_a_base_optimizer():
  tx = optax.chain(multi_momentum(2, 0.9), optax.sgd(0.1))
  p = jnp.array([1.0, 1.0])
  u, _ = tx.update(jnp.array([[2.0, 0.0], [0.0, 4.0]]), tx.init(p), p)
  np.testing.assert_allclose(u, [-0.1, -0.2], rtol=1e-6)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="multi_momentum"):
    multi_momentum(0)
  with pytest.raises(ValueError, match="multi_momentum.*beta"):
    multi_momentum(2, beta=1.0)
  tx = multi_momentum(3)
  with pytest.raises(ValueError, match="multi_momentum"):
    tx.update(jnp.ones((2, 4)), tx.init(jnp.zeros(4)))   # K = 2 rows, expected 3
