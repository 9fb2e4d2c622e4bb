"""RM3, M3 and winsorization (Chatterjee & Zielinski, 2203.10036)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optkit


def test_rm3_of_1_5_3_is_3_and_warmup_steps():
  tx = optkit.scale_by_running_median()
  state = tx.init(jnp.zeros(2))
  out1, state = tx.update(jnp.array([1.0, 7.0]), state)
  np.testing.assert_allclose(out1, [1.0, 7.0])          # only g_1
  out2, state = tx.update(jnp.array([5.0, -1.0]), state)
  np.testing.assert_allclose(out2, [3.0, 3.0])          # median of two = mean
  out3, state = tx.update(jnp.array([3.0, 2.0]), state)
  np.testing.assert_allclose(out3, [3.0, 2.0])          # median(1, 5, 3), median(7, -1, 2)
  out4, _ = tx.update(jnp.array([-10.0, 0.0]), state)
  np.testing.assert_allclose(out4, [3.0, 0.0])          # median(5, 3, -10), median(-1, 2, 0)


def test_rm3_matches_numpy_median_on_a_sequence():
  rng = np.random.default_rng(0)
  seq = rng.standard_normal((12, 3, 4)).astype(np.float32)
  tx = optkit.scale_by_running_median()
  state = tx.init(jnp.zeros((3, 4)))
  update = jax.jit(tx.update)
  for t in range(len(seq)):
    out, state = update(jnp.asarray(seq[t]), state)
    window = seq[max(0, t - 2):t + 1]
    np.testing.assert_allclose(out, np.median(window, axis=0), rtol=1e-6, atol=1e-7)


def test_rm3_suppresses_a_single_spike_but_sgd_does_not():
  """Defining property: one outlier step never reaches the output (once two
  gradients are known); the identity (plain SGD) passes it through."""
  tx = optkit.scale_by_running_median()
  state = tx.init(jnp.zeros(1))
  outs = []
  for g in [1.0, 1.1, 1e6, 0.9, 1.0]:
    out, state = tx.update(jnp.array([g]), state)
    outs.append(float(out[0]))
  assert max(outs) < 2.0, outs
  assert max([1.0, 1.1, 1e6, 0.9, 1.0]) > 2.0  # negative control: raw gradients


def test_m3_equals_median_of_explicit_group_means():
  rng = np.random.default_rng(1)
  g = rng.standard_normal((9, 2, 3)).astype(np.float32)
  agg = optkit.median_of_means_gradient(num_groups=3)
  out, _ = agg.update({"w": jnp.asarray(g)}, agg.init(None))
  means = np.stack([g[0:3].mean(0), g[3:6].mean(0), g[6:9].mean(0)])
  np.testing.assert_allclose(out["w"], np.median(means, axis=0), rtol=1e-6)


def test_m3_uneven_groups_follow_array_split():
  g = np.arange(7, dtype=np.float32)[:, None] ** 2  # B = 7 -> groups 3, 2, 2
  agg = optkit.median_of_means_gradient(num_groups=3)
  out, _ = agg.update({"w": jnp.asarray(g)}, agg.init(None))
  means = [part.mean(0) for part in np.array_split(g, 3)]
  np.testing.assert_allclose(out["w"], np.median(np.stack(means), axis=0), rtol=1e-6)


def test_m3_with_one_group_is_the_mean_and_resists_an_outlier_group():
  rng = np.random.default_rng(2)
  g = rng.standard_normal((6, 4)).astype(np.float32)
  agg1 = optkit.median_of_means_gradient(num_groups=1)
  out, _ = agg1.update({"w": jnp.asarray(g)}, agg1.init(None))
  np.testing.assert_allclose(out["w"], g.mean(0), rtol=1e-5, atol=1e-6)
  g[0] = 1e5  # corrupts one group of three
  agg3 = optkit.median_of_means_gradient()
  out3, _ = agg3.update({"w": jnp.asarray(g)}, agg3.init(None))
  assert np.all(np.abs(out3["w"]) < 10)
  assert np.all(np.abs(g.mean(0)) > 1000)  # negative control: the mean


def test_winsorize_c0_is_the_mean():
  rng = np.random.default_rng(3)
  g = rng.standard_normal((5, 3, 2)).astype(np.float32)
  agg = optkit.winsorize_per_example_gradients(c=0)
  out, _ = agg.update({"w": jnp.asarray(g)}, agg.init(None))
  np.testing.assert_allclose(out["w"], g.mean(0), rtol=1e-5, atol=1e-6)


def test_winsorize_matches_a_numpy_rederivation():
  rng = np.random.default_rng(4)
  g = rng.standard_normal((8, 5)).astype(np.float32)
  for c in (1, 2, 3):
    agg = optkit.winsorize_per_example_gradients(c=c)
    out, _ = agg.update({"w": jnp.asarray(g)}, agg.init(None))
    s = np.sort(g, axis=0)
    expected = np.clip(g, s[c], s[-1 - c]).mean(0)
    np.testing.assert_allclose(out["w"], expected, rtol=1e-5, atol=1e-6)


def test_per_example_errors_name_the_method():
  with pytest.raises(ValueError, match="winsorize_per_example_gradients"):
    agg = optkit.winsorize_per_example_gradients(c=2)
    agg.update({"w": jnp.zeros((4, 3))}, agg.init(None))
  with pytest.raises(ValueError, match="median_of_means_gradient"):
    agg = optkit.median_of_means_gradient(num_groups=3)
    agg.update({"w": jnp.zeros((2, 3))}, agg.init(None))
  with pytest.raises(ValueError, match="median_of_means_gradient"):
    optkit.median_of_means_gradient(num_groups=0)
  with pytest.raises(ValueError, match="winsorize_per_example_gradients"):
    optkit.winsorize_per_example_gradients(c=-1)
  params = {"w": jnp.zeros(3)}
  with pytest.raises(ValueError, match="winsorize_per_example_gradients"):
    agg = optkit.winsorize_per_example_gradients(c=0)
    agg.update({"w": jnp.zeros((4, 2))}, agg.init(params), params)


def test_bf16_per_example_input_gives_bf16_output():
  agg = optkit.median_of_means_gradient()
  out, _ = agg.update({"w": jnp.ones((6, 2), jnp.bfloat16)}, agg.init(None))
  assert out["w"].dtype == jnp.bfloat16 and out["w"].shape == (2,)
