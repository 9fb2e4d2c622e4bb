"""What makes AdEMAMix AdEMAMix (arXiv:2409.03137); the contract suite covers the rest."""

from __future__ import annotations

import json
import math
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax import contrib as optax_contrib
import pytest

from optkit.momentum import (
    ademamix,
    ademamix_alpha_schedule,
    ademamix_b3_schedule,
    scale_by_ademamix,
    simplified_ademamix,
)
from tests import helpers

FIXTURE = helpers.fixture("momentum_ademamix.npz")
TREE = helpers.SMALL_TREE
_tree = helpers.random_tree
_grads = helpers.gradient_sequence
_run_open_loop = helpers.run_open_loop


# ---------------------------------------------------------------- first step


def test_hand_computed_first_step():
  b1, b2, b3, alpha, eps, lr, wd = 0.9, 0.999, 0.9999, 5.0, 1e-8, 0.1, 0.5
  opt = ademamix(lr, b1, b2, b3, alpha, eps, weight_decay=wd)
  p = jnp.array([1.0, -1.0, 2.0])
  g = jnp.array([0.3, -2.0, 0.0])
  u, s = opt.update(g, opt.init(p), p)
  gn = np.asarray(g, np.float64)
  m1_hat = gn                       # (1-b1) g / (1-b1)
  m2 = (1 - b3) * gn                # no bias correction
  nu_hat = gn ** 2
  expected = -lr * ((m1_hat + alpha * m2) / (np.sqrt(nu_hat) + eps) + wd * np.asarray(p))
  np.testing.assert_allclose(u, expected, rtol=1e-5, atol=1e-7)
  # Test (4) of the entry: m2 carries no bias correction: m2 = (1 - b3) g.
  np.testing.assert_allclose(s[0].m2, (1 - b3) * gn, rtol=1e-6)
  np.testing.assert_allclose(s[0].m1, (1 - b1) * gn, rtol=1e-6)


def test_slow_ema_not_bias_corrected_negative_control():
  """A bias-corrected m2 would give (m1_hat + alpha g) / |g|: visibly larger."""
  with jax.enable_x64(True):
    tx = scale_by_ademamix(alpha=5.0, eps=0.0)
    g = jnp.array([2.0], jnp.float64)
    u, _ = tx.update(g, tx.init(g))
  np.testing.assert_allclose(u, [1.0 + 5.0 * 1e-4], rtol=1e-12)
  assert not np.allclose(u, [1.0 + 5.0], rtol=1e-3)  # the corrected form


# ---------------------------------------------------------------- reductions


def test_alpha_zero_is_adam():
  params = _tree(3)
  grads = _grads(10, seed=2)
  mine = _run_open_loop(scale_by_ademamix(0.9, 0.999, 0.9999, 0.0), params, grads)
  ref = _run_open_loop(optax.scale_by_adam(0.9, 0.999, 1e-8), params, grads)
  for (u, _), (ur, _) in zip(mine, ref):
    chex.assert_trees_all_close(u, ur, rtol=1e-6, atol=1e-6)
  # Negative control: the default alpha = 5 is not Adam.
  default = _run_open_loop(scale_by_ademamix(), params, grads)
  diff = max(float(jnp.max(jnp.abs(a - b)))
             for (u, _), (ur, _) in zip(default, ref)
             for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(ur)))
  assert diff > 1e-3


# ---------------------------------------------------------------- optax


@pytest.mark.parametrize("kwargs", [
    {},
    {"b1": 0.8, "b2": 0.99, "b3": 0.999, "alpha": 8.0, "eps": 1e-6, "eps_root": 1e-9},
    {"weight_decay": 0.2, "mask": {"a": True, "b": False, "c": True}},
], ids=["defaults", "hparams", "decay_mask"])
def test_equals_optax_contrib_ademamix_exactly(kwargs):
  params = _tree(42)
  grads = _grads(10)
  mine = _run_open_loop(ademamix(3e-2, **kwargs), params, grads)
  ref = _run_open_loop(optax_contrib.ademamix(3e-2, **kwargs), params, grads)
  for (u, s), (ur, sr) in zip(mine, ref):
    chex.assert_trees_all_equal(u, ur)
    chex.assert_trees_all_equal(s, sr)


def test_direction_equals_optax_contrib_scale_by_ademamix():
  """Test (2): constant alpha, b3, 10 steps of random grads (optax's alpha=6 passed)."""
  params = _tree(1)
  grads = _grads(10, seed=3)
  mine = _run_open_loop(scale_by_ademamix(0.9, 0.999, 0.9999, 6.0), params, grads)
  ref = _run_open_loop(optax_contrib.scale_by_ademamix(), params, grads)
  for (u, s), (ur, sr) in zip(mine, ref):
    chex.assert_trees_all_equal(u, ur)
    chex.assert_trees_all_equal(s, sr)


def test_warmup_equals_optax_with_the_schedules():
  params = _tree(4)
  grads = _grads(12, seed=5)
  mine = _run_open_loop(ademamix(1e-2, t_alpha=8, t_b3=6), params, grads)
  ref = _run_open_loop(
      optax_contrib.ademamix(1e-2, b3=ademamix_b3_schedule(0.9, 0.9999, 6),
                             alpha=ademamix_alpha_schedule(5.0, 8)), params, grads)
  for (u, _), (ur, _) in zip(mine, ref):
    chex.assert_trees_all_equal(u, ur)


def test_simplified_ademamix_is_optax_reexport():
  assert simplified_ademamix is optax_contrib.simplified_ademamix


# ---------------------------------------------------------------- schedules


def test_schedule_values_at_0_half_and_full():
  """Test (3): closed forms at t = 1 (first update), T/2 and T; step = t - 1."""
  b1, b3, alpha, big_t = 0.9, 0.9999, 5.0, 100
  a_s = ademamix_alpha_schedule(alpha, big_t)
  b_s = ademamix_b3_schedule(b1, b3, big_t)
  with jax.enable_x64(True):  # float64 schedules: compare to the closed form at 1e-12
    _check_schedules(a_s, b_s, b1, b3, alpha, big_t)
  # float32 (default): the same values to float32 precision.
  np.testing.assert_allclose(float(b_s(big_t // 2 - 1)),
                             _b3_closed(b1, b3, big_t // 2, big_t), rtol=1e-5)


def _b3_closed(b1, b3, t, big_t):
  f = t / big_t
  val = math.exp(math.log(b1) * math.log(b3) / ((1 - f) * math.log(b3) + f * math.log(b1)))
  return min(val, b3)


def _check_schedules(a_s, b_s, b1, b3, alpha, big_t):
  for t in (1, big_t // 2, big_t, 3 * big_t):
    np.testing.assert_allclose(float(a_s(t - 1)), min(t * alpha / big_t, alpha), rtol=1e-12)
    np.testing.assert_allclose(float(b_s(t - 1)), _b3_closed(b1, b3, t, big_t), rtol=1e-12)
  # t -> 0 limit of the formula: b3(0) = b1 and alpha(0) = 0 (step = -1).
  np.testing.assert_allclose(float(b_s(-1)), b1, rtol=1e-12)
  assert float(a_s(-1)) == 0.0
  # b3 at T/2 lies strictly between b1 and b3 (it is warming up).
  assert b1 < float(b_s(big_t // 2 - 1)) < b3


def test_schedules_guard_zero_horizon_and_jit():
  assert float(ademamix_b3_schedule(0.9, 0.999, 0)(5)) == pytest.approx(0.999, rel=1e-6)
  assert float(ademamix_alpha_schedule(4.0, 0)(0)) == 4.0
  f = jax.jit(ademamix_b3_schedule(0.9, 0.999, 10))
  assert np.isfinite(float(f(jnp.int32(3))))


# ---------------------------------------------------------------- dtypes


def _slow_ema_after(tx, n=2000):
  p = {"w": jnp.ones((3,), jnp.bfloat16)}
  g = {"w": jnp.full((3,), 0.5, jnp.bfloat16)}

  def body(s, _):
    u, s = tx.update(g, s)
    return s, u["w"].dtype == jnp.bfloat16

  s, _ = jax.lax.scan(body, tx.init(p), None, length=n)
  return s


def test_slow_ema_stays_float32_for_bf16_params():
  tx = scale_by_ademamix(mu_dtype=jnp.bfloat16)
  s = _slow_ema_after(tx)
  assert s.m1["w"].dtype == jnp.bfloat16
  assert s.m2["w"].dtype == jnp.float32 and s.nu["w"].dtype == jnp.float32
  exact = 0.5 * (1 - 0.9999 ** 2000)
  # float32 m2 keeps accumulating (the increment is rounded in bf16: 0.2%).
  np.testing.assert_allclose(s.m2["w"], exact, rtol=5e-3)
  # Negative control: optax's bf16 m2 stalls (0.9999 m2 rounds to m2 in bf16).
  ref = _slow_ema_after(optax_contrib.scale_by_ademamix())
  assert float(jnp.max(jnp.abs(ref.m2["w"].astype(jnp.float32) - exact))) > 0.3 * exact
  u, _ = tx.update({"w": jnp.ones((3,), jnp.bfloat16)}, s)
  assert u["w"].dtype == jnp.bfloat16


# ---------------------------------------------------------------- reference fixture


def _problem_loss(name, data):
  if name == "quadratic":
    def loss(p):
      return (0.5 * jnp.sum(data["A"] * (p["w"] - data["W_star"]) ** 2)
              + 0.5 * jnp.sum(data["d"] * (p["b"] - data["b_star"]) ** 2))
  else:
    def loss(p):
      logits = data["X"] @ p["w"] + p["b"]
      logp = jax.nn.log_softmax(logits)
      return -jnp.mean(jnp.take_along_axis(logp, data["y"][:, None], axis=1))
  return loss


def replay(fix, opt, pname):
  """Runs opt in float64 on the fixture's problem; returns the param trajectory."""
  data = {k.split("__", 1)[1]: jnp.asarray(fix[k]) for k in fix.files
          if k.startswith(pname + "__")}
  loss = _problem_loss(pname, data)
  p = {"w": data["w0"], "b": data["b0"]}
  state = opt.init(p)

  @jax.jit
  def step(p, state):
    g = jax.grad(loss)(p)
    u, state = opt.update(g, state, p, value_fn=loss)
    return optax.apply_updates(p, u), state

  ws, bs = [], []
  for _ in range(int(fix["steps"])):
    p, state = step(p, state)
    ws.append(np.asarray(p["w"]))
    bs.append(np.asarray(p["b"]))
  return np.stack(ws), np.stack(bs)


@pytest.mark.parametrize("pname", ["quadratic", "logreg"])
@pytest.mark.parametrize("cname", ["constant", "warmup_decay"])
def test_matches_pytorch_optimizer_trajectory(cname, pname):
  """pytorch_optimizer 4.1.0 AdEMAMix, float64 both sides, 25 steps: rtol 1e-9."""
  fix = np.load(FIXTURE)
  cfg = json.loads(str(fix["configs"]))[cname]
  b1, b2, b3 = cfg["betas"]
  t = cfg.get("t_alpha_beta3")
  with jax.enable_x64(True):
    opt = ademamix(cfg["lr"], b1, b2, b3, cfg["alpha"], cfg["eps"],
                   weight_decay=cfg["weight_decay"], t_alpha=t, t_b3=t)
    ws, bs = replay(fix, opt, pname)
  np.testing.assert_allclose(ws, fix[f"{cname}__{pname}__w"], rtol=1e-9, atol=1e-11)
  np.testing.assert_allclose(bs, fix[f"{cname}__{pname}__b"], rtol=1e-9, atol=1e-11)
  # Negative control: without the warm-up (or with alpha = 0) the trajectory differs.
  with jax.enable_x64(True):
    other = ademamix(cfg["lr"], b1, b2, b3, 0.0, cfg["eps"],
                     weight_decay=cfg["weight_decay"])
    wo, _ = replay(fix, other, pname)
  assert np.max(np.abs(wo - fix[f"{cname}__{pname}__w"])) > 1e-4


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs", [
    {"b1": 1.5}, {"b3": -0.1}, {"alpha": -1.0}, {"eps": -1.0}, {"t_alpha": -5},
])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="ademamix"):
    ademamix(1e-3, **kwargs)


def test_schedule_with_warmup_raises():
  with pytest.raises(ValueError, match="ademamix.*alpha"):
    scale_by_ademamix(alpha=lambda c: 1.0, t_alpha=10)
  with pytest.raises(ValueError, match="ademamix"):
    ademamix(-1.0)


def test_mismatched_tree_raises():
  tx = scale_by_ademamix()
  s = tx.init({"a": jnp.zeros(3)})
  with pytest.raises(ValueError, match="ademamix"):
    tx.update({"b": jnp.zeros(3)}, s)
