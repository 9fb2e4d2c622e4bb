"""What makes steepest descent under per-tensor norms what it is (arXiv:2409.20325).

References and tolerances:
* exact dual norms and polar factors from NumPy float64 SVD (1e-5 in float32,
  1e-10 in float64);
* Shampoo without accumulation, (G G^T)^(-1/4) G (G^T G)^(-1/4), in NumPy
  float64: equals the SVD spectral dualizer to 1e-5;
* optax.adam(b1=b2=0, eps=0): equals sign descent exactly;
* optax.contrib.scale_by_muon(beta=0): its Newton-Schulz output equals the
  optkit Newton-Schulz dualizer to 1e-6;
* optax.sgd: equals l2 steepest descent with the exact (per-leaf) dual-norm
  step to 1e-6.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import optkit
from optkit.orthogonal import steepest_descent as sd

RNG = np.random.default_rng(0)

# Jitted once per shape (the eager Newton-Schulz scan re-traces on every call).
_spectral = jax.jit(optkit.dualize_spectral,
                    static_argnames=("method", "ns_steps", "eps", "dimension_numbers"))


def _np_polar(g):
  u, _, vt = np.linalg.svd(np.asarray(g, np.float64), full_matrices=False)
  return u @ vt


def _svals(x):
  return np.linalg.svd(np.asarray(x, np.float64), compute_uv=False)


def _update(tx, g, params=None):
  """First update of ``tx`` (jitted: one compile instead of many eager ops)."""
  return jax.jit(lambda g, p: tx.update(g, tx.init(g if p is None else p), p)[0])(g, params)


# ---------------------------------------------------------------- first steps


def test_hand_computed_first_steps():
  # G = [[0, 2], [-5, 0]] = U S V^T with U V^T = [[0, 1], [-1, 0]].
  g = jnp.array([[0.0, 2.0], [-5.0, 0.0]])
  u = _update(optkit.spectral_descent(0.5, method="svd"), g, g)
  np.testing.assert_allclose(u, [[0.0, -0.5], [0.5, 0.0]], atol=1e-7)
  # Sign descent: -lr * sign(g); zero entries do not move.
  g = jnp.array([3.0, -0.01, 0.0])
  np.testing.assert_array_equal(_update(optkit.sign_descent(0.1), g, g),
                                np.float32([-0.1, 0.1, 0.0]))
  # RMS->RMS on a (1, 4) matrix (fan_in 1, fan_out 4): sqrt(4/1) * g / ||g||.
  g = jnp.array([[0.0, 3.0, 4.0, 0.0]])
  u = _update(optkit.steepest_descent(1.0, "rms_to_rms", method="svd"), g, g)
  np.testing.assert_allclose(u, [[0.0, -1.2, -1.6, 0.0]], atol=1e-6)
  # Decoupled weight decay: -lr * (U V^T + wd * W).
  w = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  g = jnp.array([[2.0, 0.0], [0.0, -3.0]])
  tx = optkit.spectral_descent(0.1, method="svd", weight_decay=0.5)
  np.testing.assert_allclose(tx.update(g, tx.init(w), w)[0],
                             [[-0.15, 0.0], [0.0, 0.05]], atol=1e-7)


# ------------------------------------------------- dualizers: the definitions


def test_svd_spectral_dualizer_is_the_polar_factor():
  g = RNG.standard_normal((7, 5)).astype(np.float32)
  d = np.asarray(_spectral(jnp.asarray(g), method="svd"))
  # All singular values 1 ...
  np.testing.assert_allclose(_svals(d), np.ones(5), atol=1e-5)
  # ... and the same singular vectors as G: D = U V^T, so D V = U.
  u, _, vt = np.linalg.svd(g.astype(np.float64), full_matrices=False)
  np.testing.assert_allclose(d @ vt.T, u, atol=1e-5)
  np.testing.assert_allclose(d, u @ vt, atol=1e-5)
  # Negative control: the Frobenius-normalised gradient has the same singular
  # vectors but not unit singular values.
  raw = g / np.linalg.norm(g, 2)
  assert _svals(raw).min() < 0.9


def _primal_norm(label, t):
  """The norm each dualizer's unit ball is defined by (matrix view (in, out))."""
  t = np.asarray(t, np.float64)
  fi, fo = t.shape
  if label == "sign":
    return np.abs(t).max()
  if label == "l2":
    return np.linalg.norm(t)
  if label == "rms":
    return np.linalg.norm(t) / np.sqrt(t.size)
  if label == "spectral":
    return _svals(t).max()
  if label == "rms_to_rms":
    return np.sqrt(fi / fo) * _svals(t).max()
  if label == "columns":
    return (np.linalg.norm(t, axis=1) / np.sqrt(fo)).max()
  raise KeyError(label)


def _dual_norm(label, g):
  """Independent closed forms of ||G||_* (paper's presets)."""
  g = np.asarray(g, np.float64)
  fi, fo = g.shape
  return {
      "sign": np.abs(g).sum(),                       # l1
      "l2": np.linalg.norm(g),                       # l2
      "rms": np.sqrt(g.size) * np.linalg.norm(g),
      "spectral": _svals(g).sum(),                   # nuclear
      "rms_to_rms": np.sqrt(fo / fi) * _svals(g).sum(),
      "columns": np.sqrt(fo) * np.linalg.norm(g, axis=1).sum(),
  }[label]


DUALIZERS = {
    "sign": optkit.dualize_sign,
    "l2": optkit.dualize_l2,
    "rms": optkit.dualize_rms,
    "spectral": lambda g: _spectral(g, method="svd"),
    "rms_to_rms": lambda g: optkit.dualize_rms_to_rms(g, method="svd"),
    "columns": optkit.dualize_columns,
}


@pytest.mark.parametrize("label", sorted(DUALIZERS))
def test_inner_product_with_dual_is_the_dual_norm_and_maximal(label):
  with jax.enable_x64(True):
    g = RNG.standard_normal((6, 4))
    d = np.asarray(DUALIZERS[label](jnp.asarray(g)))
    assert d.dtype == np.float64
    dual = _dual_norm(label, g)
    # <G, dualize(G)> = ||G||_* and dualize(G) lies on the unit sphere.
    np.testing.assert_allclose(np.sum(g * d), dual, rtol=1e-10)
    np.testing.assert_allclose(_primal_norm(label, d), 1.0, rtol=1e-10)
    # Maximality: no feasible T does better. Negative control: the gradient
    # rescaled onto the unit sphere (a plain normalised-gradient step) is
    # strictly worse for every non-Euclidean preset (for l2 and RMS it is the
    # dualizer itself).
    for _ in range(50):
      t = RNG.standard_normal(g.shape)
      t /= _primal_norm(label, t)
      assert np.sum(g * t) <= dual * (1 + 1e-12)
    ratio = np.sum(g * g) / _primal_norm(label, g) / dual
    if label in ("l2", "rms"):
      np.testing.assert_allclose(ratio, 1.0, rtol=1e-12)
    else:
      assert ratio < 0.99


def test_adam_without_emas_is_sign_descent():
  params = {"w": jnp.zeros((3, 4)), "b": jnp.zeros((5,))}
  adam = optax.adam(0.01, b1=0.0, b2=0.0, eps=0.0)
  for tx in (optkit.sign_descent(0.01), optkit.steepest_descent(0.01, "sign")):
    sa, st = adam.init(params), tx.init(params)
    for i in range(4):
      g = {k: jnp.asarray(RNG.standard_normal(v.shape) * 10.0 ** (i - 2), jnp.float32)
           for k, v in params.items()}
      ua, sa = adam.update(g, sa, params)
      ut, st = tx.update(g, st, params)
      chex.assert_trees_all_equal(ua, ut)
  # Negative control: Adam with its default EMAs is not sign descent.
  adam_ema = optax.adam(0.01)
  s = adam_ema.init(params)
  g1 = jax.tree.map(jnp.ones_like, params)
  g2 = jax.tree.map(lambda x: -0.1 * jnp.ones_like(x), params)
  _, s = adam_ema.update(g1, s, params)
  u, _ = adam_ema.update(g2, s, params)
  assert not np.allclose(u["w"], 0.01)


def _shampoo_no_accumulation(g):
  """(G G^T)^(-1/4) G (G^T G)^(-1/4) in float64, pseudo-inverse roots."""
  def inv_quarter(a):
    w, v = np.linalg.eigh(a)
    keep = w > w.max() * 1e-12
    root = np.where(keep, np.abs(w) ** -0.25, 0.0)
    return (v * root) @ v.T
  g = np.asarray(g, np.float64)
  return inv_quarter(g @ g.T) @ g @ inv_quarter(g.T @ g)


@pytest.mark.parametrize("shape", [(6, 6), (3, 7)])
def test_shampoo_without_accumulation_equals_spectral_descent(shape):
  g = RNG.standard_normal(shape).astype(np.float32)
  shampoo = _shampoo_no_accumulation(g)
  np.testing.assert_allclose(shampoo, _np_polar(g), atol=1e-10)
  d = _spectral(jnp.asarray(g), method="svd")
  np.testing.assert_allclose(d, shampoo, atol=1e-5)
  u = _update(optkit.spectral_descent(0.1, method="svd"), jnp.asarray(g), jnp.asarray(g))
  np.testing.assert_allclose(u, -0.1 * shampoo, atol=1e-6)
  # Negative control: Newton-Schulz with Muon's coefficients is only an
  # approximation (singular values in ~[0.68, 1.2]), not Shampoo to 1e-5.
  ns = _spectral(jnp.asarray(g))
  assert np.abs(np.asarray(ns) - shampoo).max() > 1e-2


# ------------------------------------------------------------ Newton-Schulz


@functools.partial(jax.jit, static_argnames=("dim_nums", "eps"))
def _optax_ns(g, dim_nums=None, eps=1e-7):
  """Newton-Schulz of optax.contrib (not public by itself): scale_by_muon with
  beta = 0 returns NS(g) (bias corrections are 1, the Nesterov term is g)."""
  tx = optax.contrib.scale_by_muon(beta=0.0, eps=eps, weight_dimension_numbers=dim_nums)
  return tx.update(g, tx.init(g))[0]


def _assert_same_ns_as_optax(g, dims=None):
  """Same Newton-Schulz as optax.contrib, compared in float64 (1e-12).

  In float32 the two implementations round in a different order and five
  quintic steps amplify that to ~1e-6 on O(1) entries, depending on the draw;
  in float64 any difference of algorithm would show far above 1e-12.
  """
  with jax.enable_x64(True):
    g64 = jnp.asarray(np.asarray(g, np.float64))
    ours = _spectral(g64)
    assert ours.dtype == jnp.float64
    np.testing.assert_allclose(ours, _optax_ns(g64, dims), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(8, 5), (5, 8), (6, 6)])
def test_newton_schulz_matches_optax_contrib(shape):
  rng = np.random.default_rng(shape[0] * 10 + shape[1])  # independent of test order
  g = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  _assert_same_ns_as_optax(g)
  # Negative control: the unit-Frobenius gradient (no iteration) is far off.
  assert np.abs(np.asarray(g) / np.linalg.norm(g) - _optax_ns(g)).max() > 0.1


def test_newton_schulz_direction_matches_optax_contrib():
  g = jnp.asarray(RNG.standard_normal((8, 5)), jnp.float32)
  # optax's default eps is 1e-8; optkit's is Muon's 1e-7. They agree when
  # given the same value.
  np.testing.assert_allclose(_spectral(g, eps=1e-8), _optax_ns(g, eps=1e-8), atol=1e-6)
  # The full direction (b1 = 0) is the same orthogonalization.
  d = _update(optkit.scale_by_spectral_descent(), {"w": g})["w"]
  np.testing.assert_allclose(d, _optax_ns(g), atol=1e-6)


def _conditioned(shape, cond, rng):
  """A random full-rank matrix with singular values log-spaced in [1, cond]."""
  m, n = shape
  k = min(m, n)
  u = np.linalg.qr(rng.standard_normal((m, k)))[0]
  v = np.linalg.qr(rng.standard_normal((n, k)))[0]
  s = np.logspace(0, np.log10(cond), k)
  return (u * s) @ v.T


@pytest.mark.parametrize("shape,cond", [((32, 16), 10.0), ((16, 32), 100.0),
                                        ((64, 8), 100.0)])
def test_newton_schulz_singular_values_lie_in_the_band(shape, cond):
  rng = np.random.default_rng(1)
  g = _conditioned(shape, cond, rng).astype(np.float32)
  s = _svals(_spectral(jnp.asarray(g)))
  assert s.min() >= 0.68 and s.max() <= 1.2, (s.min(), s.max())
  # The SVD path is exact.
  np.testing.assert_allclose(_svals(_spectral(jnp.asarray(g), method="svd")),
                             1.0, atol=1e-5)
  # Negative control: the raw gradient (SGD's direction), even rescaled to
  # spectral norm 1, is far outside the band.
  raw = _svals(g / _svals(g).max())
  assert raw.min() < 0.68


def test_newton_schulz_band_needs_moderate_conditioning():
  # Five quintic steps multiply a small singular value by at most ~3.4445^5
  # (about 490): after the Frobenius pre-scaling, sigma_min / ||G||_F must be
  # above ~1.4e-3 to reach 0.68. Condition number 1000 on 8 values is not.
  g = _conditioned((64, 8), 1000.0, np.random.default_rng(1)).astype(np.float32)
  s_min = _svals(g).min() / np.linalg.norm(g)
  assert s_min < 1.4e-3
  assert _svals(_spectral(jnp.asarray(g))).min() < 0.68
  # More steps (or the SVD path) fix it.
  s = _svals(_spectral(jnp.asarray(g), ns_steps=8))
  assert s.min() >= 0.68 and s.max() <= 1.2


def test_conv_kernel_is_orthogonalized_in_its_reshaped_view():
  rng = np.random.default_rng(3324)  # independent of test order
  k = jnp.asarray(rng.standard_normal((3, 3, 2, 4)), jnp.float32)  # Flax (kh, kw, in, out)
  view = np.asarray(k).reshape(18, 4)                               # (kh*kw*in, out)
  d = _spectral(k, method="svd")
  assert d.shape == k.shape
  dm = np.asarray(d).reshape(18, 4)
  np.testing.assert_allclose(dm.T @ dm, np.eye(4), atol=1e-5)
  np.testing.assert_allclose(dm, _np_polar(view), atol=1e-5)
  # Newton-Schulz: the same view as optax.contrib's dimension numbers.
  dims = optax.contrib.MuonDimensionNumbers(reduction_axis=(0, 1, 2), output_axis=3)
  ns = _spectral(k)
  _assert_same_ns_as_optax(k, dims)
  s = _svals(np.asarray(ns).reshape(18, 4))
  assert s.min() >= 0.68 and s.max() <= 1.2
  # Negative control: orthogonalizing per spatial slice is a different map.
  per_slice = np.stack([_np_polar(np.asarray(k)[i, j]) for i in range(3) for j in range(3)])
  assert np.abs(per_slice.reshape(18, 4) - dm).max() > 1e-2
  # PyTorch layout (out, in, kh, kw) through dimension_numbers: same result.
  kt = jnp.transpose(k, (3, 2, 0, 1))
  dt = _spectral(kt, method="svd", dimension_numbers=((2, 3, 1), (0,)))
  np.testing.assert_allclose(jnp.transpose(dt, (2, 3, 1, 0)), d, atol=1e-6)
  # And inside the optimizer tree.
  u = _update(optkit.scale_by_spectral_descent(method="svd"), {"k": k})["k"]
  np.testing.assert_allclose(u, d, atol=1e-6)


def test_rms_to_rms_uses_the_fan_in_of_the_reshaped_view():
  k = jnp.asarray(RNG.standard_normal((3, 3, 2, 4)), jnp.float32)
  d = optkit.dualize_rms_to_rms(k, method="svd")
  np.testing.assert_allclose(d, np.sqrt(4 / 18) * _spectral(k, method="svd"),
                             rtol=1e-6)


# ------------------------------------------------------ rank < 2 and dtypes


def test_vectors_and_scalars_fall_back_without_error():
  g = {"b": jnp.array([3.0, -4.0]), "c": jnp.array(-2.5), "z": jnp.zeros((3,))}
  d = _update(optkit.scale_by_spectral_descent(), g)
  np.testing.assert_allclose(d["b"], [0.6, -0.8], rtol=1e-6)   # l2: b / ||b||
  np.testing.assert_allclose(d["c"], -1.0)                     # sign for a scalar
  np.testing.assert_array_equal(d["z"], np.zeros(3))           # zero stays zero
  d = _update(optkit.scale_by_spectral_descent(fallback="rms"), g)
  np.testing.assert_allclose(d["b"], np.sqrt(2) * np.array([0.6, -0.8]), rtol=1e-6)
  d = _update(optkit.scale_by_spectral_descent(fallback="sign"), g)
  np.testing.assert_allclose(d["b"], [1.0, -1.0])
  # The l2 fallback is what the matrix path gives for the one-row matrix.
  v = jnp.asarray(RNG.standard_normal(5), jnp.float32)
  np.testing.assert_allclose(_spectral(v),
                             _spectral(v[None, :], method="svd")[0], atol=1e-6)
  # RMS->RMS and l1->RMS of a vector: fan-in 1, i.e. the RMS dualizer.
  for fn in (optkit.dualize_rms_to_rms, optkit.dualize_columns):
    np.testing.assert_allclose(fn(v), optkit.dualize_rms(v), rtol=1e-6)
    np.testing.assert_allclose(fn(v), optkit.dualize_rms_to_rms(v[None, :], method="svd")[0],
                               atol=1e-5)


def test_newton_schulz_runs_in_float32_and_casts_back():
  g = jnp.asarray(RNG.standard_normal((6, 4)), jnp.bfloat16)
  d = _spectral(g)
  assert d.dtype == jnp.bfloat16
  ref = _spectral(g.astype(jnp.float32)).astype(jnp.bfloat16)
  np.testing.assert_array_equal(np.asarray(d, np.float32), np.asarray(ref, np.float32))
  u = _update(optkit.spectral_descent(0.1), {"w": g}, {"w": g})["w"]
  assert u.dtype == jnp.bfloat16


# ---------------------------------------------------------------- momentum


def test_spectral_descent_with_ema_matches_hand_computation():
  w = jnp.zeros((5, 3))
  gs = [jnp.asarray(RNG.standard_normal((5, 3)), jnp.float32) for _ in range(3)]
  for nesterov in (False, True):
    tx = optkit.spectral_descent(0.1, b1=0.9, method="svd", nesterov=nesterov)
    state = tx.init(w)
    m = np.zeros((5, 3))
    for g in gs:
      u, state = tx.update(g, state, w)
      m = 0.9 * m + 0.1 * np.asarray(g, np.float64)
      x = 0.9 * m + 0.1 * np.asarray(g, np.float64) if nesterov else m
      np.testing.assert_allclose(u, -0.1 * _np_polar(x), atol=1e-5)
    np.testing.assert_allclose(state[0].mu, m, rtol=1e-5, atol=1e-6)
    # Negative control: without the EMA the last step is the polar factor of
    # the last gradient, which differs.
    assert np.abs(np.asarray(u) + 0.1 * _np_polar(gs[-1])).max() > 1e-2


def test_spectral_descent_with_ema_converges_on_a_matrix_quadratic():
  rng = np.random.default_rng(2)
  a = jnp.asarray(rng.standard_normal((6, 4)), jnp.float32)
  loss = lambda w: 0.5 * jnp.sum((w - a) ** 2)
  sched = optax.exponential_decay(0.3, transition_steps=10, decay_rate=0.7)

  def run(tx, steps=100):
    w = jnp.zeros((6, 4))
    s = tx.init(w)

    def body(carry, _):
      w, s = carry
      u, s = tx.update(jax.grad(loss)(w), s, w)
      return (optax.apply_updates(w, u), s), loss(w)

    (w, _), losses = jax.jit(lambda w, s: jax.lax.scan(body, (w, s), None, length=steps))(w, s)
    return float(loss(w)), np.asarray(losses)

  final, losses = run(optkit.spectral_descent(sched, b1=0.9))
  assert final < 1e-3 * losses[0], (losses[0], final)
  # Negative control: a constant step of the same size only oscillates.
  final_const, _ = run(optkit.spectral_descent(0.3, b1=0.9))
  assert final_const > 10 * final


# ------------------------------------------------------------ dual-norm step


def test_exact_l2_steepest_descent_is_gradient_descent():
  params = {"w": jnp.zeros((3, 4)), "b": jnp.zeros((5,))}
  g = {k: jnp.asarray(RNG.standard_normal(v.shape), jnp.float32) for k, v in params.items()}
  tx = optkit.steepest_descent(0.1, "l2", scale_by_dual_norm=True, dual_norm_mode="per_leaf")
  chex.assert_trees_all_close(_update(tx, g, params), _update(optax.sgd(0.1), g, params),
                              rtol=1e-6, atol=1e-7)
  # Global mode: every leaf is scaled by the SUM of the per-leaf dual norms.
  tx = optkit.steepest_descent(0.1, "sign", scale_by_dual_norm=True)
  l1 = sum(float(jnp.abs(x).sum()) for x in jax.tree.leaves(g))
  chex.assert_trees_all_close(_update(tx, g, params),
                              jax.tree.map(lambda x: -0.1 * l1 * jnp.sign(x), g), rtol=1e-6)
  # Spectral: the nuclear norm (per leaf).
  tx = optkit.steepest_descent(1.0, "spectral", method="svd", scale_by_dual_norm=True,
                               dual_norm_mode="per_leaf")
  u = _update(tx, {"w": g["w"]}, {"w": params["w"]})["w"]
  np.testing.assert_allclose(u, -_svals(g["w"]).sum() * _np_polar(g["w"]), atol=1e-5)


# ----------------------------------------------------------- per-leaf norms


def test_per_leaf_labels_tree_prefix_and_callable():
  g = {"emb": jnp.asarray(RNG.standard_normal((10, 4)), jnp.float32),
       "mlp": {"w": jnp.asarray(RNG.standard_normal((4, 6)), jnp.float32),
               "b": jnp.asarray(RNG.standard_normal((6,)), jnp.float32)}}
  expected = {"emb": optkit.dualize_columns(g["emb"]),
              "mlp": {"w": optkit.dualize_rms_to_rms(g["mlp"]["w"], method="svd"),
                      "b": optkit.dualize_sign(g["mlp"]["b"])}}
  full = {"emb": "columns", "mlp": {"w": "rms_to_rms", "b": "sign"}}
  fn = lambda p: {"emb": "columns", "mlp": {"w": "rms_to_rms", "b": "sign"}}
  for norms in (full, fn):
    d = _update(optkit.scale_by_steepest_descent(norms, method="svd"), g)
    chex.assert_trees_all_close(d, expected, rtol=1e-6, atol=1e-6)
  # A prefix: one label for the whole "mlp" subtree.
  d = _update(optkit.scale_by_steepest_descent({"emb": "columns", "mlp": "sign"}), g)
  np.testing.assert_array_equal(d["mlp"]["w"], jnp.sign(g["mlp"]["w"]))
  # Embedding rows (one per token in Flax's (vocab, d) table) get RMS 1.
  np.testing.assert_allclose(np.sqrt(np.mean(np.asarray(d["emb"]) ** 2, axis=1)), 1.0,
                             rtol=1e-6)


def test_label_tree_under_optax_masked():
  params = {"w": jnp.ones((3, 2)), "b": jnp.ones((2,))}
  tx = optax.masked(optkit.steepest_descent(0.1, {"w": "spectral", "b": "sign"}),
                    {"w": True, "b": False})
  g = {"w": jnp.asarray(RNG.standard_normal((3, 2)), jnp.float32), "b": jnp.ones((2,))}
  u, _ = tx.update(g, tx.init(params), params)
  np.testing.assert_array_equal(u["b"], g["b"])  # masked out: passed through
  np.testing.assert_allclose(u["w"], -0.1 * _spectral(g["w"]), atol=1e-6)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("name,make", [
    ("spectral_descent", lambda: optkit.spectral_descent(-1.0)),
    ("spectral_descent", lambda: optkit.spectral_descent(0.1, b1=1.0)),
    ("spectral_descent", lambda: optkit.spectral_descent(0.1, ns_steps=0)),
    ("spectral_descent", lambda: optkit.spectral_descent(0.1, method="qr")),
    ("spectral_descent", lambda: optkit.spectral_descent(0.1, ns_coeffs=(1.0, 2.0))),
    ("spectral_descent", lambda: optkit.spectral_descent(0.1, fallback="adam")),
    ("spectral_descent", lambda: optkit.scale_by_spectral_descent(b1=-0.1)),
    ("spectral_descent", lambda: optkit.spectral_descent(0.1, weight_decay=-1.0)),
    ("steepest_descent", lambda: optkit.steepest_descent(0.1, "frobenius")),
    ("steepest_descent", lambda: optkit.steepest_descent(0.1, {"w": "sign", "b": 3})),
    ("steepest_descent", lambda: optkit.scale_by_steepest_descent("sign", b1=1.5)),
    ("steepest_descent", lambda: optkit.steepest_descent(0.1, "sign", dual_norm_mode="sum")),
    ("sign_descent", lambda: optkit.sign_descent(-0.1)),
    ("sign_descent", lambda: optkit.sign_descent(0.1, b1=1.0)),
])
def test_bad_hyperparameters_raise(name, make):
  with pytest.raises(ValueError, match=name):
    make()


def test_bad_label_from_a_callable_raises_at_update():
  tx = optkit.scale_by_steepest_descent(lambda p: jax.tree.map(lambda _: "nuclear", p))
  g = {"w": jnp.ones((2, 2))}
  with pytest.raises(ValueError, match="steepest_descent"):
    tx.update(g, tx.init(g))


def test_static_hparams_under_inject_hyperparams():
  rec = optkit.registry.get("spectral_descent")
  tx = optax.inject_hyperparams(optkit.spectral_descent, static_args=rec.static_hparams)(
      learning_rate=0.1, b1=0.5, ns_steps=3)
  w = jnp.asarray(RNG.standard_normal((4, 3)), jnp.float32)
  u, _ = jax.jit(tx.update)(w, tx.init(w), w)
  ref = _update(optkit.spectral_descent(0.1, b1=0.5, ns_steps=3), w, w)
  np.testing.assert_allclose(u, ref, rtol=1e-6, atol=1e-7)


def test_same_shape_leaves_are_orthogonalized_in_one_batched_call():
  # Four leaves share the (8, 6) matrix view (two of them 3-D kernels viewed
  # as (8, 6)); the stacked, vmapped Newton-Schulz gives each leaf exactly
  # what dualize_spectral gives it alone, and the jaxpr holds one batched
  # chain for the group instead of four.
  rng = np.random.default_rng(42)
  tree = {"a": rng.standard_normal((8, 6)), "b": rng.standard_normal((8, 6)),
          "k1": rng.standard_normal((2, 4, 6)), "k2": rng.standard_normal((2, 4, 6)),
          "odd": rng.standard_normal((5, 3)), "v": rng.standard_normal((6,))}
  tree = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)
  tx = optkit.scale_by_spectral_descent()
  out, _ = tx.update(tree, tx.init(tree))
  for k, g in tree.items():
    np.testing.assert_allclose(out[k], optkit.dualize_spectral(g) if g.ndim >= 2
                               else optkit.dualize_l2(g), rtol=1e-5, atol=1e-6, err_msg=k)
  jaxpr = str(jax.make_jaxpr(lambda t: tx.update(t, tx.init(t))[0])(tree))
  # A Newton-Schulz chain is a loop whose body holds 3 products; there are 2
  # chains (the (8, 6) group and the (5, 3) leaf), not one per leaf (5).
  assert jaxpr.count("dot_general") == 2 * 3, jaxpr.count("dot_general")
