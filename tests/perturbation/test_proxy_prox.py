"""What makes ProxyProx (arXiv:2302.03542) itself.

* h = 0: an exact inner solve gives gradient descent with step eta;
* one inner ``sgd(gamma)`` step is gradient descent with step gamma, for any h;
* h = f (same sample): the proximal-point step on f (closed form on a quadratic);
* the defining property, when f - h is a smooth (delta-smooth) term: ProxyProx
  converges to argmin f, while minimizing the proxy alone stops at the biased
  argmin h (negative control), and per target gradient it beats gradient
  descent at every step size of a grid (negative control);
* float64 re-derivation of the step with a stochastic target and proxy;
* bad input.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.perturbation import ProxyProxState, proxy_prox

NAME = "proxy_prox"
D = 5


def _quadratic(seed=0, cond=100.0):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.standard_normal((D, D)))
  a = q @ np.diag(np.logspace(0, np.log10(cond), D)) @ q.T
  b = rng.standard_normal(D)
  return a, b


def _run(solver, x0, steps, batches=None, proxy_batches=None):
  step = jax.jit(solver.step)
  state = solver.init(x0)
  x, out = x0, []
  for k in range(steps):
    b = None if batches is None else batches[k]
    pb = None if proxy_batches is None else proxy_batches[k]
    x, state = step(x, state, b, pb)
    out.append(np.asarray(x))
  return out, state


def test_zero_proxy_is_gradient_descent_with_step_eta_f64():
  with jax.enable_x64(True):
    a, b = _quadratic()
    aj, bj = jnp.asarray(a), jnp.asarray(b)
    grad_f = lambda x, batch: aj @ x - bj
    eta = 0.013
    # phi = <c, x - x_k> + ||x - x_k||^2 / (2 eta): sgd(eta) solves it in one step
    solver = proxy_prox(grad_f, lambda x, batch: 0.0 * jnp.sum(x), eta, optax.sgd(eta),
                        inner_steps=5)
    traj, state = _run(solver, jnp.zeros(D), 8)
    x = np.zeros(D)
    for t in range(8):
      x = x - eta * (a @ x - b)
      np.testing.assert_allclose(traj[t], x, rtol=0, atol=1e-12)
    assert isinstance(state, ProxyProxState) and int(state.count) == 8


def test_one_inner_step_is_gradient_descent_for_any_proxy_f64():
  with jax.enable_x64(True):
    a, b = _quadratic(1)
    aj, bj = jnp.asarray(a), jnp.asarray(b)
    grad_f = lambda x, batch: aj @ x - bj
    proxy = lambda x, batch: jnp.sum(jnp.cos(x)) + jnp.sum(x ** 4)  # unrelated proxy
    gamma = 0.007
    solver = proxy_prox(grad_f, proxy, eta=3.0, inner=optax.sgd(gamma), inner_steps=1)
    traj, _ = _run(solver, jnp.ones(D), 6)
    x = np.ones(D)
    for t in range(6):
      x = x - gamma * (a @ x - b)
      np.testing.assert_allclose(traj[t], x, rtol=0, atol=1e-12)


def test_proxy_equal_to_target_is_proximal_point_f64():
  with jax.enable_x64(True):
    a, b = _quadratic(2, cond=10.0)
    aj, bj = jnp.asarray(a), jnp.asarray(b)
    f = lambda x, batch: 0.5 * x @ (aj @ x) - bj @ x
    eta = 0.5
    lam = np.linalg.eigvalsh(a)
    lr = 2.0 / (lam[0] + lam[-1] + 2.0 / eta)  # optimal GD step for phi
    solver = proxy_prox(jax.grad(f), f, eta, optax.sgd(lr), inner_steps=400)
    traj, _ = _run(solver, jnp.zeros(D), 3)
    x = np.zeros(D)
    for t in range(3):  # x+ = (I + eta A)^{-1} (x + eta b)
      x = np.linalg.solve(np.eye(D) + eta * a, x + eta * b)
      np.testing.assert_allclose(traj[t], x, rtol=0, atol=1e-10)


def _target_and_proxy():
  a, b = _quadratic(3)
  rng = np.random.default_rng(4)
  # f - h = -(1/2)(x - c)' E (x - c) is delta-smooth, delta = ||E|| = 1 << L = 100
  e = np.diag(rng.uniform(0.2, 1.0, D))
  c = 10.0 * rng.standard_normal(D)
  f = lambda x, batch: 0.5 * x @ (jnp.asarray(a, x.dtype) @ x) - jnp.asarray(b, x.dtype) @ x
  h = lambda x, batch: f(x, batch) + 0.5 * (x - c) @ (jnp.asarray(e, x.dtype) @ (x - c))
  x_f = np.linalg.solve(a, b)
  x_h = np.linalg.solve(a + e, b + e @ c)
  return a, b, e, f, h, x_f, x_h


def test_converges_to_target_minimizer_and_proxy_alone_is_biased():
  a, _, e, f, h, x_f, x_h = _target_and_proxy()
  delta = np.linalg.eigvalsh(e)[-1]
  eta = 1.0 / delta
  l_sub = np.linalg.eigvalsh(a + e)[-1] + 1.0 / eta
  solver = proxy_prox(jax.grad(f), h, eta, optax.sgd(1.0 / l_sub), inner_steps=100)
  traj, _ = _run(solver, jnp.zeros(D, jnp.float32), 40)
  np.testing.assert_allclose(traj[-1], x_f, atol=1e-4)
  # negative control: minimizing the proxy alone converges, but to argmin h
  assert np.linalg.norm(x_h - x_f) > 0.5
  grad_h = jax.jit(jax.grad(h))
  x = jnp.zeros(D)
  for _ in range(2000):
    x = x - (1.0 / l_sub) * grad_h(x, None)
  np.testing.assert_allclose(np.asarray(x), x_h, atol=1e-3)
  assert np.linalg.norm(np.asarray(x) - x_f) > 0.5


def test_fewer_target_gradients_than_gradient_descent():
  a, b, e, f, h, x_f, _ = _target_and_proxy()
  delta = np.linalg.eigvalsh(e)[-1]
  l_f = np.linalg.eigvalsh(a)[-1]
  steps = 15
  l_sub = np.linalg.eigvalsh(a + e)[-1] + delta
  solver = proxy_prox(jax.grad(f), h, 1.0 / delta, optax.sgd(1.0 / l_sub), inner_steps=100)
  traj, _ = _run(solver, jnp.zeros(D, jnp.float32), steps)
  err_pp = np.linalg.norm(traj[-1] - x_f)
  errs_gd = []
  for scale in (0.5, 1.0, 1.5, 1.9, 2.5):  # GD steps scale / L (diverges past 2 / L)
    x = np.zeros(D)
    for _ in range(steps):
      x = x - scale / l_f * (a @ x - b)
    errs_gd.append(np.linalg.norm(x - x_f))
  # measured: ProxyProx 1.0e-3, best GD (1.9 / L) 0.30
  assert err_pp < 0.01 * min(errs_gd), (err_pp, errs_gd)


def test_stochastic_step_matches_numpy_rederivation_f64():
  """Target and proxy on sampled rows; inner Armijo-free sgd; 4 steps."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(5)
    xs, ys = rng.standard_normal((12, 3)), rng.standard_normal(12)
    xp, yp = rng.standard_normal((30, 3)), rng.standard_normal(30)  # proxy data
    grad_f = lambda w, idx: jnp.asarray(xs)[idx].T @ (jnp.asarray(xs)[idx] @ w
                                                       - jnp.asarray(ys)[idx]) / idx.shape[0]
    h = lambda w, idx: 0.5 * jnp.mean((jnp.asarray(xp)[idx] @ w - jnp.asarray(yp)[idx]) ** 2)
    eta, gamma, m = 2.0, 0.1, 3
    solver = proxy_prox(grad_f, h, eta, optax.sgd(gamma), inner_steps=m)
    batches = [jnp.asarray(rng.choice(12, 4, replace=False)) for _ in range(4)]
    pbatches = [jnp.asarray(rng.choice(30, 10, replace=False)) for _ in range(4)]
    traj, _ = _run(solver, jnp.zeros(3), 4, batches, pbatches)
    w = np.zeros(3)
    for k in range(4):
      i, j = np.asarray(batches[k]), np.asarray(pbatches[k])
      gh = lambda v: xp[j].T @ (xp[j] @ v - yp[j]) / len(j)
      c = xs[i].T @ (xs[i] @ w - ys[i]) / len(i) - gh(w)
      v = w.copy()
      for _ in range(m):
        v = v - gamma * (gh(v) + c + (v - w) / eta)
      w = v
      np.testing.assert_allclose(traj[k], w, rtol=0, atol=1e-12)


def test_default_line_search_inner_converges_f64():
  _, _, _, f, h, x_f, _ = _target_and_proxy()
  with jax.enable_x64(True):  # float32 Armijo tests stall at the rounding of h's value
    solver = proxy_prox(jax.grad(f), h, eta=1.0, inner_steps=20)  # Armijo GD
    traj, _ = _run(solver, jnp.zeros(D), 50)
  np.testing.assert_allclose(traj[-1], x_f, atol=1e-5)


def test_bf16_params_keep_dtype():
  _, _, _, f, h, _, _ = _target_and_proxy()
  xb = jnp.zeros(D, jnp.bfloat16)
  fb = lambda x, batch: f(x.astype(jnp.float32), batch)
  hb = lambda x, batch: h(x.astype(jnp.float32), batch)
  sb = proxy_prox(jax.grad(fb), hb, eta=1.0, inner=optax.sgd(0.005), inner_steps=2)
  nx, _ = jax.jit(sb.step)(xb, sb.init(xb))
  assert nx.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(nx)))


def test_bad_input_raises():
  g = lambda x, b: x
  h = lambda x, b: jnp.sum(x ** 2)
  with pytest.raises(ValueError, match=f"{NAME}.*`eta`"):
    proxy_prox(g, h, eta=0.0)
  with pytest.raises(ValueError, match=f"{NAME}.*`eta`"):
    proxy_prox(g, h, eta=-2.0)
  with pytest.raises(ValueError, match=f"{NAME}.*`inner_steps`"):
    proxy_prox(g, h, eta=1.0, inner_steps=0)
  with pytest.raises(ValueError, match=f"{NAME}.*`target_grad_fn`"):
    proxy_prox(None, h, eta=1.0)
  with pytest.raises(ValueError, match=f"{NAME}.*`proxy_value_fn`"):
    proxy_prox(g, None, eta=1.0)
  assert "proxy_prox" in optkit.perturbation.__all__
