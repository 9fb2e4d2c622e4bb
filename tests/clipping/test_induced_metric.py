"""scale_by_induced_metric (Harvey, 2509.03594)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers


def _apply(tx, g):
  return tx.update(g, tx.init(g))[0]


def test_hand_computed_step():
  g = {"a": jnp.array([1.0, 2.0]), "b": jnp.array(2.0)}  # ||g||² = 9
  out = _apply(optkit.scale_by_induced_metric(xi=0.5), g)  # 1 + 0.25 * 9 = 3.25
  np.testing.assert_allclose(out["a"], np.array([1.0, 2.0]) / 3.25, rtol=1e-6)
  np.testing.assert_allclose(out["b"], 2.0 / 3.25, rtol=1e-6)


def test_is_the_natural_gradient_of_the_induced_metric():
  """u solves (I + ξ² g gᵀ) u = g (Sherman–Morrison), checked with a dense solve."""
  g = helpers.random_tree(0)
  vec = np.concatenate([np.ravel(g[k]) for k in sorted(g)]).astype(np.float64)
  xi = 0.7
  metric = np.eye(vec.size) + xi ** 2 * np.outer(vec, vec)
  expected = np.linalg.solve(metric, vec)
  out = _apply(optkit.scale_by_induced_metric(xi=xi), g)
  got = np.concatenate([np.ravel(out[k]) for k in sorted(out)])
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_xi_zero_is_identity():
  g = helpers.random_tree(1, scale=100.0)
  out = _apply(optkit.scale_by_induced_metric(xi=0.0), g)
  for k in g:
    np.testing.assert_array_equal(out[k], g[k])


@pytest.mark.parametrize("xi", [0.1, 1.0, 5.0])
def test_norm_bounded_by_one_over_two_xi_and_direction_kept(xi):
  """||u|| <= 1/(2ξ) for every g (max of x/(1+ξ²x²) at x = 1/ξ); plain SGD (the
  identity) is unbounded (negative control)."""
  tx = optkit.scale_by_induced_metric(xi=xi)
  for scale in np.logspace(-4, 6, 21):
    g = helpers.random_tree(2, scale=float(scale))
    u = _apply(tx, g)
    nu, ng = float(optax.tree.norm(u)), float(optax.tree.norm(g))
    assert nu <= 1 / (2 * xi) * (1 + 1e-5)
    cos = float(optax.tree.vdot(u, g)) / (nu * ng)
    assert cos > 1 - 1e-5
  big = helpers.random_tree(2, scale=1e6)
  assert float(optax.tree.norm(big)) > 1 / (2 * xi)
  # The bound is attained at ||g|| = 1/ξ.
  g = {"x": jnp.array([1.0 / xi, 0.0])}
  np.testing.assert_allclose(float(optax.tree.norm(_apply(tx, g))), 1 / (2 * xi), rtol=1e-5)


def test_small_gradients_pass_large_gradients_are_clipped_smoothly():
  tx = optkit.scale_by_induced_metric(xi=1.0)
  small = {"x": jnp.array([1e-3, -2e-3])}
  np.testing.assert_allclose(_apply(tx, small)["x"], small["x"], rtol=1e-5)
  large = {"x": jnp.array([300.0, 400.0])}  # ||g|| = 500: u ≈ g/||g||²
  np.testing.assert_allclose(_apply(tx, large)["x"], large["x"] / (1 + 500.0 ** 2), rtol=1e-5)


def test_per_leaf_uses_each_leaf_norm():
  g = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([1.0])}
  out = _apply(optkit.scale_by_induced_metric(xi=1.0, per_leaf=True), g)
  np.testing.assert_allclose(out["a"], np.array([3.0, 4.0]) / 26.0, rtol=1e-6)
  np.testing.assert_allclose(out["b"], [0.5], rtol=1e-6)
  glob = _apply(optkit.scale_by_induced_metric(xi=1.0), g)
  np.testing.assert_allclose(glob["b"], [1.0 / 27.0], rtol=1e-6)


def test_bad_xi_raises():
  with pytest.raises(ValueError, match="induced_metric"):
    optkit.scale_by_induced_metric(xi=-1.0)
