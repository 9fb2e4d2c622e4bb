"""Sophia (arXiv:2305.14342): Sophia-H, Sophia-G and the GNB estimator.

References and tolerances:
* ``optax.contrib.sophia`` (0.2.8), the same probes (optkit's Hutchinson
  estimator handed to optax, which calls the loss ``obj_fn``), and optax's own
  default estimator on a diagonal-Hessian problem: rtol 1e-6 / atol 1e-7 (f32).
* pytorch_optimizer 4.1.0 ``SophiaH`` on a diagonal-Hessian quartic
  (``tests/fixtures/reference/curvature_sophia.npz``, made by
  ``tools/make_sophia_fixtures.py``): trajectory and final state (momentum,
  hessian_moment), float64, atol 1e-12.
* A float64 NumPy port of the official SophiaG step (Liuhong99/Sophia
  ``sophia.py`` + ``train_sophiag.py`` loop, restated from the catalog entry)
  with the same sampled labels: atol 1e-10.
* GNB: E[B g_hat * g_hat] equals the exact Gauss-Newton diagonal within 5%
  (10^4 Monte-Carlo samples).
"""

from __future__ import annotations

import importlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers

sophia_mod = importlib.import_module("optkit.curvature.sophia")

FIXTURE = helpers.fixture("curvature_sophia.npz")

# Diagonal quadratic: 0.5 * sum a x^2, Hessian diag(a).
_A = jnp.array([1.0, 100.0, 4.0])
_X = jnp.array([0.01, 0.0001, -0.05])


def _diag_loss(p):
  return 0.5 * jnp.sum(_A * p ** 2)


# A small MLP (non-diagonal Hessian).
_XS = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
_YS = np.random.default_rng(1).standard_normal((16, 2)).astype(np.float32)


def _mlp_params():
  rng = np.random.default_rng(2)
  return {"w1": jnp.asarray(rng.standard_normal((3, 4)), jnp.float32),
          "b1": jnp.asarray(0.1 * rng.standard_normal(4), jnp.float32),
          "w2": jnp.asarray(rng.standard_normal((4, 2)), jnp.float32)}


def _mlp_loss(p):
  h = jnp.tanh(_XS @ p["w1"] + p["b1"])
  return 0.5 * jnp.mean(jnp.sum((h @ p["w2"] - _YS) ** 2, axis=-1))


def _run(tx, loss, params, steps, **extra_kw):
  """Closed-loop run; returns the list of iterates and the final state."""
  state = tx.init(params)

  @jax.jit
  def step(p, s):
    u, s = tx.update(jax.grad(loss)(p), s, p, **{k: loss for k in extra_kw})
    return optax.apply_updates(p, u), s, u

  traj, ups = [params], []
  for _ in range(steps):
    params, state, u = step(params, state)
    traj.append(params)
    ups.append(u)
  return traj, ups, state


# Hand-computed first steps ----------------------------------------------------


def _first(tx, g, p, loss):
  """``tx.update`` from a fresh state, jitted (value_fn closed over)."""
  return jax.jit(lambda g, p: tx.update(g, tx.init(p), p, value_fn=loss))(g, p)


def test_first_step_by_hand():
  g = _A * _X  # [0.01, 0.01, -0.2]
  # 'lagged' (optax): h = 0 at step 0, so u = clip(m_hat / eps) = sign(g).
  tx = optkit.scale_by_sophia()
  u, s = _first(tx, g, _X, _diag_loss)
  np.testing.assert_allclose(u, [1.0, 1.0, -1.0])
  np.testing.assert_allclose(s.nu, 0.01 * _A, rtol=1e-6)  # estimated after the step
  np.testing.assert_allclose(s.mu, 0.035 * g, rtol=1e-6)
  # 'fresh': h = 0.01 a first; gamma = 1: u = g / (0.01 a) = [1, 0.01, -5] -> clip.
  tx = optkit.scale_by_sophia(gamma=1.0, hessian_refresh="fresh")
  u, _ = _first(tx, g, _X, _diag_loss)
  np.testing.assert_allclose(u, [1.0, 0.01, -1.0], rtol=1e-6)
  # No bias correction, no clipping: u = 0.035 g / (0.01 a) = 3.5 x.
  tx = optkit.scale_by_sophia(gamma=1.0, hessian_refresh="fresh", bias_correction=False,
                              clip_threshold=None)
  u, _ = _first(tx, g, _X, _diag_loss)
  np.testing.assert_allclose(u, [0.035, 0.00035, -0.175], rtol=1e-5)
  # 'delayed' (official): no estimate at step 0.
  tx = optkit.scale_by_sophia(hessian_refresh="delayed")
  u, s = _first(tx, g, _X, _diag_loss)
  np.testing.assert_allclose(u, [1.0, 1.0, -1.0])
  np.testing.assert_array_equal(s.nu, jnp.zeros(3))
  # Full optimizer: Delta = -lr (u + wd x).
  opt = optkit.sophia(0.1, gamma=1.0, weight_decay=0.5, hessian_refresh="fresh")
  d, _ = _first(opt, g, _X, _diag_loss)
  np.testing.assert_allclose(d, -0.1 * (jnp.array([1.0, 0.01, -1.0]) + 0.5 * _X), rtol=1e-6)


def test_newton_like_when_unclipped():
  """Exact estimates every step: h_n = (1 - b2^n) diag(A) and u = m_hat / h."""
  b2, n = 0.5, 12
  tx = optkit.scale_by_sophia(b2=b2, gamma=1.0, update_interval=1, hessian_refresh="fresh",
                              clip_threshold=None)
  grads = [jax.tree.map(lambda v: 1e-3 * v, t) for t in helpers.gradient_sequence(n)]
  grads = [g["a"][:3] for g in grads]
  state = tx.init(_X)
  update = jax.jit(lambda g, s: tx.update(g, s, _X, value_fn=_diag_loss))
  for g in grads:
    u, state = update(g, state)
  np.testing.assert_allclose(state.nu, (1 - b2 ** n) * _A, rtol=1e-6)
  m_hat = state.mu / (1 - 0.965 ** n)
  np.testing.assert_allclose(u, m_hat / ((1 - b2 ** n) * _A), rtol=1e-5)


# The defining property: the step lies in the box [-c, c], with a negative control.


def test_update_is_clipped_to_the_box(clip=0.3):
  params = _mlp_params()
  lr = 0.05
  opt = optkit.sophia(lr, clip_threshold=clip, weight_decay=0.0, update_interval=2)
  _, ups, _ = _run(opt, _mlp_loss, params, 12, value_fn=True)
  biggest = max(float(jnp.max(jnp.abs(x))) for u in ups for x in jax.tree.leaves(u))
  assert biggest <= lr * clip * (1 + 1e-6)
  assert biggest >= 0.99 * lr * clip  # the box is reached (sign-like early steps)
  # Negative controls: without the clip, and plain Adam, leave the box.
  free = optkit.sophia(lr, clip_threshold=None, weight_decay=0.0, update_interval=2)
  _, ups_free, _ = _run(free, _mlp_loss, params, 12, value_fn=True)
  assert max(float(jnp.max(jnp.abs(x))) for u in ups_free
             for x in jax.tree.leaves(u)) > 2 * lr * clip
  adam = optax.adam(lr * clip * 10)
  _, ups_adam, _ = _run(adam, _mlp_loss, params, 3)
  assert max(float(jnp.max(jnp.abs(x))) for u in ups_adam
             for x in jax.tree.leaves(u)) > 2 * lr * clip


# The estimator runs only every k steps (under lax.cond). ----------------------


def _counting_estimator():
  inner = optkit.hutchinson_diag_hessian()

  def init(params):
    return (inner.init(params), jnp.zeros([], jnp.int32))

  def update(updates, state, params=None, **extra):
    est, s = inner.update(updates, state[0], params, **extra)
    return est, (s, state[1] + 1)

  return optax.GradientTransformationExtraArgs(init, update)


@pytest.mark.parametrize("refresh,k,steps,expected", [
    ("lagged", 4, 10, 3),   # steps 0, 4, 8
    ("fresh", 4, 10, 3),    # steps 0, 4, 8
    ("delayed", 4, 10, 2),  # steps 4, 8
])
def test_estimator_runs_every_k_steps(refresh, k, steps, expected):
  calls = []

  def value_fn(p):
    jax.debug.callback(lambda: calls.append(1))
    return _mlp_loss(p)

  tx = optkit.scale_by_sophia(update_interval=k, hessian_refresh=refresh,
                              hessian_diag_fn=_counting_estimator())
  params = _mlp_params()
  state = tx.init(params)
  step = jax.jit(lambda g, s: tx.update(g, s, params, value_fn=value_fn))
  refreshed = []
  for _ in range(steps):
    old = state
    _, state = step(jax.grad(_mlp_loss)(params), state)
    changed = not np.array_equal(state.nu["w1"], old.nu["w1"])
    refreshed.append(changed)
  jax.effects_barrier()
  assert int(state.hessian_fn_state[1]) == expected
  # value_fn (inside the HVP) is evaluated only on refresh steps: lax.cond,
  # not a select that computes the estimate every step.
  total = len(calls)
  calls.clear()
  est = _counting_estimator()
  jax.jit(lambda s: est.update(params, s, params, value_fn=value_fn))(est.init(params))
  jax.effects_barrier()
  assert len(calls) >= 1 and total == expected * len(calls)
  first = 1 if refresh == "delayed" else 0
  assert refreshed == [(t % k == 0 and t >= first) for t in range(steps)]


# optax.contrib.sophia ---------------------------------------------------------


def _as_optax_estimator(est):
  """optkit's estimator with optax's calling convention (``obj_fn``)."""
  def update(updates, state, params=None, obj_fn=None, **extra):
    return est.update(updates, state, params, value_fn=obj_fn)
  return optax.GradientTransformationExtraArgs(est.init, update)


def test_matches_optax_contrib_sophia_with_same_probes():
  params = _mlp_params()
  kw = dict(b1=0.9, b2=0.95, eps=1e-8, gamma=0.05, clip_threshold=1.0, update_interval=3,
            weight_decay=0.01)
  ours = optkit.sophia(0.02, **kw, hessian_diag_fn=optkit.hutchinson_diag_hessian(seed=3))
  ref = optax.contrib.sophia(
      0.02, **kw, hessian_diagonal_fn=_as_optax_estimator(optkit.hutchinson_diag_hessian(seed=3)))
  state_o, state_r = ours.init(params), ref.init(params)
  step_o = jax.jit(lambda p, s: ours.update(jax.grad(_mlp_loss)(p), s, p, value_fn=_mlp_loss))
  step_r = jax.jit(lambda p, s: ref.update(jax.grad(_mlp_loss)(p), s, p, obj_fn=_mlp_loss))
  p_o = p_r = params
  for _ in range(15):
    u_o, state_o = step_o(p_o, state_o)
    u_r, state_r = step_r(p_r, state_r)
    p_o, p_r = optax.apply_updates(p_o, u_o), optax.apply_updates(p_r, u_r)
  for a, b in zip(jax.tree.leaves(p_o), jax.tree.leaves(p_r)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  for a, b in zip(jax.tree.leaves(state_o[0].nu), jax.tree.leaves(state_r[0].nu)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
  assert float(jnp.max(jnp.abs(state_o[0].nu["w1"]))) > 0


def test_defaults_match_optax_defaults_on_a_diagonal_hessian():
  """Defaults of both (each with its own Rademacher draw): on a diagonal
  Hessian the probe draw does not matter."""
  a = {"v": jnp.array([2.0, 0.5, 7.0]), "m": jnp.array([[1.0, 4.0], [9.0, 0.25]])}
  loss = lambda p: sum(0.5 * jnp.sum(a[k] * (p[k] - 1.0) ** 2) + 0.1 * jnp.sum(p[k] ** 4)
                       for k in a)
  params = {"v": jnp.array([0.3, -2.0, 4.0]), "m": jnp.array([[1.5, 0.0], [-1.0, 2.0]])}
  ours, _, s_o = _run(optkit.sophia(0.05), loss, params, 25, value_fn=True)
  ref = optax.contrib.sophia(0.05)
  state = ref.init(params)
  step = jax.jit(lambda p, s: ref.update(jax.grad(loss)(p), s, p, obj_fn=loss))
  p = params
  for _ in range(25):
    u, state = step(p, state)
    p = optax.apply_updates(p, u)
  for x, y in zip(jax.tree.leaves(ours[-1]), jax.tree.leaves(p)):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


# pytorch_optimizer SophiaH fixture --------------------------------------------


@pytest.mark.parametrize("cfg", ["defaults", "wide_box_decay"])
def test_matches_pytorch_optimizer_sophiah(cfg):
  data = np.load(FIXTURE)
  with jax.enable_x64(True):
    tree = lambda n: {k: jnp.asarray(data[f"problem/{n}/{k}"]) for k in ("b", "w")}
    a, c, q, x0 = tree("a"), tree("c"), tree("q"), tree("x0")
    loss = lambda p: sum(jnp.sum(0.5 * a[k] * (p[k] - c[k]) ** 2 + 0.25 * q[k] * p[k] ** 4)
                         for k in p)
    h = {n: data[f"{cfg}/{n}"].item()
         for n in ("lr", "b1", "b2", "weight_decay", "p", "update_period", "eps")}
    # pytorch_optimizer: clip(m / max(h, eps), -p, p), no bias correction, h
    # refreshed at steps 0, k, ... before the step, decoupled decay.
    opt = optkit.sophia(h["lr"], b1=h["b1"], b2=h["b2"], gamma=1.0, eps=h["eps"],
                        clip_threshold=h["p"], update_interval=int(h["update_period"]),
                        weight_decay=h["weight_decay"], bias_correction=False,
                        hessian_refresh="fresh")
    steps = data[f"{cfg}/traj/b"].shape[0] - 1
    traj, _, state = _run(opt, loss, x0, steps, value_fn=True)
    for k in ("b", "w"):
      ours = np.stack([np.asarray(t[k]) for t in traj])
      np.testing.assert_allclose(ours, data[f"{cfg}/traj/{k}"], rtol=0, atol=1e-12)
      np.testing.assert_allclose(state[0].mu[k], data[f"{cfg}/momentum/{k}"], rtol=0, atol=1e-12)
      np.testing.assert_allclose(state[0].nu[k], data[f"{cfg}/hessian_moment/{k}"],
                                 rtol=0, atol=1e-12)


# Sophia-G: the GNB estimator and the official SophiaG -------------------------

_SX = np.random.default_rng(7).standard_normal((6, 3))
_SY = np.array([0, 1, 2, 0, 1, 2])


def _softmax_logits(w):
  return jnp.asarray(_SX, w.dtype) @ w


def _exact_gauss_newton_diag(w):
  """diag(J^T H_z J) for the mean cross-entropy, from jax (not the closed form)."""
  flat = w.reshape(-1)
  f = lambda v: _softmax_logits(v.reshape(w.shape)).reshape(-1)
  jac = jax.jacfwd(f)(flat)                                   # (n*C, d*C)
  z = f(flat)
  ce = lambda zz: jnp.mean(jax.nn.logsumexp(zz.reshape(_SX.shape[0], -1), axis=-1))
  hz = jax.hessian(ce)(z)                                     # label-free part of CE
  return jnp.diagonal(jac.T @ hz @ jac).reshape(w.shape)


def test_gnb_expectation_is_the_gauss_newton_diagonal():
  w = jnp.asarray(np.random.default_rng(3).standard_normal((3, 3)), jnp.float32)
  est = optkit.gnb_diag_hessian(batch_size=_SX.shape[0])
  value_fn = optkit.gnb_value_fn(_softmax_logits)
  keys = jax.random.split(jax.random.key(11), 10_000)
  states = sophia_mod.GNBDiagHessianState(key=jax.vmap(jax.random.key_data)(keys))
  samples = jax.jit(jax.vmap(lambda s: est.update(w, s, w, value_fn=value_fn)[0]))(states)
  mean = jnp.mean(samples, axis=0)
  gn = _exact_gauss_newton_diag(w)
  # Closed form for softmax regression: (1/n) sum_i x_ij^2 p_ic (1 - p_ic).
  p = jax.nn.softmax(_softmax_logits(w), axis=-1)
  np.testing.assert_allclose(gn, jnp.mean(jnp.asarray(_SX ** 2)[:, :, None]
                                          * (p * (1 - p))[:, None, :], axis=0), rtol=1e-5)
  np.testing.assert_allclose(mean, gn, rtol=0.05)
  # Negative controls: without the factor B, or with the true labels (empirical
  # Fisher), the estimate is not the Gauss-Newton diagonal.
  assert not np.allclose(mean / _SX.shape[0], gn, rtol=0.05)
  true_loss = lambda v: -jnp.mean(jnp.take_along_axis(
      jax.nn.log_softmax(_softmax_logits(v)), jnp.asarray(_SY)[:, None], axis=1))
  emp = _SX.shape[0] * jax.grad(true_loss)(w) ** 2
  assert not np.allclose(emp, gn, rtol=0.05)


def test_gnb_value_fn_samples_labels_without_gradient_through_them():
  w = jnp.asarray(np.random.default_rng(4).standard_normal((3, 3)), jnp.float32)
  key = jax.random.key(5)
  value_fn = optkit.gnb_value_fn(_softmax_logits)
  labels = jax.random.categorical(key, _softmax_logits(w), axis=-1)
  p = jax.nn.softmax(_softmax_logits(w), axis=-1)
  expected = jnp.asarray(_SX, jnp.float32).T @ (p - jax.nn.one_hot(labels, 3)) / _SX.shape[0]
  np.testing.assert_allclose(jax.grad(lambda v: value_fn(v, key=key))(w), expected,
                             rtol=1e-5, atol=1e-6)
  # One example, uniform logits: B g_hat^2 = x^2 (1/2)^2 per class for 2 classes.
  est = optkit.gnb_diag_hessian(batch_size=1)
  w0 = jnp.zeros((1, 2))
  out, s = est.update(w0, est.init(w0), w0,
                      value_fn=optkit.gnb_value_fn(lambda v: jnp.ones((1, 1)) @ v))
  np.testing.assert_allclose(out, [[0.25, 0.25]])
  assert not np.array_equal(s.key, est.init(w0).key)  # the key is split


def _official_sophia_g_port(w0, grads_fn, ghat_fn, *, lr, b1, b2, rho, wd, bs, k, steps):
  """NumPy float64 restatement of the official SophiaG loop (train_sophiag.py):
  step every iteration; after the step of iterations k-1, 2k-1, ... update the
  Hessian EMA with g_hat^2 at the new params (same batch here)."""
  w = np.array(w0, np.float64)
  m = np.zeros_like(w)
  h = np.zeros_like(w)
  traj, n_refresh = [w.copy()], 0
  for it in range(steps):
    g = np.asarray(grads_fn(w))
    w = w * (1 - lr * wd)
    m = b1 * m + (1 - b1) * g
    ratio = np.minimum(np.abs(m) / (rho * bs * h + 1e-15), 1.0)
    w = w - lr * np.sign(m) * ratio
    if it % k == k - 1:
      gh = np.asarray(ghat_fn(w, n_refresh))
      h = b2 * h + (1 - b2) * gh * gh
      n_refresh += 1
    traj.append(w.copy())
  return np.stack(traj)


def test_sophia_g_matches_official_port():
  steps, k, bs = 20, 3, _SX.shape[0]
  hp = dict(lr=0.05, b1=0.9, b2=0.9, rho=1.0, wd=0.1)
  with jax.enable_x64(True):
    w0 = jnp.asarray(np.random.default_rng(6).standard_normal((3, 3)))
    value_fn = optkit.gnb_value_fn(_softmax_logits)
    true_loss = lambda v: -jnp.mean(jnp.take_along_axis(
        jax.nn.log_softmax(_softmax_logits(v)), jnp.asarray(_SY)[:, None], axis=1))
    opt = optkit.sophia_g(hp["lr"], b1=hp["b1"], b2=hp["b2"], rho=hp["rho"],
                          weight_decay=hp["wd"], batch_size=bs, update_interval=k, seed=4)
    state = opt.init(w0)
    step = jax.jit(lambda p, s: opt.update(jax.grad(true_loss)(p), s, p, value_fn=value_fn))
    ours = [w0]
    for _ in range(steps):
      u, state = step(ours[-1], state)
      ours.append(optax.apply_updates(ours[-1], u))
    # The labels of the n-th estimate: the estimator's key schedule from seed 4.
    label_keys, key = [], jax.random.key(4)
    for _ in range(steps):
      key, sub = jax.random.split(key)
      label_keys.append(sub)
    ghat = lambda w, n: jax.grad(lambda v: value_fn(v, key=label_keys[n]))(jnp.asarray(w))
    ref = _official_sophia_g_port(np.asarray(w0), jax.grad(true_loss), ghat, bs=bs, k=k,
                                  steps=steps, **hp)
  np.testing.assert_allclose(np.stack([np.asarray(w) for w in ours]), ref, rtol=0, atol=1e-10)
  # Not trivially sign descent: some coordinates are unclipped after refreshes.
  assert np.any(np.abs(np.diff(ref[k:], axis=0)) < 0.9 * hp["lr"] * 0.5)


# Bad hyperparameters and missing extra arguments ------------------------------


@pytest.mark.parametrize("kwargs", [
    dict(b1=1.0), dict(b2=-0.1), dict(eps=0.0), dict(gamma=-1.0), dict(clip_threshold=0.0),
    dict(update_interval=0), dict(update_interval=2.5), dict(hessian_refresh="later"),
])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="sophia"):
    optkit.scale_by_sophia(**kwargs)
  with pytest.raises(ValueError, match="sophia"):
    optkit.sophia(0.1, **kwargs)


def test_bad_sophia_g_and_gnb_arguments_raise():
  with pytest.raises(ValueError, match="sophia_g"):
    optkit.sophia_g(rho=-0.1, batch_size=8)
  with pytest.raises(ValueError, match="sophia_g"):
    optkit.sophia_g(batch_size=0)
  with pytest.raises(ValueError, match="gnb_diag_hessian"):
    optkit.gnb_diag_hessian(batch_size=-1)
  with pytest.raises(ValueError, match="sophia"):
    optkit.sophia(-1.0)


def test_missing_or_wrong_value_fn_raises():
  tx = optkit.sophia(0.1)
  with pytest.raises(ValueError, match=re.escape("sophia: update() requires the extra argument `value_fn`")):
    tx.update(_X, tx.init(_X), _X)
  # Sophia-G needs value_fn(params, key=k): a plain loss is rejected clearly.
  g = optkit.sophia_g(batch_size=1, update_interval=1)
  state = g.init(_X)
  out, state = g.update(_X, state, _X, value_fn=optkit.gnb_value_fn(
      lambda p: p[None, :]))  # step 0: no estimate yet ('delayed')
  with pytest.raises(ValueError, match="gnb_diag_hessian.*key"):
    g.update(_X, state, _X, value_fn=_diag_loss)
