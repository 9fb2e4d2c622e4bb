"""What makes OptEx (arXiv:2402.11427) itself.

* the kernel (GP posterior mean) gradient estimate interpolates the history
  (exact at observed points as sigma^2 -> 0; a large sigma^2 does not, and far
  from the history it falls back to the zero prior mean);
* the 'linear' kernel is exact for the gradient of a quadratic once the history
  spans the space, and then one OptEx step equals N sequential base steps;
* N = 1 is the base optimizer (Adam here), trajectory and state;
* the defining property: on a quadratic OptEx (N = 4, default rbf kernel)
  reaches a loss in fewer sequential iterations than the base optimizer, whose
  count N = 1 reproduces (negative control);
* the history ring buffer holds true gradients; finite output on a
  rank-deficient kernel matrix in float32; bf16 params; bad input.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.perturbation import OptExState, optex, optex_gradient_estimate

NAME = "optex"


def _quadratic(d, seed=0, cond=10.0):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.standard_normal((d, d)))
  a = q @ np.diag(np.logspace(0, np.log10(cond), d)) @ q.T
  return a, rng.standard_normal(d)


def _run(solver, x0, steps, value_fn, batch=None):
  step = jax.jit(lambda x, s: solver.step(x, s, batch, value_fn=value_fn))
  state = solver.init(x0)
  out = []
  for _ in range(steps):
    x0, state = step(x0, state)
    out.append(x0)
  return out, state


def test_estimate_interpolates_history_f64():
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    thetas = rng.standard_normal((6, 4))
    grads = rng.standard_normal((6, 4))
    for kernel in ("rbf", "matern52"):
      est = optex_gradient_estimate(thetas, grads, thetas, kernel=kernel, noise=1e-12)
      np.testing.assert_allclose(np.asarray(est), grads, rtol=0, atol=1e-8)
      # negative control: a large noise variance smooths instead of interpolating
      smooth = optex_gradient_estimate(thetas, grads, thetas, kernel=kernel, noise=1.0)
      assert np.max(np.abs(np.asarray(smooth) - grads)) > 1e-2
    far = optex_gradient_estimate(thetas, grads, np.full(4, 50.0), noise=1e-12)
    np.testing.assert_allclose(np.asarray(far), 0.0, atol=1e-12)  # the prior mean
    # masked rows are ignored
    masked = optex_gradient_estimate(thetas, grads, thetas[:3], noise=1e-12,
                                     mask=np.arange(6) < 3)
    direct = optex_gradient_estimate(thetas[:3], grads[:3], thetas[:3], noise=1e-12)
    np.testing.assert_allclose(np.asarray(masked), np.asarray(direct), atol=1e-12)


def test_linear_kernel_is_exact_for_a_quadratic_f64():
  with jax.enable_x64(True):
    a, b = _quadratic(4)
    rng = np.random.default_rng(1)
    thetas = rng.standard_normal((5, 4))  # d + 1 affinely independent points
    grads = thetas @ a - b
    query = rng.standard_normal((3, 4)) * 3.0
    est = optex_gradient_estimate(thetas, grads, query, kernel="linear", noise=1e-14)
    np.testing.assert_allclose(np.asarray(est), query @ a - b, rtol=0, atol=1e-8)
    rbf = optex_gradient_estimate(thetas, grads, query, kernel="rbf", noise=1e-14)
    assert np.max(np.abs(np.asarray(rbf) - (query @ a - b))) > 1e-2  # not exact


def test_one_step_equals_n_sequential_base_steps_with_exact_predictor_f64():
  with jax.enable_x64(True):
    a, b = _quadratic(3, seed=2)
    aj, bj = jnp.asarray(a), jnp.asarray(b)
    f = lambda x, batch: 0.5 * x @ (aj @ x) - bj @ x
    lr, n = 0.05, 4
    solver = optex(optax.sgd(lr), num_parallel=n, history=8, kernel="linear", noise=1e-14)
    traj, state = _run(solver, jnp.ones(3), 2, f)
    # the first step (empty history, mu = 0) is one base step
    first = np.ones(3) - lr * (a @ np.ones(3) - b)
    np.testing.assert_allclose(np.asarray(traj[0]), first, rtol=0, atol=1e-12)
    # a history of d + 1 affinely independent true gradients (the trajectory's
    # first points lie on a line: their proxies all move along g_0)
    pts = np.random.default_rng(5).standard_normal((4, 3))
    state = state._replace(thetas=state.thetas.at[:4].set(pts),
                           grads=state.grads.at[:4].set(pts @ a - b),
                           size=jnp.asarray(4, jnp.int32), index=jnp.asarray(4, jnp.int32))
    step = jax.jit(lambda x, s: solver.step(x, s, value_fn=f))
    x_next, new_state = step(traj[-1], state)
    x = np.asarray(traj[-1])
    for _ in range(n):
      x = x - lr * (a @ x - b)
    np.testing.assert_allclose(np.asarray(x_next), x, rtol=0, atol=1e-8)
    assert int(new_state.size) == 8
    # negative control: the rbf kernel's predictions are not exact
    rbf = optex(optax.sgd(lr), num_parallel=n, history=8, kernel="rbf", noise=1e-14)
    x_rbf, _ = jax.jit(lambda x, s: rbf.step(x, s, value_fn=f))(traj[-1], state)
    assert np.max(np.abs(np.asarray(x_rbf) - x)) > 1e-6


def test_single_parallel_iteration_is_the_base_optimizer():
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((20, 3)), jnp.float32)
  y = jnp.asarray(rng.random(20) < 0.5, jnp.float32)

  def loss(p, batch):
    z = x @ p["w"] + p["b"]
    return jnp.mean(jax.nn.softplus(z) - y * z)

  params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
  base = optax.adam(0.1)
  traj, state = _run(optex(base, num_parallel=1, history=3), params, 12, loss)
  p, s = params, base.init(params)
  upd = jax.jit(lambda p, s: base.update(jax.grad(loss)(p, None), s, p))
  for t in range(12):
    u, s = upd(p, s)
    p = optax.apply_updates(p, u)
    jax.tree.map(lambda u_, v_: np.testing.assert_allclose(u_, v_, rtol=1e-6, atol=1e-7),
                 traj[t], p)
  jax.tree.map(lambda u_, v_: np.testing.assert_allclose(u_, v_, rtol=1e-6, atol=1e-7),
               state.inner_state, s)


def _first_below(vals, thr):
  hits = [i for i, v in enumerate(vals) if v < thr]
  return hits[0] + 1 if hits else None


def test_fewer_sequential_iterations_than_base_optimizer():
  a, b = _quadratic(10)
  aj, bj = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  f = lambda x, batch: 0.5 * x @ (aj @ x) - bj @ x
  x_star = np.linalg.solve(a, b)
  f_star = 0.5 * x_star @ a @ x_star - b @ x_star
  gap = lambda x: 0.5 * x @ a @ x - b @ x - f_star
  lr, thr = 0.1, 1e-3
  x, gd = np.zeros(10), []
  for _ in range(60):
    x = x - lr * (a @ x - b)
    gd.append(gap(x))
  gd_iters = _first_below(gd, thr)
  traj, _ = _run(optex(optax.sgd(lr)), jnp.zeros(10), 20, f)  # defaults: N = 4, rbf
  ox_iters = _first_below([gap(np.asarray(p, np.float64)) for p in traj], thr)
  assert gd_iters is not None and ox_iters is not None
  assert ox_iters * 2 <= gd_iters, (ox_iters, gd_iters)
  # negative control: N = 1 takes exactly the base optimizer's iterations
  traj1, _ = _run(optex(optax.sgd(lr), num_parallel=1), jnp.zeros(10), 40, f)
  assert _first_below([gap(np.asarray(p, np.float64)) for p in traj1], thr) == gd_iters


def test_history_holds_true_gradients_in_a_ring_buffer():
  a, b = _quadratic(4, seed=4)
  aj, bj = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  f = lambda x, batch: 0.5 * x @ (aj @ x) - bj @ x
  solver = optex(optax.sgd(0.05), num_parallel=4, history=10)
  _, state = _run(solver, jnp.ones(4), 7, f)
  assert isinstance(state, OptExState)
  assert int(state.size) == 10 and int(state.index) == 28 % 10 and int(state.count) == 7
  th = np.asarray(state.thetas, np.float64)
  np.testing.assert_allclose(np.asarray(state.grads), th @ a - b, rtol=1e-5, atol=1e-5)


def test_rank_deficient_kernel_stays_finite_float32():
  a, b = _quadratic(10)
  aj, bj = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  f = lambda x, batch: 0.5 * x @ (aj @ x) - bj @ x
  # 20 points, a rank <= 11 linear kernel, tiny noise: K + sigma^2 I is singular in f32
  solver = optex(optax.sgd(0.1), history=20, kernel="linear", length_scale=0.3, noise=1e-6)
  traj, state = _run(solver, jnp.zeros(10), 40, f)
  assert all(bool(jnp.all(jnp.isfinite(p))) for p in traj)
  assert bool(jnp.all(jnp.isfinite(state.thetas)))


def test_bf16_params_keep_dtype():
  f = lambda p, batch: jnp.sum(p["w"].astype(jnp.float32) ** 2)
  p = {"w": jnp.ones((2, 3), jnp.bfloat16)}
  solver = optex(optax.sgd(0.1), num_parallel=3, history=5)
  out, state = _run(solver, p, 2, f)
  assert out[-1]["w"].dtype == jnp.bfloat16
  assert state.thetas.dtype == jnp.float32 and state.thetas.shape == (5, 6)


def test_bad_input_raises():
  with pytest.raises(ValueError, match=f"{NAME}.*`num_parallel`"):
    optex(optax.sgd(0.1), num_parallel=0)
  with pytest.raises(ValueError, match=f"{NAME}.*`history`"):
    optex(optax.sgd(0.1), history=0)
  with pytest.raises(ValueError, match=f"{NAME}.*`noise`"):
    optex(optax.sgd(0.1), noise=0.0)
  with pytest.raises(ValueError, match=f"{NAME}.*`length_scale`"):
    optex(optax.sgd(0.1), length_scale=-1.0)
  with pytest.raises(ValueError, match=f"{NAME}.*`kernel`"):
    optex(optax.sgd(0.1), kernel="cubic")
  solver = optex(optax.sgd(0.1))
  x = jnp.zeros(2)
  with pytest.raises(ValueError, match=f"{NAME}.*`value_fn`"):
    solver.step(x, solver.init(x))
  with pytest.raises(ValueError, match="optex_gradient_estimate.*`noise`"):
    optex_gradient_estimate(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros(2), noise=-1.0)
  assert optkit.optex is optex
