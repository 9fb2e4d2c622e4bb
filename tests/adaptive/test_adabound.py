"""What makes AdaBound / AMSBound themselves (arXiv:1902.09843); the contract
suite covers the rest."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.adaptive import adabound, amsbound, scale_by_adabound
from tests import helpers
from tests.adaptive import _adaptive2_reference as ref


def _numpy_adabound(grads, lr, final_lr, gamma, b1, b2, eps, ams=False, paper=False):
  """float64 re-derivation of the official code (or the paper's Algorithm 2)."""
  m = v = vmax = 0.0
  out = []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    vmax = np.maximum(vmax, v)
    v_eff = vmax if ams else v
    lower, upper = final_lr * (1 - 1 / (gamma * t + 1)), final_lr * (1 + 1 / (gamma * t))
    step = lr if paper else lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    rate = np.clip(step / (np.sqrt(v_eff) + eps), lower, upper)
    if paper:
      rate = rate / np.sqrt(t)
    out.append(rate * m)
  return out


# ---------------------------------------------------------------- hand-computed steps


def test_first_step_by_hand_hits_both_bounds_and_the_inside():
  """t = 1, gamma = 1, final_lr = 0.01: bounds [0.005, 0.02]; the unclipped
  rate is lr sqrt(1 - b2) / ((1 - b1) sqrt(v_1)) = lr / ((1 - b1) |g|) = 1 / |g|
  (eps = 0), so |g| = 4, 100, 400 give rates 0.25 (clipped to 0.02), 0.01
  (inside) and 0.0025 (clipped to 0.005); u = rate * m_1, m_1 = 0.1 g."""
  g = jnp.array([4.0, -100.0, 400.0])
  tx = scale_by_adabound(0.1, final_lr=0.01, gamma=1.0, eps=0.0)
  u, s = tx.update(g, tx.init(g))
  np.testing.assert_allclose(u, np.array([0.02, 0.01, 0.005]) * 0.1 * np.asarray(g), rtol=1e-6)
  assert s.base_lr == pytest.approx(0.1)
  opt = adabound(0.1, final_lr=0.01, gamma=1.0, eps=0.0)
  p = jnp.zeros(3)
  np.testing.assert_allclose(opt.update(g, opt.init(p), p)[0], -np.asarray(u), rtol=1e-6)


@pytest.mark.parametrize("ams,paper", [(False, False), (True, False), (False, True),
                                       (True, True)])
def test_matches_float64_numpy_rederivation(ams, paper):
  rng = np.random.default_rng(3)
  grads = [rng.standard_normal(7) * (3.0 if t < 5 else 0.3) for t in range(30)]
  expected = _numpy_adabound(grads, 0.05, 0.2, 0.1, 0.9, 0.9, 1e-3, ams, paper)
  tx = scale_by_adabound(0.05, 0.2, 0.1, 0.9, 0.9, 1e-3, amsbound=ams,
                         bounds="paper" if paper else "code")
  outs = helpers.run_open_loop(tx, jnp.zeros(7), [jnp.asarray(g, jnp.float32) for g in grads])
  for (u, _), e in zip(outs, expected):
    np.testing.assert_allclose(u, e, rtol=2e-5, atol=1e-8)


# ---------------------------------------------------------------- reductions (catalog 2, 3)


def test_gamma_zero_is_adam():
  """Catalog test 2: gamma = 0 gives the bounds [0, inf): AdaBound is Adam in
  the efficient form (= optax.adam for eps = 0). Negative control: gamma = 1
  with final_lr 0.01 clips the same run."""
  params, grads = helpers.random_tree(1), helpers.gradient_sequence(40, seed=2, decay=0.1)
  mine = helpers.run_open_loop(adabound(0.05, gamma=0.0, eps=0.0), params, grads)
  adam = helpers.run_open_loop(optax.adam(0.05, eps=0.0), params, grads)
  for (u, _), (ua, _) in zip(mine, adam):
    for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(ua)):
      np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-8)
  clipped = helpers.run_open_loop(adabound(0.05, final_lr=0.01, gamma=1.0, eps=0.0), params,
                                  grads)
  assert not np.allclose(clipped[-1][0]["a"], mine[-1][0]["a"], rtol=1e-2)


def test_tends_to_sgd_with_momentum_for_large_t():
  """Catalog test 3: as t -> inf both bounds tend to final_lr, so u -> final_lr m.
  Negative control: at t = 6 (gamma t = 0.006) the update is far from it."""
  params, grads = helpers.random_tree(4), helpers.gradient_sequence(6, seed=5)
  tx = scale_by_adabound(1e-3, final_lr=0.1)
  state = tx.init(params)
  update = jax.jit(tx.update)
  for g in grads[:-1]:
    _, state = update(g, state)
  u_small_t, _ = update(grads[-1], state)
  u_large_t, s = update(grads[-1], state._replace(count=jnp.asarray(2 ** 30, jnp.int32)))
  for u, m in zip(jax.tree.leaves(u_large_t), jax.tree.leaves(s.mu)):
    np.testing.assert_allclose(u, 0.1 * np.asarray(m), rtol=1e-5)
  assert not np.allclose(u_small_t["a"], 0.1 * np.asarray(s.mu["a"]), rtol=1e-1)


def test_amsbound_uses_running_max_of_v():
  """AMSBound: vmax never decreases and, once gradients shrink, its steps are
  smaller than AdaBound's (AdaBound's v decays, vmax does not)."""
  grads = [jnp.full((3,), 5.0)] * 3 + [jnp.full((3,), 0.1)] * 10
  params = jnp.zeros(3)
  ams = helpers.run_open_loop(scale_by_adabound(0.05, b2=0.9, amsbound=True), params, grads)
  ada = helpers.run_open_loop(scale_by_adabound(0.05, b2=0.9), params, grads)
  prev = np.zeros(3)
  for _, s in ams:
    assert np.all(np.asarray(s.nu_max) >= prev)
    prev = np.asarray(s.nu_max)
  assert ada[-1][1].nu_max == ()
  assert np.all(np.abs(ams[-1][0]) < 0.9 * np.abs(ada[-1][0]))


# ---------------------------------------------------------------- the learning-rate schedule


def test_final_lr_follows_schedule_and_warmup_from_zero():
  """f_t = final_lr eta_t / eta_0 with eta_0 the first POSITIVE lr (as
  pytorch_optimizer): a warm-up from 0 still gets nonzero bounds; the large-t
  update is final_lr (eta_t / eta_0) m."""
  sched = lambda count: jnp.where(count < 1, 0.0, jnp.where(count < 3, 0.1, 0.05))
  tx = scale_by_adabound(sched, final_lr=0.2)
  g = helpers.random_tree(7)
  state = tx.init(g)
  update = jax.jit(tx.update)
  u0, state = update(g, state)
  assert all(float(jnp.max(jnp.abs(x))) == 0.0 for x in jax.tree.leaves(u0))  # lr 0
  assert float(state.base_lr) == 0.0
  for _ in range(3):
    u, state = update(g, state)
  assert float(state.base_lr) == pytest.approx(0.1)
  u_late, s = update(g, state._replace(count=jnp.asarray(2 ** 30, jnp.int32)))
  np.testing.assert_allclose(u_late["a"], 0.2 * 0.5 * np.asarray(s.mu["a"]), rtol=1e-5)


# ---------------------------------------------------------------- pytorch_optimizer fixture


def _make(hp):
  lr = hp["lr"]
  if "lr_decay" in hp:
    lr = optax.exponential_decay(hp["lr"], 1, hp["lr_decay"])  # torch ExponentialLR
  return adabound(lr, final_lr=hp.get("final_lr", 0.1), gamma=hp.get("gamma", 1e-3),
                  b1=hp.get("b1", 0.9), b2=hp.get("b2", 0.999),
                  weight_decay=hp.get("weight_decay", 0.0),
                  amsbound=bool(hp.get("ams_bound", 0.0)), eps_root=1e-15)


@pytest.mark.parametrize("prefix", ref.PROBLEMS)
@pytest.mark.parametrize("config,atol", [
    ("adabound_default", 1e-6), ("adabound_tight", 4e-6), ("amsbound", 1e-6),
    ("adabound_sched", 1e-6)])
def test_reproduces_pytorch_optimizer(config, atol, prefix):
  """pytorch_optimizer 4.1.0 AdaBound (float32, foreach=False), 20-30 steps,
  checked at every step on params of size O(1), rtol 1e-6 plus: the defaults
  to atol 1e-6 (catalog test 1; largest seen 2.4e-7), AMSBound and an
  ExponentialLR(0.9) schedule (final lr follows it) to 1e-6 (largest 7e-7), the
  tight-bounds config with decoupled decay to 4e-6 (largest 2.1e-6: torch
  multiplies p by 1 - lr wd, optkit adds -lr wd p)."""
  data = ref.load("adabound")
  ref.replay(data, prefix, config, _make(ref.hparams(data, config)), rtol=1e-6, atol=atol)


@pytest.mark.parametrize("config", ["adabound_tight", "amsbound", "adabound_sched"])
def test_fixture_bounds_are_active(config):
  """Negative control: with gamma = 0 (no bounds, plain Adam) the replay is far
  from the reference, so the fixtures do test the bounds."""
  data = ref.load("adabound")
  hp = dict(ref.hparams(data, config), gamma=0.0)
  assert ref.replay(data, "quadratic", config, _make(hp)) > 1e-3


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("factory,kwargs,match", [
    (adabound, {"learning_rate": -1.0}, "adabound: `learning_rate`"),
    (adabound, {"learning_rate": 1e-3, "final_lr": -0.1}, "adabound: `final_lr`"),
    (adabound, {"learning_rate": 1e-3, "gamma": -1.0}, "adabound: `gamma`"),
    (adabound, {"learning_rate": 1e-3, "b1": 1.0}, "adabound: `b1`"),
    (adabound, {"learning_rate": 1e-3, "b2": 1.5}, "adabound: `b2`"),
    (adabound, {"learning_rate": 1e-3, "eps": -1.0}, "adabound: `eps`"),
    (adabound, {"learning_rate": 1e-3, "weight_decay": -1.0}, "adabound: `weight_decay`"),
    (adabound, {"learning_rate": 1e-3, "bounds": "tight"}, "adabound: `bounds`"),
    (amsbound, {"learning_rate": -1.0}, "amsbound: `learning_rate`"),
    (amsbound, {"learning_rate": 1e-3, "b2": -0.1}, "amsbound: `b2`"),
    (scale_by_adabound, {"learning_rate": 1e-3, "eps_root": -1.0}, "adabound: `eps_root`"),
])
def test_bad_hyperparameters_raise(factory, kwargs, match):
  with pytest.raises(ValueError, match=match):
    factory(**kwargs)


def test_mismatched_tree_raises():
  tx = scale_by_adabound(1e-3)
  state = tx.init({"a": jnp.zeros(2), "b": jnp.zeros(3)})
  with pytest.raises(ValueError, match="adabound"):
    tx.update({"a": jnp.zeros(2)}, state)
