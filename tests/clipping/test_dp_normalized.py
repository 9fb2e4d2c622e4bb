"""What makes m-NGP what it is (arXiv:2204.10536); the contract suite covers
the rest."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optkit
from tests import helpers


def _flat(tree):
  return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def test_without_noise_normalizes_by_max_one_norm():
  """Catalog test (1): sigma = 0 gives g / max(1, ||g||), norm <= 1; a gradient
  with norm < 1 is unchanged (negative control for plain normalization)."""
  tx = optkit.dp_normalized_gradient_perturbation(noise_multiplier=0.0)
  for scale, expect_unchanged in [(5.0, False), (0.05, True)]:
    g = helpers.random_tree(0, scale)
    out, _ = tx.update(g, tx.init(g))
    n = np.linalg.norm(_flat(g))
    np.testing.assert_allclose(_flat(out), _flat(g) / max(1.0, n), rtol=1e-6)
    assert np.linalg.norm(_flat(out)) <= 1.0 + 1e-6
    assert np.allclose(_flat(out), _flat(g), rtol=1e-6) == expect_unchanged


def test_noise_std_equals_sigma_and_is_fresh_every_step():
  """Catalog test (2): on zero gradients the output is the noise b ~ N(0, sigma^2):
  empirical std over 400 steps x 7 coordinates within 3% of sigma, mean near 0,
  consecutive steps uncorrelated (the key is split every step)."""
  sigma = 0.7
  tx = optkit.dp_normalized_gradient_perturbation(noise_multiplier=sigma, seed=3)
  z = {"a": jnp.zeros(5), "b": jnp.zeros(2)}
  update = jax.jit(tx.update)
  state = tx.init(z)
  draws = []
  for _ in range(400):
    out, state = update(z, state)
    draws.append(_flat(out))
  draws = np.stack(draws)
  np.testing.assert_allclose(draws.std(), sigma, rtol=0.03)
  assert abs(draws.mean()) < 0.05
  corr = np.corrcoef(draws[:-1].ravel(), draws[1:].ravel())[0, 1]
  assert abs(corr) < 0.1
  assert not np.allclose(draws[:, :2], draws[:, 5:7], atol=0.1)   # leaves: independent


def test_same_seed_same_noise_other_seed_other_noise():
  """Catalog test (3)."""
  g = helpers.random_tree(1)
  run = lambda seed: optkit.dp_normalized_gradient_perturbation(1.0, seed=seed).update(
      g, optkit.dp_normalized_gradient_perturbation(1.0, seed=seed).init(g))[0]
  np.testing.assert_array_equal(_flat(run(4)), _flat(run(4)))
  assert not np.allclose(_flat(run(4)), _flat(run(5)))


def test_bad_hyperparameters_raise():
  with pytest.raises(ValueError, match="dp_normalized_gradient_perturbation"):
    optkit.dp_normalized_gradient_perturbation(noise_multiplier=-0.1)
  with pytest.raises(ValueError, match="dp_normalized_gradient_perturbation"):
    optkit.dp_normalized_gradient_perturbation(1.0, seed=-1)
