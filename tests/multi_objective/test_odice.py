"""O-DICE orthogonal-gradient update (arXiv:2402.00348): its defining property and a
float64 restatement of the authors' ``orthogonal_true_g_update``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optkit
from tests import helpers


def _pair(f, b):
  return jax.tree.map(lambda x, y: jnp.stack([x, y]), f, b)


def _vdot(a, b):
  return sum(float(jnp.vdot(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _combine(f, b, **kw):
  tx = optkit.orthogonal_gradient_combine(**kw)
  return tx.update(_pair(f, b), tx.init(f), f)[0]


def _authors_update(f, b, eta):
  """float64 NumPy restatement of the authors' code: flatten and concatenate,
  backward loss scaled by eta, coef = <f, b>/max(<f, f>, 1e-10), (1 - coef) f + b."""
  fv = np.concatenate([np.asarray(x, np.float64).reshape(-1) for x in jax.tree.leaves(f)])
  bv = eta * np.concatenate([np.asarray(x, np.float64).reshape(-1) for x in jax.tree.leaves(b)])
  coef = (fv @ bv) / max(fv @ fv, 1e-10)
  return (1 - coef) * fv + bv


@pytest.mark.parametrize("eta", [1.0, 0.3])
def test_matches_authors_formula(eta):
  for seed in range(3):
    f = helpers.random_tree(seed)
    b = jax.tree.map(lambda x, y: -0.8 * x + y, f, helpers.random_tree(50 + seed))
    got = _combine(f, b, eta=eta)
    flat = np.concatenate([np.asarray(x).reshape(-1) for x in jax.tree.leaves(got)])
    np.testing.assert_allclose(flat, _authors_update(f, b, eta), rtol=1e-5, atol=1e-6)


def test_projected_part_is_orthogonal_with_negative_control():
  f = helpers.random_tree(1)
  b = jax.tree.map(lambda x, y: -1.5 * x + y, f, helpers.random_tree(2))  # conflicting
  g = _combine(f, b, eta=0.7)
  diff = jax.tree.map(jnp.subtract, g, f)
  cos = _vdot(diff, f) / np.sqrt(_vdot(diff, diff) * _vdot(f, f))
  assert abs(cos) < 1e-6
  # Negative control: the plain true-gradient sum keeps the conflicting part.
  cos_sum = _vdot(b, f) / np.sqrt(_vdot(b, b) * _vdot(f, f))
  assert cos_sum < -0.2
  # ... and the combined update still descends along the forward gradient.
  assert _vdot(g, f) == pytest.approx(_vdot(f, f), rel=1e-5)


def test_eta_zero_gives_forward_gradient():
  f, b = helpers.random_tree(3), helpers.random_tree(4, scale=3.0)
  g = _combine(f, b, eta=0.0)
  for x, y in zip(jax.tree.leaves(g), jax.tree.leaves(f)):
    np.testing.assert_array_equal(x, y)


def test_orthogonal_backward_is_added_unchanged():
  f = {"a": jnp.array([1.0, 2.0, 0.0]), "b": jnp.array([[0.5, 0.0]])}
  b = {"a": jnp.array([2.0, -1.0, 3.0]), "b": jnp.array([[0.0, -4.0]])}  # <f, b> = 0
  g = _combine(f, b, eta=0.4)
  for x, y, z in zip(jax.tree.leaves(g), jax.tree.leaves(f), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y + 0.4 * z, rtol=1e-6)


def test_aligned_backward_is_projected_too():
  # Always projected (no conflict condition): a backward gradient parallel to
  # the forward one is removed entirely, even when it agrees with it.
  f = helpers.random_tree(5)
  g = _combine(f, jax.tree.map(lambda x: 2.0 * x, f))
  for x, y in zip(jax.tree.leaves(g), jax.tree.leaves(f)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_per_leaf_projects_each_leaf():
  f = helpers.random_tree(6)
  b = jax.tree.map(lambda x, y: 0.5 * x + y, f, helpers.random_tree(7))
  g_leaf = _combine(f, b, per_leaf=True)
  g_glob = _combine(f, b)
  for gl, fl in zip(jax.tree.leaves(g_leaf), jax.tree.leaves(f)):
    d = np.asarray(gl - fl, np.float64).reshape(-1)
    fv = np.asarray(fl, np.float64).reshape(-1)
    assert abs(d @ fv) < 1e-5 * (np.linalg.norm(d) * np.linalg.norm(fv) + 1e-12)
  # The global projection is not orthogonal leaf by leaf (negative control).
  dots = [float(np.vdot(np.asarray(gl - fl), np.asarray(fl)))
          for gl, fl in zip(jax.tree.leaves(g_glob), jax.tree.leaves(f))]
  assert max(abs(x) for x in dots) > 1e-2


def test_zero_forward_gradient_is_finite():
  f = jax.tree.map(jnp.zeros_like, helpers.random_tree(8))
  b = helpers.random_tree(9)
  g = _combine(f, b, eta=0.5)
  for x, y in zip(jax.tree.leaves(g), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, 0.5 * y, rtol=1e-6)


def test_bad_hyperparameters_and_inputs_raise():
  with pytest.raises(ValueError, match="orthogonal_gradient_combine"):
    optkit.orthogonal_gradient_combine(eta=-0.1)
  with pytest.raises(ValueError, match="orthogonal_gradient_combine"):
    optkit.orthogonal_gradient_combine(eps=0.0)
  tx = optkit.orthogonal_gradient_combine()
  with pytest.raises(ValueError, match="orthogonal_gradient_combine.*size 2"):
    tx.update(jnp.ones((3, 4)), tx.init(jnp.zeros(4)))
