"""What makes Ranger21 itself (arXiv:2106.13731); the contract suite covers the
rest. Reference: pytorch_optimizer 4.1.0 ``Ranger21`` trajectories and final
states (tests/fixtures/reference/adaptive_ranger21.npz, made by
tools/make_ranger21_fixtures.py): params at every step to rtol 1e-5, atol 1e-6;
final state to rtol 1e-5, atol 1e-5 x the leaf's largest entry."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.adaptive import (
    Ranger21State,
    add_stable_weight_decay,
    normalize_by_std,
    ranger21,
    ranger21_learning_rate,
    scale_by_pnm,
)
import importlib
from tests import helpers

FIXTURE = helpers.fixture("adaptive_ranger21.npz")
TOL = dict(rtol=1e-5, atol=1e-6)
_HP_INT = ("num_iterations", "lookahead_k")


def _load():
  return dict(np.load(FIXTURE))


def _losses(fx, name):
  if name == "quadratic":
    keys = ("c", "b", "w", "k")

    def loss(p):
      return sum(0.5 * jnp.sum(fx[f"{name}__data__curv_{k}"] *
                               (p[k] - fx[f"{name}__data__center_{k}"]) ** 2) for k in keys)
    return loss
  x, y = fx[f"{name}__data__X"], fx[f"{name}__data__y"]

  def loss(p):
    z = (jnp.tanh(x @ p["w1"].T + p["b1"]) @ p["w2"].T)[:, 0]
    return jnp.mean(jax.nn.softplus(z) - y * z)
  return loss


def _hparams(fx, name):
  prefix = f"{name}__hparam__"
  hp = {k[len(prefix):]: float(v) for k, v in fx.items() if k.startswith(prefix)}
  lr = hp.pop("lr")
  for k in _HP_INT:
    if k in hp:
      hp[k] = int(hp[k])
  return lr, hp


# ---------------------------------------------------------------- reference trajectories


@pytest.mark.parametrize("name", ["quadratic", "mlp"])
def test_matches_pytorch_optimizer_ranger21(name):
  fx = _load()
  lr, hp = _hparams(fx, name)
  loss = _losses(fx, name)
  keys = sorted(k[len(f"{name}__p0__"):] for k in fx if k.startswith(f"{name}__p0__"))
  params = {k: jnp.asarray(fx[f"{name}__p0__{k}"]) for k in keys}
  tx = ranger21(lr, **hp)
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p))
  for i in range(int(fx[f"{name}__steps"])):
    u, state = step(params, state)
    params = optax.apply_updates(params, u)
    for k in keys:
      np.testing.assert_allclose(params[k], fx[f"{name}__traj__{k}"][i + 1], **TOL,
                                 err_msg=f"{name} step {i + 1} leaf {k}")
  core = state[-1]
  assert isinstance(core, Ranger21State)
  for field, ref in (("mu_odd", "grad_ma"), ("mu_even", "neg_grad_ma"), ("nu", "variance_ma"),
                     ("nu_max", "max_variance_ma"), ("slow", "lookahead_params")):
    for k in keys:
      expected = fx[f"{name}__state__{ref}__{k}"]
      # Centralized, std-normalized gradients: entries far below the leaf's
      # scale carry float32 cancellation error of the order 1e-6 x scale, so the
      # state's absolute tolerance is relative to the leaf's largest entry.
      np.testing.assert_allclose(getattr(core, field)[k], expected, rtol=1e-5,
                                 atol=1e-5 * max(float(np.max(np.abs(expected))), 0.1),
                                 err_msg=f"{name} state {field} leaf {k}")


# ---------------------------------------------------------------- hand-computed first step


def _np_unit_norm(x):
  if x.ndim <= 1:
    return np.linalg.norm(x.reshape(-1))
  axes = 1 if x.ndim in (2, 3) else tuple(range(1, x.ndim))
  return np.sqrt(np.sum(x * x, axis=axes, keepdims=True))


def _np_preprocess(g):
  if g.ndim > 1:
    g = g - g.mean(axis=tuple(range(1, g.ndim)), keepdims=True)
  if g.size > 2:
    g = g / (g.std(ddof=1) + 1e-8)
  return g


def test_hand_computed_first_step():
  """Step 1 in float64 NumPy from the module docstring's steps 1-10 (T = 100,
  so eta_1 = eta / W with W = floor(0.22 T) = 22; no lookahead sync)."""
  rng = np.random.default_rng(3)
  params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
  grads = {"w": 0.01 * rng.standard_normal((3, 4)), "b": 5.0 * rng.standard_normal(4)}
  lr, b1, b2, beta0, eps, wd, nl = 0.1, 0.9, 0.999, 0.9, 1e-8, 0.3, 0.2
  eta = lr / 22
  pre, nu = {}, {}
  for k in params:
    g, w = grads[k], params[k]
    max_norm = 1e-2 * np.maximum(_np_unit_norm(w), 1e-3)
    g_norm = np.maximum(_np_unit_norm(g), 1e-6)
    g = np.where(g_norm > max_norm, g * max_norm / g_norm, g)            # AGC
    pre[k] = _np_preprocess(g)
    nu[k] = (1 - b2) * pre[k] ** 2
  s = math.sqrt((1 + sum(np.sum(v / (1 - b2)) for v in nu.values())) / 16)
  expected = {}
  for k, w in params.items():
    w = w * (1 - eta * wd / s)
    w = w * (1 - eta * 2 * nl * (1 - 1 / (_np_unit_norm(w) + eps)))
    g2 = _np_preprocess(pre[k])
    n = (1 + beta0) * (1 - b1 ** 2) * g2 / math.sqrt((1 + beta0) ** 2 + beta0 ** 2)
    d = np.sqrt(nu[k]) / math.sqrt(1 - b2) + eps
    d = np.log1p(np.exp(50 * d)) / 50
    expected[k] = w - eta / (1 - b1) * n / d - params[k]
  tx = ranger21(lr, 100, weight_decay=wd, norm_loss_factor=nl)
  p32 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  u, _ = jax.jit(tx.update)(jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), grads),
                            tx.init(p32), p32)
  for k in params:
    np.testing.assert_allclose(u[k], expected[k], rtol=2e-5, atol=1e-6)


# ---------------------------------------------------------------- the pieces


def test_agc_uses_the_reference_unit_axes():
  """AGC (optax.adaptive_grad_clip per leaf) clips rows of 2-D leaves, all axes
  but 0 of 4-D leaves, whole 1-D leaves. Negative control: optax's default
  axes (columns for 2-D) clip a (4, 1) leaf differently."""
  rng = np.random.default_rng(0)
  params = {"a": rng.standard_normal((4, 1)), "b": rng.standard_normal((3, 5)),
            "c": rng.standard_normal(6), "d": rng.standard_normal((2, 3, 2, 2))}
  grads = {k: 0.05 * rng.standard_normal(v.shape) * (1 + 10 * rng.random(v.shape))
           for k, v in params.items()}
  clip, floor = 0.02, 1e-3
  tx = importlib.import_module("optkit.adaptive.ranger21")._agc_rows(clip, floor)
  f32 = lambda t: jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), t)
  out, _ = jax.jit(tx.update)(f32(grads), tx.init(None), f32(params))
  clipped_any = False
  for k in params:
    max_norm = clip * np.maximum(_np_unit_norm(params[k]), floor)
    g_norm = np.maximum(_np_unit_norm(grads[k]), 1e-6)
    clipped_any |= bool(np.any(g_norm > max_norm))
    expected = np.where(g_norm > max_norm, grads[k] * max_norm / g_norm, grads[k])
    np.testing.assert_allclose(out[k], expected, rtol=1e-5, atol=1e-7)
  assert clipped_any
  default, _ = optax.adaptive_grad_clip(clip, floor).update(
      f32({"a": grads["a"]}), optax.EmptyState(), f32({"a": params["a"]}))
  assert not np.allclose(default["a"], out["a"], rtol=1e-3)


def test_normalize_by_std():
  g = {"big": jnp.array([[1.0, 2.0], [4.0, -3.0]]), "small": jnp.array([3.0, -5.0]),
       "scalar": jnp.array(7.0)}
  out, _ = normalize_by_std().update(g, optax.EmptyState())
  big = np.asarray(g["big"], np.float64)
  np.testing.assert_allclose(out["big"], big / (big.std(ddof=1) + 1e-8), rtol=1e-6)
  np.testing.assert_allclose(np.std(out["big"], ddof=1), 1.0, rtol=1e-6)
  chex.assert_trees_all_equal(out["small"], g["small"])   # size <= 2: unchanged
  chex.assert_trees_all_equal(out["scalar"], g["scalar"])


def test_pnm_hand_computed_and_parity():
  """Odd steps update one buffer, even steps the other; n mixes the current
  buffer with the other one (negative momentum)."""
  b1, beta0 = 0.5, 0.5
  tx = scale_by_pnm(b1, beta0)
  g1, g2, g3 = jnp.array([1.0]), jnp.array([2.0]), jnp.array([-4.0])
  s = tx.init(g1)
  norm = math.sqrt(1.5 ** 2 + 0.5 ** 2)
  n1, s = tx.update(g1, s)
  a = 0.75 * 1.0                               # m_odd after step 1
  np.testing.assert_allclose(n1, [1.5 * a / norm], rtol=1e-6)
  n2, s = tx.update(g2, s)
  b = 0.75 * 2.0                               # m_even after step 2; m_odd unchanged
  np.testing.assert_allclose(s.mu_odd, [a], rtol=1e-6)
  np.testing.assert_allclose(n2, [(1.5 * b - 0.5 * a) / norm], rtol=1e-6)
  n3, s = tx.update(g3, s)
  a = 0.25 * a + 0.75 * -4.0
  np.testing.assert_allclose(s.mu_even, [b], rtol=1e-6)
  np.testing.assert_allclose(n3, [(1.5 * a - 0.5 * b) / norm], rtol=1e-6)


def test_pnm_constant_gradient_limit_and_negative_control():
  """Defining property: with a constant gradient both buffers tend to g, so
  n -> g / sqrt((1 + beta0)^2 + beta0^2): PNM's noise normalization shrinks the
  mean step, while plain momentum (beta0 = 0) keeps n -> g."""
  g = jnp.array([2.0, -1.0])
  for beta0, limit in ((0.9, 1 / math.sqrt(1.9 ** 2 + 0.81)), (0.0, 1.0)):
    tx = scale_by_pnm(0.5, beta0)
    s = tx.init(g)
    for _ in range(60):
      n, s = tx.update(g, s)
    np.testing.assert_allclose(n, g * limit, rtol=1e-5)


def test_add_stable_weight_decay_definition():
  rng = np.random.default_rng(2)
  p = {"a": jnp.asarray(rng.standard_normal(3), jnp.float32),
       "b": jnp.asarray(rng.standard_normal((2, 2)), jnp.float32)}
  gs = [{k: jnp.asarray(rng.standard_normal(v.shape), jnp.float32) for k, v in p.items()}
        for _ in range(3)]
  wd, b2 = 0.3, 0.9
  tx = add_stable_weight_decay(wd, b2)
  s = tx.init(p)
  nu = {k: 0.0 for k in p}
  for t, g in enumerate(gs, start=1):
    u, s = tx.update(g, s, p)
    nu = {k: b2 * nu[k] + (1 - b2) * np.asarray(g[k], np.float64) ** 2 for k in p}
    norm = math.sqrt((1 + sum(np.sum(v) for v in nu.values()) / (1 - b2 ** t)) / 7)
    for k in p:
      np.testing.assert_allclose(u[k], np.asarray(g[k]) + wd * np.asarray(p[k]) / norm,
                                 rtol=1e-5)
  with pytest.raises(ValueError, match="add_stable_weight_decay"):
    tx.update(gs[0], s)


# ---------------------------------------------------------------- schedule and lookahead


def _reference_lr(lr, t, b2, total, min_lr):
  w = math.ceil(2.0 / (1.0 - b2))
  w = int(0.22 * total) if w / total > 0.45 else w
  cur = lr if t > w else lr * min(1.0, t / w)
  start = int(0.72 * total)
  n_down = total - start
  if t >= start:
    pct = min(max(t + 1 - start, 1) / (n_down + 1), 1.0)
    cur = max(lr - (lr - min_lr) * pct, min_lr)
  return cur


@pytest.mark.parametrize("b2,total", [(0.999, 100), (0.9, 1000), (0.95, 300), (0.99, 1000)])
def test_warmup_warmdown_schedule(b2, total):
  """Exact for a concrete b2. A traced (injected) float32 b2 cannot reproduce
  the reference's float64 ceil(2 / (1 - b2)) in general: for b2 = 0.9 the
  reference gets 21 (2 / 0.09999999999999998), float32 gives 20 (documented)."""
  ts = np.arange(1, total + 1)
  expected = np.array([_reference_lr(0.5, int(t), b2, total, 0.01) for t in ts])
  lr_fn = jax.jit(jax.vmap(lambda t, b: ranger21_learning_rate(0.5, t, b, total, 0.01),
                           in_axes=(0, None)))
  concrete = np.array(jax.vmap(lambda t: ranger21_learning_rate(0.5, t, b2, total, 0.01))(ts))
  np.testing.assert_allclose(concrete, expected, rtol=1e-5)
  traced = np.asarray(lr_fn(jnp.asarray(ts), jnp.float32(b2)))
  if b2 == 0.9:
    np.testing.assert_allclose(traced[0], 0.5 / 20, rtol=1e-5)
    assert expected[0] == pytest.approx(0.5 / 21)
    np.testing.assert_allclose(traced[30:], expected[30:], rtol=1e-5)
  else:
    np.testing.assert_allclose(traced, expected, rtol=1e-5)
  assert expected[-1] == pytest.approx(0.01)


def test_lookahead_equals_optax_lookahead_on_fast_weights():
  """Ranger21 with lookahead (k = 3, alpha = 0.6) equals optax.lookahead around
  Ranger21 without it (alpha = 1), on the fast weights. Negative control: the
  run without lookahead differs."""
  loss = lambda p: jnp.sum((p["x"] - 3.0) ** 2) + jnp.sum(p["y"] ** 4)
  p0 = {"x": jnp.arange(6.0).reshape(2, 3), "y": jnp.array([1.0, -2.0, 0.5])}
  kw = dict(weight_decay=0.01, norm_loss_factor=0.01)
  mine = ranger21(0.1, 20, lookahead_k=3, lookahead_alpha=0.6, **kw)
  plain = ranger21(0.1, 20, lookahead_k=3, lookahead_alpha=1.0, **kw)
  ref = optax.lookahead(plain, sync_period=3, slow_step_size=0.6)
  def stepper(tx, fast=lambda p: p):
    def step(p, s):
      u, s = tx.update(jax.grad(loss)(fast(p)), s, p)
      return optax.apply_updates(p, u), s
    return jax.jit(step)

  p, s = p0, mine.init(p0)
  q, sq = p0, plain.init(p0)
  lp = optax.LookaheadParams(fast=p0, slow=p0)
  ls = ref.init(lp)
  step_mine, step_plain = stepper(mine), stepper(plain)
  step_ref = stepper(ref, lambda lp: lp.fast)
  # float32 reassociation: alpha w + (1 - alpha) w_slow vs w_slow + alpha (w - w_slow).
  tol = dict(rtol=1e-5, atol=1e-6)
  for _ in range(10):
    p, s = step_mine(p, s)
    lp, ls = step_ref(lp, ls)
    q, sq = step_plain(q, sq)
    chex.assert_trees_all_close(p, lp.fast, **tol)
  chex.assert_trees_all_close(s[-1].slow, lp.slow, **tol)
  assert not np.allclose(p["x"], q["x"], rtol=1e-4)


# ---------------------------------------------------------------- errors


def test_bad_hyperparameters_and_missing_params_raise():
  with pytest.raises(ValueError, match="ranger21"):
    ranger21(-1.0, 10)
  with pytest.raises(ValueError, match="ranger21"):
    ranger21(1e-3, 0)
  with pytest.raises(ValueError, match="ranger21"):
    ranger21(1e-3, 10, b2=1.0)
  with pytest.raises(ValueError, match="ranger21"):
    ranger21(1e-3, 10, lookahead_alpha=1.5)
  with pytest.raises(ValueError, match="pnm"):
    scale_by_pnm(beta0=-0.1)
  tx = ranger21(1e-3, 10)
  p = {"a": jnp.ones(3)}
  with pytest.raises(ValueError, match="ranger21"):
    tx.update(p, tx.init(p))
