"""Tests of Adversarial Model Perturbation (optkit.perturbation.amp).

What makes AMP AMP: epsilon = 0 is the inner optimizer; with K = 1 and a large
ball it is unnormalized SAM (g_1 = grad L(theta + zeta g_0)); every tensor of
delta lies in the epsilon-ball; the inner optimizer steps from theta with the
gradient at theta + delta; the trajectory equals a float64 NumPy re-derivation
of the official hiyouga/AMP-Regularizer amp.py with a torch-SGD base optimizer.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.perturbation.amp import amp_perturbation

NAME = "adversarial_model_perturbation"


# A small nonlinear regression: tanh(X w + b) ~ Y, two tensors of other shapes.
def _data(dtype=np.float32):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(5, 3)).astype(dtype)
  y = rng.normal(size=(5, 2)).astype(dtype)
  params = {"b": rng.normal(size=(2,)).astype(dtype) * 0.5,
            "w": rng.normal(size=(3, 2)).astype(dtype)}
  return x, y, params


def _loss_fn(x, y):
  def loss(p):
    r = jnp.tanh(x @ p["w"] + p["b"]) - y
    return 0.5 * jnp.sum(r ** 2) / x.shape[0]
  return loss


def _run(tx, loss, params, steps):
  """``steps`` jitted steps in one lax.scan; returns [(update, params)], state."""
  def body(carry, _):
    p, s = carry
    u, s = tx.update(jax.grad(loss)(p), s, p, value_fn=loss)
    p = optax.apply_updates(p, u)
    return (p, s), (u, p)

  (_, state), (us, ps) = jax.tree.map(np.asarray, jax.jit(
      lambda p: jax.lax.scan(body, (p, tx.init(p)), None, length=steps))(params))
  traj = [(jax.tree.map(lambda v, i=i: v[i], us),
           jax.tree.map(lambda v, i=i: v[i], ps)) for i in range(steps)]
  return traj, state


def _first_update(tx, loss, params):
  """One jitted ``tx.update`` at ``params`` with the gradient of ``loss``."""
  def f(p):
    return tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)[0]
  return jax.jit(f)(params)


def _dist(a, b):
  """Euclidean distance between two trees, in NumPy."""
  return np.sqrt(sum(np.sum((np.asarray(x, np.float64) - np.asarray(y)) ** 2)
                     for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))


def test_alias_is_the_same_function():
  assert optkit.amp is optkit.adversarial_model_perturbation
  assert "amp" in optkit.perturbation.__all__
  rec = optkit.registry.get(NAME)
  assert rec.kind == "wrapper" and rec.extra_args == ("value_fn",)
  assert {"inner", "inner_iters", "norm"} <= set(rec.static_hparams)


def test_hand_computed_first_step_on_quadratic():
  # L = 0.5 theta^T A theta, g0 = A theta; per-tensor delta = zeta g0 scaled
  # onto the ball; update = -lr A (theta + delta).
  a = np.array([[2.0, 0.5], [0.5, 1.0]])
  loss = lambda p: 0.5 * p @ a @ p
  theta = np.array([1.0, -2.0])
  g0 = a @ theta                          # [1.0, -1.5]
  zeta, eps, lr = 0.5, 0.2, 0.1
  d = zeta * g0                           # norm 0.90 > eps: projected
  d = d * min(1.0, eps / np.linalg.norm(d))
  expected = -lr * (a @ (theta + d))
  tx = optkit.amp(optax.sgd(lr), epsilon=eps, inner_lr=zeta)
  u = _first_update(tx, loss, jnp.asarray(theta, jnp.float32))
  np.testing.assert_allclose(u, expected, rtol=1e-6)
  # Negative control: the plain SGD step is far from it.
  assert np.max(np.abs(-lr * g0 - expected)) > 1e-2


@pytest.mark.parametrize("inner", [
    optax.adam(1e-2),
    optax.chain(optax.add_decayed_weights(1e-2), optax.sgd(0.1, momentum=0.9)),
])
def test_epsilon_zero_is_the_inner_optimizer(inner):
  x, y, params = _data()
  loss = _loss_fn(x, y)
  amp_traj, amp_state = _run(optkit.amp(inner, epsilon=0.0, inner_iters=2),
                             loss, params, 5)
  ref_traj, ref_state = _run(inner, loss, params, 5)
  for (ua, pa), (ur, pr) in zip(amp_traj, ref_traj):
    chex.assert_trees_all_close(ua, ur, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(pa, pr, rtol=1e-6, atol=1e-7)
  chex.assert_trees_all_close(amp_state.inner_state, ref_state, rtol=1e-6,
                              atol=1e-7)
  # Negative control: epsilon > 0 changes the trajectory.
  other, _ = _run(optkit.amp(inner, epsilon=0.5), loss, params, 5)
  assert _dist(other[-1][1], amp_traj[-1][1]) > 1e-3


def test_zero_inner_iters_is_the_inner_optimizer():
  x, y, params = _data()
  loss = _loss_fn(x, y)
  inner = optax.sgd(0.1, momentum=0.9)
  u = _first_update(optkit.amp(inner, epsilon=1.0, inner_iters=0), loss,
                    params)
  ur = _first_update(inner, loss, params)
  chex.assert_trees_all_close(u, ur, rtol=0, atol=0)


@pytest.mark.parametrize("norm", ["per_tensor", "global"])
def test_k1_large_epsilon_is_unnormalized_sam(norm):
  # With K = 1 and epsilon larger than ||zeta g0||, no projection happens:
  # g_1 = grad L(theta + zeta g0) (SAM without the normalization, rho = zeta).
  x, y, params = _data()
  loss = _loss_fn(x, y)
  grad = jax.jit(jax.grad(loss))
  g0 = grad(params)
  zeta = 0.7
  g1 = grad(jax.tree.map(lambda p, g: p + zeta * np.asarray(g), params, g0))
  tx = optkit.amp(optax.sgd(1.0), epsilon=1e6, inner_lr=zeta, norm=norm)
  u = _first_update(tx, loss, params)
  chex.assert_trees_all_close(u, jax.tree.map(np.negative, g1), rtol=1e-5,
                              atol=1e-7)
  # Negative control: the perturbed gradient differs from the plain one.
  assert _dist(g1, g0) > 1e-2


def _random_tree(seed):
  rng = np.random.default_rng(seed)
  return {"b": jnp.asarray(rng.normal(size=(3,)), jnp.float32),
          "c": jnp.asarray(rng.normal(), jnp.float32),
          "k": jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32),
          "w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)}


def _tree_loss(p):
  # Non-quadratic, so each ascent step changes the gradient.
  return sum(jnp.sum(jnp.cosh(v) * (1.0 + 0.1 * jnp.arange(v.size).reshape(
      v.shape))) for v in jax.tree.leaves(p))


@pytest.mark.parametrize("k", [1, 3])
def test_every_tensor_of_delta_is_in_the_ball(k):
  params = _random_tree(1)
  eps = 0.3
  delta, _ = jax.jit(lambda p: amp_perturbation(
      jax.grad(_tree_loss)(p), p, _tree_loss, eps, 1.0, k))(params)
  norms = {n: np.linalg.norm(np.ravel(d)) for n, d in delta.items()}
  assert all(v <= eps * (1 + 1e-6) for v in norms.values()), norms
  # The ball is active (some tensor sits on its sphere) ...
  assert max(norms.values()) > eps * (1 - 1e-5)
  # ... and per tensor: the total norm exceeds epsilon (a global ball would
  # not allow that; negative control for the per-tensor convention).
  assert np.sqrt(sum(v ** 2 for v in norms.values())) > 1.5 * eps


@pytest.mark.parametrize("k", [1, 3])
def test_global_norm_variant(k):
  params = _random_tree(2)
  eps = 0.3
  g0, (delta, _) = jax.jit(lambda p: (jax.grad(_tree_loss)(p), amp_perturbation(
      jax.grad(_tree_loss)(p), p, _tree_loss, eps, 1.0, k, norm="global")))(
          params)
  flat_d = np.concatenate([np.ravel(v) for v in jax.tree.leaves(delta)])
  flat_g = np.concatenate([np.ravel(v) for v in jax.tree.leaves(g0)])
  assert np.linalg.norm(flat_d) <= eps * (1 + 1e-6)
  assert np.linalg.norm(flat_d) > eps * (1 - 1e-5)
  # For K = 1, delta is zeta g0 scaled as a whole: parallel to g0.
  if k == 1:
    np.testing.assert_allclose(flat_d, flat_g * eps / np.linalg.norm(flat_g),
                               rtol=1e-5, atol=1e-7)


def test_zero_gradient_gives_zero_delta_and_finite_update():
  params = _random_tree(3)
  zeros = optax.tree.zeros_like(params)
  for norm in ("per_tensor", "global"):
    delta, g = jax.jit(lambda z, p, norm=norm: amp_perturbation(
        z, p, lambda q: 0.0 * _tree_loss(q), 0.5, 1.0, 2, norm=norm))(
            zeros, params)
    chex.assert_trees_all_equal(delta, zeros)
    chex.assert_tree_all_finite(g)


def test_update_is_the_gradient_at_the_perturbed_point():
  # Defining property: AMP(sgd) = -lr grad L(theta + delta_K), with
  # delta_K from the projected ascent, for K = 2 (fori_loop path).
  x, y, params = _data()
  loss = _loss_fn(x, y)
  grad = jax.jit(jax.grad(loss))
  eps, zeta, lr = 0.05, 1.0, 0.1
  proj = lambda v: v * min(1.0, eps / (np.linalg.norm(v) + 1e-12))
  g0 = jax.tree.map(np.asarray, grad(params))
  d = jax.tree.map(lambda g: proj(zeta * g), g0)
  g1 = jax.tree.map(np.asarray, grad(jax.tree.map(np.add, params, d)))
  d = jax.tree.map(lambda a, g: proj(a + zeta * g), d, g1)
  g2 = jax.tree.map(np.asarray, grad(jax.tree.map(np.add, params, d)))
  assert max(np.linalg.norm(v) for v in jax.tree.leaves(d)) > 0.99 * eps
  tx = optkit.amp(optax.sgd(lr), epsilon=eps, inner_lr=zeta, inner_iters=2)
  u = _first_update(tx, loss, params)
  chex.assert_trees_all_close(u, jax.tree.map(lambda g: -lr * g, g2),
                              rtol=1e-5, atol=1e-7)
  # Negative control: plain SGD's update is the gradient at theta.
  assert _dist(u, jax.tree.map(lambda g: -lr * g, g0)) > 1e-3


def test_amp_ends_at_a_flatter_minimum_than_sgd():
  # L(w) = (w0 w1 - 1)^2 / 2: every point of the hyperbola w0 w1 = 1 is a
  # global minimum, with Hessian trace w0^2 + w1^2 (flattest at w0 = w1 = 1).
  # From the same unbalanced start, AMP reaches a minimum with a smaller trace
  # than plain SGD (negative control).
  loss = lambda w: 0.5 * (w[0] * w[1] - 1.0) ** 2
  start = jnp.array([2.5, 0.2])

  def final(tx):
    traj, _ = _run(tx, loss, start, 400)
    w = np.asarray(traj[-1][1], np.float64)
    # Hessian [[w1^2, 2 w0 w1 - 1], [2 w0 w1 - 1, w0^2]]: trace w0^2 + w1^2.
    return 0.5 * (w[0] * w[1] - 1.0) ** 2, w[0] ** 2 + w[1] ** 2

  loss_sgd, tr_sgd = final(optax.sgd(0.05))
  loss_amp, tr_amp = final(optkit.amp(optax.sgd(0.05), epsilon=0.5))
  assert loss_sgd < 1e-8 and loss_amp < 1e-8
  assert tr_amp < tr_sgd - 0.8, (tr_amp, tr_sgd)


# ----- float64 NumPy re-derivation of the official amp.py -------------------
# hiyouga/AMP-Regularizer amp.py (read via the code index): for each inner
# iteration and each parameter, dev = dev + inner_lr * p.grad; clip_coef =
# epsilon / (||dev|| + 1e-12); dev *= clip_coef if clip_coef < 1; p moves to
# theta + dev; the closure recomputes p.grad there. Then p -= dev (back to
# theta) and torch SGD (momentum, weight_decay) steps with the last gradient.
# Restated here in NumPy loops, not copied.


def _np_grad(x, y):
  def grad(p):
    z = np.tanh(x @ p["w"] + p["b"])
    dz = (z - y) * (1.0 - z ** 2) / x.shape[0]
    return {"b": dz.sum(axis=0), "w": x.T @ dz}
  return grad


def _np_official_amp(params, grad, steps, lr, momentum, wd, epsilon,
                     inner_lr, inner_iter):
  p = {k: v.copy() for k, v in params.items()}
  buf = {}
  clipped = not_clipped = 0
  traj = []
  for _ in range(steps):
    g = grad(p)                             # closure() at theta
    dev = {k: 0.0 for k in p}
    for _i in range(inner_iter):
      for k in p:
        new = dev[k] + inner_lr * g[k]
        coef = epsilon / (np.linalg.norm(new) + 1e-12)
        if coef < 1:
          new = coef * new
          clipped += 1
        else:
          not_clipped += 1
        p[k] = p[k] - dev[k] + new          # theta + delta
        dev[k] = new
      g = grad(p)                           # closure() at theta + delta
    for k in p:
      p[k] = p[k] - dev[k]                  # restore theta
    for k in p:                             # torch.optim.SGD step
      d = g[k] + wd * p[k]
      buf[k] = d.copy() if k not in buf else momentum * buf[k] + d
      p[k] = p[k] - lr * buf[k]
    traj.append({k: v.copy() for k, v in p.items()})
  return traj, clipped, not_clipped


@pytest.mark.parametrize("inner_iter", [1, 3])
def test_matches_official_formulas_in_float64(inner_iter):
  lr, momentum, wd, epsilon, inner_lr, steps = 0.2, 0.9, 1e-2, 0.2, 1.0, 6
  x, y, params = _data(np.float64)
  ref, clipped, not_clipped = _np_official_amp(
      params, _np_grad(x, y), steps, lr, momentum, wd, epsilon, inner_lr,
      inner_iter)
  # Both branches of the official clip are exercised.
  assert clipped > 0 and not_clipped > 0
  with jax.enable_x64(True):
    loss = _loss_fn(jnp.asarray(x), jnp.asarray(y))
    inner = optax.chain(optax.add_decayed_weights(wd),
                        optax.sgd(lr, momentum=momentum))
    tx = optkit.amp(inner, epsilon=epsilon, inner_lr=inner_lr,
                    inner_iters=inner_iter)
    p = jax.tree.map(jnp.asarray, params)
    traj, _ = _run(tx, loss, p, steps)
    for (_, pj), pr in zip(traj, ref):
      assert pj["w"].dtype == jnp.float64
      for k in pr:
        np.testing.assert_allclose(np.asarray(pj[k]), pr[k], rtol=1e-11,
                                   atol=1e-13)
  # Negative control: plain SGD with momentum does not follow the reference.
  plain, _, _ = _np_official_amp(params, _np_grad(x, y), steps, lr, momentum,
                                 wd, 0.0, inner_lr, inner_iter)
  assert np.max(np.abs(plain[-1]["w"] - ref[-1]["w"])) > 1e-4


def test_inject_hyperparams_with_k_above_one():
  x, y, params = _data()
  loss = _loss_fn(x, y)
  inner = optax.sgd(0.1)
  tx = optax.inject_hyperparams(
      optkit.amp, static_args=("inner", "inner_iters", "norm"))(
          inner=inner, epsilon=0.05, inner_lr=0.5, inner_iters=2)
  ref = optkit.amp(inner, epsilon=0.05, inner_lr=0.5, inner_iters=2)
  chex.assert_trees_all_close(_first_update(tx, loss, params),
                              _first_update(ref, loss, params),
                              rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kwargs", [
    {"epsilon": -0.1},
    {"inner_lr": -1.0},
    {"inner_iters": -1},
    {"inner_iters": 1.5},
    {"norm": "l1"},
])
def test_bad_hyperparameters_raise(kwargs):
  arg = next(iter(kwargs))
  with pytest.raises(ValueError, match=f"{NAME}.*{arg}"):
    optkit.amp(optax.sgd(0.1), **kwargs)


def test_missing_value_fn_and_params_raise():
  params = {"w": jnp.ones(3)}
  tx = optkit.amp(optax.sgd(0.1))
  state = tx.init(params)
  with pytest.raises(ValueError, match=f"{NAME}.*value_fn"):
    tx.update(params, state, params)
  with pytest.raises(ValueError, match=f"{NAME}.*params"):
    tx.update(params, state, None, value_fn=lambda p: jnp.sum(p["w"]))
