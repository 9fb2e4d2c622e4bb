"""What makes Adam and AdaMax themselves (arXiv:1412.6980); the contract suite
covers the rest."""

from __future__ import annotations

import functools
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.adaptive import adam, adamax, scale_by_adam, scale_by_adamax, scale_by_amsgrad
from tests import helpers

FIXTURE = helpers.fixture("adaptive_torch.npz")
TREE = helpers.SMALL_TREE
_tree = helpers.random_tree
_grads = functools.partial(helpers.gradient_sequence, decay=0.1)
_run = helpers.run_open_loop


def _assert_runs_equal(mine, ref, state_index=None):
  for (u, s), (ur, sr) in zip(mine, ref):
    chex.assert_trees_all_equal(u, ur)
    if state_index is None:
      chex.assert_trees_all_equal(s, sr)
    else:
      chex.assert_trees_all_equal(s[state_index], sr[state_index])


# ---------------------------------------------------------------- optax (catalog test 1)


@pytest.mark.parametrize("kwargs", [
    {},
    {"b1": 0.8, "b2": 0.99, "eps": 1e-6},
    {"eps_root": 1e-8, "nesterov": True},
    {"mu_dtype": jnp.bfloat16},
], ids=["defaults", "betas_eps", "eps_root_nesterov", "bf16_mu"])
def test_adam_equals_optax_adam_bitwise_for_100_steps(kwargs):
  params, grads = _tree(42), _grads(100)
  mu_dtype = kwargs.pop("mu_dtype", None)
  nesterov = kwargs.pop("nesterov", False)
  mine = _run(adam(3e-2, **kwargs, mu_dtype=mu_dtype, nesterov=nesterov), params, grads)
  ref = _run(optax.adam(3e-2, **kwargs, mu_dtype=mu_dtype, nesterov=nesterov), params, grads)
  _assert_runs_equal(mine, ref, state_index=0)  # optkit's chain adds an EmptyState (decay)


def test_adam_with_decay_equals_optax_adamw():
  params, grads = _tree(3), _grads(30, seed=2)
  mask = {"a": True, "b": False, "c": True}
  mine = _run(adam(1e-2, b1=0.8, weight_decay=0.1, mask=mask), params, grads)
  ref = _run(optax.adamw(1e-2, b1=0.8, weight_decay=0.1, mask=mask), params, grads)
  _assert_runs_equal(mine, ref)


def test_directions_equal_optax():
  params, grads = _tree(1), _grads(20, seed=3)
  _assert_runs_equal(_run(scale_by_adam(0.85, 0.95), params, grads),
                     _run(optax.scale_by_adam(0.85, 0.95), params, grads))
  _assert_runs_equal(_run(scale_by_adamax(0.85, 0.95), params, grads),
                     _run(optax.scale_by_adamax(0.85, 0.95), params, grads))


def test_adamax_equals_optax_adamax_bitwise_for_100_steps():
  params, grads = _tree(7), _grads(100, seed=1)
  _assert_runs_equal(_run(adamax(2e-3), params, grads),
                     _run(optax.adamax(2e-3), params, grads), state_index=0)


# ---------------------------------------------------------------- hand-computed steps


def test_first_step_is_lr_sign_g_for_eps_zero():
  lr = 0.1
  p = jnp.array([1.0, -1.0, 2.0, 0.5])
  g = jnp.array([0.3, -2.0, 5e-3, -40.0])
  opt = adam(lr, eps=0.0)
  u, _ = opt.update(g, opt.init(p), p)
  np.testing.assert_allclose(u, -lr * np.sign(g), rtol=1e-5)


def test_first_step_magnitude_is_one_per_coordinate():
  """Catalog test 3: bias correction makes |u_1| ~ 1 for |g| >> eps. Negative
  control: without bias correction |u_1| = (1 - b1)/sqrt(1 - b2) = 3.16."""
  g = _tree(11, scale=3.0)
  tx = scale_by_adam()
  u, _ = tx.update(g, tx.init(g))
  for leaf in jax.tree.leaves(u):
    np.testing.assert_allclose(np.abs(leaf), 1.0, rtol=1e-4)
  tx = scale_by_amsgrad(bias_correction_mu=False, bias_correction_nu=False)
  u, _ = tx.update(g, tx.init(g))
  for leaf in jax.tree.leaves(u):
    np.testing.assert_allclose(np.abs(leaf), 0.1 / np.sqrt(0.001), rtol=1e-4)


def _numpy_adam(grads, b1, b2, eps, eps_root=0.0):
  m = v = 0.0
  out = []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    out.append((m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t) + eps_root) + eps))
  return out


def test_matches_float64_numpy_rederivation():
  rng = np.random.default_rng(5)
  grads = [rng.standard_normal(7) * (1 + 3 * (t % 4 == 0)) for t in range(25)]
  expected = _numpy_adam(grads, 0.9, 0.99, 1e-3, 1e-6)
  tx = scale_by_adam(0.9, 0.99, 1e-3, 1e-6)
  state = tx.init(jnp.zeros(7))
  for g, e in zip(grads, expected):
    u, state = tx.update(jnp.asarray(g, jnp.float32), state)
    np.testing.assert_allclose(u, e, rtol=2e-5, atol=1e-6)


def test_adamax_hand_computed_two_steps():
  b1, b2, eps = 0.9, 0.5, 1e-3
  tx = scale_by_adamax(b1, b2, eps)
  g1, g2 = np.array([2.0, -1.0, 0.0]), np.array([0.5, -4.0, 1.0])
  s = tx.init(jnp.zeros(3))
  u1, s = tx.update(jnp.asarray(g1, jnp.float32), s)
  np.testing.assert_allclose(u1, g1 / (np.abs(g1) + eps), rtol=1e-6)
  u2, s = tx.update(jnp.asarray(g2, jnp.float32), s)
  m2 = b1 * (1 - b1) * g1 + (1 - b1) * g2
  inf2 = np.maximum(b2 * (np.abs(g1) + eps), np.abs(g2) + eps)
  np.testing.assert_allclose(s.nu, inf2, rtol=1e-6)
  np.testing.assert_allclose(u2, m2 / (1 - b1 ** 2) / inf2, rtol=1e-5)


# ---------------------------------------------------------------- reductions, properties


def test_zero_betas_and_eps_give_sign_descent():
  """Catalog test 2: b1 = b2 = 0, eps = 0: u = sign(g) at every step.
  Negative control: default betas do not give sign(g) after the first step."""
  grads = _grads(10, seed=4)
  tx = scale_by_adam(0.0, 0.0, 0.0)
  for g, (u, _) in zip(grads, _run(tx, _tree(0), grads)):
    for uu, gg in zip(jax.tree.leaves(u), jax.tree.leaves(g)):
      np.testing.assert_allclose(uu, np.sign(gg), rtol=1e-6)
  outs = _run(scale_by_adam(eps=0.0), _tree(0), grads)
  u5, g5 = outs[5][0], grads[5]
  assert not all(np.allclose(a, np.sign(b), rtol=1e-3)
                 for a, b in zip(jax.tree.leaves(u5), jax.tree.leaves(g5)))


def test_adamax_infinity_norm_non_decreasing_for_constant_abs_gradient():
  """Catalog test 4: |g| constant (random signs): u_inf never decreases. Negative
  control: shrinking |g| makes u_inf decay by b2."""
  rng = np.random.default_rng(0)
  mags = np.abs(rng.standard_normal(6)).astype(np.float32) + 0.1
  tx = scale_by_adamax(b2=0.9)
  state = tx.init(jnp.zeros(6))
  prev = np.zeros(6)
  for _ in range(30):
    g = jnp.asarray(mags * rng.choice([-1.0, 1.0], 6), jnp.float32)
    _, state = tx.update(g, state)
    assert np.all(np.asarray(state.nu) >= prev)
    prev = np.asarray(state.nu)
  decreased = False
  for t in range(10):
    _, state = tx.update(jnp.asarray(mags * 0.5 ** (t + 1), jnp.float32), state)
    decreased |= bool(np.any(np.asarray(state.nu) < prev))
    prev = np.asarray(state.nu)
  assert decreased


# ---------------------------------------------------------------- torch.optim fixture


def replay_torch_fixture(name, prefix, make_tx, rtol, atol):
  """Replays the stored torch.optim trajectory ``name`` on problem ``prefix``.

  Returns the largest absolute deviation seen."""
  data = np.load(FIXTURE)
  hp = {k: float(data[f"hparam__{name}__{k}"]) for k in ("lr", "b1", "b2", "eps",
                                                          "weight_decay")}
  traj = helpers.fixture_trajectory(data, f"{prefix}__{name}__traj__")
  return helpers.replay_trajectory(make_tx(hp), helpers.fixture_loss(data, prefix), traj,
                                   rtol=rtol, atol=atol, label=f"{name}/{prefix}")


MAKERS = {
    "adam": lambda hp: adam(hp["lr"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"]),
    "adamw": lambda hp: adam(hp["lr"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"],
                             weight_decay=hp["weight_decay"]),
    "adamax": lambda hp: adamax(hp["lr"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"]),
}


@pytest.mark.parametrize("prefix", ["quadratic", "logreg"])
@pytest.mark.parametrize("name", ["adam", "adamw", "adamax"])
def test_reproduces_torch_optim(name, prefix):
  """40 steps of torch.optim.{Adam, AdamW, Adamax} (float32), every step, to
  rtol 1e-5 and atol 1e-5 on params of size O(1) (torch forms sqrt(v)/sqrt(1-b2^t)
  where optax forms sqrt(v/(1-b2^t)), AdamW multiplies p by 1 - lr wd, and
  optax's float32 1 - b2^t is 1.3e-5 off for b2 = 0.999: rounding only; the
  largest deviation seen is 1.2e-5 for Adam, < 1e-6 for AdamW and Adamax)."""
  replay_torch_fixture(name, prefix, MAKERS[name], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- dtypes, validation


def test_bf16_params_keep_bf16_updates_and_f32_second_moment():
  p = {"w": jnp.ones((3,), jnp.bfloat16)}
  g = {"w": jnp.array([1.0, -2.0, 0.5], jnp.bfloat16)}
  for opt in (adam(1e-2, mu_dtype=jnp.float32), adamax(1e-2)):
    state = opt.init(p)
    for _ in range(3):
      u, state = opt.update(g, state, p)
      assert u["w"].dtype == jnp.bfloat16
      assert state[0].nu["w"].dtype == jnp.float32
  # The optax behaviour optkit fixes: f32 updates for bf16 grads, bf16 nu.
  ref = optax.adam(1e-2, mu_dtype=jnp.float32)
  u, s = ref.update(g, ref.init(p), p)
  assert u["w"].dtype == jnp.float32 and s[0].nu["w"].dtype == jnp.bfloat16


@pytest.mark.parametrize("factory,kwargs,match", [
    (adam, {"learning_rate": -1.0}, "adam: `learning_rate`"),
    (adam, {"learning_rate": 1e-3, "b1": 1.0}, "adam: `b1`"),
    (adam, {"learning_rate": 1e-3, "b2": -0.1}, "adam: `b2`"),
    (adam, {"learning_rate": 1e-3, "eps": -1e-8}, "adam: `eps`"),
    (adam, {"learning_rate": 1e-3, "weight_decay": -1.0}, "adam: `weight_decay`"),
    (adamax, {"learning_rate": -2e-3}, "adamax: `learning_rate`"),
    (adamax, {"learning_rate": 2e-3, "b2": 1.5}, "adamax: `b2`"),
    (adamax, {"learning_rate": 2e-3, "eps": -1.0}, "adamax: `eps`"),
])
def test_bad_hyperparameters_raise(factory, kwargs, match):
  with pytest.raises(ValueError, match=match):
    factory(**kwargs)


@pytest.mark.parametrize("tx,name", [(scale_by_adam(), "adam"), (scale_by_adamax(), "adamax")])
def test_mismatched_tree_raises(tx, name):
  state = tx.init({"a": jnp.zeros(2), "b": jnp.zeros(3)})
  with pytest.raises(ValueError, match=name):
    tx.update({"a": jnp.zeros(2)}, state)
