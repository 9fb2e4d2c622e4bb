"""Tests of linear decay, schedule refinement and array schedules
(optkit.schedules.refinement). References: optax.linear_schedule /
join_schedules (exact equality up to float32 rounding, 1e-7 absolute), the
hand-computed closed form of the refined schedule for G = [1, 2, 1, 0.5]
(1e-6), and a float64 NumPy re-derivation of the tail-sum formula (1e-6).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit


def _vals(s, n):
  return np.asarray(jax.jit(s)(jnp.arange(n)))


def test_linear_decay_equals_optax_after_warmup():
  peak, T, W = 0.3, 50, 10
  ours = _vals(optkit.linear_decay_schedule(peak, T, warmup_steps=W), T + 3)
  ref = optax.linear_schedule(peak, 0.0, T - W)
  np.testing.assert_allclose(ours[W:], [float(ref(t - W)) for t in range(W, T + 3)],
                             rtol=0, atol=1e-7)
  np.testing.assert_allclose(ours[:W], peak * np.arange(W) / W, atol=1e-7)
  no_warm = _vals(optkit.warmup_linear_decay_schedule(peak, T), T + 1)
  np.testing.assert_allclose(no_warm, [float(optax.linear_schedule(peak, 0.0, T)(t))
                                       for t in range(T + 1)], atol=1e-7)


def test_refinement_of_constant_norms_is_linear_decay():
  T = 40
  ref = _vals(optkit.refined_schedule(np.full(T, 3.7), 0.5), T)
  lin = _vals(optkit.linear_decay_schedule(0.5, T - 1), T)
  np.testing.assert_allclose(ref, lin, atol=1e-7)
  assert ref[-1] == 0.0
  # l1 weighting: same conclusion for constant norms.
  np.testing.assert_allclose(_vals(optkit.refined_schedule(np.full(T, 2.0), 0.5, norm="l1"), T),
                             lin, atol=1e-7)


def test_closed_form_hand_computed():
  # w = G^-2 = [1, 1/4, 1, 4]; tail sums [5.25, 5, 4, 0]; eta ~ [5.25, 1.25, 4, 0].
  s = optkit.refined_schedule(np.array([1.0, 2.0, 1.0, 0.5]), peak_value=2.0, smoothing=0.0)
  np.testing.assert_allclose(_vals(s, 4), 2.0 * np.array([5.25, 1.25, 4.0, 0.0]) / 5.25,
                             atol=1e-6)


def test_matches_numpy_rederivation_and_shows_warmup():
  rng = np.random.default_rng(0)
  T = 200
  g = np.concatenate([np.linspace(6.0, 1.0, 60), np.ones(140)]) * np.exp(
      0.05 * rng.standard_normal(T))
  sigma = 0.1
  width = 2 * int(sigma * T / 2) + 1
  pad = np.pad(g, width // 2, mode="reflect")
  g_hat = np.array([np.median(pad[i:i + width]) for i in range(T)])
  w = g_hat ** -2
  eta = np.array([w[t] * w[t + 1:].sum() for t in range(T)])
  eta = 0.1 * eta / eta.max()
  ours = _vals(optkit.refined_schedule(g, 0.1, smoothing=sigma), T)
  np.testing.assert_allclose(ours, eta, rtol=1e-5, atol=1e-7)
  # Large early norms produce an automatic warm-up; linear decay has none.
  assert ours[0] < 0.2 * ours.max() and np.argmax(ours) > 30
  lin = _vals(optkit.linear_decay_schedule(0.1, T - 1), T)
  assert np.argmax(lin) == 0


def test_array_schedule_stretches_and_clamps():
  vals = np.array([0.0, 1.0, 0.5, 0.25])
  same = _vals(optkit.array_schedule(vals), 6)
  np.testing.assert_allclose(same, [0.0, 1.0, 0.5, 0.25, 0.25, 0.25], atol=1e-7)
  long = _vals(optkit.array_schedule(vals, total_steps=7), 7)
  np.testing.assert_allclose(long, [0.0, 0.5, 1.0, 0.75, 0.5, 0.375, 0.25], atol=1e-7)
  assert float(optkit.array_schedule(vals, 7)(2.5)) == pytest.approx(0.875)


def test_monitor_grad_norm_feeds_refinement():
  tx = optax.chain(optkit.monitor_grad_norm(), optax.sgd(0.1))
  params = jnp.array([3.0, -4.0])
  state = tx.init(params)
  loss = lambda p: 0.5 * jnp.sum(p ** 2)
  norms = []
  for _ in range(5):
    g = jax.grad(loss)(params)
    u, state = tx.update(g, state, params)
    params = optax.apply_updates(params, u)
    norms.append(float(state[0].grad_norm))
  np.testing.assert_allclose(norms, 5.0 * 0.9 ** np.arange(5), rtol=1e-5)
  l1 = optkit.monitor_grad_norm("l1")
  _, s = l1.update(jnp.array([3.0, -4.0]), l1.init(params))
  assert float(s.grad_norm) == 7.0
  assert _vals(optkit.refined_schedule(np.array(norms), 1.0), 5)[-1] == 0.0


def test_bad_arguments():
  with pytest.raises(ValueError, match="refined_schedule"):
    optkit.refined_schedule(np.array([1.0, 0.0, 1.0]), 1.0)
  with pytest.raises(ValueError, match="refined_schedule.*norm"):
    optkit.refined_schedule(np.ones(3), 1.0, norm="linf")
  with pytest.raises(ValueError, match="array_schedule"):
    optkit.array_schedule(np.array([1.0, -1.0]))
  with pytest.raises(ValueError, match="linear_decay_schedule"):
    optkit.linear_decay_schedule(1.0, 10, warmup_steps=10)
  with pytest.raises(ValueError, match="linear_decay_schedule"):
    optkit.linear_decay_schedule(-1.0, 10)
