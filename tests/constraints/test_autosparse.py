"""anneal_masked_gradients: AutoSparse gradient annealing (Kundu et al. 2023)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit


def _wg(seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.standard_normal((8, 6)), jnp.float32),
          jnp.asarray(rng.standard_normal((8, 6)), jnp.float32))


def test_unmasked_keep_gradient_masked_are_multiplied_by_alpha():
  w, g = _wg()
  tau, alpha = 0.6, 0.3
  tx = optkit.anneal_masked_gradients(alpha, lambda p: tau)
  u = np.asarray(tx.update(g, tx.init(w), w)[0])
  masked = np.abs(np.asarray(w)) <= tau
  assert 0 < masked.sum() < masked.size
  np.testing.assert_array_equal(u[~masked], np.asarray(g)[~masked])     # bit-exact
  np.testing.assert_allclose(u[masked], alpha * np.asarray(g)[masked], rtol=1e-7)


def test_per_leaf_thresholds_and_unsparsified_leaves():
  w, g = _wg(1)
  params = {"w": w, "b": jnp.array([0.01, 5.0])}
  grads = {"w": g, "b": jnp.array([1.0, 1.0])}
  tx = optkit.anneal_masked_gradients(0.0, lambda p: {"w": jnp.full((1, 6), 0.5), "b": None})
  u = tx.update(grads, tx.init(params), params)[0]
  np.testing.assert_array_equal(u["b"], grads["b"])                     # not sparsified
  masked = np.abs(np.asarray(w)) <= 0.5
  np.testing.assert_array_equal(np.asarray(u["w"])[masked], 0.0)
  np.testing.assert_array_equal(np.asarray(u["w"])[~masked], np.asarray(g)[~masked])


def test_schedule_is_monotone_reaches_exactly_zero_and_is_read_at_count():
  sched = optkit.gradient_annealing_schedule(0.75, 50)
  vals = np.array([float(sched(t)) for t in range(0, 80)])
  assert vals[0] == pytest.approx(0.75)
  assert np.all(np.diff(vals) <= 0)
  assert np.all(vals[50:] == 0.0)
  # non-linear: not a straight line from 0.75 to 0
  assert abs(vals[25] - 0.375) < 1e-6 and abs(vals[10] - 0.75 * (1 - 10 / 50)) > 1e-2
  w, g = _wg(2)
  tx = optkit.anneal_masked_gradients(sched, lambda p: 0.5)
  s = tx.init(w)
  masked = np.abs(np.asarray(w)) <= 0.5
  for t in range(3):
    u, s = tx.update(g, s, w)
    np.testing.assert_allclose(np.asarray(u)[masked], vals[t] * np.asarray(g)[masked],
                               rtol=1e-6)


def test_alpha_zero_freezes_masked_weights_plain_optimizer_moves_them():
  """Defining property with alpha_T = 0: pruned weights stop moving; without the
  annealing (negative control) the same optimizer moves them."""
  w, _ = _wg(3)
  target = jnp.ones_like(w)
  loss = lambda p: 0.5 * jnp.sum((p - target) ** 2)
  masked = np.abs(np.asarray(w)) <= 0.5

  def run(tx):
    p, s = w, tx.init(w)
    for _ in range(5):
      u, s = tx.update(jax.grad(loss)(p), s, p)
      p = optax.apply_updates(p, u)
    return np.asarray(p)

  tau_fn = lambda p: 0.5
  frozen = run(optax.chain(optkit.anneal_masked_gradients(0.0, tau_fn), optax.adam(0.1)))
  # the mask is recomputed each step from the current |W|: weights above tau
  # move towards 1 and never drop below it, so the masked set is fixed here
  np.testing.assert_array_equal(frozen[masked], np.asarray(w)[masked])
  assert np.all(np.abs(frozen[~masked] - np.asarray(w)[~masked]) > 0)
  plain = run(optax.adam(0.1))
  assert np.all(np.abs(plain[masked] - np.asarray(w)[masked]) > 0)


def test_straight_through_forward_and_derivatives():
  w = jnp.array([0.05, -1.0, 0.3, 2.0])
  tau = jnp.asarray(0.2)
  out = optkit.sparsify_straight_through(w, tau)
  np.testing.assert_allclose(out, [0.0, -0.8, 0.1, 1.8], rtol=1e-6)
  gw, gtau = jax.grad(lambda w, t: jnp.sum(optkit.sparsify_straight_through(w, t) * 2.0),
                      argnums=(0, 1))(w, tau)
  np.testing.assert_array_equal(gw, [2.0, 2.0, 2.0, 2.0])     # identity (straight-through)
  # d/dtau of sign(w)(|w| - tau) on the kept entries is -sign(w): -2*(-1 + 1 + 1)
  assert float(gtau) == pytest.approx(-2.0 * (-1.0 + 1.0 + 1.0))
  # negative control: the plain soft-threshold has zero derivative on masked weights
  plain = jax.grad(lambda w: jnp.sum(jnp.sign(w) * jax.nn.relu(jnp.abs(w) - 0.2)))(w)
  assert float(plain[0]) == 0.0


def test_bad_arguments():
  with pytest.raises(ValueError, match="anneal_masked_gradients.*alpha_schedule"):
    optkit.anneal_masked_gradients(1.5, lambda p: 0.1)
  with pytest.raises(ValueError, match="anneal_masked_gradients.*threshold_fn"):
    optkit.anneal_masked_gradients(0.5)
  with pytest.raises(ValueError, match="gradient_annealing_schedule.*alpha0"):
    optkit.gradient_annealing_schedule(-0.1, 10)
  tx = optkit.anneal_masked_gradients(0.5, lambda p: 0.1)
  w = jnp.ones(3)
  with pytest.raises(ValueError, match="anneal_masked_gradients.*params"):
    tx.update(w, tx.init(w))
  tx = optkit.anneal_masked_gradients(0.5, lambda p: [0.1, 0.2])
  with pytest.raises(ValueError, match="anneal_masked_gradients.*threshold_fn"):
    tx.update(w, tx.init(w), w)
