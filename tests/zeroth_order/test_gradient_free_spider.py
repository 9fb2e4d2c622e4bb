"""GFM+ (ZO-SPIDER): two-point sphere estimates with the SPIDER recursion."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit

D = 10
_A = np.diag(np.linspace(1.0, 3.0, D)) + 0.1
_B = np.linspace(-1.0, 1.0, D)


def loss(p):
  x = p["x"]
  return 0.5 * x @ jnp.asarray(_A, x.dtype) @ x - jnp.asarray(_B, x.dtype) @ x


def params():
  return {"x": jnp.linspace(-2.0, 2.0, D)}


def _zeros(p):
  return jax.tree.map(jnp.zeros_like, p)


def test_large_batch_estimate_is_unbiased_on_a_quadratic():
  """Central two-point difference of a quadratic: g(x; w) = d <Ax - b, w> w,
  E = grad f (= grad f_delta), Var_i = d/(d+2) (||g||^2 + 2 g_i^2) - g_i^2."""
  n = 20_000
  p = params()
  g = np.asarray(jax.grad(loss)(p)["x"], np.float64)
  tx = optkit.scale_by_gfm_plus(delta=0.1, large_batch_size=n)
  v = np.asarray(jax.jit(lambda p: tx.update(_zeros(p), tx.init(p), p, value_fn=loss)[0])(p)["x"])
  var = D / (D + 2) * (g @ g + 2 * g ** 2) - g ** 2
  tol = 4 * np.sqrt(var / n) + 1e-3
  assert np.all(np.abs(v - g) <= tol), (v, g, tol)
  assert not np.all(np.abs(v / D - g) <= tol)   # negative control: no d factor


def test_spider_recursion_same_point_keeps_v_and_refreshes_every_q():
  p = params()
  tx = optkit.scale_by_gfm_plus(batch_size=2, large_batch_size=3, refresh_every=3)
  state = tx.init(p)
  update = jax.jit(lambda s, p: tx.update(_zeros(p), s, p, value_fn=loss))
  v0, state = update(state, p)
  v1, state = update(state, p)     # x_t = x_{t-1}: the correction is exactly 0
  v2, state = update(state, p)
  np.testing.assert_array_equal(v0["x"], v1["x"])
  np.testing.assert_array_equal(v0["x"], v2["x"])
  v3, state = update(state, p)     # t = 3 = q: fresh large batch, new directions
  assert not np.allclose(v3["x"], v0["x"])


def test_spider_correction_uses_the_same_directions_at_both_points():
  """For a quadratic the correction is d <A dx, w> w (same w at x_t and x_{t-1}):
  its mean is A dx, with variance set by ||A dx|| only (not by ||grad f||)."""
  n = 20_000
  p0 = params()
  dx = 0.01 * jnp.linspace(1.0, -1.0, D)
  p1 = {"x": p0["x"] + dx}
  tx = optkit.scale_by_gfm_plus(batch_size=n, large_batch_size=1, refresh_every=100)

  @jax.jit
  def two_steps(p0, p1):
    s = tx.init(p0)
    v0, s = tx.update(_zeros(p0), s, p0, value_fn=loss)
    v1, _ = tx.update(_zeros(p1), s, p1, value_fn=loss)
    return v0["x"], v1["x"]

  v0, v1 = (np.asarray(a, np.float64) for a in two_steps(p0, p1))
  h = _A @ np.asarray(dx, np.float64)
  var = D / (D + 2) * (h @ h + 2 * h ** 2) - h ** 2
  # float32: each difference F(x + delta w) - F(x - delta w) carries ~ulp(F)
  # rounding, amplified by d / (2 delta) and averaged over n directions.
  tol = 4 * np.sqrt(var / n) + 4 * D / (2 * 0.01) * 4e-7 * 10 / np.sqrt(n)
  assert np.all(np.abs((v1 - v0) - h) <= tol), (v1 - v0, h, tol)


def test_gfm_plus_converges_from_function_values_and_is_seeded():
  def run(seed):
    opt = optkit.gfm_plus(0.05, seed=seed)
    p, s = params(), opt.init(params())
    step = jax.jit(lambda p, s: (lambda u, s: (optax.apply_updates(p, u), s))(
        *opt.update(_zeros(p), s, p, value_fn=loss)))
    for _ in range(200):
      p, s = step(p, s)
    return p

  x_star = np.linalg.solve(_A, _B)
  f_star = 0.5 * x_star @ _A @ x_star - _B @ x_star
  pa, pb, pc = run(0), run(0), run(1)
  assert float(loss(pa)) - f_star < 1e-2 * (float(loss(params())) - f_star)
  np.testing.assert_array_equal(pa["x"], pb["x"])
  assert not np.array_equal(pa["x"], pc["x"])
  assert optkit.zo_spider is optkit.gfm_plus


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="gfm_plus"):
    optkit.gfm_plus(0.1, delta=0.0)
  with pytest.raises(ValueError, match="gfm_plus"):
    optkit.gfm_plus(0.1, refresh_every=0)
  with pytest.raises(ValueError, match="gfm_plus"):
    optkit.gfm_plus(-0.1)
  tx = optkit.gfm_plus(0.1)
  p = params()
  with pytest.raises(ValueError, match="gfm_plus.*value_fn"):
    tx.update(p, tx.init(p), p)
