"""Saddle-free Newton (arXiv:1405.4604).

No public reference implementation was found. With a full Krylov subspace
(k = d) the direction is checked against |H|^-1 g from a float64
eigendecomposition (rtol 1e-8); with k < d it lies in the Krylov subspace
span{g, Hg, ..., H^(k-1) g} (residual 1e-8). The defining property: at a saddle
the step moves away from it and decreases f, where Newton's step converges to
the saddle (negative control).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit


def _saddle(p):
  return p[0] ** 2 - p[1] ** 2


def test_escapes_the_saddle_where_newton_converges_to_it():
  p = jnp.array([0.1, 0.1])
  g = jax.grad(_saddle)(p)
  tx = optkit.scale_by_saddle_free_newton(damping=0.0)
  u, _ = tx.update(g, tx.init(p), p, value_fn=_saddle)
  new = p - u
  np.testing.assert_allclose(new, [0.0, 0.2], atol=1e-6)       # away along y
  assert float(_saddle(new)) < float(_saddle(p))
  # Negative control: Newton's step H^-1 g lands exactly on the saddle (0, 0).
  h = jax.hessian(_saddle)(p)
  newton = p - jnp.linalg.solve(h, g)
  np.testing.assert_allclose(newton, [0.0, 0.0], atol=1e-7)
  # Several steps: f keeps decreasing (|y| grows), x -> 0.
  opt = optkit.saddle_free_newton(1.0, damping=1e-3)
  q, state = p, opt.init(p)
  values = [float(_saddle(q))]
  for _ in range(5):
    u, state = opt.update(jax.grad(_saddle)(q), state, q, value_fn=_saddle)
    q = optax.apply_updates(q, u)
    values.append(float(_saddle(q)))
  assert all(b < a for a, b in zip(values, values[1:]))
  assert abs(float(q[1])) > 1.0 and abs(float(q[0])) < 1e-6


def test_full_subspace_equals_absolute_hessian_inverse_in_float64():
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    q = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    lam = np.array([-3.0, -0.5, 0.2, 1.0, 2.0, 7.0])
    h = (q * lam) @ q.T
    loss = lambda p: 0.5 * p["x"] @ (jnp.asarray(h) @ p["x"]) + jnp.sum(p["x"] ** 3) / 30
    p = {"x": jnp.asarray(rng.standard_normal(6))}
    g = jax.grad(loss)(p)
    hess = np.asarray(jax.hessian(lambda x: loss({"x": x}))(p["x"]))
    w, v = np.linalg.eigh(hess)
    delta = 0.1
    expected = v @ ((v.T @ np.asarray(g["x"])) / (np.abs(w) + delta))
    for start in ("gradient", "random"):
      tx = optkit.scale_by_saddle_free_newton(krylov_dim=6, damping=delta, start=start)
      u, _ = tx.update(g, tx.init(p), p, value_fn=loss)
      np.testing.assert_allclose(u["x"], expected, rtol=1e-8, atol=1e-10)


def test_direction_lies_in_the_krylov_subspace():
  with jax.enable_x64(True):
    rng = np.random.default_rng(1)
    m = rng.standard_normal((10, 10))
    h = m + m.T
    loss = lambda x: 0.5 * x @ (jnp.asarray(h) @ x)
    x = jnp.asarray(rng.standard_normal(10))
    g = np.asarray(jax.grad(loss)(x))
    k = 3
    tx = optkit.scale_by_saddle_free_newton(krylov_dim=k, damping=0.01)
    u = np.asarray(tx.update(jnp.asarray(g), tx.init(x), x, value_fn=loss)[0])
    basis = np.stack([np.linalg.matrix_power(h, i) @ g for i in range(k)], axis=1)
    coef = np.linalg.lstsq(basis, u, rcond=None)[0]
    np.testing.assert_allclose(basis @ coef, u, rtol=1e-8, atol=1e-8 * np.abs(u).max())
    # ... and it is not the full-space direction (components were dropped).
    w, v = np.linalg.eigh(h)
    full = v @ ((v.T @ g) / (np.abs(w) + 0.01))
    assert np.max(np.abs(full - u)) > 1e-3


def test_positive_definite_quadratic_is_solved_in_one_step():
  rng = np.random.default_rng(2)
  m = rng.standard_normal((5, 5)).astype(np.float32)
  a = jnp.asarray(m @ m.T + np.eye(5, dtype=np.float32))
  c = jnp.asarray(rng.standard_normal(5).astype(np.float32))
  loss = lambda p: 0.5 * (p - c) @ (a @ (p - c))
  p = jnp.zeros(5)
  tx = optkit.saddle_free_newton(1.0, krylov_dim=5, damping=0.0)
  u, _ = tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)
  np.testing.assert_allclose(p + u, c, rtol=1e-3, atol=1e-3)


def test_krylov_breakdown_is_harmless():
  """Diagonal H with 2 distinct eigenvalues: the Krylov space has dimension 2;
  asking for 6 Lanczos steps gives the exact step, finite."""
  a = jnp.array([1.0, 1.0, 1.0, 4.0, 4.0, 4.0])
  loss = lambda p: 0.5 * jnp.sum(a * p ** 2)
  p = jnp.arange(1.0, 7.0)
  tx = optkit.scale_by_saddle_free_newton(krylov_dim=6, damping=0.0)
  u, _ = tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)
  np.testing.assert_allclose(u, p, rtol=1e-5)


def test_bad_hyperparameters_and_missing_value_fn():
  with pytest.raises(ValueError, match="saddle_free_newton.*krylov_dim"):
    optkit.saddle_free_newton(1.0, krylov_dim=0)
  with pytest.raises(ValueError, match="saddle_free_newton.*damping"):
    optkit.scale_by_saddle_free_newton(damping=-1.0)
  with pytest.raises(ValueError, match="saddle_free_newton.*start"):
    optkit.scale_by_saddle_free_newton(start="hessian")
  with pytest.raises(ValueError, match="saddle_free_newton.*learning_rate"):
    optkit.saddle_free_newton(-1.0)
  tx = optkit.saddle_free_newton(1.0)
  p = jnp.ones(2)
  with pytest.raises(ValueError, match="saddle_free_newton.*value_fn"):
    tx.update(p, tx.init(p), p)
