"""What makes AdamP / SGDP themselves (arXiv:2006.08217): the radial projection
for scale-invariant weights. The contract suite covers the rest."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.adaptive import adamp, project_out_radial, scale_by_adamp, scale_by_sgdp, sgdp
from tests import helpers
from tests.adaptive import _adaptive2_reference as ref


def _flax_normnet():
  """The fixture's normnet in Flax layout (output channels LAST): W1 (5, 4)
  with every column normalized (channel-invariant), W2 (4, 3) normalized as a
  whole (layer-invariant), bias c (3,)."""
  data = ref.load("adamp")
  torch_loss = ref.loss_fn(data, "normnet")
  loss = lambda p: torch_loss({"W1": p["W1"].T, "W2": p["W2"].T, "c": p["c"]})
  traj = ref.trajectory(data, "normnet", "adamp_raw")
  params = {"W1": jnp.asarray(traj["W1"][0].T), "W2": jnp.asarray(traj["W2"][0].T),
            "c": jnp.asarray(traj["c"][0])}
  return loss, params


def _run(tx, loss, params, steps):
  """Closed-loop run; returns the list of (params before, update)."""
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p))
  out = []
  for _ in range(steps):
    u, state = step(params, state)
    out.append((params, u))
    params = optax.apply_updates(params, u)
  return out


def _radial_fraction(w, u, axis):
  """max over rows of |<w_hat_r, u_r>| / ||u_r|| (rows: reduce over ``axis``)."""
  w, u = np.asarray(w, np.float64), np.asarray(u, np.float64)
  w_hat = w / np.linalg.norm(w, axis=axis, keepdims=True)
  return float(np.max(np.abs(np.sum(w_hat * u, axis=axis)) /
                      np.linalg.norm(u, axis=axis)))


# ---------------------------------------------------------------- the defining property


@pytest.mark.parametrize("make", [lambda: adamp(5e-2), lambda: sgdp(5e-2)],
                         ids=["adamp", "sgdp"])
def test_update_of_scale_invariant_weights_has_no_radial_part(make):
  """Catalog test 1: for a weight followed by a normalization (scale-invariant),
  the update is orthogonal to w per output channel (W1, channel view) or as a
  whole (W2, layer view), at every step: |<w_hat_r, u_r>| / ||u_r|| < 1e-5.
  Negative control: Adam's / SGD-momentum's updates have a clear radial part
  (> 1e-2), which grows the weight norm (the slowdown the paper removes)."""
  loss, params = _flax_normnet()
  for p, u in _run(make(), loss, params, 8):
    assert _radial_fraction(p["W1"], u["W1"], axis=0) < 1e-5
    assert _radial_fraction(p["W2"], u["W2"], axis=(0, 1)) < 1e-5
  for base in (optax.adam(5e-2), optax.sgd(5e-2, momentum=0.9)):
    run = _run(base, loss, params, 8)
    assert max(_radial_fraction(p["W1"], u["W1"], axis=0) for p, u in run[1:]) > 1e-2
    assert max(_radial_fraction(p["W2"], u["W2"], axis=(0, 1)) for p, u in run[1:]) > 1e-2


def test_weight_norm_growth_is_slowed():
  """The paper's motivation: the effective step shrinks as ||w|| grows under
  momentum; AdamP's projection keeps ||W1|| (nearly) constant (second order
  only: ||w + u||^2 = ||w||^2 + ||u||^2), Adam's grows by first-order terms."""
  loss, params = _flax_normnet()
  n0 = float(jnp.linalg.norm(params["W1"]))
  grow = lambda tx: float(jnp.linalg.norm(
      optax.apply_updates(*_run(tx, loss, params, 20)[-1])["W1"])) - n0
  assert grow(adamp(5e-2)) < 0.5 * grow(optax.adam(5e-2))


def test_projection_by_hand_and_decay_ratio():
  """Hand-computed: W is (nearly) orthogonal to its gradient per column
  (Flax channel view) -> the column's radial part of the inner update is
  removed and the decay is lambda * wd_ratio * w; a matrix whose gradient is
  parallel to it is untouched with decay lambda * w; a vector is untouched."""
  w = jnp.array([[3.0, 0.0], [0.0, 4.0]])
  params = {"w": w, "m": w, "v": jnp.array([1.0, 2.0])}
  grads = {"w": jnp.array([[0.01, 1.0], [2.0, 0.01]]), "m": w, "v": jnp.array([1.0, 1.0])}
  tx = project_out_radial(optax.identity(), weight_decay=0.5, wd_ratio=0.1)
  u, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(u["w"], np.array([[0.0, 1.0], [2.0, 0.0]]) + 0.05 * np.asarray(w),
                             atol=1e-6)
  np.testing.assert_allclose(u["m"], 1.5 * np.asarray(w), rtol=1e-6)
  np.testing.assert_allclose(u["v"], np.array([1.5, 2.0]), rtol=1e-6)
  # The PyTorch channel view (rows) sees other rows: row 0 of w is (3, 0) with
  # gradient (0.01, 1) -> also invariant, but the radial directions are the rows.
  tx0 = project_out_radial(optax.identity(), channel_axis=0)
  u0, _ = tx0.update(grads, tx0.init(params), params)
  np.testing.assert_allclose(u0["w"], np.array([[0.0, 1.0], [2.0, 0.0]]), atol=1e-6)


# ---------------------------------------------------------------- reductions (catalog 2)


def test_equals_adamw_and_sgd_on_non_invariant_weights():
  """Catalog test 2: when every cosine is large (gradient ~ parallel to w) the
  projection is off: AdamP = optax.adamw (same eps placement) and SGDP =
  optax.sgd with Nesterov momentum (decay 0)."""
  params = helpers.random_tree(0)
  grads = [jax.tree.map(lambda w, n: 2.0 * w + 0.1 * n, params, helpers.random_tree(i + 10))
           for i in range(8)]
  run = lambda tx: helpers.run_open_loop(tx, params, grads)
  for (u, _), (ur, _) in zip(run(adamp(1e-2, weight_decay=0.1)),
                             run(optax.adamw(1e-2, weight_decay=0.1))):
    for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(ur)):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
  for (u, _), (ur, _) in zip(run(sgdp(1e-2, momentum=0.9, nesterov=True)),
                             run(optax.sgd(1e-2, momentum=0.9, nesterov=True))):
    for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(ur)):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
  # Negative control: test_update_of_scale_invariant_weights_has_no_radial_part
  # (Adam's update there is not AdamP's).


def test_wrapper_around_optax_adam_is_adamp():
  """``project_out_radial`` around ``optax.scale_by_adam`` (then the lr) is AdamP."""
  loss, params = _flax_normnet()
  wrapped = optax.chain(project_out_radial(optax.scale_by_adam(), weight_decay=0.1),
                        optax.scale_by_learning_rate(5e-2))
  for (_, u), (_, ur) in zip(_run(wrapped, loss, params, 6),
                             _run(adamp(5e-2, weight_decay=0.1), loss, params, 6)):
    for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(ur)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


def test_channel_axis_is_the_layout():
  """channel_axis=0 on PyTorch-layout weights = channel_axis=-1 on the
  transposed (Flax-layout) weights."""
  data = ref.load("adamp")
  torch_loss = ref.loss_fn(data, "normnet")
  traj = ref.trajectory(data, "normnet", "adamp_raw")
  p_torch = {k: jnp.asarray(v[0]) for k, v in traj.items()}
  flax_loss, p_flax = _flax_normnet()
  a = _run(adamp(5e-2, channel_axis=0), torch_loss, p_torch, 6)
  b = _run(adamp(5e-2, channel_axis=-1), flax_loss, p_flax, 6)
  for (_, ua), (_, ub) in zip(a, b):
    np.testing.assert_allclose(ua["W1"], ub["W1"].T, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(ua["W2"], ub["W2"].T, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------- pytorch_optimizer fixture


def _make(config, hp, **overrides):
  if config.startswith("sgdp"):
    kw = dict(momentum=hp["momentum"], dampening=hp.get("dampening", 0.0),
              weight_decay=hp.get("weight_decay", 0.0), nesterov=bool(hp.get("nesterov", 0.0)),
              channel_axis=0)
    return sgdp(hp["lr"], **{**kw, **overrides})
  kw = dict(b1=hp.get("b1", 0.9), b2=hp.get("b2", 0.999), eps=hp.get("eps", 1e-8),
            weight_decay=hp.get("weight_decay", 0.0), nesterov=bool(hp.get("nesterov", 0.0)),
            channel_axis=0,
            # eps = 0: the official placement (default) equals pytorch_optimizer's.
            eps_placement="adam" if config == "adamp_eps0" else "raw")
  return adamp(hp["lr"], **{**kw, **overrides})


CONFIGS = [("adamp_raw", 1e-5), ("adamp_eps0", 1e-5), ("adamp_nesterov", 2e-6),
           ("sgdp", 2e-6), ("sgdp_nesterov", 2e-6), ("sgdp_damp", 2e-6)]


@pytest.mark.parametrize("prefix", ref.PROBLEMS)
@pytest.mark.parametrize("config,atol", CONFIGS)
def test_reproduces_pytorch_optimizer(config, atol, prefix):
  """pytorch_optimizer 4.1.0 AdamP / SGDP (float32, foreach=False), 20 steps,
  every step, params O(1), rtol 1e-6 plus: 1e-5 for AdamP with b2 = 0.999
  (largest seen 7.9e-6: optkit keeps optax's bias correction 1 - b2^t from the
  float32 b2, 1.3e-5 relative off, so that AdamP = optax.adamw exactly), 2e-6
  for b2 = 0.99 and for SGDP (largest seen 1.2e-6). The fixture's normnet
  exercises the channel view (W1), the layer view (W2) and no projection
  (quadratic W), with every cosine at least 8% away from its threshold."""
  data = ref.load("adamp")
  ref.replay(data, prefix, config, _make(config, ref.hparams(data, config)), rtol=1e-6,
             atol=atol)


def test_fixture_exercises_every_view_and_no_near_ties():
  data = ref.load("adamp")
  seen = set()
  for config, _ in CONFIGS:
    for key in ("quadratic__{}__view__W", "normnet__{}__view__W1", "normnet__{}__view__W2"):
      seen |= set(np.asarray(data[key.format(config)]).tolist())
    for prefix in ref.PROBLEMS:
      assert float(data[f"{prefix}__{config}__margin"]) > 0.05
  assert seen == {0, 1, 2}


def test_fixture_needs_the_projection_and_the_layout(config="adamp_raw"):
  """Negative controls: no projection (delta = 0 never passes the test), or
  the Flax channel axis on PyTorch-layout weights, leave the reference path."""
  data = ref.load("adamp")
  hp = ref.hparams(data, config)
  assert ref.replay(data, "normnet", config, _make(config, hp, delta=0.0)) > 1e-3
  assert ref.replay(data, "normnet", config, _make(config, hp, channel_axis=-1)) > 1e-3


# ---------------------------------------------------------------- numerics, validation


def test_zero_rows_and_zero_eps_stay_finite():
  params = {"w": jnp.array([[0.0, 0.0], [1.0, 2.0]])}
  tx = scale_by_adamp(eps=0.0)
  u, _ = jax.jit(tx.update)({"w": jnp.zeros((2, 2))}, tx.init(params), params)
  assert np.all(np.isfinite(u["w"]))
  tx = scale_by_sgdp(eps=0.0)
  u, _ = jax.jit(tx.update)({"w": jnp.array([[0.0, 1.0], [0.0, 0.0]])}, tx.init(params),
                            params)
  assert np.all(np.isfinite(u["w"]))


@pytest.mark.parametrize("factory,kwargs,match", [
    (adamp, {"learning_rate": -1.0}, "adamp: `learning_rate`"),
    (adamp, {"learning_rate": 1e-3, "b1": 1.0}, "adamp: `b1`"),
    (adamp, {"learning_rate": 1e-3, "delta": -0.1}, "adamp: `delta`"),
    (adamp, {"learning_rate": 1e-3, "wd_ratio": 1.5}, "adamp: `wd_ratio`"),
    (adamp, {"learning_rate": 1e-3, "weight_decay": -1.0}, "adamp: `weight_decay`"),
    (adamp, {"learning_rate": 1e-3, "eps_placement": "inside"}, "adamp: `eps_placement`"),
    (sgdp, {"learning_rate": -1.0}, "sgdp: `learning_rate`"),
    (sgdp, {"learning_rate": 1e-3, "momentum": 1.0}, "sgdp: `momentum`"),
    (sgdp, {"learning_rate": 1e-3, "dampening": -0.5}, "sgdp: `dampening`"),
    (project_out_radial, {"inner": optax.identity(), "eps": -1.0}, "project_out_radial: `eps`"),
])
def test_bad_hyperparameters_raise(factory, kwargs, match):
  with pytest.raises(ValueError, match=match):
    factory(**kwargs)


def test_inner_must_be_a_transformation_and_params_are_required():
  with pytest.raises(TypeError, match="project_out_radial"):
    project_out_radial(optax.identity)
  tx = scale_by_adamp()
  params = {"w": jnp.ones((2, 2))}
  with pytest.raises(ValueError, match="adamp.*params"):
    tx.update(params, tx.init(params))
  with pytest.raises(ValueError, match="sgdp"):
    scale_by_sgdp().update({"v": jnp.ones(2)}, scale_by_sgdp().init(params), params)
