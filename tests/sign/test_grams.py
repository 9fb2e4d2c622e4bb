"""What makes Grams Grams (arXiv:2412.17107); the contract suite covers the rest."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers

FIXTURE = helpers.fixture("sign_grams.npz")
_tree = helpers.random_tree
_grads = helpers.gradient_sequence
_run_open_loop = helpers.run_open_loop


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


# ---------------------------------------------------------------- first steps


def test_hand_computed_first_two_steps():
  lr, wd, b1, b2, eps = 0.1, 0.5, 0.9, 0.999, 1e-8
  opt = optkit.grams(lr, b1=b1, b2=b2, eps=eps, weight_decay=wd)
  p = jnp.array([1.0, -2.0, 3.0])
  g1 = jnp.array([4.0, -4.0, 0.0])
  u1, s1 = opt.update(g1, opt.init(p), p)
  # t = 1: m_hat = g, v_hat = g^2 -> |a| = |g|/(|g| + eps) = 1 (0 where g = 0).
  a1 = np.array([4.0, 4.0, 0.0]) / (np.array([4.0, 4.0, 0.0]) + eps)
  np.testing.assert_allclose(u1, -lr * (np.array([1.0, -1.0, 0.0]) * a1 + wd * np.asarray(p)),
                             rtol=1e-6)
  p1 = p + u1
  g2 = jnp.array([-1.0, -4.0, 2.0])
  u2, _ = opt.update(g2, s1, p1)
  m = b1 * (1 - b1) * np.asarray(g1) + (1 - b1) * np.asarray(g2)
  v = b2 * (1 - b2) * np.asarray(g1) ** 2 + (1 - b2) * np.asarray(g2) ** 2
  a = (m / (1 - b1 ** 2)) / (np.sqrt(v / (1 - b2 ** 2)) + eps)
  expected = -lr * (np.sign(np.asarray(g2)) * np.abs(a) + wd * np.asarray(p1))
  np.testing.assert_allclose(u2, expected, rtol=1e-5)
  # Coordinate 0: momentum > 0 but gradient < 0, so Grams moves x_0 UP (Adam: down).
  assert m[0] > 0 and u2[0] + lr * wd * p1[0] > 0


def test_zero_gradient_coordinate_does_not_move():
  opt = optkit.scale_by_grams()
  p = jnp.zeros(2)
  _, s = opt.update(jnp.array([1.0, 1.0]), opt.init(p))
  u, _ = opt.update(jnp.array([0.0, 1.0]), s)   # momentum of coordinate 0 is non-zero
  assert u[0] == 0.0 and u[1] > 0


# ---------------------------------------------------------------- defining properties


def _f64(tree):
  return jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), tree)


@pytest.mark.parametrize("kw", [{}, {"b1": 0.5, "b2": 0.9, "eps": 1e-3}])
def test_magnitude_is_adams_and_sign_is_the_gradients(kw):
  """Catalog tests (2) and (3): |u| = |optax Adam direction| and sign(u) =
  sign(g) (the update -lr u has sign -sign(g)); the moments are optax's.

  Run in float64, where both are exact to 1e-10: in float32 optax's bias
  correction 1 - float32(b2)**t is off by up to 1.3e-5 relative at t = 1
  (module docstring), which optkit avoids."""
  with jax.enable_x64(True):
    params = _f64(_tree(3))
    grads = [_f64(g) for g in _grads(10, seed=3)]
    ours = _run_open_loop(optkit.scale_by_grams(**kw), params, grads)
    adam = _run_open_loop(optax.scale_by_adam(**kw), params, grads)
    disagree = 0
    for g, (u, s), (ua, sa) in zip(grads, ours, adam):
      for gl, ul, ual in zip(_leaves(g), _leaves(u), _leaves(ua)):
        assert ul.dtype == np.float64
        np.testing.assert_allclose(np.abs(ul), np.abs(ual), rtol=1e-10, atol=1e-14)
        np.testing.assert_array_equal(np.sign(ul), np.sign(gl))
        disagree += int(np.sum(np.sign(ual) != np.sign(gl)))
      chex.assert_trees_all_close(s.inner_state.mu, sa.mu, rtol=1e-12)
      chex.assert_trees_all_close(s.inner_state.nu, sa.nu, rtol=1e-12)
  # Negative control: Adam's own direction disagrees with sign(g) somewhere,
  # so the sign property is not automatic.
  assert disagree > 0


def test_float32_bias_correction_is_accurate():
  """First step: |a_1| = |g| / (|g| + eps) exactly up to float32 rounding (optax's
  float32 Adam gives 0.9999934 for b2 = 0.999: the documented artefact)."""
  g = jnp.array([0.5, -2.0, 3.0])
  u, _ = optkit.scale_by_grams().update(g, optkit.scale_by_grams().init(g))
  np.testing.assert_allclose(np.abs(u), 1.0, rtol=3e-7)
  ua, _ = optax.scale_by_adam().update(g, optax.scale_by_adam().init(g))
  assert np.max(np.abs(np.abs(np.asarray(ua)) - 1.0)) > 5e-6   # the optax artefact


def test_grams_optimizer_equals_chain_of_direction_decay_lr():
  params = _tree(7)
  grads = _grads(6, seed=2)
  mine = _run_open_loop(optkit.grams(0.03, weight_decay=0.2), params, grads)
  ref = _run_open_loop(optax.chain(optkit.scale_by_grams(),
                                   optax.add_decayed_weights(0.2),
                                   optax.scale_by_learning_rate(0.03)), params, grads)
  for (u, _), (ur, _) in zip(mine, ref):
    chex.assert_trees_all_equal(u, ur)


def test_wrapper_on_momentum_sgd():
  """with_gradient_sign works on any direction: here EMA momentum."""
  params = _tree(1)
  grads = _grads(5, seed=4)
  inner = optax.ema(0.9, debias=False)
  ours = _run_open_loop(optkit.with_gradient_sign(inner), params, grads)
  ref = _run_open_loop(inner, params, grads)
  for g, (u, _), (ur, _) in zip(grads, ours, ref):
    for gl, ul, url in zip(_leaves(g), _leaves(u), _leaves(ur)):
      np.testing.assert_allclose(ul, np.sign(gl) * np.abs(url), rtol=1e-6)


# ---------------------------------------------------------------- reference fixture


@pytest.mark.parametrize("case", ["quadratic", "logreg"])
def test_reproduces_pytorch_optimizer_grams(case):
  """20 steps of pytorch_optimizer 4.1.0 Grams (eps = 1e-6, float32): every
  parameter at every step to rtol 1e-6, atol 1e-6."""
  data = np.load(FIXTURE)
  hp = {k: float(data[f"{case}__hparam__{k}"]) for k in ("lr", "b1", "b2", "eps", "weight_decay")}
  traj = helpers.fixture_trajectory(data, f"{case}__traj__")
  loss = helpers.fixture_loss(data, str(data[f"{case}__problem"]))
  tx = optkit.grams(hp["lr"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"],
                    weight_decay=hp["weight_decay"])
  helpers.replay_trajectory(tx, loss, traj, rtol=1e-6, atol=1e-6, label=case)
  # The trajectory actually moved (the comparison is not vacuous).
  assert max(np.max(np.abs(v[-1] - v[0])) for v in traj.values()) > 0.1


# ---------------------------------------------------------------- dtypes, validation


def test_bf16_params_keep_bf16_updates_and_f32_moments():
  p = {"w": jnp.ones((3,), jnp.bfloat16)}
  opt = optkit.grams(1e-2)
  state = opt.init(p)
  for _ in range(2):
    u, state = opt.update({"w": jnp.array([1.0, -2.0, 0.5], jnp.bfloat16)}, state, p)
    assert u["w"].dtype == jnp.bfloat16
  assert state[0].inner_state.mu["w"].dtype == jnp.float32
  assert state[0].inner_state.nu["w"].dtype == jnp.float32


@pytest.mark.parametrize("kwargs", [
    {"learning_rate": -1.0},
    {"learning_rate": 1e-3, "b1": 1.0},
    {"learning_rate": 1e-3, "b2": -0.1},
    {"learning_rate": 1e-3, "eps": -1e-8},
    {"learning_rate": 1e-3, "weight_decay": -1e-3},
])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="grams"):
    optkit.grams(**kwargs)


def test_wrapper_rejects_non_transformation():
  with pytest.raises(TypeError, match="with_gradient_sign"):
    optkit.with_gradient_sign(lambda g: g)


def test_mismatched_tree_raises():
  opt = optkit.scale_by_grams()
  state = opt.init({"a": jnp.zeros(2), "b": jnp.zeros(3)})
  with pytest.raises(ValueError, match="grams"):
    opt.update({"a": jnp.zeros(2)}, state)
