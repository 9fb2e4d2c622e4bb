"""DeepZero: RGE, CGE and sparse-CGE training from function values only."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit

_A = np.diag([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) + 0.2
_B = np.array([1.0, -1.0, 0.5, 2.0, 0.0, -0.5])


def loss(p):
  x = jnp.concatenate([p["a"], p["m"].reshape(-1)])
  a, b = jnp.asarray(_A, x.dtype), jnp.asarray(_B, x.dtype)
  return 0.5 * x @ a @ x - b @ x


def params(dtype=jnp.float32):
  return {"a": jnp.asarray([1.0, 2.0], dtype), "m": jnp.asarray([[-1.0, 0.5], [3.0, 0.2]], dtype)}


def _flat(tree):
  return np.concatenate([np.asarray(x, np.float64).reshape(-1) for x in jax.tree.leaves(tree)])


def _zeros(p):
  return jax.tree.map(jnp.zeros_like, p)


def test_cge_is_the_exact_finite_difference_and_zero_outside_s():
  """Forward CGE of a quadratic: g_i + mu A_ii / 2 exactly (O(mu) error);
  central CGE: g_i exactly; coordinates outside S are exactly 0 (float64)."""
  mu = 5e-3
  with jax.enable_x64(True):
    p = params(jnp.float64)
    g = _flat(jax.grad(loss)(p))
    s = {"a": np.array([True, False]), "m": np.array([[True, True], [False, True]])}
    in_s = _flat(s).astype(bool)
    fwd = optkit.zo_coordinate_gradient(mu=mu, coordinates=s)
    est = _flat(fwd.update(_zeros(p), fwd.init(p), p, value_fn=loss)[0])
    np.testing.assert_allclose(est[in_s], (g + mu * np.diag(_A) / 2)[in_s], rtol=0, atol=1e-9)
    assert np.all(est[~in_s] == 0.0)
    assert not np.allclose(est[in_s], g[in_s], atol=1e-4)   # the O(mu) bias is there
    cen = optkit.zo_coordinate_gradient(mu=mu, central=True, chunk_size=2)
    est_c = _flat(cen.update(_zeros(p), cen.init(p), p, value_fn=loss)[0])
    np.testing.assert_allclose(est_c, g, rtol=0, atol=1e-9)


@pytest.mark.parametrize("distribution", ["gaussian", "sphere"])
def test_rge_with_many_queries_approaches_the_gradient(distribution):
  """q = 10^4: each coordinate within 4 sigma, sigma^2 <= (phi(d)-scaled
  variance) (||g||^2 + 2 g_i^2) / q (plus the O(mu) term, negligible here)."""
  q = 10_000
  p = params()
  g = _flat(jax.grad(loss)(p))
  tx = optkit.zo_random_gradient(num_queries=q, distribution=distribution, seed=1)
  est = _flat(jax.jit(lambda p: tx.update(_zeros(p), tx.init(p), p, value_fn=loss)[0])(p))
  d = g.size
  var = (g @ g + 2 * g ** 2) * (d / (d + 2) if distribution == "sphere" else 1.0)
  tol = 4 * np.sqrt(var / q) + 0.05
  assert np.all(np.abs(est - g) <= tol), (est, g, tol)
  if distribution == "sphere":   # negative control: without phi(d) = d the mean is g / d
    assert not np.all(np.abs(est / d - g) <= tol)


def test_deepzero_samples_a_fresh_sparse_subset_per_leaf_each_step():
  sparsity = 0.5
  p = {"a": jnp.arange(10.0) + 0.5, "b": jnp.ones((3, 3)), "c": jnp.asarray(2.0)}
  f = lambda q: sum(jnp.sum(jnp.cos(x) + 0.5 * x ** 2) for x in jax.tree.leaves(q))
  g = jax.grad(f)(p)
  tx = optkit.scale_by_deepzero(sparsity=sparsity, central=True, seed=0)
  state = tx.init(p)
  update = jax.jit(lambda s: tx.update(_zeros(p), s, p, value_fn=f))
  supports = []
  for _ in range(3):
    est, state = update(state)
    for k in p:
      nz = np.asarray(est[k]) != 0
      assert nz.sum() == math.ceil((1 - sparsity) * p[k].size), k
      np.testing.assert_allclose(np.asarray(est[k])[nz], np.asarray(g[k])[nz], atol=2e-3)
    supports.append(np.asarray(est["a"]) != 0)
  assert any(not np.array_equal(supports[0], s) for s in supports[1:])   # re-sampled


def test_deepzero_hand_computed_first_step_and_per_layer_ratios():
  p = params()
  f = loss
  opt = optkit.deepzero(0.1, sparsity=0.0, central=True)
  u, _ = opt.update(_zeros(p), opt.init(p), p, value_fn=f)
  np.testing.assert_allclose(_flat(u), -0.1 * _flat(jax.grad(f)(p)), atol=1e-4)
  tx = optkit.scale_by_deepzero(layer_sparsity={"a": 0.5, "m": 0.0})
  est, _ = tx.update(_zeros(p), tx.init(p), p, value_fn=f)
  assert int((est["a"] != 0).sum()) == 1 and int((est["m"] != 0).sum()) == 4


def test_deepzero_trains_from_function_values_only_and_is_seeded():
  p0 = params()
  calls = []

  def value_fn(p):
    calls.append(1)
    return loss(p)

  def run(seed):
    opt = optkit.deepzero(0.15, sparsity=0.5, seed=seed)
    p, s = p0, opt.init(p0)
    step = jax.jit(lambda p, s: (lambda u, s: (optax.apply_updates(p, u), s))(
        *opt.update(_zeros(p), s, p, value_fn=value_fn)))
    for _ in range(150):
      p, s = step(p, s)
    return p

  p_a, p_b, p_c = run(0), run(0), run(1)
  x_star = np.linalg.solve(_A, _B)
  opt_val = float(0.5 * x_star @ _A @ x_star - _B @ x_star)
  assert float(loss(p_a)) - opt_val < 1e-3 * (float(loss(p0)) - opt_val)
  np.testing.assert_array_equal(_flat(p_a), _flat(p_b))
  assert not np.array_equal(_flat(p_a), _flat(p_c))


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="zo_random_gradient"):
    optkit.zo_random_gradient(mu=0.0)
  with pytest.raises(ValueError, match="zo_random_gradient"):
    optkit.zo_random_gradient(distribution="rademacher")
  with pytest.raises(ValueError, match="zo_coordinate_gradient"):
    optkit.zo_coordinate_gradient(mu=-1.0)
  with pytest.raises(ValueError, match="deepzero"):
    optkit.deepzero(0.1, sparsity=1.0)
  with pytest.raises(ValueError, match="deepzero"):
    optkit.deepzero(-0.1)
  tx = optkit.deepzero(0.1)
  p = params()
  with pytest.raises(ValueError, match="deepzero.*value_fn"):
    tx.update(p, tx.init(p), p)
