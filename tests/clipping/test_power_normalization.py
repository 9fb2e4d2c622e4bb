"""What makes beta-normalized GD what it is (arXiv:2303.02854); the contract
suite covers the rest."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers


def _flat(tree):
  return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def _apply(tx, g):
  return tx.update(g, tx.init(g))[0]


def test_beta_zero_is_identity():
  g = helpers.random_tree(0, 3.0)
  out = _apply(optkit.scale_by_power_normalization(beta=0.0), g)
  jax.tree.map(np.testing.assert_array_equal, out, g)


def test_beta_one_equals_optax_normalize_by_update_norm():
  g = helpers.random_tree(1, 5.0)
  out = _apply(optkit.scale_by_power_normalization(beta=1.0, eps=1e-6), g)
  ref, _ = optax.normalize_by_update_norm(1.0, eps=1e-6).update(g, optax.EmptyState())
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), out, ref)


@pytest.mark.parametrize("beta", [0.25, 0.5, 0.75, 1.0])
@pytest.mark.parametrize("scale", [0.1, 10.0])
def test_output_norm_is_gradient_norm_to_one_minus_beta_and_direction_kept(beta, scale):
  g = helpers.random_tree(2, scale)
  out = _apply(optkit.scale_by_power_normalization(beta=beta), g)
  n = np.linalg.norm(_flat(g))
  np.testing.assert_allclose(np.linalg.norm(_flat(out)), n ** (1 - beta), rtol=1e-5)
  cos = _flat(out) @ _flat(g) / (np.linalg.norm(_flat(out)) * n)
  np.testing.assert_allclose(cos, 1.0, rtol=1e-6)


def test_normalization_tames_large_gradients_negative_control():
  """The defining property: scaling g by 100 scales the step by 100^(1-beta);
  plain GD (beta = 0) scales it by 100."""
  g = helpers.random_tree(3)
  big = jax.tree.map(lambda x: 100.0 * x, g)
  for beta, expected in [(0.5, 10.0), (0.0, 100.0)]:
    tx = optkit.scale_by_power_normalization(beta=beta)
    ratio = np.linalg.norm(_flat(_apply(tx, big))) / np.linalg.norm(_flat(_apply(tx, g)))
    np.testing.assert_allclose(ratio, expected, rtol=1e-4)


def test_zero_gradient_gives_zero_even_without_eps():
  z = {"a": jnp.zeros(3), "b": jnp.zeros(())}
  out = _apply(optkit.scale_by_power_normalization(beta=1.0, eps=0.0), z)
  assert np.all(_flat(out) == 0)


def test_bad_hyperparameters_raise():
  with pytest.raises(ValueError, match="scale_by_power_normalization"):
    optkit.scale_by_power_normalization(beta=1.5)
  with pytest.raises(ValueError, match="scale_by_power_normalization"):
    optkit.scale_by_power_normalization(eps=-1.0)
