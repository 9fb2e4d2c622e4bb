"""What makes Lion Lion (arXiv:2302.06675); the contract suite covers the rest."""

from __future__ import annotations

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers

FIXTURE = helpers.fixture("lion_pytorch_optimizer.npz")
TREE = helpers.SMALL_TREE
_tree = helpers.random_tree
_grads = helpers.gradient_sequence
_run_open_loop = helpers.run_open_loop


# ---------------------------------------------------------------- first step


def test_hand_computed_first_two_steps():
  lr, wd = 0.1, 0.5
  opt = optkit.lion(lr, weight_decay=wd)
  p = jnp.array([1.0, 1.0, 1.0])
  g1 = jnp.array([0.3, -2.0, 0.0])
  u1, s1 = opt.update(g1, opt.init(p), p)
  # c = 0.1 g1 -> sign [1, -1, 0]; u = -lr (sign + wd p)
  np.testing.assert_allclose(u1, [-0.15, 0.05, -0.05], rtol=1e-6)
  np.testing.assert_allclose(s1[0].mu, 0.01 * np.asarray(g1), rtol=1e-6)  # m_1 = (1-b2) g1
  p1 = p + u1
  g2 = jnp.array([-0.3, 1.0, 1.0])
  u2, _ = opt.update(g2, s1, p1)
  # c = 0.9 * 0.01 g1 + 0.1 g2 = [-0.0273, 0.082, 0.1]: sign [-1, 1, 1]
  np.testing.assert_allclose(u2, -lr * (np.array([-1.0, 1.0, 1.0]) + wd * np.asarray(p1)),
                             rtol=1e-6)


def test_sign_of_zero_is_zero():
  """Zero gradient with zero momentum: no move (jnp.sign(0) = 0)."""
  opt = optkit.lion(0.1, weight_decay=0.0)
  p = jnp.array([1.0, 2.0])
  u, _ = opt.update(jnp.array([0.0, 3.0]), opt.init(p), p)
  assert u[0] == 0.0
  np.testing.assert_allclose(u[1], -0.1, rtol=1e-7)


# ---------------------------------------------------------------- optax


@pytest.mark.parametrize("kwargs", [
    {},
    {"b1": 0.95, "b2": 0.98, "weight_decay": 0.1},
    {"weight_decay": 0.2, "mask": {"a": True, "b": False, "c": True}},
    {"mu_dtype": jnp.bfloat16},
], ids=["defaults", "betas_decay", "mask", "bf16_mu"])
def test_equals_optax_lion_exactly(kwargs):
  params = _tree(42)
  grads = _grads(12)
  mine = _run_open_loop(optkit.lion(3e-2, from_new_momentum=False, **kwargs), params, grads)
  ref = _run_open_loop(optax.lion(3e-2, **kwargs), params, grads)
  for (u, s), (ur, sr) in zip(mine, ref):
    chex.assert_trees_all_equal(u, ur)
    chex.assert_trees_all_equal(s, sr)


@pytest.mark.parametrize("b1,b2", [(0.9, 0.99), (0.95, 0.98), (0.5, 0.5)])
def test_new_momentum_form_equals_paper_form_up_to_rounding(b1, b2):
  """The default reads c_t from m_t; signs agree with optax except at rounding ties."""
  key = jax.random.key(0)
  k1, k2 = jax.random.split(key)
  g = jax.random.normal(k1, (4000,))
  m = jax.random.normal(k2, (4000,))
  state = optax.ScaleByLionState(count=jnp.array(5, jnp.int32), mu=m)
  u_new, s_new = optkit.scale_by_lion(b1, b2).update(g, state)
  u_ref, s_ref = optax.scale_by_lion(b1, b2).update(g, state)
  chex.assert_trees_all_equal(s_new, s_ref)          # same momentum, bit for bit
  c_ref = np.asarray(b1 * m + (1 - b1) * g, np.float64)
  scale = np.abs(b1 * np.asarray(m)) + np.abs((1 - b1) * np.asarray(g))
  differ = np.asarray(u_new) != np.asarray(u_ref)
  assert np.all(np.abs(c_ref[differ]) <= 1e-6 * scale[differ])
  # Negative control: the paper's form with another b1 is not a rounding difference.
  u_other, _ = optax.scale_by_lion(b1 - 0.3 if b1 > 0.4 else b1 + 0.3, b2).update(g, state)
  assert np.mean(np.asarray(u_other) != np.asarray(u_ref)) > 0.01


def _compiled_step_text(tx, params):
  state = tx.init(params)

  def step(p, s, g):
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s

  return jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params).compile().as_text()


def test_new_momentum_form_needs_no_momentum_copy_under_donation():
  """Why the default form exists: XLA updates m in place, with no copy of m_{t-1}."""
  params = {"w": jnp.ones((64, 32))}
  fast = _compiled_step_text(optkit.lion(1e-3), params)
  paper = _compiled_step_text(optkit.lion(1e-3, from_new_momentum=False), params)
  assert " copy(" not in fast
  assert " copy(" in paper  # negative control: the paper's order forces a copy


def test_array_hyperparameters_use_the_paper_form_exactly():
  """Under inject_hyperparams (array betas) the numbers are optax's bit for bit."""
  params = _tree(3)
  grads = _grads(8, seed=5)
  mine = optax.inject_hyperparams(optkit.lion, static_args=("mask", "mu_dtype",
                                                            "from_new_momentum"))(3e-2)
  ref = optax.inject_hyperparams(optax.lion)(3e-2)
  for (u, _), (ur, _) in zip(_run_open_loop(mine, params, grads),
                             _run_open_loop(ref, params, grads)):
    chex.assert_trees_all_equal(u, ur)


def test_from_new_momentum_bad_values():
  with pytest.raises(ValueError, match="lion.*from_new_momentum"):
    optkit.lion(1e-3, b1=0.99, b2=0.9, from_new_momentum=True)
  with pytest.raises(TypeError, match="lion.*from_new_momentum"):
    optkit.scale_by_lion(from_new_momentum="yes")
  # b2 < b1 with the default silently uses the (exact) paper form.
  g = jnp.array([1.0, -2.0])
  tx = optkit.scale_by_lion(0.99, 0.9)
  assert np.array_equal(tx.update(g, tx.init(g))[0], [1.0, -1.0])


def test_scale_by_lion_equals_optax_direction():
  params = _tree(1)
  grads = _grads(6, seed=3)
  mine = _run_open_loop(optkit.scale_by_lion(0.8, 0.95, from_new_momentum=False), params,
                        grads)
  ref = _run_open_loop(optax.scale_by_lion(0.8, 0.95), params, grads)
  for (u, s), (ur, sr) in zip(mine, ref):
    chex.assert_trees_all_equal(u, ur)
    chex.assert_trees_all_equal(s, sr)


# ---------------------------------------------------------------- defining properties


def test_every_coordinate_moves_by_exactly_lr():
  lr = 0.037
  params = _tree(2)
  for u, _ in _run_open_loop(optkit.lion(lr, weight_decay=0.0), params, _grads(8)):
    for leaf in jax.tree.leaves(u):
      np.testing.assert_array_equal(np.abs(leaf), np.float32(lr))


def test_with_decay_update_is_lr_sign_plus_decay():
  lr, wd = 0.05, 0.3
  opt = optkit.lion(lr, weight_decay=wd)
  params = _tree(2)
  state = opt.init(params)
  for g in _grads(8):
    u, state = opt.update(g, state, params)
    for uu, pp in zip(jax.tree.leaves(u), jax.tree.leaves(params)):
      np.testing.assert_allclose(np.abs(np.asarray(uu) + lr * wd * np.asarray(pp)), lr,
                                 rtol=1e-5)
    params = optax.apply_updates(params, u)


def test_b1_b2_zero_is_sign_sgd():
  params = _tree(5)
  grads = _grads(6, seed=9)
  mine = _run_open_loop(optkit.lion(0.01, b1=0.0, b2=0.0, weight_decay=0.0), params, grads)
  ref = _run_open_loop(optax.sign_sgd(0.01), params, grads)
  for (u, _), (ur, _) in zip(mine, ref):
    chex.assert_trees_all_equal(u, ur)
  # Negative control: the default betas do use momentum, so they differ.
  lion_default = _run_open_loop(optkit.lion(0.01, weight_decay=0.0), params, grads)
  assert any(not np.array_equal(a, b)
             for (u, _), (ur, _) in zip(lion_default, ref)
             for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(ur)))


def _box_run(tx, x0, steps=300, seed=0):
  """Runs tx on f(x) = 0.5 ||x - 10||^2 with noisy gradients; returns all iterates."""
  noise = 5.0 * np.random.default_rng(seed).standard_normal((steps,) + x0.shape).astype(np.float32)

  def body(carry, n):
    x, s = carry
    g = (x - 10.0) + n
    u, s = tx.update(g, s, x)
    x = optax.apply_updates(x, u)
    return (x, s), x

  _, xs = jax.jit(lambda x: jax.lax.scan(body, (x, tx.init(x)), noise))(x0)
  return np.concatenate([np.asarray(x0)[None], np.asarray(xs)])


def test_box_is_invariant_and_entered_geometrically():
  """Catalog test 4: with eta*lambda <= 1, ||x||_inf <= 1/lambda is invariant and
  |x_{t+1}| <= (1 - eta lambda)|x_t| + eta."""
  lr, wd = 0.1, 0.5
  radius, rate = 1.0 / wd, 1.0 - lr * wd
  tx = optkit.lion(lr, weight_decay=wd)
  inside = jnp.linspace(-2.0, 2.0, 8)
  xs = _box_run(tx, inside)
  assert np.max(np.abs(xs)) <= radius + 1e-5
  outside = jnp.array([30.0, -30.0, 25.0, -8.0, 3.0, 0.0, 12.0, -50.0])
  xs = _box_run(tx, outside)
  np.testing.assert_array_less(np.abs(xs[1:]), rate * np.abs(xs[:-1]) + lr + 1e-5)
  excess = np.max(np.abs(xs), axis=1) - radius
  t = np.arange(len(xs))
  assert np.all(excess <= rate ** t * excess[0] + 1e-5)
  assert excess[-1] < 1e-4
  # The constrained optimum of 0.5||x - 10||^2 over the box is 2*1: reached.
  assert np.min(xs[-1]) > 1.5


def test_box_negative_controls():
  """Without decay (Lion) or with plain momentum SGD, the iterates leave the box."""
  inside = jnp.linspace(-2.0, 2.0, 8)
  for tx in (optkit.lion(0.1, weight_decay=0.0), optax.sgd(0.1, momentum=0.9)):
    xs = _box_run(tx, inside)
    assert np.max(np.abs(xs[-1])) > 5.0


# ---------------------------------------------------------------- reference fixture


@pytest.mark.parametrize("prefix", ["quadratic", "logreg"])
def test_reproduces_pytorch_optimizer_lion(prefix):
  """30 steps of pytorch_optimizer 4.1.0 Lion (float32), every step, to rtol 1e-6
  and atol 1e-6 (params are O(1); torch multiplies p by (1 - lr wd) where optax
  adds -lr wd p, which only changes rounding)."""
  data = np.load(FIXTURE)
  hp = {k: float(data[f"{prefix}__hparam__{k}"]) for k in ("lr", "b1", "b2", "weight_decay")}
  traj = helpers.fixture_trajectory(data, f"{prefix}__traj__")
  loss = helpers.fixture_loss(data, prefix)
  tx = optkit.lion(hp["lr"], b1=hp["b1"], b2=hp["b2"], weight_decay=hp["weight_decay"])
  helpers.replay_trajectory(tx, loss, traj, rtol=1e-6, atol=1e-6, label=prefix)


# ---------------------------------------------------------------- dtypes, validation


def test_bf16_params_with_f32_momentum_keep_dtypes():
  """optkit casts the update back to the gradient's dtype (optax alone returns f32)."""
  p = {"w": jnp.ones((3,), jnp.bfloat16)}
  opt = optkit.lion(1e-2, mu_dtype=jnp.float32)
  state = opt.init(p)
  for _ in range(3):
    u, state = opt.update({"w": jnp.array([1.0, -2.0, 0.5], jnp.bfloat16)}, state, p)
    assert u["w"].dtype == jnp.bfloat16
    assert state[0].mu["w"].dtype == jnp.float32
  u_optax, _ = optax.lion(1e-2, mu_dtype=jnp.float32).update(
      {"w": jnp.array([1.0, -2.0, 0.5], jnp.bfloat16)},
      optax.lion(1e-2, mu_dtype=jnp.float32).init(p), p)
  assert u_optax["w"].dtype == jnp.float32  # the optax behaviour optkit fixes


@pytest.mark.parametrize("kwargs", [
    {"learning_rate": -1.0},
    {"learning_rate": 1e-3, "b1": 1.5},
    {"learning_rate": 1e-3, "b1": 1.0},
    {"learning_rate": 1e-3, "b2": -0.1},
    {"learning_rate": 1e-3, "weight_decay": -1e-3},
])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="lion"):
    optkit.lion(**kwargs)


def test_bad_direction_hyperparameters_raise():
  with pytest.raises(ValueError, match="lion: `b2`"):
    optkit.scale_by_lion(b2=1.0)


def test_mismatched_tree_raises():
  opt = optkit.scale_by_lion()
  state = opt.init({"a": jnp.zeros(2), "b": jnp.zeros(3)})
  with pytest.raises(ValueError, match="lion"):
    opt.update({"a": jnp.zeros(2)}, state)
