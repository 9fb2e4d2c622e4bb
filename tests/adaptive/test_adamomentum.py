"""What makes AdaMomentum itself (arXiv:2106.11514); the contract suite covers
the rest. No public reference implementation was found: the rule is checked
against a float64 NumPy re-derivation of Algorithm 2 (rtol 2e-5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optkit.adaptive import adamomentum, scale_by_adam, scale_by_adamomentum
from tests import helpers


def _numpy_adamomentum(grads, b1, b2, eps, eps_denominator=0.0):
  m = v = 0.0
  out = []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * m * m + eps
    out.append((m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps_denominator))
  return out, v


def _run_direction(tx, grads):
  state = tx.init(jnp.zeros_like(jnp.asarray(grads[0], jnp.float32)))
  update = jax.jit(tx.update)
  outs = []
  for g in grads:
    u, state = update(jnp.asarray(g, jnp.float32), state)
    outs.append(np.asarray(u))
  return outs, state


def test_hand_computed_first_two_steps():
  b1, b2, eps = 0.9, 0.99, 1e-3
  g1, g2 = np.array([2.0, -1.0, 0.0]), np.array([0.5, -4.0, 1.0])
  (u1, u2), state = _run_direction(scale_by_adamomentum(b1, b2, eps), [g1, g2])
  m1 = 0.1 * g1
  v1 = 0.01 * m1 ** 2 + eps
  np.testing.assert_allclose(u1, m1 / 0.1 / np.sqrt(v1 / 0.01), rtol=1e-5)
  m2 = 0.9 * m1 + 0.1 * g2
  v2 = 0.99 * v1 + 0.01 * m2 ** 2 + eps
  np.testing.assert_allclose(state.nu, v2, rtol=1e-6)
  np.testing.assert_allclose(u2, (m2 / (1 - 0.81)) / np.sqrt(v2 / (1 - 0.99 ** 2)), rtol=1e-5)
  # A zero gradient coordinate at step 1 gives a zero (finite) update: v1 = eps > 0.
  assert u1[2] == 0.0


@pytest.mark.parametrize("eps_denominator", [0.0, 1e-3])
def test_matches_float64_numpy_rederivation(eps_denominator):
  rng = np.random.default_rng(5)
  grads = [rng.standard_normal(7) * (1 + 3 * (t % 4 == 0)) for t in range(30)]
  expected, v_last = _numpy_adamomentum(grads, 0.8, 0.95, 1e-4, eps_denominator)
  outs, state = _run_direction(
      scale_by_adamomentum(0.8, 0.95, 1e-4, eps_denominator), grads)
  for u, e in zip(outs, expected):
    np.testing.assert_allclose(u, e, rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(state.nu, v_last, rtol=2e-5)


def test_b1_zero_is_adam_with_eps_inside_the_accumulator():
  """Catalog test 1: with b1 = 0, m_t = g_t, so AdaMomentum is Adam with eps moved
  into v (v_t = b2 v + (1 - b2) g^2 + eps). With eps = 0 it is exactly Adam with
  b1 = 0 and eps = 0."""
  grads = helpers.gradient_sequence(15, seed=2, shapes={"x": (6,)})
  grads = [g["x"] for g in grads]
  mine, _ = _run_direction(scale_by_adamomentum(0.0, 0.9, 0.0), grads)
  adam, _ = _run_direction(scale_by_adam(0.0, 0.9, 0.0), grads)
  for a, b in zip(mine, adam):
    np.testing.assert_allclose(a, b, rtol=2e-5)
  # With eps > 0 the eps sits in the accumulator: Adam's form (eps outside) differs,
  # the NumPy "Adam with eps inside v" matches.
  eps = 1e-2
  mine, _ = _run_direction(scale_by_adamomentum(0.0, 0.9, eps), grads)
  v, expected = 0.0, []
  for t, g in enumerate(np.asarray(grads, np.float64), start=1):
    v = 0.9 * v + 0.1 * g * g + eps
    expected.append(g / np.sqrt(v / (1 - 0.9 ** t)))
  for a, e in zip(mine, expected):
    np.testing.assert_allclose(a, e, rtol=2e-5)
  adam_eps_outside, _ = _run_direction(scale_by_adam(0.0, 0.9, eps), grads)
  assert not np.allclose(adam_eps_outside[-1], mine[-1], rtol=1e-3)


def test_second_moment_is_of_the_momentum_not_the_gradient():
  """Catalog test 2 (the defining property): for alternating +-g the momentum
  stays near (1 - b1)/(1 + b1) g, so v stays ~ 0.003 g^2, far below Adam's
  v ~ g^2 (negative control: Adam's second moment of the same sequence)."""
  gmag = 3.0
  grads = [np.full(4, gmag * (1 if t % 2 == 0 else -1)) for t in range(200)]
  _, state = _run_direction(scale_by_adamomentum(0.9, 0.99, 0.0), grads)
  v_hat = np.asarray(state.nu) / (1 - 0.99 ** 200)
  a = (1 - 0.9) / (1 + 0.9)
  np.testing.assert_allclose(v_hat, (a * gmag) ** 2, rtol=0.1)
  _, adam_state = _run_direction(scale_by_adam(0.9, 0.99, 0.0), grads)
  adam_v_hat = np.asarray(adam_state.nu) / (1 - 0.99 ** 200)
  np.testing.assert_allclose(adam_v_hat, gmag ** 2, rtol=1e-3)
  assert np.all(v_hat < 0.01 * adam_v_hat)


def test_adamomentum_alias_with_decay():
  lr, wd = 0.1, 0.5
  p = jnp.array([1.0, -2.0, 3.0])
  g = jnp.array([0.4, 0.1, -2.0])
  opt = adamomentum(lr, weight_decay=wd, eps=0.0)
  u, _ = opt.update(g, opt.init(p), p)
  np.testing.assert_allclose(u, -lr * (10.0 * np.sign(g) + wd * p), rtol=1e-5)


def test_bad_hyperparameters_raise():
  with pytest.raises(ValueError, match="adamomentum"):
    scale_by_adamomentum(b1=1.0)
  with pytest.raises(ValueError, match="adamomentum"):
    scale_by_adamomentum(eps=-1.0)
  with pytest.raises(ValueError, match="adamomentum"):
    adamomentum(-0.1)
  tx = scale_by_adamomentum()
  state = tx.init({"a": jnp.zeros(2)})
  with pytest.raises(ValueError, match="adamomentum"):
    tx.update({"b": jnp.zeros(2)}, state)
