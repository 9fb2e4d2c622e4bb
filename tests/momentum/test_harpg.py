"""What makes normalized IGT / N-HARPG themselves (arXiv:2302.01734); the contract
suite covers the rest."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.momentum import (
    normalized_harpg,
    normalized_igt,
    normalized_igt_eval_params,
    scale_by_normalized_igt,
)

_H = np.diag([1.0, 3.0, 0.5]) + 0.2 * np.ones((3, 3))
_C = np.array([1.0, -2.0, 0.5])


def _quad(x):
  h = jnp.asarray(_H, x.dtype)
  c = jnp.asarray(_C, x.dtype)
  return 0.5 * (x - c) @ h @ (x - c)


def _grad(x):
  return _H @ (np.asarray(x, np.float64) - _C)


# ---------------------------------------------------------------- first step


def test_hand_computed_first_steps():
  # IGT, eta = 0.25: d_0 = eta g (d_{-1} = 0), theta_1 = theta_0 - gamma d/|d| and the
  # visible point is theta_1 + 3 (theta_1 - theta_0).
  tx = normalized_igt(0.5, eta=0.25)
  p = jnp.array([1.0, 2.0])
  g = jnp.array([0.6, -0.8])
  u, s = tx.update(g, tx.init(p), p)
  np.testing.assert_allclose(s.d, 0.25 * np.asarray(g), rtol=1e-6)
  np.testing.assert_allclose(s.theta, [1.0 - 0.3, 2.0 + 0.4], rtol=1e-6)
  np.testing.assert_allclose(u, 4 * np.array([-0.3, 0.4]), rtol=1e-6)
  # HARPG: the Hessian term vanishes on the first step (theta_{-1} = theta_0).
  tx = normalized_harpg(0.5, eta=0.25)
  u, s = tx.update(g, tx.init(p), p, value_fn=lambda x: jnp.sum(x ** 4))
  np.testing.assert_allclose(s.d, 0.25 * np.asarray(g), rtol=1e-6)
  np.testing.assert_allclose(u, [-0.3, 0.4], rtol=1e-6)


# ---------------------------------------------------------------- step length


def test_every_step_has_length_gamma_t():
  gamma = lambda t: 0.3 * 0.8 ** t
  with jax.enable_x64(True):
    x = jnp.zeros(3, jnp.float64)
    tx = normalized_igt(gamma)
    s = tx.init(x)
    prev = np.asarray(normalized_igt_eval_params(s))
    hx = normalized_harpg(gamma)
    hs = hx.init(x)
    y = x
    for t in range(6):
      u, s = tx.update(jax.grad(_quad)(x), s, x)
      x = x + u
      theta = np.asarray(normalized_igt_eval_params(s))
      np.testing.assert_allclose(np.linalg.norm(theta - prev), float(gamma(t)), rtol=1e-12)
      prev = theta
      hu, hs = hx.update(jax.grad(_quad)(y), hs, y, value_fn=_quad)
      np.testing.assert_allclose(np.linalg.norm(hu), float(gamma(t)), rtol=1e-12)
      y = y + hu


# ---------------------------------------------------------------- transport / visible params


def test_igt_visible_params_are_the_transported_point():
  """Test (3) of the entry: visible params = theta_t + ((1-eta_t)/eta_t)(theta_t - theta_{t-1})."""
  eta = lambda t: 1.0 / (t + 1.0)
  with jax.enable_x64(True):
    x = jnp.array([3.0, 1.0, -1.0], jnp.float64)
    tx = scale_by_normalized_igt(0.2, eta)
    s = tx.init(x)
    thetas = [np.asarray(x)]
    for t in range(5):
      u, s = tx.update(jax.grad(_quad)(x), s, x)
      x = x + u
      thetas.append(np.asarray(s.theta))
      e = eta(t + 1)
      np.testing.assert_allclose(x, thetas[-1] + (1 - e) / e * (thetas[-1] - thetas[-2]),
                                 rtol=1e-12, atol=1e-12)
    # The shift is real: the visible point is not the iterate.
    assert np.linalg.norm(np.asarray(x) - thetas[-1]) > 0.5


def test_transport_makes_d_the_exact_gradient_on_a_quadratic():
  """Defining property of both: on a deterministic quadratic, d_t = grad f(theta_t)
  exactly (IGT by extrapolation, HARPG by the Hessian correction). Negative control:
  plain normalized momentum (gradient at theta, no correction) lags behind."""
  with jax.enable_x64(True):
    x0 = jnp.array([3.0, 1.0, -1.0], jnp.float64)
    eta_c = 0.3
    eta = lambda t: jnp.where(t == 0, 1.0, eta_c)   # eta_0 = 1: d_0 = grad f(theta_0)
    # IGT
    tx = normalized_igt(0.2, eta=eta)
    s, x = tx.init(x0), x0
    for _ in range(6):
      theta = np.asarray(s.theta)
      u, s = tx.update(jax.grad(_quad)(x), s, x)
      x = x + u
      np.testing.assert_allclose(s.d, _grad(theta), rtol=1e-10, atol=1e-12)
    # HARPG
    hx = normalized_harpg(0.2, eta=eta)
    hs, y = hx.init(x0), x0
    for _ in range(6):
      u, hs = hx.update(jax.grad(_quad)(y), hs, y, value_fn=_quad)
      np.testing.assert_allclose(hs.d, _grad(y), rtol=1e-10, atol=1e-12)
      y = y + u
    # Negative control: d_t = (1 - eta) d_{t-1} + eta grad f(theta_t), no transport.
    d, z = np.zeros(3), np.asarray(x0)
    errs = []
    for t in range(6):
      e = 1.0 if t == 0 else eta_c
      d = (1 - e) * d + e * _grad(z)
      errs.append(np.linalg.norm(d - _grad(z)))
      z = z - 0.2 * d / np.linalg.norm(d)
    assert max(errs) > 0.5


def test_harpg_hessian_term_is_h_times_delta_at_a_random_point():
  """Test (2): for f = sum(x^3)/6 the HVP at theta^ is theta^ * delta; the d update
  reveals theta^, which must be q theta_t + (1-q) theta_{t-1} with ONE q in (0, 1);
  for the quadratic the term is exactly H delta (above). Same seed, same q."""
  f = lambda x: jnp.sum(x ** 3) / 6.0
  eta = 0.4
  with jax.enable_x64(True):
    x0 = jnp.array([1.0, 2.0, -1.5, 0.7], jnp.float64)

    def run(seed):
      tx = normalized_harpg(0.3, eta=eta, seed=seed)
      s, x = tx.init(x0), x0
      out = []
      for _ in range(3):
        d_prev, theta_prev = np.asarray(s.d), np.asarray(s.theta_prev)
        g = jax.grad(f)(x)
        u, s = tx.update(g, s, x, value_fn=f)
        delta = np.asarray(x) - theta_prev
        hvp = (np.asarray(s.d) - eta * np.asarray(g)) / (1 - eta) - d_prev
        out.append((hvp, delta, np.asarray(x), theta_prev))
        x = x + u
      return out

    qs = []
    for hvp, delta, theta, theta_prev in run(0)[1:]:
      theta_hat = hvp / delta                          # H(theta^) = diag(theta^)
      q = (theta_hat - theta_prev) / (theta - theta_prev)
      np.testing.assert_allclose(q, q[0], rtol=1e-8)   # one q for the whole tree
      assert 0.0 < q[0] < 1.0
      qs.append(q[0])
    assert abs(qs[0] - qs[1]) > 1e-6                   # a fresh q every step
    again = run(0)
    other = run(1)
    np.testing.assert_array_equal(again[2][0], run(0)[2][0])
    assert not np.allclose(other[2][0], again[2][0])


# ---------------------------------------------------------------- reductions


def test_eta_one_is_normalized_gradient_descent():
  with jax.enable_x64(True):
    x = jnp.array([3.0, 1.0, -1.0], jnp.float64)
    tx, hx = normalized_igt(0.1, eta=1.0), normalized_harpg(0.1, eta=1.0)
    s, hs, y, z = tx.init(x), hx.init(x), x, np.asarray(x)
    for _ in range(5):
      g = _grad(z)
      z = z - 0.1 * g / np.linalg.norm(g)
      u, s = tx.update(jax.grad(_quad)(y), s, y)
      y = y + u
      np.testing.assert_allclose(y, z, rtol=1e-12)        # no transport: visible = theta
      hu, hs = hx.update(jax.grad(_quad)(x), hs, x, value_fn=_quad)
      x = x + hu
      np.testing.assert_allclose(x, z, rtol=1e-12)


def test_zero_gradient_gives_zero_step():
  tx = normalized_harpg(0.1)
  p = jnp.ones(3)
  u, _ = tx.update(jnp.zeros(3), tx.init(p), p, value_fn=lambda x: 0.0 * jnp.sum(x))
  np.testing.assert_array_equal(u, np.zeros(3))


def test_errors_name_the_algorithm():
  p = jnp.ones(2)
  with pytest.raises(ValueError, match="normalized_igt.*eta"):
    normalized_igt(0.1, eta=1.5)
  with pytest.raises(ValueError, match="normalized_harpg.*eta"):
    normalized_harpg(0.1, eta=0.0)
  with pytest.raises(ValueError, match="normalized_igt.*learning_rate"):
    normalized_igt(-0.1)
  tx = normalized_harpg(0.1)
  with pytest.raises(ValueError, match="normalized_harpg.*value_fn"):
    tx.update(p, tx.init(p), p)
  with pytest.raises(ValueError, match="normalized_harpg.*params"):
    tx.update(p, tx.init(p), value_fn=jnp.sum)
  ix = normalized_igt(0.1)
  with pytest.raises(ValueError, match="normalized_igt.*params"):
    ix.update(p, ix.init(p))
