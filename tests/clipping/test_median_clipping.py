"""scale_by_median_tracking and sample_median_gradient (Schaipp et al., 2402.12828)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit


def _run_tracker(tx, samples):
  state = tx.init(jnp.zeros(samples.shape[1:], jnp.float32))

  def body(s, g):
    out, s = tx.update(g, s)
    return s, out

  _, outs = jax.jit(lambda s, xs: jax.lax.scan(body, s, xs))(
      state, jnp.asarray(samples, jnp.float32))
  return np.asarray(outs[-1])


def test_first_step_is_clipped_gradient_by_hand():
  tx = optkit.scale_by_median_tracking(tau=1.0)
  g = {"a": jnp.array([3.0, 0.0]), "b": jnp.array(4.0)}  # global norm 5
  out, state = tx.update(g, tx.init(g))
  np.testing.assert_allclose(out["a"], [0.6, 0.0], rtol=1e-6)
  np.testing.assert_allclose(out["b"], 0.8, rtol=1e-6)
  # Second step: m = (0.6, 0, 0.8); g − m = (−0.6, 0, −0.8) has norm 1 <= tau: m = g.
  out2, _ = tx.update({"a": jnp.array([0.0, 0.0]), "b": jnp.array(0.0)}, state)
  np.testing.assert_allclose(out2["a"], [0.0, 0.0], atol=1e-7)
  np.testing.assert_allclose(out2["b"], 0.0, atol=1e-7)


def test_first_step_equals_optax_clip_by_global_norm():
  """With m_0 = 0 the first tracker step is exactly global-norm clipping."""
  g = {"a": jnp.array([3.0, -1.0, 2.0]), "b": jnp.array([[4.0, 0.5]])}
  ours, _ = optkit.scale_by_median_tracking(tau=0.7).update(g, optkit.scale_by_median_tracking(
      tau=0.7).init(g))
  ref, _ = optax.clip_by_global_norm(0.7).update(g, optax.EmptyState())
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ours, ref)


def test_coordinatewise_first_step_is_value_clipping():
  g = jnp.array([3.0, -0.2, -5.0])
  tx = optkit.scale_by_median_tracking(tau=1.0, coordinatewise=True)
  out, _ = tx.update(g, tx.init(g))
  np.testing.assert_allclose(out, [1.0, -0.2, -1.0])


@pytest.mark.parametrize("coordinatewise", [False, True])
def test_infinite_tau_is_plain_sgd(coordinatewise):
  tx = optkit.scale_by_median_tracking(tau=float("inf"), coordinatewise=coordinatewise)
  rng = np.random.default_rng(0)
  state = tx.init(jnp.zeros(4))
  for _ in range(5):
    g = jnp.asarray(rng.standard_normal(4) * 100, jnp.float32)
    out, state = tx.update(g, state)
    np.testing.assert_allclose(out, g, rtol=1e-6)


def test_tracker_estimates_the_median_not_the_mean():
  """Heavy-tailed, skewed samples: the median tracker settles near the true
  median; an EMA (heavy-ball estimator of the mean) is pulled by the outliers."""
  rng = np.random.default_rng(1)
  n = 3000
  # Median 1, mean 1 + 0.05 * 40 = 3: rare huge positive outliers.
  base = 1.0 + 0.3 * rng.standard_normal((n, 2))
  outlier = rng.random((n, 1)) < 0.05
  samples = np.where(outlier, base + 40.0, base)
  med = _run_tracker(optkit.scale_by_median_tracking(tau=0.01, coordinatewise=True), samples)
  ema = _run_tracker(optax.ema(0.99, debias=False), samples)
  np.testing.assert_allclose(med, [1.0, 1.0], atol=0.15)
  assert np.all(np.abs(ema - 1.0) > 0.5), ema  # negative control
  geo = _run_tracker(optkit.scale_by_median_tracking(tau=0.01), samples)
  np.testing.assert_allclose(geo, [1.0, 1.0], atol=0.2)


def test_zero_difference_is_a_full_step_without_nan():
  tx = optkit.scale_by_median_tracking(tau=1e-3)
  state = tx.init(jnp.zeros(3))
  out, state = tx.update(jnp.zeros(3), state)
  assert np.all(np.isfinite(out)) and np.all(out == 0)


def test_bad_hyperparameters_raise():
  with pytest.raises(ValueError, match="scale_by_median_tracking"):
    optkit.scale_by_median_tracking(tau=0.0)
  with pytest.raises(ValueError, match="scale_by_median_tracking"):
    optkit.scale_by_median_tracking(tau=-1.0)
  with pytest.raises(ValueError, match="sample_median_gradient"):
    optkit.sample_median_gradient(method="mean")
  with pytest.raises(ValueError, match="sample_median_gradient"):
    optkit.sample_median_gradient(weiszfeld_iters=-1)


def test_sample_coordinate_median_matches_numpy():
  rng = np.random.default_rng(2)
  per_example = {"w": jnp.asarray(rng.standard_normal((7, 3, 2)), jnp.float32),
                 "b": jnp.asarray(rng.standard_normal((7,)), jnp.float32)}
  agg = optkit.sample_median_gradient()
  out, _ = agg.update(per_example, agg.init({"w": jnp.zeros((3, 2)), "b": jnp.zeros(())}),
                      {"w": jnp.zeros((3, 2)), "b": jnp.zeros(())})
  np.testing.assert_allclose(out["w"], np.median(per_example["w"], axis=0), rtol=1e-6)
  np.testing.assert_allclose(out["b"], np.median(per_example["b"]), rtol=1e-6)


def _optimality_residual(points, z):
  """||Σ_i (z − x_i)/||z − x_i|| ||: zero at the geometric median (interior case)."""
  d = z - points
  return np.linalg.norm(np.sum(d / np.linalg.norm(d, axis=1, keepdims=True), axis=0))


def test_weiszfeld_three_points_geometric_median():
  """Triangle with all angles < 120°: the median is the Fermat point, where the
  unit vectors to the vertices sum to zero. Negative control: the mean is not."""
  with jax.enable_x64(True):
    pts = np.array([[0.0, 0.0], [4.0, 0.0], [1.0, 3.0]])
    per_example = {"x": jnp.asarray(pts[:, :1]), "y": jnp.asarray(pts[:, 1])}
    agg = optkit.sample_median_gradient(method="geometric", weiszfeld_iters=300, eps=1e-12)
    out, _ = agg.update(per_example, agg.init(None))
    z = np.array([float(out["x"][0]), float(out["y"])])
    assert _optimality_residual(pts, z) < 1e-6
    assert _optimality_residual(pts, pts.mean(axis=0)) > 0.1
    # Independent check: the objective at z is below that on a fine grid near it.
    obj = lambda c: np.sum(np.linalg.norm(pts - c, axis=1))
    grid = z + 1e-3 * np.stack(np.meshgrid(np.linspace(-1, 1, 11), np.linspace(-1, 1, 11)),
                               -1).reshape(-1, 2)
    assert obj(z) <= min(obj(c) for c in grid) + 1e-12


def test_weiszfeld_obtuse_triangle_returns_the_vertex():
  """An angle >= 120°: the geometric median is that vertex (to ~eps)."""
  with jax.enable_x64(True):
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.1]])
    agg = optkit.sample_median_gradient(method="geometric", weiszfeld_iters=500, eps=1e-12)
    out, _ = agg.update({"p": jnp.asarray(pts)}, agg.init(None))
    np.testing.assert_allclose(out["p"], [0.0, 0.0], atol=1e-6)


def test_geometric_median_resists_an_outlier():
  rng = np.random.default_rng(3)
  pts = rng.standard_normal((9, 5)) * 0.1 + 1.0
  pts[0] = 1e4  # one corrupted example
  agg = optkit.sample_median_gradient(method="geometric", weiszfeld_iters=50)
  out, _ = agg.update({"g": jnp.asarray(pts, jnp.float32)}, agg.init(None))
  np.testing.assert_allclose(out["g"], np.ones(5), atol=0.2)
  assert np.all(pts.mean(axis=0) > 100)  # the mean is ruined (negative control)


def test_per_example_shape_mismatch_raises():
  agg = optkit.sample_median_gradient()
  params = {"w": jnp.zeros(3)}
  with pytest.raises(ValueError, match="sample_median_gradient"):
    agg.update({"w": jnp.zeros((4, 2))}, agg.init(params), params)
