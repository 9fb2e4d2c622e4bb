"""add_selective_weight_decay: decay only on the irrelevant weights (Bonetta et al. 2022)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.constraints import pruning_regularization as pr


def _wg(seed=0, shape=(6, 5)):
  rng = np.random.default_rng(seed)
  w = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  g = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  return w, g


def test_relevant_weights_get_exactly_the_plain_gradient_and_decay_only_on_the_rest():
  w, g = _wg()
  lam, q = 0.3, 40.0
  tx = optkit.add_selective_weight_decay(lam, threshold_percentile=q)
  u, _ = tx.update(g, tx.init(w), w)
  s = np.abs(np.asarray(w) * np.asarray(g))
  tau = np.percentile(s.reshape(-1), q)          # NumPy's linear interpolation
  irrelevant = s < tau
  assert 0 < irrelevant.sum() < irrelevant.size
  # relevant: bit-exact plain gradient
  np.testing.assert_array_equal(np.asarray(u)[~irrelevant], np.asarray(g)[~irrelevant])
  # irrelevant: g + lambda w
  np.testing.assert_allclose(np.asarray(u)[irrelevant],
                             (np.asarray(g) + lam * np.asarray(w))[irrelevant], rtol=1e-6)


def test_percentile_zero_and_hundred_are_plain_gradient_and_almost_full_decay():
  w, g = _wg(1)
  tx0 = optkit.add_selective_weight_decay(0.5, threshold_percentile=0.0)
  np.testing.assert_array_equal(tx0.update(g, tx0.init(w), w)[0], g)   # nothing below min
  tx100 = optkit.add_selective_weight_decay(0.5, threshold_percentile=100.0)
  u = np.asarray(tx100.update(g, tx100.init(w), w)[0])
  s = np.abs(np.asarray(w * g))
  top = s == s.max()
  np.testing.assert_allclose(u[~top], np.asarray(g + 0.5 * w)[~top], rtol=1e-6)
  np.testing.assert_array_equal(u[top], np.asarray(g)[top])


def test_saliency_variants_and_percentile_schedule():
  w, g = _wg(2)
  tx = optkit.add_selective_weight_decay(1.0, saliency="magnitude", threshold_percentile=50.0)
  u = np.asarray(tx.update(g, tx.init(w), w)[0])
  small = np.abs(np.asarray(w)) < np.percentile(np.abs(np.asarray(w)), 50.0)
  np.testing.assert_allclose(u[small], np.asarray(g + w)[small], rtol=1e-6)
  np.testing.assert_array_equal(u[~small], np.asarray(g)[~small])
  # a schedule: q = 0 at step 0 (plain gradient), 100 afterwards
  sched = lambda count: jnp.where(count < 1, 0.0, 100.0)
  tx = optkit.add_selective_weight_decay(1.0, threshold_percentile=sched)
  s = tx.init(w)
  u0, s = tx.update(g, s, w)
  u1, s = tx.update(g, s, w)
  np.testing.assert_array_equal(u0, g)
  assert not np.allclose(u1, g)
  assert int(s.count) == 2


def test_shrinks_irrelevant_weights_to_zero_while_relevant_fit_negative_control():
  """Least squares where only 3 of 12 inputs matter: selective decay drives the
  irrelevant weights towards 0 and leaves the relevant ones at the fit; plain
  weight decay of the same strength (negative control) shrinks the relevant
  ones too."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((200, 12)), jnp.float32)
  w_true = jnp.zeros(12).at[:3].set(jnp.array([2.0, -1.5, 1.0]))
  y = x @ w_true
  loss = lambda w: 0.5 * jnp.mean((x @ w - y) ** 2)
  w0 = jnp.asarray(0.3 * rng.standard_normal(12), jnp.float32)

  def run(reg):
    tx = optax.chain(reg, optax.sgd(0.1))
    w, s = w0, tx.init(w0)
    step = jax.jit(lambda w, s: tx.update(jax.grad(loss)(w), s, w))
    for _ in range(400):
      u, s = step(w, s)
      w = optax.apply_updates(w, u)
    return np.asarray(w)

  selective = run(optkit.add_selective_weight_decay(0.5, threshold_percentile=75.0))
  plain = run(optax.add_decayed_weights(0.5))
  assert np.max(np.abs(selective[3:])) < 1e-3
  np.testing.assert_allclose(selective[:3], [2.0, -1.5, 1.0], atol=2e-3)
  assert np.max(np.abs(plain[:3] - np.array([2.0, -1.5, 1.0]))) > 0.1   # biased


def test_iterative_magnitude_pruning():
  p = {"a": jnp.array([0.05, -0.2, 1.0]), "b": jnp.array(-0.01)}
  pruned, keep = optkit.iterative_magnitude_pruning(p, 0.1)
  np.testing.assert_array_equal(pruned["a"], np.float32([0.0, -0.2, 1.0]))
  assert float(pruned["b"]) == 0.0 and not bool(keep["b"])


def test_mask_and_empty_leaf():
  w = {"a": jnp.array([1.0, 2.0, 3.0, 4.0]), "e": jnp.zeros((0,))}
  g = {"a": jnp.array([0.1, 0.1, 1.0, 1.0]), "e": jnp.zeros((0,))}
  tx = optkit.add_selective_weight_decay(0.5, mask={"a": False, "e": True})
  u, _ = tx.update(g, tx.init(w), w)
  np.testing.assert_array_equal(u["a"], g["a"])
  assert pr.irrelevant_mask(jnp.zeros((0,)), jnp.zeros((0,)), 50.0).shape == (0,)


def test_bad_hyperparameters_and_missing_params():
  with pytest.raises(ValueError, match="add_selective_weight_decay.*weight_decay"):
    optkit.add_selective_weight_decay(-1.0)
  with pytest.raises(ValueError, match="add_selective_weight_decay.*threshold_percentile"):
    optkit.add_selective_weight_decay(0.1, threshold_percentile=150.0)
  with pytest.raises(ValueError, match="add_selective_weight_decay.*saliency"):
    optkit.add_selective_weight_decay(0.1, saliency="hessian")
  tx = optkit.add_selective_weight_decay(0.1)
  w = jnp.ones(3)
  with pytest.raises(ValueError, match="add_selective_weight_decay.*params"):
    tx.update(w, tx.init(w))
