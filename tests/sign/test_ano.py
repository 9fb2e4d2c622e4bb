"""What makes ANO / Anolog themselves (arXiv:2508.18258); the contract suite covers the rest."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers

FIXTURE = helpers.fixture("sign_ano.npz")
_tree = helpers.random_tree
_grads = helpers.gradient_sequence


def _leaves(tree):
  return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def _run_params(tx, params, grads):
  """Open loop: feeds fixed gradients, returns the params after every step."""
  state = tx.init(params)
  update = jax.jit(tx.update)
  out = []
  for g in grads:
    u, state = update(g, state, params)
    params = optax.apply_updates(params, u)
    out.append((params, state))
  return out


# ---------------------------------------------------------------- NumPy port of the official rule


def _official_numpy(params, grads, lr, b1, b2, eps, wd, log_schedule, bias_correction):
  """The official Adrienkgz/ano-experiments rule (ano.py / anolog.py) restated in
  float64 NumPy, per leaf: decay first, then x -= lr |g| sign(m) / sqrt(vh + eps)."""
  xs = [np.asarray(x, np.float64) for x in params]
  ms = [np.zeros_like(x) for x in xs]
  vs = [np.zeros_like(x) for x in xs]
  out = []
  for t, g_tree in enumerate(grads, start=1):
    beta1 = 1.0 - 1.0 / math.log(max(2, t)) if log_schedule else b1
    bc2 = 1.0 - b2 ** t if bias_correction else 1.0
    for i, g in enumerate(g_tree):
      ms[i] = ms[i] * beta1 + (1 - beta1) * g
      sq = g * g
      vs[i] = vs[i] * b2 + (1 - b2) * np.sign(sq - vs[i]) * sq
      step = lr / np.sqrt(vs[i] / bc2 + eps) * np.abs(g) * np.sign(ms[i])
      xs[i] = xs[i] * (1 - lr * wd) - step
    out.append([x.copy() for x in xs])
  return out


@pytest.mark.parametrize("variant", ["ano", "anolog"])
def test_matches_numpy_port_of_official_rule(variant):
  """Catalog test (1): 10 steps, eps inside the root (official), every param to
  rtol 1e-6 / atol 1e-6 (optkit float32 vs the port in float64)."""
  lr, wd, eps = 0.05, 0.1, 1e-6
  params = _tree(11)
  grads = _grads(10, seed=5, decay=0.2)   # shrinking gradients exercise sign(g^2 - v) < 0
  if variant == "ano":
    tx = optkit.ano(lr, b1=0.92, b2=0.99, eps=eps, weight_decay=wd)
    ref = _official_numpy(_leaves(params), [_leaves(g) for g in grads], lr, 0.92, 0.99, eps,
                          wd, False, True)
  else:
    tx = optkit.anolog(lr, eps=eps, weight_decay=wd)      # official b2 = 0.999, no correction
    ref = _official_numpy(_leaves(params), [_leaves(g) for g in grads], lr, None, 0.999, eps,
                          wd, True, False)
  ours = _run_params(tx, params, grads)
  negative_v_updates = 0
  for t, ((p, s), r) in enumerate(zip(ours, ref)):
    for a, b in zip(_leaves(p), r):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=f"step {t + 1}")
  # The sign(g^2 - v) = -1 branch of the Yogi-style update was exercised.
  grads_np = [_leaves(g) for g in grads]
  for t in range(1, len(grads)):
    v_prev = _leaves(ours[t - 1][1][0].nu)
    negative_v_updates += sum(int(np.sum(g * g < v)) for g, v in zip(grads_np[t], v_prev))
  assert negative_v_updates > 0


def test_eps_placement_flag_changes_the_rule():
  """eps inside vs outside the root: equal when eps = 0, different otherwise."""
  params = _tree(2)
  grads = _grads(4, seed=1)
  inside = _run_params(optkit.ano(0.05, eps=0.0), params, grads)[-1][0]
  outside = _run_params(optkit.ano(0.05, eps=0.0, eps_inside_sqrt=False), params, grads)[-1][0]
  for a, b in zip(_leaves(inside), _leaves(outside)):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  inside = _run_params(optkit.ano(0.05, eps=0.1), params, grads)[-1][0]
  outside = _run_params(optkit.ano(0.05, eps=0.1, eps_inside_sqrt=False), params, grads)[-1][0]
  assert not all(np.allclose(a, b) for a, b in zip(_leaves(inside), _leaves(outside)))


# ---------------------------------------------------------------- hand-computed steps


def test_hand_computed_first_two_steps():
  lr, b1, b2, eps = 0.1, 0.92, 0.99, 1e-8
  opt = optkit.ano(lr, b1=b1, b2=b2, eps=eps)
  p = jnp.zeros(3)
  g1 = np.array([2.0, -0.5, 0.0], np.float32)
  u1, s = opt.update(jnp.asarray(g1), opt.init(p), p)
  # t = 1: v_1 = (1 - b2) g^2, vh = g^2, u = |g| sign(g) / sqrt(g^2 + eps).
  np.testing.assert_allclose(u1, -lr * g1 / np.sqrt(g1 ** 2 + eps), rtol=1e-6, atol=1e-12)
  g2 = np.array([-1.0, -2.0, 0.0], np.float32)
  u2, _ = opt.update(jnp.asarray(g2), s, p)
  m = b1 * (1 - b1) * g1 + (1 - b1) * g2          # [0.0672, -0.1968, 0]: sign(m0) = +1
  v1 = (1 - b2) * g1 ** 2
  v = b2 * v1 + (1 - b2) * np.sign(g2 ** 2 - v1) * g2 ** 2
  vh = v / (1 - b2 ** 2)
  np.testing.assert_allclose(u2, -lr * np.abs(g2) * np.sign(m) / np.sqrt(vh + eps), rtol=1e-5)
  # Coordinate 0: g_2 < 0 but m_2 > 0, so ANO moves x_0 DOWN (against the momentum).
  assert m[0] > 0 and u2[0] < 0


def test_update_is_abs_grad_times_momentum_sign():
  """Catalog test (2): |u| = lr |g| / sqrt(vh + eps) (proportional to |g| for a
  given state) and sign(u) = -sign(m_t)."""
  lr, eps, b2 = 0.05, 1e-8, 0.99
  params = _tree(4)
  grads = _grads(8, seed=6)
  tx = optkit.ano(lr, b2=b2, eps=eps)
  state = tx.init(params)
  update = jax.jit(tx.update)
  disagree_with_grad = 0
  for t, g in enumerate(grads, start=1):
    u, state = update(g, state, params)
    for ul, gl, ml, vl in zip(_leaves(u), _leaves(g), _leaves(state[0].mu),
                              _leaves(state[0].nu)):
      np.testing.assert_array_equal(np.sign(ul), -np.sign(ml))
      np.testing.assert_allclose(np.abs(ul), lr * np.abs(gl) / np.sqrt(vl / (1 - b2 ** t) + eps),
                                 rtol=1e-5)
      disagree_with_grad += int(np.sum(np.sign(ul) != -np.sign(gl)))
  # Negative control: a gradient-sign method (signSGD, Grams) would have
  # sign(u) = -sign(g) everywhere; ANO does not.
  assert disagree_with_grad > 0


def test_anolog_beta1_schedule_and_no_bias_correction():
  """Catalog test (3): b1_t = 1 - 1/ln(max(2, t)): -0.4427 at t = 1, 2 (negative,
  as in the official code) and 0.0898 at t = 3; v is not bias-corrected."""
  opt = optkit.scale_by_ano(logarithmic_schedule=True, b2=0.999, bias_correction=False)
  g = [np.array([1.0, -2.0], np.float32), np.array([3.0, 1.0], np.float32),
       np.array([-1.0, 0.5], np.float32)]
  beta = [1 - 1 / math.log(2), 1 - 1 / math.log(2), 1 - 1 / math.log(3)]
  assert beta[0] < 0 and beta[1] < 0 and 0 < beta[2] < 0.1
  state = opt.init(jnp.zeros(2))
  m = np.zeros(2)
  for t in range(3):
    u, state = opt.update(jnp.asarray(g[t]), state)
    m = beta[t] * m + (1 - beta[t]) * g[t]
    np.testing.assert_allclose(state.mu, m, rtol=1e-6)
    if t == 0:
      # No bias correction: |u_1| = |g| / sqrt(0.001 g^2 + eps) = 31.6, not 1.
      np.testing.assert_allclose(np.abs(u), np.abs(g[0]) / np.sqrt(1e-3 * g[0] ** 2 + 1e-8),
                                 rtol=1e-5)
  # Negative control: with the correction, the first step has |u_1| = 1.
  corrected = optkit.scale_by_ano(logarithmic_schedule=True, b2=0.999)
  u, _ = corrected.update(jnp.asarray(g[0]), corrected.init(jnp.zeros(2)))
  np.testing.assert_allclose(np.abs(u), 1.0, rtol=1e-5)


def test_zero_gradient_and_zero_eps_stay_finite():
  tx = optkit.scale_by_ano(eps=0.0)
  state = tx.init(jnp.zeros(3))
  for g in ([0.0, 0.0, 0.0], [1.0, 0.0, -1.0], [0.0, 0.0, 0.0]):
    u, state = tx.update(jnp.asarray(g), state)
    assert np.all(np.isfinite(u)) and np.all(np.isfinite(state.nu))
  assert u[1] == 0.0


# ---------------------------------------------------------------- pytorch_optimizer fixture


@pytest.mark.parametrize("case", ["quadratic", "logreg", "quadratic_log"])
def test_reproduces_pytorch_optimizer_ano(case):
  """20 steps of pytorch_optimizer 4.1.0 Ano (eps outside the root, float32),
  every parameter at every step to rtol 1e-6, atol 1e-6. 'quadratic_log' is its
  logarithmic_schedule=True (b2 = 0.99 with bias correction)."""
  data = np.load(FIXTURE)
  hp = {k: float(data[f"{case}__hparam__{k}"])
        for k in ("lr", "b1", "b2", "eps", "weight_decay", "log")}
  traj = helpers.fixture_trajectory(data, f"{case}__traj__")
  loss = helpers.fixture_loss(data, str(data[f"{case}__problem"]))
  tx = optax.chain(
      optkit.scale_by_ano(b1=hp["b1"], b2=hp["b2"], eps=hp["eps"],
                          logarithmic_schedule=bool(hp["log"]), eps_inside_sqrt=False),
      optax.add_decayed_weights(hp["weight_decay"]),
      optax.scale_by_learning_rate(hp["lr"]))
  if not hp["log"]:   # the public optimizer is that chain
    tx = optkit.ano(hp["lr"], b1=hp["b1"], b2=hp["b2"], eps=hp["eps"],
                    weight_decay=hp["weight_decay"], eps_inside_sqrt=False)
  helpers.replay_trajectory(tx, loss, traj, rtol=1e-6, atol=1e-6, label=case)
  assert max(np.max(np.abs(v[-1] - v[0])) for v in traj.values()) > 0.1


# ---------------------------------------------------------------- dtypes, validation


def test_bf16_params_keep_bf16_updates_and_f32_statistics():
  p = {"w": jnp.ones((3,), jnp.bfloat16)}
  opt = optkit.anolog(1e-2)
  state = opt.init(p)
  for _ in range(2):
    u, state = opt.update({"w": jnp.array([1.0, -2.0, 0.5], jnp.bfloat16)}, state, p)
    assert u["w"].dtype == jnp.bfloat16
  assert state[0].mu["w"].dtype == jnp.float32 and state[0].nu["w"].dtype == jnp.float32


@pytest.mark.parametrize("factory,kwargs", [
    (optkit.ano, {"learning_rate": -1.0}),
    (optkit.ano, {"learning_rate": 1e-3, "b1": 1.0}),
    (optkit.ano, {"learning_rate": 1e-3, "b2": 1.5}),
    (optkit.ano, {"learning_rate": 1e-3, "eps": -1.0}),
    (optkit.ano, {"learning_rate": 1e-3, "weight_decay": -1.0}),
    (optkit.ano, {"learning_rate": 1e-3, "eps_inside_sqrt": "yes"}),
    (optkit.anolog, {"learning_rate": -1.0}),
    (optkit.anolog, {"learning_rate": 1e-3, "b2": 1.0}),
])
def test_bad_hyperparameters_raise(factory, kwargs):
  with pytest.raises(ValueError, match=factory.__name__):
    factory(**kwargs)


def test_mismatched_tree_raises():
  opt = optkit.scale_by_ano()
  state = opt.init({"a": jnp.zeros(2), "b": jnp.zeros(3)})
  with pytest.raises(ValueError, match="ano"):
    opt.update({"a": jnp.zeros(2)}, state)
