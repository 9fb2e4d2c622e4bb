"""OASIS (arXiv:2109.05198, Algorithm 1).

No public reference implementation was found; the trajectory is checked
against a float64 NumPy re-derivation of Algorithm 1 that uses the same
Rademacher probes (tolerance rtol 1e-10). The defining properties: on a
quadratic with diagonal Hessian D^ equals diag(A) and OASIS converges without
tuning where gradient descent with the same (untuned) step diverges; the step
size never grows by more than sqrt(1 + theta).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.core import tree as tree_lib


def _quadratic(a, c):
  return lambda p: 0.5 * (p["x"] - c) @ (a @ (p["x"] - c))


def _probes(seed, steps, init_samples, params):
  """The probes the transformation draws: its documented key schedule."""
  key = jax.random.key(seed)
  out = []
  for t in range(steps):
    key, probe_key = jax.random.split(key)
    if t == 0:
      keys = jax.random.split(probe_key, init_samples) if init_samples > 1 else [probe_key]
      out.append([np.asarray(tree_lib.random_like(k, params)["x"]) for k in keys])
    else:
      out.append([np.asarray(tree_lib.random_like(probe_key, params)["x"])])
  return out


def _numpy_oasis(a, c, x0, probes, b2, alpha, eta0):
  """Algorithm 1 in float64, deterministic gradients, theta_0 = +inf."""
  grad = lambda x: a @ (x - c)
  xs = [x0.copy()]
  x, x_prev = x0.copy(), None
  d, eta, theta = None, eta0, np.inf
  for t, zs in enumerate(probes):
    g = grad(x)
    if t == 0:
      d = np.mean([z * (a @ z) for z in zs], axis=0)
      dhat = np.maximum(np.abs(d), alpha)
    else:
      z = zs[0]
      d = b2 * d + (1 - b2) * z * (a @ z)
      dhat = np.maximum(np.abs(d), alpha)
      dx, dg = x - x_prev, g - grad(x_prev)
      ratio = np.sqrt(dx @ (dhat * dx)) / (2 * np.sqrt(dg @ (dg / dhat)))
      new_eta = min(np.sqrt(1 + theta) * eta, ratio)
      theta, eta = new_eta / eta, new_eta
    x_prev = x
    x = x - eta * g / dhat
    xs.append(x)
  return np.array(xs)


def test_matches_float64_rederivation_with_the_same_probes():
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    m = rng.standard_normal((5, 5))
    a = m @ m.T + np.diag([1.0, 2.0, 5.0, 10.0, 20.0])
    c = rng.standard_normal(5)
    x0 = np.ones(5)
    params = {"x": jnp.asarray(x0)}
    steps, b2, alpha, eta0 = 8, 0.9, 1e-3, 0.3
    probes = _probes(3, steps, 4, params)
    expected = _numpy_oasis(a, c, x0, probes, b2, alpha, eta0)
    loss = _quadratic(jnp.asarray(a), jnp.asarray(c))
    tx = optkit.oasis(1.0, b2=b2, alpha=alpha, eta0=eta0, init_samples=4, seed=3)
    state = tx.init(params)
    for t in range(steps):
      u, state = tx.update(jax.grad(loss)(params), state, params, value_fn=loss)
      params = optax.apply_updates(params, u)
      np.testing.assert_allclose(params["x"], expected[t + 1], rtol=1e-10, atol=1e-12)
    # The step size really adapted (eta changed from eta0).
    assert abs(float(state[0].eta) - eta0) > 1e-3


def test_hand_computed_first_step():
  """x_1 = x_0 - eta_0 D^_0^-1 g_0, D^_0 = max(|diag A|, alpha) for diagonal A."""
  diag = jnp.array([2.0, 1e-7, -4.0])
  loss = lambda p: 0.5 * jnp.sum(diag * p ** 2)
  p = jnp.array([1.0, 1.0, 1.0])
  tx = optkit.scale_by_oasis(eta0=0.5, alpha=1e-5)
  u, state = tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)
  np.testing.assert_allclose(u, 0.5 * np.array([2.0 / 2.0, 1e-7 / 1e-5, -4.0 / 4.0]),
                             rtol=1e-6)
  np.testing.assert_allclose(state.diag, diag, rtol=1e-6)
  np.testing.assert_array_equal(state.x_prev, p)


def test_diagonal_hessian_is_recovered_and_no_tuning_is_needed():
  """Diagonal quadratic, condition number 1e4: D = diag(A) exactly (Rademacher
  probes), and OASIS converges; gradient descent with the same untuned step
  (1.0, and even 1e-2) diverges (negative control)."""
  diag = jnp.array([1.0, 10.0, 100.0, 1e4])
  loss = lambda p: 0.5 * jnp.sum(diag * (p - 1.0) ** 2)
  p0 = jnp.array([5.0, -3.0, 2.0, 0.5])
  tx = optkit.oasis(1.0, eta0=0.1)
  p, state = p0, tx.init(p0)
  step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p, value_fn=loss))
  for _ in range(60):
    u, state = step(p, state)
    p = optax.apply_updates(p, u)
    np.testing.assert_allclose(state[0].diag, diag, rtol=1e-6)
  assert float(loss(p)) < 1e-8 * float(loss(p0))
  for lr in (1.0, 1e-2):
    q = p0
    for _ in range(60):
      q = q - lr * jax.grad(loss)(q)
    assert not float(loss(q)) < float(loss(p0))


def test_step_size_never_grows_faster_than_sqrt_one_plus_theta():
  from optkit.bench import problems
  prob = problems.logistic_regression
  params = prob.init(jnp.float32)
  tx = optkit.scale_by_oasis(eta0=1e-3)
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(prob.loss)(p), s, p, value_fn=prob.loss))
  etas, thetas = [float(state.eta)], [np.inf]
  for _ in range(40):
    u, state = step(params, state)
    params = jax.tree.map(lambda a, b: a - b, params, u)
    etas.append(float(state.eta))
    thetas.append(float(state.theta))
  etas, thetas = np.array(etas[1:]), np.array(thetas[1:])
  grew = 0
  for k in range(2, len(etas)):
    assert etas[k] <= np.sqrt(1 + thetas[k - 1]) * etas[k - 1] * (1 + 1e-5)
    np.testing.assert_allclose(thetas[k], etas[k] / etas[k - 1], rtol=1e-5)
    grew += etas[k] > etas[k - 1] * 1.01
  assert grew > 0  # the bound was exercised: eta did increase


def test_fixed_lr_variant():
  diag = jnp.array([2.0, 8.0])
  loss = lambda p: 0.5 * jnp.sum(diag * p ** 2)
  p = jnp.array([1.0, 1.0])
  tx = optkit.scale_by_oasis(fixed_lr=0.25)
  state = tx.init(p)
  for _ in range(3):
    g = jax.grad(loss)(p)
    u, state = tx.update(g, state, p, value_fn=loss)
    np.testing.assert_allclose(u, 0.25 * g / diag, rtol=1e-6)
    p = p - u


def test_bad_hyperparameters_and_missing_value_fn():
  with pytest.raises(ValueError, match="oasis.*b2"):
    optkit.oasis(1.0, b2=1.0)
  with pytest.raises(ValueError, match="oasis.*alpha"):
    optkit.scale_by_oasis(alpha=0.0)
  with pytest.raises(ValueError, match="oasis.*eta0"):
    optkit.scale_by_oasis(eta0=-1.0)
  with pytest.raises(ValueError, match="oasis.*init_samples"):
    optkit.scale_by_oasis(init_samples=0)
  tx = optkit.oasis(1.0)
  p = jnp.ones(2)
  with pytest.raises(ValueError, match="oasis.*value_fn"):
    tx.update(p, tx.init(p), p)
