"""What makes Stable-SPAM and SPAM what they are (arXiv:2502.17055); the
contract suite covers the rest."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers

STABLE = helpers.fixture("clipping_stable_spam.npz")
SPAM = helpers.fixture("clipping_spam.npz")
TOL = dict(rtol=1e-5, atol=1e-5)   # catalog: 30 steps vs pytorch_optimizer to 1e-5


def _load(path, case):
  d = np.load(path)
  hp = {k.split("__hparam__")[1]: float(d[k]) for k in d.files
        if k.startswith(case + "__hparam__")}
  names = sorted(k.split("__traj__")[1] for k in d.files if k.startswith(case + "__traj__"))
  traj = {n: d[f"{case}__traj__{n}"] for n in names}
  return d, hp, traj


def _stable_from(hp, **over):
  kw = dict(b1=hp["b1"], b2=hp["b2"], gamma1=hp["gamma1"], gamma2=hp["gamma2"],
            theta=hp["theta"], update_proj_gap=int(hp["update_proj_gap"]),
            t_max=None if hp["t_max"] < 0 else int(hp["t_max"]), eta_min=hp["eta_min"],
            eps=hp["eps"], weight_decay=hp["weight_decay"])
  kw.update(over)
  return optkit.stable_spam(hp["lr"], **kw)


def _spam_from(hp, **over):
  kw = dict(b1=hp["b1"], b2=hp["b2"], threshold=hp["threshold"],
            grad_accu_steps=int(hp["grad_accu_steps"]),
            update_proj_gap=int(hp["update_proj_gap"]),
            warmup_steps=int(hp["warmup_steps"]), eps=hp["eps"])
  kw.update(over)
  return optkit.spam(hp["lr"], **kw)


def _replay(path, case, make, **over):
  d, hp, traj = _load(path, case)
  loss = helpers.fixture_loss(d, str(d[f"{case}__problem"]))
  p0 = {n: jnp.asarray(v[0]) for n, v in traj.items()}
  out = helpers.run_closed_loop(make(hp, **over), loss, p0, len(next(iter(traj.values()))) - 1)
  return {n: np.stack([np.asarray(p[n]) for p, _, _ in out]) for n in traj}, traj


@pytest.mark.parametrize("case", ["quadratic", "logreg_tmax", "quadratic_tmax", "logreg_clip"])
def test_stable_spam_matches_pytorch_optimizer(case):
  ours, ref = _replay(STABLE, case, _stable_from)
  for n in ref:
    np.testing.assert_allclose(ours[n], ref[n][1:], **TOL)


@pytest.mark.parametrize("case,over", [
    ("quadratic", {"update_proj_gap": 1000}),       # the resets matter
    ("logreg_clip", {"theta": 0.999999}),           # AdaClip matters
    ("logreg_tmax", {"t_max": None}),               # the cosine decay matters
])
def test_stable_spam_fixture_negative_controls(case, over):
  """Each mechanism is active in the fixtures: switching it off breaks the match."""
  ours, ref = _replay(STABLE, case, _stable_from, **over)
  assert max(np.max(np.abs(ours[n] - ref[n][1:])) for n in ref) > 1e-3


@pytest.mark.parametrize("case", ["quadratic", "logreg"])
def test_spam_matches_pytorch_optimizer(case):
  ours, ref = _replay(SPAM, case, _spam_from)
  for n in ref:
    np.testing.assert_allclose(ours[n], ref[n][1:], **TOL)


@pytest.mark.parametrize("over", [{"threshold": 0.0}, {"warmup_steps": 0}])
def test_spam_fixture_negative_controls(over):
  """Spike clipping and the post-reset warm-up are active in the fixture."""
  ours, ref = _replay(SPAM, "quadratic", _spam_from, **over)
  assert max(np.max(np.abs(ours[n] - ref[n][1:])) for n in ref) > 1e-4


def _unit_leaves():
  """Per-leaf normalization g / ||g|| (what AdaGN is at gamma1 = gamma2 = 0)."""
  return optax.stateless(lambda g, p=None: jax.tree.map(lambda x: x / jnp.linalg.norm(x), g))


def test_reduces_to_adam_on_unit_norm_leaves():
  """Catalog test (1): theta = 0 (m_max_hat = max|g|: nothing clipped), gamma1 =
  gamma2 = 0 (AdaGN's target norm m_hat / sqrt(v_hat) = 1: each leaf becomes
  g / ||g||, AdaGN cannot be switched off further), no reset: Adam with eps on
  sqrt(v_hat) fed the unit-norm leaves. Float64, where optax's bias correction
  is exact. Negative control: plain Adam on the raw gradients differs."""
  with jax.enable_x64(True):
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), helpers.random_tree(0))
    grads = [jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), g)
             for g in helpers.gradient_sequence(8, seed=1, decay=0.5)]
    ours = helpers.run_open_loop(optkit.scale_by_stable_spam(
        theta=0.0, gamma1=0.0, gamma2=0.0, eps=1e-12, update_proj_gap=10**6), params, grads)
    adam = helpers.run_open_loop(optax.chain(_unit_leaves(), optax.scale_by_adam(eps=1e-12)),
                                 params, grads)
    raw = helpers.run_open_loop(optax.scale_by_adam(eps=1e-12), params, grads)
    gap = 0.0
    for (u, _), (ua, _), (ur, _) in zip(ours, adam, raw):
      for a, b, c in zip(jax.tree.leaves(u), jax.tree.leaves(ua), jax.tree.leaves(ur)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
        gap = max(gap, float(np.max(np.abs(np.asarray(a) - np.asarray(c)))))
    assert gap > 1e-2


def test_building_blocks_chain_equals_fused_direction():
  """clip_by_running_max -> normalize_by_running_norm -> reset_moments_every(Adam)
  is scale_by_stable_spam (t_max None, non-zero gradients); float64."""
  with jax.enable_x64(True):
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), helpers.random_tree(2))
    grads = [jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), g)
             for g in helpers.gradient_sequence(12, seed=5)]
    grads[6] = jax.tree.map(lambda x: 50.0 * x, grads[6])       # a spike: AdaClip acts
    kw = dict(b1=0.9, b2=0.99, eps=1e-8)
    chain = optax.chain(optkit.clip_by_running_max(0.9),
                        optkit.normalize_by_running_norm(0.7, 0.9, 1e-8),
                        optkit.reset_moments_every(optax.scale_by_adam(**kw), 5))
    fused = optkit.scale_by_stable_spam(theta=0.9, gamma1=0.7, gamma2=0.9,
                                        update_proj_gap=5, **kw)
    for (u, _), (uf, s) in zip(helpers.run_open_loop(chain, params, grads),
                               helpers.run_open_loop(fused, params, grads)):
      for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(uf)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert int(s.adam_count) == 3    # T = 12: resets at T = 5, 10, so t_A = 3


def test_reset_restarts_adam_moments_and_bias_correction():
  """Catalog test (3): at T % gap == 0 the moments restart, t_A = 1, and the
  step is Adam's first step (|u| = |g|/(|g| + eps) ~ 1 per entry)."""
  tx = optkit.scale_by_stable_spam(update_proj_gap=3, theta=0.5)
  g = helpers.gradient_sequence(3, seed=7)
  state = tx.init(g[0])
  outs = []
  for gi in g:
    u, state = tx.update(gi, state)
    outs.append(u)
  assert int(state.adam_count) == 1 and int(state.count) == 3
  for leaf in jax.tree.leaves(outs[2]):
    np.testing.assert_allclose(np.abs(leaf), 1.0, rtol=1e-5)
  # Negative control: without the reset, step 3 is not a first Adam step.
  tx = optkit.scale_by_stable_spam(update_proj_gap=1000, theta=0.5)
  state = tx.init(g[0])
  for gi in g:
    u, state = tx.update(gi, state)
  assert max(float(np.max(np.abs(np.abs(leaf) - 1.0))) for leaf in jax.tree.leaves(u)) > 1e-2


def test_adaclip_never_increases_entries_and_caps_spikes():
  """Catalog test (4), with a negative control: AdaGN alone can increase |g|."""
  tx = optkit.clip_by_running_max(theta=0.9)
  grads = helpers.gradient_sequence(20, seed=3)
  grads[10] = jax.tree.map(lambda x: 100.0 * x, grads[10])
  state = tx.init(grads[0])
  for i, g in enumerate(grads):
    u, state = tx.update(g, state)
    for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(g)):
      assert np.all(np.abs(np.asarray(a)) <= np.abs(np.asarray(b)) + 1e-7)
    if i == 10:   # the 100x spike is cut to the running max, a fraction of it
      for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(g)):
        if np.size(b) > 1:
          assert float(jnp.max(jnp.abs(a))) < 0.25 * float(jnp.max(jnp.abs(b)))
  norm_tx = optkit.normalize_by_running_norm()
  small = jax.tree.map(lambda x: 1e-3 * x, grads[0])
  u, _ = norm_tx.update(small, norm_tx.init(small))
  assert any(np.any(np.abs(np.asarray(a)) > np.abs(np.asarray(b)))
             for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(small)))


def test_adagn_hand_computed_two_steps():
  g1, g2 = jnp.array([3.0, 4.0]), jnp.array([0.0, 10.0])   # norms 5, 10
  tx = optkit.normalize_by_running_norm(gamma1=0.5, gamma2=0.8, eps=0.0)
  u1, s = tx.update(g1, tx.init(g1))
  np.testing.assert_allclose(u1, [0.6, 0.8], rtol=1e-6)
  u2, s = tx.update(g2, s)
  m = (0.5 * 0.5 * 5 + 0.5 * 10) / (1 - 0.5 ** 2)
  v = (0.8 * 0.2 * 25 + 0.2 * 100) / (1 - 0.8 ** 2)
  np.testing.assert_allclose(u2, np.array([0.0, 1.0]) * m / np.sqrt(v), rtol=1e-6)


def test_zero_gradient_leaf_is_skipped():
  """A zero-norm leaf keeps its AdaGN and Adam statistics and gets update 0."""
  tx = optkit.scale_by_stable_spam()
  g = {"a": jnp.array([1.0, -2.0]), "b": jnp.array([0.5])}
  _, s1 = tx.update(g, tx.init(g))
  u, s2 = tx.update({"a": g["a"], "b": jnp.zeros(1)}, s1)
  assert float(u["b"][0]) == 0.0
  np.testing.assert_array_equal(s2.mu["b"], s1.mu["b"])
  np.testing.assert_array_equal(s2.m_norm["b"], s1.m_norm["b"])
  assert not np.allclose(s2.mu["a"], s1.mu["a"])


def test_reset_moments_every_wrapper():
  tx = optkit.reset_moments_every(optax.scale_by_adam(), interval=4)
  g = helpers.gradient_sequence(4, seed=9)
  state = tx.init(g[0])
  for gi in g:
    u, state = tx.update(gi, state)
  assert int(state.count) == 4 and int(state.inner_state.count) == 1
  fresh = optax.scale_by_adam()
  uf, _ = fresh.update(g[3], fresh.init(g[3]))
  for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(uf)):
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_spam_spike_clipping_and_warmup_by_hand():
  """After grad_accu_steps, g^2 > threshold v is cut to sign(g) sqrt(threshold v);
  the first step after a reset is scaled by 1 - 0.99 (1 + cos(pi/(W+1)))/2."""
  b1, b2, thr = 0.5, 0.5, 2.0
  tx = optkit.scale_by_spam(b1=b1, b2=b2, threshold=thr, grad_accu_steps=1,
                            update_proj_gap=100, warmup_steps=0, eps=0.0)
  s = tx.init(jnp.zeros(1))
  _, s = tx.update(jnp.array([1.0]), s)   # T = 1 >= 1 and v_0 = 0: g cut to 0 (as the
  np.testing.assert_allclose(s.nu, [0.0])  # reference does when grad_accu_steps <= 1)
  tx = optkit.scale_by_spam(b1=b1, b2=b2, threshold=thr, grad_accu_steps=2,
                            update_proj_gap=100, warmup_steps=0, eps=0.0)
  s = tx.init(jnp.zeros(1))
  _, s = tx.update(jnp.array([1.0]), s)   # T = 1 < 2: no clipping, v = 0.5
  _, s = tx.update(jnp.array([10.0]), s)  # 100 > 2 * 0.5: g -> sqrt(1) = 1
  np.testing.assert_allclose(s.nu, [0.5 * 0.5 + 0.5 * 1.0], rtol=1e-6)
  # Warm-up right after a reset (gap 3, W = 4, T = 3 is the first step of a cycle).
  w = 4
  tx = optkit.scale_by_spam(b1=b1, b2=b2, threshold=0.0, update_proj_gap=3,
                            warmup_steps=w, eps=0.0)
  s = tx.init(jnp.zeros(1))
  for _ in range(3):
    u, s = tx.update(jnp.array([2.0]), s)
  # Moments restarted: m = 0.5 * 2, v = 0.5 * 4; global-step bias corrections (T = 3).
  base = np.sqrt(1 - b2 ** 3) / (1 - b1 ** 3) * (1.0 / np.sqrt(2.0))
  factor = 1 - 0.99 * (1 + np.cos(np.pi / (w + 1))) / 2
  np.testing.assert_allclose(u, [base * factor], rtol=1e-5)


def test_spam_density_masks_two_dim_leaves():
  tx = optkit.scale_by_spam(density=0.5, update_proj_gap=3, seed=1)
  p = {"w": jnp.zeros((8, 8)), "b": jnp.zeros(8)}
  g = {"w": jnp.ones((8, 8)), "b": jnp.ones(8)}
  s = tx.init(p)
  masks = []
  for _ in range(4):
    u, s = tx.update(g, s)
    masks.append(np.asarray(u["w"]) != 0)
    assert np.all(np.asarray(u["b"]) != 0)          # 1-D leaves: never masked
  assert 10 < masks[0].sum() < 54                     # about half of 64
  np.testing.assert_array_equal(masks[0], masks[1])   # same cycle, same mask
  assert not np.array_equal(masks[1], masks[2])       # T = 3: reset, new mask
  u2, _ = optkit.scale_by_spam(density=0.5, update_proj_gap=3, seed=1).update(
      g, optkit.scale_by_spam(density=0.5, update_proj_gap=3, seed=1).init(p))
  np.testing.assert_array_equal(np.asarray(u2["w"]) != 0, masks[0])   # same seed


@pytest.mark.parametrize("factory,kw,name", [
    (optkit.stable_spam, {"learning_rate": 0.1, "b1": 1.0}, "stable_spam"),
    (optkit.stable_spam, {"learning_rate": 0.1, "update_proj_gap": 0}, "stable_spam"),
    (optkit.stable_spam, {"learning_rate": -1.0}, "stable_spam"),
    (optkit.spam, {"learning_rate": 0.1, "density": 0.0}, "spam"),
    (optkit.spam, {"learning_rate": 0.1, "threshold": -1.0}, "spam"),
    (optkit.clip_by_running_max, {"theta": 1.0}, "clip_by_running_max"),
    (optkit.normalize_by_running_norm, {"gamma2": -0.1}, "normalize_by_running_norm"),
    (optkit.reset_moments_every, {"inner": optax.sgd(0.1), "interval": 0},
     "reset_moments_every"),
])
def test_bad_hyperparameters_raise(factory, kw, name):
  with pytest.raises(ValueError, match=name):
    factory(**kw)
