"""Shampoo (arXiv:2002.09018): distributed Shampoo with blocking and grafting.

References and tolerances:
* a float64 NumPy re-derivation of google-research ``distributed_shampoo``
  (written here from the catalog entry / module docstring: independent block
  slicing, ``moveaxis`` preconditioning, eigendecomposition roots), 8 steps on a
  tree with 0-D, 1-D, 2-D, 4-D and blocked leaves: rtol 1e-9 / atol 1e-12;
* pytorch_optimizer 4.1.0 ``ScalableShampoo`` (three settings) and ``Shampoo``
  trajectories (``tests/fixtures/reference/curvature_shampoo.npz``, made by
  ``tools/make_shampoo_fixtures.py``): float64 with ``ridge_epsilon=0`` (its
  ``use_svd`` convention) rtol 1e-10 / atol 1e-12; float32 with the default
  relative ridge 1e-6 (catalog test (2)): 1e-4 relative to the largest entry;
* ``optax.sgd(nesterov=True)`` before ``start_preconditioning_step``, and
  ``optax.scale_by_rss`` / ``optax.scale_by_rms`` for the grafted norms: rtol 1e-6.
"""

from __future__ import annotations

import importlib
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.core import linalg
from tests import helpers

shampoo_mod = importlib.import_module("optkit.curvature.shampoo")

NAMES = ("b", "c", "k", "m", "w")


def _run_updates(tx, grads, params=None):
  """Open loop: the direction/updates of every step for a gradient sequence."""
  params = jax.tree.map(jnp.zeros_like, grads[0]) if params is None else params
  state = tx.init(params)
  update = jax.jit(tx.update)
  outs = []
  for g in grads:
    u, state = update(g, state, params)
    outs.append(u)
  return outs, state


def _f64_grads(n, shapes, seed=0):
  rng = np.random.default_rng(seed)
  return [{k: jnp.asarray(rng.standard_normal(s) / (1 + 0.1 * i), jnp.float64)
           for k, s in shapes.items()} for i in range(n)]


# ---------------------------------------------------------------------------
# Float64 NumPy re-derivation of google-research distributed Shampoo.


def _np_merge(shape, max_dim):
  if shape and all(d == 1 for d in shape):
    return (1,)
  out, acc = [], 1
  for d in shape:
    if acc * d > max_dim:
      if acc > 1:
        out.append(acc)
      acc = d
    else:
      acc *= d
  return tuple(out + ([acc] if acc > 1 else []))


def _np_block_slices(shape, block_size):
  per_axis = []
  for d in shape:
    if 0 < block_size < d:
      starts = list(range(0, d, block_size))
      per_axis.append([slice(s, min(s + block_size, d)) for s in starts])
    else:
      per_axis.append([slice(0, d)])
  return list(itertools.product(*per_axis))


def _np_root(s, p, ridge):
  w, v = np.linalg.eigh(0.5 * (s + s.T))
  w = np.maximum(w, 0.0)
  r = max(ridge * w.max(), np.finfo(np.float64).tiny)
  return (v * (w + r) ** (-1.0 / p)) @ v.T


def _np_shampoo(grads, block_size=256, b1=0.9, b2=0.999, diagonal_eps=1e-10,
                matrix_eps=1e-6, start=5, precond_every=1, stats_every=1, graft="sgd",
                nesterov=True, skip_gt=4096, exponent_override=0, ridge=None,
                merge=False, merge_block=4096, skip_rank_lt=1):
  ridge = matrix_eps if ridge is None else ridge
  w2 = 1.0 if b2 == 1 else 1.0 - b2
  st = {}
  for k, g in grads[0].items():
    shape = np.shape(g)
    tshape = _np_merge(shape, merge_block) if merge else shape
    skip = (len(shape) < skip_rank_lt or any(d > skip_gt for d in shape) or not tshape)
    slices = [] if skip else _np_block_slices(tshape, block_size)
    dims = [sl.stop - sl.start for blk in slices for sl in blk]
    st[k] = dict(tshape=tshape, slices=slices, skip=skip,
                 p=exponent_override or 2 * len(tshape),
                 S=[matrix_eps * np.eye(d) for d in dims], P=[np.eye(d) for d in dims],
                 m=np.zeros(shape), mg=np.zeros(shape), nu=np.zeros(shape))
  outs = []
  for t, gt in enumerate(grads):
    out = {}
    for k, g in gt.items():
      g = np.asarray(g, np.float64)
      s = st[k]
      nd = len(s["tshape"])
      gr = g.reshape(s["tshape"]) if not s["skip"] else g
      blocks = [gr[blk] for blk in s["slices"]]
      if t % stats_every == 0:
        s["S"] = [b2 * s["S"][j * nd + i] + w2 * np.tensordot(
            blk, blk, axes=([a for a in range(nd) if a != i],) * 2)
                  for j, blk in enumerate(blocks) for i in range(nd)]
      if t % precond_every == 0:
        s["P"] = [_np_root(m, s["p"], ridge) for m in s["S"]]
      if graft in ("adagrad", "adagrad_normalized", "rmsprop", "rmsprop_normalized"):
        x = g / (np.linalg.norm(g) + 1e-16) if graft.endswith("normalized") else g
        s["nu"] = (s["nu"] + x * x if graft.startswith("adagrad")
                   else b2 * s["nu"] + w2 * x * x)
        dg = x / (np.sqrt(s["nu"]) + diagonal_eps)
      elif graft == "sqrt_n":
        dg = np.sign(g)
      else:
        dg = g
      if s["skip"]:
        d = dg
      else:
        full = np.zeros(s["tshape"])
        for j, blk in enumerate(s["slices"]):
          x = blocks[j]
          for i in range(nd):
            x = np.moveaxis(np.tensordot(s["P"][j * nd + i], x, axes=(1, i)), 0, i)
          full[blk] = x
        d = full.reshape(np.shape(g))
      if graft is not None:
        d = d * np.linalg.norm(dg) / (np.linalg.norm(d) + 1e-16)
      s["m"] = b1 * s["m"] + d
      s["mg"] = b1 * s["mg"] + dg
      run = t >= start
      u = s["m"] if run else s["mg"]
      if nesterov:
        u = b1 * u + (d if run else dg)
      out[k] = u
    outs.append(out)
  return outs


NP_SHAPES = {"c": (), "b": (5,), "w": (4, 3), "k": (2, 3, 2, 2), "big": (9, 5)}
NP_CONFIGS = {
    "defaults_start2": dict(start=2),
    "merged_blocked_adagrad_norm": dict(block_size=4, merge=True, graft="adagrad_normalized",
                                        precond_every=3, stats_every=2, nesterov=False, b2=1.0),
    "rmsprop_norm_override_skips": dict(graft="rmsprop_normalized", exponent_override=2,
                                        skip_gt=8, skip_rank_lt=2, start=1, b2=0.9),  # big skipped
    "sqrt_n_blocked": dict(graft="sqrt_n", b1=0.5, block_size=4, start=0, precond_every=2),
    "no_graft_no_ridge": dict(graft=None, ridge=0.0, start=0, merge=True, merge_block=16),
}
_KW = dict(block_size="block_size", b1="b1", b2="b2", diagonal_eps="diagonal_eps",
           matrix_eps="matrix_eps", start="start_preconditioning_step",
           precond_every="preconditioning_compute_steps",
           stats_every="statistics_compute_steps", graft="graft", nesterov="nesterov",
           skip_gt="skip_preconditioning_dim_size_gt", exponent_override="exponent_override",
           ridge="ridge_epsilon", merge="best_effort_shape_interpretation",
           merge_block="merge_small_dims_block_size",
           skip_rank_lt="skip_preconditioning_rank_lt")


@pytest.mark.parametrize("name", sorted(NP_CONFIGS))
def test_matches_float64_numpy_rederivation(name):
  cfg = NP_CONFIGS[name]
  with jax.enable_x64(True):
    grads = _f64_grads(8, NP_SHAPES, seed=1)
    tx = optkit.scale_by_shampoo(**{_KW[k]: v for k, v in cfg.items()})
    outs, _ = _run_updates(tx, grads)
    ref = _np_shampoo(grads, **cfg)
    for t, (o, r) in enumerate(zip(outs, ref)):
      for k in NP_SHAPES:
        np.testing.assert_allclose(np.asarray(o[k]), r[k], rtol=1e-9, atol=1e-12,
                                   err_msg=f"step {t}, leaf {k}")


def test_hand_computed_first_step():
  # G diagonal: L = R = b2 eps I + (1 - b2) G G^T are diagonal, so
  # D = diag(g_i / sqrt(l_i + ridge)) before grafting; SGD graft: ||D|| = ||G||.
  with jax.enable_x64(True):
    g = jnp.array([[3.0, 0.0], [0.0, -2.0]], jnp.float64)
    tx = optkit.scale_by_shampoo(start_preconditioning_step=0)
    out = tx.update(g, tx.init(g))[0]
    l = 0.999 * 1e-6 + 0.001 * np.array([9.0, 4.0])
    r = 1e-6 * l.max()
    d = np.diag([3.0, -2.0]) / np.sqrt(l + r)
    d *= np.sqrt(13.0) / np.linalg.norm(d)
    np.testing.assert_allclose(np.asarray(out), 1.9 * d, rtol=1e-12)  # Nesterov: (1 + b1) D


def test_before_start_is_sgd_with_nesterov_momentum():
  grads = helpers.gradient_sequence(7, seed=3, shapes={"w": (4, 3), "b": (3,)})
  ours, _ = _run_updates(optkit.shampoo(0.1), grads)
  ref, _ = _run_updates(optax.sgd(0.1, momentum=0.9, nesterov=True), grads)
  for t in range(5):  # count 0..4 < start_preconditioning_step = 5
    for k in ("w", "b"):
      np.testing.assert_allclose(ours[t][k], ref[t][k], rtol=1e-6, atol=1e-7)
  # Negative control: from count 5 on the preconditioned direction is used.
  assert not np.allclose(ours[5]["w"], ref[5]["w"], rtol=1e-3)


# ---------------------------------------------------------------------------
# pytorch_optimizer fixture.

_FIXTURE_CONFIGS = {
    "scalable_sgd": dict(learning_rate=0.1, b1=0.9, b2=0.999, start_preconditioning_step=0,
                         block_size=4, graft="sgd", nesterov=True,
                         skip_preconditioning_rank_lt=2),
    # pytorch_optimizer start_preconditioning_step=4 counts from 1: optkit's 3.
    "scalable_adagrad": dict(learning_rate=0.05, b1=0.8, b2=0.99, start_preconditioning_step=3,
                             block_size=4, graft="adagrad", nesterov=False,
                             skip_preconditioning_rank_lt=2),
    "scalable_rmsprop": dict(learning_rate=0.02, b1=0.9, b2=0.95, start_preconditioning_step=0,
                             block_size=3, graft="rmsprop", nesterov=True,
                             skip_preconditioning_rank_lt=2),
    # The original Shampoo: summed statistics, no momentum, no grafting.
    "shampoo": dict(learning_rate=0.1, b1=0.0, b2=1.0, start_preconditioning_step=0,
                    block_size=0, graft=None, nesterov=False),
}


def _fixture_run(z, name, dtype, ridge_epsilon):
  x0 = {k: jnp.asarray(z[f"x0/{k}"], dtype) for k in NAMES}
  opt = optkit.shampoo(**_FIXTURE_CONFIGS[name], ridge_epsilon=ridge_epsilon)
  p, s = x0, opt.init(x0)
  update = jax.jit(opt.update)
  traj = []
  for i in range(z["grads/b"].shape[0]):
    g = {k: jnp.asarray(z[f"grads/{k}"][i], dtype) for k in NAMES}
    u, s = update(g, s, p)
    p = optax.apply_updates(p, u)
    traj.append(p)
  return traj


@pytest.mark.parametrize("name", sorted(_FIXTURE_CONFIGS))
def test_matches_pytorch_optimizer_float64(name):
  z = np.load(helpers.fixture("curvature_shampoo.npz"))
  with jax.enable_x64(True):
    traj = _fixture_run(z, name, jnp.float64, ridge_epsilon=0.0)
    for i, p in enumerate(traj):
      for k in NAMES:
        np.testing.assert_allclose(np.asarray(p[k]), z[f"{name}/traj/{k}"][i + 1],
                                   rtol=1e-10, atol=1e-12, err_msg=f"step {i}, leaf {k}")


@pytest.mark.parametrize("name", ["scalable_sgd", "shampoo"])
def test_default_ridge_float32_close_to_pytorch_optimizer(name):
  z = np.load(helpers.fixture("curvature_shampoo.npz"))
  traj = _fixture_run(z, name, jnp.float32, ridge_epsilon=None)
  for i, p in enumerate(traj):
    for k in NAMES:
      ref = z[f"{name}/traj/{k}"][i + 1]
      err = np.max(np.abs(np.asarray(p[k], np.float64) - ref)) / np.max(np.abs(ref))
      assert err < 1e-4, (i, k, err)


# ---------------------------------------------------------------------------
# Properties from the catalog entry.


@pytest.mark.parametrize("shape", [(5, 3), (4, 4), (3, 6)])
def test_no_accumulation_no_graft_gives_polar_factor(shape):
  # b2 = 0: S = current G G^T only; then (G G^T)^(-1/4) G (G^T G)^(-1/4) = U V^T.
  with jax.enable_x64(True):
    g = jnp.asarray(np.random.default_rng(7).standard_normal(shape), jnp.float64)
    tx = optkit.scale_by_shampoo(b1=0.0, b2=0.0, matrix_eps=1e-12,
                                 start_preconditioning_step=0, graft=None)
    out = tx.update(g, tx.init(g))[0]
    polar = linalg.orthogonalize_svd(g)
    np.testing.assert_allclose(np.asarray(out), np.asarray(polar), atol=1e-6)
    # With the SGD graft: the same direction with the norm of G.
    tx = optkit.scale_by_shampoo(b1=0.0, b2=0.0, matrix_eps=1e-12,
                                 start_preconditioning_step=0)
    out = tx.update(g, tx.init(g))[0]
    np.testing.assert_allclose(
        np.asarray(out),
        np.asarray(polar) * float(jnp.linalg.norm(g) / jnp.linalg.norm(polar)), atol=1e-6)


def test_inverse_fourth_root_property():
  with jax.enable_x64(True):
    x = np.random.default_rng(0).standard_normal((6, 9))
    a = jnp.asarray(x @ x.T)
    p = linalg.inverse_pth_root(a, 4, ridge_epsilon=0.0)
    np.testing.assert_allclose(np.asarray(p @ p @ p @ p @ a), np.eye(6), atol=1e-9)


def test_block_size_covering_dims_equals_no_blocking():
  block_size = 7  # == the largest axis: no split (blocks only where block_size < d)
  shapes = {"w": (6, 7), "k": (2, 3, 5), "b": (7,)}
  grads = helpers.gradient_sequence(6, seed=5, shapes=shapes)
  kw = dict(start_preconditioning_step=1, graft="adagrad")
  ref, _ = _run_updates(optkit.scale_by_shampoo(block_size=0, **kw), grads)
  out, _ = _run_updates(optkit.scale_by_shampoo(block_size=block_size, **kw), grads)
  small, _ = _run_updates(optkit.scale_by_shampoo(block_size=3, **kw), grads)
  for t in range(6):
    for k in shapes:
      np.testing.assert_array_equal(out[t][k], ref[t][k])
  # Negative control: blocks smaller than the leaf change the preconditioner.
  assert not np.allclose(small[-1]["w"], ref[-1]["w"], rtol=1e-3)


def test_blocks_are_independent_shampoo_problems():
  # Without grafting (a per-leaf norm), blocking an (8, 4) leaf by 4 rows is
  # Shampoo run separately on its two (4, 4) halves.
  grads = helpers.gradient_sequence(5, seed=8, shapes={"w": (8, 4)})
  halves = [{"top": g["w"][:4], "bot": g["w"][4:]} for g in grads]
  kw = dict(start_preconditioning_step=0, graft=None)
  out, _ = _run_updates(optkit.scale_by_shampoo(block_size=4, **kw), grads)
  ref, _ = _run_updates(optkit.scale_by_shampoo(block_size=0, **kw), halves)
  for t in range(5):
    np.testing.assert_allclose(out[t]["w"], np.concatenate([ref[t]["top"], ref[t]["bot"]]),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("graft", ["sgd", "adagrad", "rmsprop"])
def test_grafting_gives_the_grafted_optimizers_norm(graft):
  shapes = {"w": (5, 4), "k": (2, 3, 4), "b": (4,)}
  grads = helpers.gradient_sequence(6, seed=9, shapes=shapes)
  kw = dict(b1=0.0, b2=0.95, start_preconditioning_step=0, nesterov=False)
  out, _ = _run_updates(optkit.scale_by_shampoo(graft=graft, **kw), grads)
  ungrafted, _ = _run_updates(optkit.scale_by_shampoo(graft=None, **kw), grads)
  ref_tx = {"sgd": optax.identity(),
            "adagrad": optax.scale_by_rss(initial_accumulator_value=0.0, eps=0.0),
            "rmsprop": optax.scale_by_rms(decay=0.95, eps=1e-10, eps_in_sqrt=False)}[graft]
  ref, _ = _run_updates(ref_tx, grads)
  mismatch = 0
  for t in range(6):
    for k in shapes:
      n_out, n_ref = np.linalg.norm(out[t][k]), np.linalg.norm(ref[t][k])
      np.testing.assert_allclose(n_out, n_ref, rtol=1e-5)
      # The direction is Shampoo's: parallel to the ungrafted update.
      cos = np.vdot(out[t][k], ungrafted[t][k]) / (n_out * np.linalg.norm(ungrafted[t][k]))
      np.testing.assert_allclose(cos, 1.0, atol=1e-5)
      mismatch += not np.isclose(np.linalg.norm(ungrafted[t][k]), n_ref, rtol=1e-2)
  assert mismatch > 0  # negative control: without grafting the norms differ


def test_kronecker_quadratic_shampoo_beats_adam():
  # f(W) = tr((W - W*)^T A (W - W*) B) / 2: Hessian A (x) B, condition 10^4,
  # with rotated (non-diagonal) factors.
  rng = np.random.default_rng(0)

  def spd(n):
    q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return (q * np.logspace(0, 2, n)) @ q.T

  a, b = jnp.asarray(spd(8), jnp.float32), jnp.asarray(spd(6), jnp.float32)
  w_star = jnp.asarray(rng.standard_normal((8, 6)), jnp.float32)

  def loss(w):
    e = w - w_star
    return 0.5 * jnp.trace(e.T @ a @ e @ b)

  w0 = jnp.zeros((8, 6))
  f0 = float(loss(w0))

  def best_loss(opt, steps):
    def body(carry, _):
      w, s = carry
      u, s = opt.update(jax.grad(loss)(w), s, w)
      w = optax.apply_updates(w, u)
      return (w, s), loss(w)
    _, losses = jax.jit(lambda w, s: jax.lax.scan(body, (w, s), None, length=steps))(
        w0, opt.init(w0))
    return float(np.min(np.asarray(losses))) / f0

  steps = 100
  shampoo_loss = best_loss(optkit.shampoo(0.1, graft=None,
                                          start_preconditioning_step=0), steps)
  assert shampoo_loss < 1e-6, shampoo_loss
  # Negative control: Adam, with the best learning rate of a grid, stays more
  # than 10x above that loss in the same number of steps.
  adam_losses = {lr: best_loss(optax.adam(lr), steps) for lr in (0.01, 0.03, 0.1, 0.3, 1.0)}
  assert min(adam_losses.values()) > 1e-5, adam_losses


# ---------------------------------------------------------------------------
# Layout, validation.


def test_merge_small_dims_and_block_layout():
  merge = shampoo_mod.merge_small_dims
  assert merge((1, 2, 512, 1, 2048, 1, 3, 4), 1024) == (1024, 2048, 12)
  assert merge((1, 2, 768, 1, 2048), 1024) == (2, 768, 2048)
  assert merge((5, 3), 4096) == (15,)
  assert merge((1, 1), 4096) == (1,)
  assert merge((), 4096) == ()
  tx = optkit.scale_by_shampoo(block_size=4)
  state = tx.init({"w": jnp.zeros((10, 7)), "c": jnp.zeros(()), "b": jnp.zeros((9,))})
  shapes = [s.shape for s in state.statistics["w"]]
  # Blocks (4, 4), (4, 3), (4, 4), (4, 3), (2, 4), (2, 3), one statistic per axis.
  assert shapes == [(4, 4), (4, 4), (4, 4), (3, 3), (4, 4), (4, 4), (4, 4), (3, 3),
                    (2, 2), (4, 4), (2, 2), (3, 3)]
  assert [s.shape for s in state.statistics["b"]] == [(4, 4), (4, 4), (1, 1)]
  assert state.statistics["c"] == ()
  np.testing.assert_array_equal(state.statistics["w"][0], 1e-6 * np.eye(4, dtype=np.float32))


def test_statistics_and_roots_follow_their_intervals():
  grads = helpers.gradient_sequence(6, seed=2, shapes={"w": (4, 3)})
  tx = optkit.scale_by_shampoo(statistics_compute_steps=2, preconditioning_compute_steps=3)
  state = tx.init(grads[0])
  update = jax.jit(tx.update)
  for t, g in enumerate(grads):
    _, new = update(g, state)
    stats_changed = not np.allclose(new.statistics["w"][0], state.statistics["w"][0])
    roots_changed = not np.allclose(new.preconditioners["w"][0], state.preconditioners["w"][0])
    assert stats_changed == (t % 2 == 0), t
    assert roots_changed == (t % 3 == 0), t
    state = new


def test_large_dimension_leaf_uses_the_graft_direction():
  g = {"w": jnp.asarray(np.random.default_rng(1).standard_normal((9, 2)), jnp.float32)}
  tx = optkit.scale_by_shampoo(skip_preconditioning_dim_size_gt=8, start_preconditioning_step=0)
  out, state = tx.update(g, tx.init(g))
  np.testing.assert_allclose(out["w"], 1.9 * g["w"], rtol=1e-6)  # (1 + b1) g, SGD graft
  assert state.statistics["w"] == ()


@pytest.mark.parametrize("kwargs", [
    dict(b1=1.0), dict(b2=1.5), dict(block_size=-1), dict(graft="adam"),
    dict(preconditioning_compute_steps=0), dict(statistics_compute_steps=1.5),
    dict(start_preconditioning_step=-1), dict(matrix_eps=-1.0), dict(diagonal_eps=-1.0),
    dict(nesterov="yes"), dict(skip_preconditioning_dim_size_gt=0),
    dict(ridge_epsilon=-1.0), dict(exponent_override=-2)])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="shampoo"):
    optkit.shampoo(0.1, **kwargs)


def test_bad_learning_rate_and_weight_decay_raise():
  with pytest.raises(ValueError, match="shampoo"):
    optkit.shampoo(-0.1)
  with pytest.raises(ValueError, match="shampoo"):
    optkit.shampoo(0.1, weight_decay=-1.0)
