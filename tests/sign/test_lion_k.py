"""What makes Lion-K Lion-K (arXiv:2310.05898); the contract suite covers the rest."""

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


def _assert_same_run(mine, ref, exact=True, **tol):
  for (u, s), (ur, sr) in zip(mine, ref):
    if exact:
      chex.assert_trees_all_equal(u, ur)
    else:
      chex.assert_trees_all_close(u, ur, **tol)
    chex.assert_trees_all_equal(jax.tree.leaves(s), jax.tree.leaves(sr))


# ---------------------------------------------------------------- reductions


@pytest.mark.parametrize("kwargs", [
    {},
    {"b1": 0.95, "b2": 0.98, "weight_decay": 0.2, "mask": {"a": True, "b": False, "c": True}},
], ids=["defaults", "betas_decay_mask"])
def test_sign_equals_optax_lion_exactly(kwargs):
  params = _tree(42)
  grads = _grads(12)
  mine = _run_open_loop(optkit.lion_k(3e-2, grad_k="sign", **kwargs), params, grads)
  _assert_same_run(mine, _run_open_loop(optax.lion(3e-2, **kwargs), params, grads))


def test_huber_delta_one_equals_optax_refined_lion():
  params = _tree(4)
  grads = _grads(12, seed=1)
  grads = jax.tree.map(lambda g: 15.0 * g, grads)  # both clipped and linear entries
  lr, wd = 3e-2, 0.1
  ref = optax.chain(optax.scale_by_lion(mode="refined"), optax.add_decayed_weights(wd),
                    optax.scale_by_learning_rate(lr))
  mine = optkit.lion_k(lr, weight_decay=wd, grad_k="huber", delta=1.0,
                       from_new_momentum=False)
  ref_run = _run_open_loop(ref, params, grads)
  _assert_same_run(_run_open_loop(mine, params, grads), ref_run)
  # The default reads c_t from the updated momentum: equal up to float rounding.
  fast = _run_open_loop(optkit.lion_k(lr, weight_decay=wd, grad_k="huber", delta=1.0),
                        params, grads)
  for (u, _), (ur, _) in zip(fast, ref_run):
    chex.assert_trees_all_close(u, ur, rtol=1e-6, atol=1e-8)
  # Negative control: another delta is another algorithm.
  other = optkit.lion_k(lr, weight_decay=wd, grad_k="huber", delta=0.5)
  assert not np.array_equal(_run_open_loop(other, params, grads[:1])[0][0]["a"],
                            ref_run[0][0]["a"])


def test_identity_equals_sgd_with_ema_momentum_and_decoupled_decay():
  params = _tree(7)
  grads = _grads(10, seed=2)
  lr, wd, beta = 0.05, 0.1, 0.9
  ref = optax.chain(optax.ema(beta, debias=False), optax.add_decayed_weights(wd),
                    optax.scale_by_learning_rate(lr))
  mine = optkit.lion_k(lr, b1=beta, b2=beta, weight_decay=wd, grad_k="identity")
  _assert_same_run(_run_open_loop(mine, params, grads), _run_open_loop(ref, params, grads))


def test_identity_general_betas_match_float64_port():
  """Nesterov-like mix b1 != b2: compare with a NumPy float64 re-derivation (rtol 1e-5)."""
  lr, wd, b1, b2 = 0.05, 0.1, 0.8, 0.95
  x0 = np.linspace(-1.0, 2.0, 7)
  grads = list(np.random.default_rng(0).standard_normal((10, 7)))
  x, m = x0.astype(np.float64), np.zeros(7)
  ref = []
  for g in grads:
    u = b1 * m + (1 - b1) * g
    m = b2 * m + (1 - b2) * g
    x = x - lr * (u + wd * x)
    ref.append(x.copy())
  tx = optkit.lion_k(lr, b1=b1, b2=b2, weight_decay=wd, grad_k="identity")
  p = jnp.asarray(x0, jnp.float32)
  s = tx.init(p)
  for g, r in zip(grads, ref):
    u, s = tx.update(jnp.asarray(g, jnp.float32), s, p)
    p = optax.apply_updates(p, u)
    np.testing.assert_allclose(p, r, rtol=1e-5, atol=1e-6)


def test_lp_reductions_and_hand_value():
  params = _tree(3)
  grads = _grads(6, seed=4)
  run = lambda **kw: _run_open_loop(optkit.lion_k(0.1, weight_decay=0.0, **kw), params, grads)
  _assert_same_run(run(grad_k="lp", p=1.0), run(grad_k="sign"))
  _assert_same_run(run(grad_k="lp", p=2.0), run(grad_k="identity"), exact=False,
                   rtol=1e-6, atol=1e-7)
  # p = 3: u = sign(c) c^2, with c = 0.1 g on the first step.
  g = jnp.array([3.0, -2.0, 0.0])
  tx = optkit.scale_by_lion_k(grad_k="lp", p=3.0)
  u, _ = jax.jit(tx.update)(g, tx.init(g))
  np.testing.assert_allclose(u, [0.09, -0.04, 0.0], rtol=1e-5)


def test_l2_per_leaf_and_global_norms():
  g = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([[0.0, 12.0]])}
  per_leaf = optkit.scale_by_lion_k(grad_k="l2")
  u, _ = jax.jit(per_leaf.update)(g, per_leaf.init(g))
  np.testing.assert_allclose(u["a"], [0.6, 0.8], rtol=1e-6)
  np.testing.assert_allclose(u["b"], [[0.0, 1.0]], rtol=1e-6)
  glob = optkit.scale_by_lion_k(grad_k="l2", per_leaf=False)
  u, _ = jax.jit(glob.update)(g, glob.init(g))
  np.testing.assert_allclose(u["a"], [3 / 13, 4 / 13], rtol=1e-6)
  np.testing.assert_allclose(u["b"], [[0.0, 12 / 13]], rtol=1e-6)


@pytest.mark.parametrize("per_leaf", [True, False])
def test_l2_zero_norm_guard_and_overflow(per_leaf):
  tx = optkit.scale_by_lion_k(grad_k="l2", per_leaf=per_leaf)
  update = jax.jit(tx.update)
  zeros = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
  u, _ = update(zeros, tx.init(zeros))
  chex.assert_trees_all_equal(u, zeros)  # the minimum-norm subgradient at c = 0
  mixed = {"a": jnp.zeros(3), "b": jnp.array([[1e30, -1e30], [0.0, 0.0]])}
  u, _ = update(mixed, tx.init(mixed))
  chex.assert_tree_all_finite(u)
  np.testing.assert_allclose(u["b"], [[2 ** -0.5, -(2 ** -0.5)], [0.0, 0.0]], rtol=1e-6)
  np.testing.assert_array_equal(u["a"], np.zeros(3))


def test_callable_grad_k():
  params = _tree(8)
  grads = _grads(5, seed=5)
  run = lambda **kw: _run_open_loop(optkit.lion_k(0.1, **kw), params, grads)
  _assert_same_run(run(grad_k=jnp.sign), run(grad_k="sign"))

  def global_l2(tree):
    n = optax.tree.norm(tree)
    return jax.tree.map(lambda c: c / n, tree)

  _assert_same_run(run(grad_k=global_l2, per_leaf=False),
                   run(grad_k="l2", per_leaf=False), exact=False, rtol=1e-6, atol=1e-7)
  bad = optkit.scale_by_lion_k(grad_k=lambda t: [0.0], per_leaf=False)
  with pytest.raises(ValueError, match="lion_k"):
    bad.update(grads[0], bad.init(params))


# ---------------------------------------------------------------- constraint property

_TARGET = 10.0


def _quadratic_run(tx, x0, steps=400):
  """f(x) = 0.5 ||x - 10*1||^2 over a tree; returns all iterates (stacked leaves)."""
  def body(carry, _):
    x, s = carry
    g = jax.tree.map(lambda v: v - _TARGET, x)
    u, s = tx.update(g, s, x)
    x = optax.apply_updates(x, u)
    return (x, s), x

  _, xs = jax.jit(lambda x: jax.lax.scan(body, (x, tx.init(x)), None, length=steps))(x0)
  return xs


def _ball_start(value):
  return {"a": jnp.full((4,), value), "b": jnp.full((2, 3), value)}


def _constraint_over_time(xs, **kw):
  return np.asarray(jax.jit(jax.vmap(lambda x: optkit.lion_k_constraint(x, 0.5, **kw)))(xs))


@pytest.mark.parametrize("start", [0.0, -6.0], ids=["inside", "outside"])
def test_sign_preset_enters_and_stays_in_box(start):
  """lambda = 0.5, minimum at 10*1: Lion-K(sign) ends in ||x||_inf <= 2 and stays."""
  xs = _quadratic_run(optkit.lion_k(0.05, weight_decay=0.5, grad_k="sign"), _ball_start(start))
  level = _constraint_over_time(xs)
  entered = int(np.argmax(level <= 1.0 + 1e-6))
  assert level[entered] <= 1.0 + 1e-6
  assert np.all(level[entered:] <= 1.0 + 1e-6)
  for leaf in jax.tree.leaves(xs):  # converges to the constrained optimum 2*1
    np.testing.assert_allclose(leaf[-1], 2.0, atol=1e-3)


def test_l2_global_preset_enters_and_stays_in_ball():
  tx = optkit.lion_k(0.05, weight_decay=0.5, grad_k="l2", per_leaf=False)
  xs = _quadratic_run(tx, _ball_start(-6.0))
  level = _constraint_over_time(xs, grad_k="l2", per_leaf=False)
  entered = int(np.argmax(level <= 1.0 + 1e-6))
  assert level[entered] <= 1.0 + 1e-6 and entered < 300
  assert np.all(level[entered:] <= 1.0 + 1e-6)
  n = sum(x.size for x in jax.tree.leaves(_ball_start(0.0)))
  for leaf in jax.tree.leaves(xs):  # projection of 10*1 on the ball of radius 2
    np.testing.assert_allclose(leaf[-1], 2.0 / np.sqrt(n), atol=1e-3)


def test_l2_per_leaf_is_a_product_of_balls():
  """Per leaf, each leaf has norm <= 2 but the whole tree does not: not one ball."""
  tx = optkit.lion_k(0.05, weight_decay=0.5, grad_k="l2", per_leaf=True)
  xs = _quadratic_run(tx, _ball_start(0.0))
  final = jax.tree.map(lambda v: v[-1], xs)
  for leaf in jax.tree.leaves(final):
    assert np.linalg.norm(leaf) <= 2.0 + 1e-5
    np.testing.assert_allclose(np.linalg.norm(leaf), 2.0, rtol=1e-3)
  assert float(optkit.lion_k_constraint(final, 0.5, grad_k="l2", per_leaf=False)) > 1.3


def test_constraint_negative_controls():
  """Momentum SGD without decay, and Lion-K without decay, leave the box."""
  start = _ball_start(0.0)
  for tx in (optax.sgd(0.05, momentum=0.9),
             optkit.lion_k(0.05, weight_decay=0.0, grad_k="sign")):
    xs = _quadratic_run(tx, start)
    assert _constraint_over_time(xs)[-1] > 3.0  # ||x||_inf > 6 (box radius 2)


@pytest.mark.parametrize("kwargs,expected", [
    ({"grad_k": "identity"}, _TARGET / 1.5),              # min f + lambda/2 ||x||^2
    ({"grad_k": "huber", "delta": 4.0}, _TARGET / 1.5),   # box 8 inactive
    ({"grad_k": "huber", "delta": 2.0}, 4.0),             # box 4 active
    ({"grad_k": "lp", "p": 3.0}, 8.0),                    # (10 - x)^2 = lambda x
], ids=["identity", "huber_inactive", "huber_active", "lp3"])
def test_fixed_points_solve_f_plus_scaled_conjugate(kwargs, expected):
  """The fixed point minimizes f(x) + K*(lambda x)/lambda (the K* scaling decision)."""
  tx = optkit.lion_k(0.05, weight_decay=0.5, **kwargs)
  xs = _quadratic_run(tx, _ball_start(0.0), steps=1500)
  for leaf in jax.tree.leaves(xs):
    np.testing.assert_allclose(leaf[-1], expected, atol=1e-3)


# ---------------------------------------------------------------- inject_hyperparams


@pytest.mark.parametrize("kwargs", [
    {"grad_k": "huber", "delta": 0.5},
    {"grad_k": "lp", "p": 3.0},
])
def test_numeric_preset_arguments_can_be_injected(kwargs):
  params = _tree(9)
  grads = _grads(4, seed=6)
  plain = optkit.lion_k(0.05, weight_decay=0.1, **kwargs)
  injected = optax.inject_hyperparams(optkit.lion_k, static_args=("grad_k", "per_leaf"))(
      learning_rate=0.05, weight_decay=0.1, **kwargs)
  state = injected.init(params)
  for name in ("delta", "p"):
    assert name in state.hyperparams
  step, step_plain = jax.jit(injected.update), jax.jit(plain.update)
  s_plain = plain.init(params)
  for g in grads:
    u, state = step(g, state, params)
    u_plain, s_plain = step_plain(g, s_plain, params)
    chex.assert_trees_all_close(u, u_plain, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- reference fixture


@pytest.mark.parametrize("prefix", ["quadratic", "logreg"])
def test_sign_preset_reproduces_pytorch_optimizer_lion(prefix):
  """Same fixture and tolerance as tests/sign/test_lion.py (rtol 1e-6, atol 1e-6)."""
  data = np.load(FIXTURE)
  hp = {k: float(data[f"{prefix}__hparam__{k}"]) for k in ("lr", "b1", "b2", "weight_decay")}
  traj = helpers.fixture_trajectory(data, f"{prefix}__traj__")
  loss = helpers.fixture_loss(data, prefix)
  tx = optkit.lion_k(hp["lr"], b1=hp["b1"], b2=hp["b2"], weight_decay=hp["weight_decay"],
                     grad_k="sign")
  helpers.replay_trajectory(tx, loss, traj, rtol=1e-6, atol=1e-6, label=prefix)


# ---------------------------------------------------------------- dtypes, validation


def test_bf16_l2_update_is_bf16_and_unit_norm():
  g = {"w": jnp.array([3.0, -4.0, 0.0], jnp.bfloat16)}
  tx = optkit.scale_by_lion_k(grad_k="l2", mu_dtype=jnp.float32)
  u, s = jax.jit(tx.update)(g, tx.init(g))
  assert u["w"].dtype == jnp.bfloat16 and s.mu["w"].dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(u["w"], np.float32), [0.6, -0.8, 0.0], rtol=1e-2)


@pytest.mark.parametrize("kwargs", [
    {"learning_rate": -1.0},
    {"learning_rate": 1e-3, "b1": 1.5},
    {"learning_rate": 1e-3, "b2": 1.0},
    {"learning_rate": 1e-3, "weight_decay": -0.1},
    {"learning_rate": 1e-3, "grad_k": "linf"},
    {"learning_rate": 1e-3, "grad_k": "huber", "delta": 0.0},
    {"learning_rate": 1e-3, "grad_k": "lp", "p": 0.5},
    {"learning_rate": 1e-3, "per_leaf": "yes"},
])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="lion_k"):
    optkit.lion_k(**kwargs)


def test_constraint_helper_rejects_penalty_presets():
  with pytest.raises(ValueError, match="lion_k"):
    optkit.lion_k_constraint({"a": jnp.ones(2)}, 0.5, grad_k="identity")
  np.testing.assert_allclose(
      optkit.lion_k_constraint({"a": jnp.array([3.0, 4.0])}, 0.5, grad_k="l2"), 2.5)
