"""FRUGAL: Adam's state only in the subspace, signSGD on the residual."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from benchmarks.shapes import SIZES
from tests import helpers

PROJECTIONS = ("svd", "randk", "columns")
SHAPES = {"w": (8, 12), "v": (12, 8), "k": (3, 2, 8), "b": (5,)}
SMALL = {"w": (6, 4), "k": (2, 2, 3), "b": (3,)}


def _run(tx, grads, params=None):
  if params is None:
    params = helpers.random_tree(99, shapes={k: v.shape for k, v in grads[0].items()})
  return helpers.run_open_loop(tx, params, grads)


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_moments_have_the_reduced_shape(projection):
  tx = optkit.scale_by_frugal(density=0.25, projection=projection)
  g = helpers.random_tree(0, shapes=SHAPES)
  _, state = jax.eval_shape(tx.update, g, tx.init(g))   # shapes after a step
  mu = jax.tree.map(jnp.shape, state.mu)
  nu = jax.tree.map(jnp.shape, state.nu)
  proj = jax.tree.map(jnp.shape, state.proj)
  expected = {
      # rank ceil(0.25 * min(m, n)) = 2 on the smaller side; k viewed as (6, 8).
      "svd": ({"w": (2, 12), "v": (12, 2), "k": (2, 8), "b": (5,)},
              {"w": (8, 2), "v": (8, 2), "k": (6, 2), "b": (1,)}),
      # ceil(0.25 * m n) coordinates.
      "randk": ({"w": (24,), "v": (24,), "k": (12,), "b": (5,)},
                {"w": (24,), "v": (24,), "k": (12,), "b": (1,)}),
      # ceil(0.25 * n) columns.
      "columns": ({"w": (8, 3), "v": (12, 2), "k": (6, 2), "b": (5,)},
                  {"w": (3,), "v": (2,), "k": (2,), "b": (1,)}),
  }[projection]
  assert mu == expected[0] and nu == expected[0]
  assert proj == expected[1]


def _state_bytes(tx, shapes):
  params = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}
  state = jax.eval_shape(tx.init, params)
  nbytes = lambda t: sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(t))
  return nbytes(state) / nbytes(params)


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_state_is_smaller_than_adamw_on_transformer_shapes(projection):
  shapes = SIZES["1M"]
  ratio = _state_bytes(optkit.frugal(1e-3, density=0.25, projection=projection), shapes)
  assert ratio < 2.0 * 0.5, ratio  # well under AdamW's two moments
  # Negative controls: AdamW keeps two full moments; so does FRUGAL at density 1.
  assert _state_bytes(optax.adamw(1e-3), shapes) >= 2.0
  assert _state_bytes(optkit.frugal(1e-3, density=1.0, projection=projection), shapes) >= 2.0


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_density_one_is_adamw(projection):
  grads = helpers.gradient_sequence(4, seed=1, shapes=SMALL)
  kw = dict(b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1)
  ours = _run(optkit.frugal(0.01, density=1.0, projection=projection, update_gap=2, **kw), grads)
  ref = _run(optax.adamw(0.01, **kw), grads)
  for (u, _), (r, _) in zip(ours, ref):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8), u, r)


@pytest.mark.parametrize("projection", PROJECTIONS)
def test_density_zero_is_sign_sgd_on_matrices_and_adamw_on_vectors(projection):
  grads = helpers.gradient_sequence(3, seed=2, shapes=SMALL)
  ours = _run(optkit.frugal(0.01, density=0.0, projection=projection), grads)
  sign = _run(optax.sign_sgd(0.01), grads)
  adam = _run(optax.adam(0.01), grads)
  for (u, _), (s, _), (a, _) in zip(ours, sign, adam):
    for k in ("w", "k"):
      np.testing.assert_array_equal(u[k], s[k])
    # Documented fallback: a leaf with fewer than 2 dims keeps full AdamW.
    np.testing.assert_allclose(u["b"], a["b"], rtol=1e-6)
  # (Adam's first step is nearly a sign step; later ones are not.)
  assert not np.allclose(ours[-1][0]["b"], sign[-1][0]["b"], rtol=1e-2)
  sgd = _run(optkit.frugal(0.01, density=0.0, projection=projection, state_free="sgd"), grads)
  plain = _run(optax.sgd(0.01), grads)
  for (u, _), (s, _) in zip(sgd, plain):
    np.testing.assert_allclose(u["w"], s["w"], rtol=1e-6)


def test_hand_computed_first_step_columns():
  # First Adam step on the chosen columns is g / (|g| + eps) (m_hat = g,
  # v_hat = g^2); the other columns get s * sign(g).
  # float64 so that the bias corrections 1 - b**t are exact to 1e-12.
  gw = np.array([[1.0, -2.0, 3.0, 0.5], [-1.0, 4.0, 0.0, -0.25]])
  with jax.enable_x64(True):
    g = {"w": jnp.asarray(gw)}
    tx = optkit.scale_by_frugal(density=0.5, projection="columns", eps=1.0,
                                state_free_lr_scale=0.1, seed=3)
    d, state = jax.jit(tx.update)(g, tx.init(g))
  cols = np.asarray(state.proj["w"])
  assert len(set(cols.tolist())) == 2
  expected = 0.1 * np.sign(gw)
  expected[:, cols] = gw[:, cols] / (np.abs(gw[:, cols]) + 1.0)
  np.testing.assert_allclose(d["w"], expected, rtol=1e-12)
  np.testing.assert_allclose(state.mu["w"], 0.1 * gw[:, cols], rtol=1e-12)


def _numpy_frugal_svd(grads, density, gap, b1, b2, eps, scale):
  """float64 re-derivation of the SVD variant on one (m, n) leaf, m <= n."""
  out, p, m, v, t = [], None, None, None, 0
  for step, g in enumerate(grads):
    r = int(np.ceil(density * min(g.shape)))
    if step % gap == 0:
      p = np.linalg.svd(g, full_matrices=False)[0][:, :r]
      m, v, t = np.zeros((r, g.shape[1])), np.zeros((r, g.shape[1])), 0
    red = p.T @ g
    t += 1
    m = b1 * m + (1 - b1) * red
    v = b2 * v + (1 - b2) * red ** 2
    n = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    out.append(p @ n + scale * np.sign(g - p @ red))
  return out


def test_svd_variant_matches_float64_numpy_rederivation():
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal((5, 7)) for _ in range(7)]
  expected = _numpy_frugal_svd(grads, 0.4, 3, 0.9, 0.99, 1e-8, 0.5)
  with jax.enable_x64(True):
    tx = optkit.scale_by_frugal(0.9, 0.99, 1e-8, density=0.4, update_gap=3,
                                state_free_lr_scale=0.5)
    state = tx.init({"w": jnp.zeros((5, 7), jnp.float64)})
    update = jax.jit(tx.update)
    for g, e in zip(grads, expected):
      d, state = update({"w": jnp.asarray(g)}, state)
      np.testing.assert_allclose(d["w"], e, rtol=1e-10, atol=1e-10)
    assert state.mu["w"].shape == (2, 7)


def test_refresh_draws_a_new_subspace_and_resets_only_projected_leaves():
  grads = helpers.gradient_sequence(7, seed=4, shapes=SMALL)
  outs = _run(optkit.scale_by_frugal(density=0.25, projection="randk", update_gap=3), grads)
  idx = [np.asarray(s.proj["w"]) for _, s in outs]
  counts_w = [int(s.counts["w"]) for _, s in outs]
  counts_b = [int(s.counts["b"]) for _, s in outs]
  # Same coordinates within an interval (negative control), new ones after it.
  np.testing.assert_array_equal(idx[0], idx[2])
  assert not np.array_equal(idx[2], idx[3])
  np.testing.assert_array_equal(idx[3], idx[5])
  assert counts_w == [1, 2, 3, 1, 2, 3, 1]
  assert counts_b == [1, 2, 3, 4, 5, 6, 7]   # the AdamW fallback is never reset


def test_same_seed_same_subspace_other_seed_other_subspace():
  g = helpers.random_tree(5, shapes={"w": (8, 12)})
  txs = [optkit.scale_by_frugal(projection="randk", seed=seed) for seed in (0, 0, 1)]
  # One compiled program for the three runs (compiles dominate this test).
  p0, p0_again, p1 = jax.jit(lambda g: [tx.update(g, tx.init(g))[1].proj["w"] for tx in txs])(g)
  np.testing.assert_array_equal(p0, p0_again)
  assert not np.array_equal(np.sort(p0), np.sort(p1))


@pytest.mark.parametrize("kwargs", [
    {"density": 1.5}, {"density": -0.1}, {"update_gap": 0}, {"projection": "block"},
    {"state_free": "adam"}, {"state_free_lr_scale": -1.0}, {"b1": 1.0}, {"eps": -1.0},
    {"learning_rate": -1.0}, {"weight_decay": -0.1},
])
def test_bad_hyperparameters_raise(kwargs):
  kwargs = {"learning_rate": 0.1, **kwargs}
  with pytest.raises(ValueError, match="frugal"):
    optkit.frugal(**kwargs)


def test_mismatched_leaf_names_the_leaf():
  tx = optkit.scale_by_frugal()
  state = tx.init({"w": jnp.zeros((4, 8))})
  with pytest.raises(ValueError, match=r"frugal.*\['w'\]"):
    tx.update({"w": jnp.zeros((8, 4))}, state)


def test_state_free_none_drops_the_residual():
  # state_free='none' (the authors' inactive_update_rule='no'): only the
  # stateful columns move; with 'sign' (negative control) the rest moves too.
  g = {"w": jnp.asarray(np.arange(1.0, 9.0).reshape(2, 4))}
  for rule, rest in (("none", 0.0), ("sign", 1.0)):
    tx = optkit.scale_by_frugal(density=0.5, projection="columns", state_free=rule)
    d, state = jax.jit(tx.update)(g, tx.init(g))
    others = np.setdiff1d(np.arange(4), np.asarray(state.proj["w"]))
    np.testing.assert_array_equal(np.asarray(d["w"])[:, others], rest)
