"""Steepest descent under per-tensor norms: sign, spectral and RMS->RMS descent.

Bernstein & Newhouse, "Old Optimizer, New Norm: An Anthology", arXiv:2409.20325.

With the exponential moving averages switched off, Adam is steepest descent
under the (max-of-max) infinity norm, i.e. sign descent, and Shampoo is
steepest descent under the spectral norm, ``(G G^T)^(-1/4) G (G^T G)^(-1/4) =
U V^T``. Steepest descent under a norm ``||.||`` with sharpness ``lambda`` is::

    dualize(G) = argmax_{||T|| <= 1} <G, T>             (the "dual" direction)
    Delta W    = -(||G||_* / lambda) * dualize(G)       exact form
    Delta W    = -eta * dualize(G)                      practical form
    <G, dualize(G)> = ||G||_*                           (dual norm)

Each tensor is given its own norm ("different operator norms should be
assigned to different tensors based on the role that the tensor plays"). The
dualizers here, for a leaf viewed as the matrix ``W`` of the map ``x -> x @ W``
(optkit's (in, out) layout, see below)::

    name          norm on W                      dualize(G)            ||G||_*
    "sign"        l_inf (entries, flattened)     sign(G)               ||G||_1
    "l2"          l2 = Frobenius (flattened)     G / ||G||_2           ||G||_2
    "rms"         RMS = ||.||_2 / sqrt(d)        sqrt(d) G / ||G||_2   sqrt(d) ||G||_2
    "spectral"    spectral (Schatten-inf)        U V^T                 sum_i sigma_i
    "rms_to_rms"  RMS->RMS operator norm         sqrt(out/in) U V^T    sqrt(out/in) sum sigma_i
    "columns"     l1->RMS operator norm          each row G[i, :]      sqrt(out) sum_i ||G[i,:]||
                  = max_i RMS(W[i, :])           scaled to RMS 1

Paper -> code: the EMA coefficient of the momentum (switched off in the paper,
``beta = 0``) -> ``b1``; lambda -> ``1 / learning_rate``; the step-size rule
``||G||_*`` of the exact form -> ``scale_by_dual_norm=True``; U V^T via SVD ->
``method='svd'``, via quintic Newton-Schulz -> ``method='newton_schulz'``.

Defaults and their source:

* ``b1 = 0``: the paper's EMA-free methods. With ``b1 > 0`` the dualizer acts
  on ``m_t = b1 m_{t-1} + (1 - b1) g_t`` (``nesterov=True``: on
  ``b1 m_t + (1 - b1) g_t``); there is no bias correction, since every
  dualizer is invariant to positive scaling of its input (only the
  ``scale_by_dual_norm`` option sees the scale of ``m_t``).
* Newton-Schulz (the paper's cheap way to compute U V^T for Shampoo without
  an SVD): Keller Jordan's Muon settings, quintic coefficients (3.4445,
  -4.7750, 2.0315), 5 steps, input scaled by ``1 / (||G||_F + 1e-7)``
  (``optkit.core.linalg.newton_schulz``). These
  coefficients give singular values in about [0.68, 1.2], not exactly 1;
  ``method='svd'`` is exact. Newton-Schulz and SVD run in float32 (float64 for
  float64 leaves) and the result is cast back to the leaf's dtype. Spectral
  leaves whose matrix views share a shape (a transformer's per-layer qkv,
  out, up, down matrices) are stacked and orthogonalized by one ``vmap``-ed
  Newton-Schulz chain per distinct shape; each result equals the leaf's own.

Rank handling (ARCHITECTURE.md item 7). Matrix norms act on 2-D leaves as they
are. Higher-rank leaves use Flax's kernel layout ``(..., in, out)`` and are
viewed as the matrix ``(prod(...), out)`` (a conv kernel ``(kh, kw, in, out)``
becomes ``(kh*kw*in, out)``: fan-in = kh*kw*in); ``dimension_numbers=
(row_axes, col_axes)`` overrides this (PyTorch's ``(out, in, kh, kw)`` is
``((1, 2, 3), (0,))``). 0-D and 1-D leaves never raise: a vector ``v`` is the
one-row matrix ``v[None, :]`` (a bias is the map from a constant input to the
layer's outputs), whose spectral norm is its l2 norm, so

* ``"spectral"`` on a 0-D/1-D leaf is exactly ``"l2"`` (``v / ||v||_2``, and
  ``sign`` for a scalar) -- the same result the matrix path would give for the
  ``(1, d)`` matrix, without running Newton-Schulz on a rank-1 matrix (which
  would not reach singular value 1 in 5 steps);
* ``"rms_to_rms"`` and ``"columns"`` on a 0-D/1-D leaf are exactly ``"rms"``
  (fan-in 1, fan-out d: ``sqrt(d) v / ||v||_2``).

``spectral_descent`` therefore sends 0-D/1-D leaves to ``fallback='l2'`` by
default (its consistent extension); ``'rms'`` or ``'sign'`` may be chosen.

Decisions on the catalog's UNSURE points (read from arXiv:2409.20325's
abstract and prescriptions, and the authors' reference code
modula-systems/modula ``modula/atom.py``):

* Embeddings: the paper assigns linear and embedding layers different norms,
  the l1->RMS operator norm to embeddings (their inputs are one-hot, i.e. of
  unit l1 norm). Its dual normalizes each embedding vector to RMS 1 (modula's
  ``Embed.dualize``): label ``"columns"`` -- the columns of the math-layout
  ``(d_embed, vocab)`` operator, which are the rows of a Flax ``Embed`` table
  ``(vocab, d_embed)``, i.e. of the (in, out) view used here. Linear layers get
  ``"rms_to_rms"`` (``"spectral"`` is the same direction without the
  ``sqrt(out/in)`` shape factor).
* Conv kernels: the anthology does not prescribe a conv norm. optkit uses the
  reshaped ``(kh*kw*in, out)`` view above (what Muon and
  ``optax.contrib.muon``'s dimension numbers do). The authors' follow-up
  (Modular Duality in Deep Learning, arXiv:2410.21265) instead orthogonalizes
  each spatial slice ``W[i, j]`` separately with a ``1/k^2`` factor (reported,
  not re-verified here); that variant is not implemented.
* Prodigy ("sign descent with an automatic step size") is not part of this
  module; ``scale_by_dual_norm`` gives the paper's exact step ``||G||_*``.
* ``scale_by_dual_norm``: for a network the paper combines per-tensor norms by
  a max, whose dual norm is the SUM of the per-tensor dual norms; with
  ``dual_norm_mode='global'`` (default) every leaf's direction is scaled by
  that sum (for ``"sign"`` on every leaf this is ``||g||_1 * sign(g)``, the
  flattened infinity-norm steepest descent). ``'per_leaf'`` scales each leaf by
  its own dual norm (the squared-norm sum combination; optax's Muon
  ``adaptive=True``). The dual norm is computed as ``<G, dualize(G)>``: exact
  for SVD, an approximation of the nuclear norm with Newton-Schulz.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import linalg
from optkit.core import tree as _tree
from optkit.core import validate

MUON_COEFFS = linalg.MUON_COEFFS
METHODS = ("newton_schulz", "svd")
DUAL_NORM_MODES = ("global", "per_leaf")
NORMS = ("sign", "l2", "rms", "spectral", "rms_to_rms", "columns")
# Added to ||G||_F before Newton-Schulz (Keller Jordan's Muon; optax uses 1e-8).
NS_EPS = 1e-7

Labels = Union[str, Any, Callable[[Any], Any]]


# --------------------------------------------------------------------------
# Dualizers: array -> array, same shape and dtype.
# --------------------------------------------------------------------------

def _work(x: jax.Array) -> jax.Array:
  """float32 copy of ``x`` (float64 kept for x64 checks)."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _safe_normalize(x: jax.Array, axis=None) -> jax.Array:
  """``x / ||x||_2`` along ``axis`` (all entries if None); zero stays zero.

  The norm is taken of ``x / max|x|`` so that tiny (but non-zero) inputs do
  not underflow to a zero norm.
  """
  scale = jnp.max(jnp.abs(x), axis=axis, keepdims=True, initial=0.0)
  safe_scale = jnp.where(scale > 0, scale, 1.0)
  y = x / safe_scale
  norm = jnp.sqrt(jnp.sum(y * y, axis=axis, keepdims=True))
  return jnp.where(norm > 0, y / jnp.where(norm > 0, norm, 1.0), 0.0)


def _normalize_dims(dimension_numbers, ndim: int):
  """``(row_axes, col_axes)`` with negative axes made non-negative."""
  if dimension_numbers is None:
    return None
  rows, cols = dimension_numbers
  rows = (rows,) if isinstance(rows, int) else tuple(rows)
  cols = (cols,) if isinstance(cols, int) else tuple(cols)
  return tuple(a % ndim for a in rows), tuple(a % ndim for a in cols)


def _matrix_view(x: jax.Array, dimension_numbers):
  dims = _normalize_dims(dimension_numbers, x.ndim)
  return linalg.as_matrix(x, dims)


def dualize_sign(g: jax.Array) -> jax.Array:
  """Dual of the (flattened) l_inf norm: ``sign(G)``.

  ``argmax_{max|T_ij| <= 1} <G, T> = sign(G)`` and ``<G, sign G> = ||G||_1``.
  Zero entries give zero.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> optkit.dualize_sign(jnp.array([0.5, -2.0, 0.0]))
    Array([ 1., -1.,  0.], dtype=float32)
  """
  g = jnp.asarray(g)
  return jnp.sign(g)


def dualize_l2(g: jax.Array) -> jax.Array:
  """Dual of the l2 (Frobenius) norm of the flattened leaf: ``G / ||G||_2``.

  ``<G, dualize(G)> = ||G||_2``; a zero leaf maps to zero.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> optkit.dualize_l2(jnp.array([3.0, -4.0]))
    Array([ 0.6, -0.8], dtype=float32)
  """
  g = jnp.asarray(g)
  return _safe_normalize(_work(g)).astype(g.dtype)


def dualize_rms(g: jax.Array) -> jax.Array:
  """Dual of the RMS norm ``||T||_2 / sqrt(d)``: ``sqrt(d) G / ||G||_2``.

  ``d`` is the number of entries; the result has RMS 1 and
  ``<G, dualize(G)> = sqrt(d) ||G||_2``. A zero leaf maps to zero.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> optkit.dualize_rms(jnp.array([3.0, -4.0, 0.0, 0.0]))
    Array([ 1.2, -1.6,  0. ,  0. ], dtype=float32)
  """
  g = jnp.asarray(g)
  d = max(int(np.prod(g.shape)), 1)
  return (np.sqrt(d) * _safe_normalize(_work(g))).astype(g.dtype)


def dualize_spectral(g: jax.Array,
                     method: str = "newton_schulz",
                     ns_steps: int = 5,
                     ns_coeffs=MUON_COEFFS,
                     *,
                     eps: float = NS_EPS,
                     dimension_numbers: Optional[tuple] = None) -> jax.Array:
  """Dual of the spectral norm: the polar factor ``U V^T`` of ``G = U S V^T``.

  ``argmax_{||T||_2->2 <= 1} <G, T> = U V^T`` and ``<G, U V^T> = sum_i sigma_i``
  (the nuclear norm). It is also Shampoo's step without accumulation,
  ``(G G^T)^(-1/4) G (G^T G)^(-1/4)``.

  Args:
    g: the leaf. Rank >= 3 is viewed as a matrix (Flax layout
      ``(..., in, out) -> (prod(...), out)``, or ``dimension_numbers``); 0-D
      and 1-D leaves are one-row matrices, whose polar factor is
      ``g / ||g||_2`` (computed exactly, as :func:`dualize_l2`).
    method: ``'newton_schulz'`` (quintic iteration; singular values land in
      about [0.68, 1.2] when ``sigma_min / ||G||_F`` is above ~1.4e-3, since
      five steps multiply a small singular value by at most ~3.4445^5; smaller
      ones stay below the band) or ``'svd'`` (exact; zero singular values give
      zero).
    ns_steps: Newton-Schulz iterations (a static Python int).
    ns_coeffs: ``(a, b, c)`` or one triple per step; default Muon's.
    eps: added to ``||G||_F`` in the Newton-Schulz pre-scaling.
    dimension_numbers: ``(row_axes, col_axes)`` for rank >= 3 leaves.

  Returns:
    An array of ``g``'s shape and dtype, computed in float32.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> optkit.dualize_spectral(jnp.array([[3.0, 0.0], [0.0, -2.0]]), method="svd")
    Array([[ 1.,  0.],
           [ 0., -1.]], dtype=float32)
  """
  g = jnp.asarray(g)
  if method not in METHODS:
    raise ValueError(f"dualize_spectral: `method` must be one of {METHODS}, got {method!r}.")
  if g.ndim < 2:
    return dualize_l2(g)
  m, unflatten = _matrix_view(_work(g), dimension_numbers)
  if method == "svd":
    o = linalg.orthogonalize_svd(m)
  else:
    o = linalg.newton_schulz(m, steps=ns_steps, coeffs=ns_coeffs, eps=eps)
  return unflatten(o).astype(g.dtype)


def dualize_rms_to_rms(g: jax.Array,
                       method: str = "newton_schulz",
                       ns_steps: int = 5,
                       ns_coeffs=MUON_COEFFS,
                       *,
                       eps: float = NS_EPS,
                       dimension_numbers: Optional[tuple] = None) -> jax.Array:
  """Dual of the RMS->RMS operator norm: ``sqrt(fan_out / fan_in) U V^T``.

  ``||W||_RMS->RMS = sqrt(fan_in / fan_out) ||W||_2->2`` for ``x -> x @ W``
  with ``W`` of shape ``(fan_in, fan_out)`` (the matrix view of the leaf, as in
  :func:`dualize_spectral`). The paper's prescription for linear layers. 0-D
  and 1-D leaves (fan-in 1) give :func:`dualize_rms`.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> optkit.dualize_rms_to_rms(jnp.array([[2.0, 0.0, 0.0, 0.0]]), method="svd")
    Array([[2., 0., 0., 0.]], dtype=float32)
  """
  g = jnp.asarray(g)
  if g.ndim < 2:
    return dualize_rms(g)
  if g.size == 0:  # an empty matrix has an empty dual (and no shape factor)
    return g
  fan_in, fan_out = linalg.matrix_dims(g.shape, _normalize_dims(dimension_numbers, g.ndim))
  o = dualize_spectral(_work(g), method, ns_steps, ns_coeffs, eps=eps,
                       dimension_numbers=dimension_numbers)
  return (np.sqrt(fan_out / fan_in) * o).astype(g.dtype)


def dualize_columns(g: jax.Array, *, dimension_numbers: Optional[tuple] = None) -> jax.Array:
  """Dual of the l1->RMS operator norm: every input's weight vector to RMS 1.

  For ``x -> x @ W`` with ``W`` of shape ``(fan_in, fan_out)`` (the matrix
  view of the leaf), ``||W||_l1->RMS = max_i RMS(W[i, :])``; its dual scales
  each ``G[i, :]`` to RMS 1 (zero rows stay zero), and ``<G, dualize(G)> =
  sqrt(fan_out) sum_i ||G[i, :]||_2``. These are the columns of the
  math-layout ``(fan_out, fan_in)`` operator (one per token for an embedding
  table): the paper's norm for embeddings. 0-D and 1-D leaves give
  :func:`dualize_rms`.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> optkit.dualize_columns(jnp.array([[0.0, 5.0, 0.0, 0.0], [-0.5, 0.0, 0.0, 0.0]]))
    Array([[ 0.,  2.,  0.,  0.],
           [-2.,  0.,  0.,  0.]], dtype=float32)
  """
  g = jnp.asarray(g)
  if g.ndim < 2:
    return dualize_rms(g)
  m, unflatten = _matrix_view(_work(g), dimension_numbers)
  out = np.sqrt(m.shape[1]) * _safe_normalize(m, axis=1)
  return unflatten(out).astype(g.dtype)


def _leaf_dims(g, dimension_numbers):
  """The (row_axes, col_axes) a rank >= 2 leaf is viewed with (None: default)."""
  if callable(dimension_numbers):
    return dimension_numbers(jnp.shape(g))
  return dimension_numbers if jnp.ndim(g) > 2 else None


def _newton_schulz_stacked(leaves, dimension_numbers, ns_steps, ns_coeffs, eps):
  """``dualize_spectral`` (Newton-Schulz) of several leaves, batched by shape.

  The matrix views of leaves that share a shape are stacked and orthogonalized
  by one ``vmap``-ed Newton-Schulz call (one batched matmul chain per distinct
  shape instead of one chain per leaf); each result is the same as
  ``dualize_spectral(leaf)``.
  """
  views = [_matrix_view(_work(g), _leaf_dims(g, dimension_numbers)) for g in leaves]
  groups: dict = {}
  for i, (m, _) in enumerate(views):
    groups.setdefault(m.shape, []).append(i)
  out = [None] * len(leaves)
  ns = jax.vmap(lambda m: linalg.newton_schulz(m, steps=ns_steps, coeffs=ns_coeffs, eps=eps))
  for idx in groups.values():
    if len(idx) == 1:
      o = linalg.newton_schulz(views[idx[0]][0], steps=ns_steps, coeffs=ns_coeffs, eps=eps)
      results = [o]
    else:
      batch = ns(jnp.stack([views[i][0] for i in idx]))
      results = [batch[k] for k in range(len(idx))]
    for i, o in zip(idx, results):
      out[i] = views[i][1](o).astype(leaves[i].dtype)
  return out


def _dualizer(label: str, method, ns_steps, ns_coeffs, eps, dimension_numbers):
  """The array -> array function a label names (options bound)."""
  matrix_opts = dict(method=method, ns_steps=ns_steps, ns_coeffs=ns_coeffs, eps=eps)
  if label == "sign":
    return dualize_sign
  if label == "l2":
    return dualize_l2
  if label == "rms":
    return dualize_rms

  def with_dims(fn, **opts):
    def apply(g):
      # A callable sees every leaf's shape; a fixed pair applies to rank >= 3.
      dims = _leaf_dims(g, dimension_numbers) if jnp.ndim(g) >= 2 else None
      return fn(g, dimension_numbers=dims, **opts)
    return apply

  if label == "spectral":
    return with_dims(dualize_spectral, **matrix_opts)
  if label == "rms_to_rms":
    return with_dims(dualize_rms_to_rms, **matrix_opts)
  if label == "columns":
    return with_dims(dualize_columns)
  raise KeyError(label)


# --------------------------------------------------------------------------
# The transformation.
# --------------------------------------------------------------------------

class ScaleBySteepestDescentState(NamedTuple):
  """State of :func:`scale_by_steepest_descent`."""
  count: jax.Array     # int32, shape (): number of updates so far
  mu: optax.Updates    # m_t, EMA of gradients (equals g_t when b1 = 0); dtype mu_dtype


def _check_label(algo: str, label: Any):
  if not isinstance(label, str) or label not in NORMS:
    raise ValueError(
        f"{algo}: every norm label must be one of {NORMS}, got {label!r}.")


def _check_common(algo, b1, method, ns_steps, ns_coeffs, eps, dual_norm_mode, nesterov,
                  scale_by_dual_norm):
  validate.unit_interval(algo, b1=b1)
  validate.one_of(algo, "method", method, METHODS)
  validate.integer_at_least(algo, 1, ns_steps=ns_steps)
  validate.non_negative(algo, eps=eps)
  validate.one_of(algo, "dual_norm_mode", dual_norm_mode, DUAL_NORM_MODES)
  if not isinstance(nesterov, bool):
    raise ValueError(f"{algo}: `nesterov` must be a bool, got {nesterov!r}.")
  if not isinstance(scale_by_dual_norm, bool):
    raise ValueError(f"{algo}: `scale_by_dual_norm` must be a bool, got {scale_by_dual_norm!r}.")
  if not isinstance(ns_coeffs, jax.core.Tracer):
    shape = np.shape(ns_coeffs)
    if shape != (3,) and shape != (ns_steps, 3):
      raise ValueError(
          f"{algo}: `ns_coeffs` must be (a, b, c) or one triple per step (shape "
          f"({ns_steps}, 3)), got shape {shape}.")


def _steepest_descent(algo: str, norms: Labels, b1, *, scale_by_dual_norm: bool,
                      dual_norm_mode: str, nesterov: bool, method: str, ns_steps: int,
                      ns_coeffs, eps, dimension_numbers, mu_dtype):
  """Shared body of the public directions; ``algo`` names errors."""
  _check_common(algo, b1, method, ns_steps, ns_coeffs, eps, dual_norm_mode, nesterov,
                scale_by_dual_norm)
  if dimension_numbers is not None and not callable(dimension_numbers):
    try:
      _rows, _cols = dimension_numbers
    except (TypeError, ValueError):
      raise ValueError(
          f"{algo}: `dimension_numbers` must be (row_axes, col_axes), a callable "
          f"shape -> (row_axes, col_axes) or None, got {dimension_numbers!r}.") from None
  if isinstance(norms, str):
    _check_label(algo, norms)
  elif not callable(norms):
    leaves = jax.tree.leaves(norms)
    if not leaves:
      raise ValueError(f"{algo}: `norms` is an empty tree of labels.")
    for label in leaves:
      _check_label(algo, label)
  mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

  dualizers = {label: _dualizer(label, method, ns_steps, ns_coeffs, eps, dimension_numbers)
               for label in NORMS}

  def labels_for(tree):
    labels = norms(tree) if callable(norms) and not isinstance(norms, str) else norms
    for label in jax.tree.leaves(labels):
      _check_label(algo, label)
    return labels

  def dualize_tree(tree):
    # Labels may be a prefix of the tree (like optax.multi_transform); leaves
    # masked out by optax.masked (MaskedNode, no array leaves) pass through.
    labels = labels_for(tree)
    full = jax.tree.map(lambda label, sub: jax.tree.map(lambda _: label, sub), labels, tree)
    leaves, treedef = jax.tree.flatten(tree)
    leaf_labels = treedef.flatten_up_to(full)
    out = list(leaves)
    stacked = []
    for i, (label, leaf) in enumerate(zip(leaf_labels, leaves)):
      if label == "spectral" and method == "newton_schulz" and jnp.ndim(leaf) >= 2:
        stacked.append(i)
      else:
        out[i] = dualizers[label](leaf)
    for i, o in zip(stacked, _newton_schulz_stacked([leaves[i] for i in stacked],
                                                   dimension_numbers, ns_steps, ns_coeffs,
                                                   eps)):
      out[i] = o
    return treedef.unflatten(out)

  def init_fn(params):
    return ScaleBySteepestDescentState(
        count=jnp.zeros([], jnp.int32),
        mu=optax.tree.zeros_like(params, dtype=mu_dtype))

  def update_fn(updates, state, params=None):
    del params
    _tree.check_same_structure(algo, updates, state.mu)
    g = jax.tree.map(_work, updates)
    mu = jax.tree.map(lambda gi, mi: b1 * _work(mi) + (1 - b1) * gi, g, state.mu)
    if nesterov:
      x = jax.tree.map(lambda mi, gi: b1 * mi + (1 - b1) * gi, mu, g)
    else:
      x = mu
    d = dualize_tree(x)
    if scale_by_dual_norm:
      # ||G||_* = <G, dualize(G)> for each leaf.
      duals = jax.tree.map(lambda xi, di: jnp.sum(xi * _work(di)), x, d)
      if dual_norm_mode == "global":
        total = sum(jax.tree.leaves(duals), jnp.zeros([], jnp.float32))
        d = jax.tree.map(lambda di: total * _work(di), d)
      else:
        d = jax.tree.map(lambda di, s: s * _work(di), d, duals)
    d = optax.tree.cast_like(d, updates)
    mu = optax.tree.cast_like(mu, state.mu)
    return d, ScaleBySteepestDescentState(optax.safe_increment(state.count), mu)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_steepest_descent(norms: Labels,
                              b1: float = 0.0,
                              *,
                              scale_by_dual_norm: bool = False,
                              dual_norm_mode: str = "global",
                              nesterov: bool = False,
                              method: str = "newton_schulz",
                              ns_steps: int = 5,
                              ns_coeffs=MUON_COEFFS,
                              eps: float = NS_EPS,
                              dimension_numbers=None,
                              mu_dtype=None) -> optax.GradientTransformation:
  """Steepest-descent direction with a norm chosen per leaf (no learning rate).

  For each leaf with gradient ``g_t`` and norm label ``n``::

    m_t = b1 m_{t-1} + (1 - b1) g_t                    (m_t = g_t when b1 = 0)
    x_t = m_t            (nesterov: b1 m_t + (1 - b1) g_t)
    d_t = dualize_n(x_t) = argmax_{||T||_n <= 1} <x_t, T>
    scale_by_dual_norm:  d_t <- (sum over leaves of <x_t, dualize(x_t)>) d_t

  Args:
    norms: the norm of each leaf, as labels from ``"sign"``, ``"l2"``,
      ``"rms"``, ``"spectral"``, ``"rms_to_rms"``, ``"columns"`` (see the
      module docstring): one string for every leaf, a tree of labels shaped
      like the params (or a prefix of it, like ``optax.multi_transform``), or a
      callable ``params -> label tree`` (called on the gradient tree).
    b1: EMA coefficient of the momentum; 0 (the paper's EMA-free form) uses the
      gradient itself.
    scale_by_dual_norm: multiply by the dual norm, the exact steepest-descent
      step (then ``learning_rate = 1 / lambda``, the sharpness).
    dual_norm_mode: ``'global'`` (sum of the leaves' dual norms, the dual of the
      max-combination of the per-leaf norms) or ``'per_leaf'``.
    nesterov: dualize ``b1 m_t + (1 - b1) g_t`` instead of ``m_t``.
    method: ``'newton_schulz'`` or ``'svd'`` for the matrix norms (static).
    ns_steps: Newton-Schulz iterations (static Python int).
    ns_coeffs: Newton-Schulz ``(a, b, c)`` or one triple per step.
    eps: added to ``||G||_F`` before Newton-Schulz.
    dimension_numbers: matrix view of the leaves: None (2-D as they are,
      rank >= 3 in Flax layout ``(..., in, out) -> (prod(...), out)``),
      ``(row_axes, col_axes)`` applied to every leaf of rank >= 3, or a
      callable ``shape -> (row_axes, col_axes) | None`` applied to every leaf
      of rank >= 2 (e.g. to read PyTorch-layout ``(out, in)`` weights with
      ``((1,), (0,))``; None keeps the default view).
    mu_dtype: dtype of the momentum buffer (default: the params' dtype).

  Returns:
    An ``optax.GradientTransformation``; updates keep the gradients' dtypes
    (the dualization is computed in float32).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_steepest_descent({"w": "spectral", "b": "sign"}, method="svd")
    >>> g = {"w": jnp.array([[3.0, 0.0], [0.0, -2.0]]), "b": jnp.array([0.5, -0.1])}
    >>> d, _ = tx.update(g, tx.init(g))
    >>> d["w"], d["b"]
    (Array([[ 1.,  0.],
           [ 0., -1.]], dtype=float32), Array([ 1., -1.], dtype=float32))

  References:
    Bernstein & Newhouse, `Old Optimizer, New Norm: An Anthology
    <https://arxiv.org/abs/2409.20325>`_, 2024.
  """
  return _steepest_descent(
      "steepest_descent", norms, b1, scale_by_dual_norm=scale_by_dual_norm,
      dual_norm_mode=dual_norm_mode, nesterov=nesterov, method=method, ns_steps=ns_steps,
      ns_coeffs=ns_coeffs, eps=eps, dimension_numbers=dimension_numbers, mu_dtype=mu_dtype)


_FALLBACKS = ("l2", "rms", "sign")


def _spectral_labels(fallback: str):
  return lambda tree: jax.tree.map(
      lambda x: "spectral" if jnp.ndim(x) >= 2 else fallback, tree)


def scale_by_spectral_descent(b1: float = 0.0,
                              ns_steps: int = 5,
                              method: str = "newton_schulz",
                              ns_coeffs=MUON_COEFFS,
                              *,
                              eps: float = NS_EPS,
                              nesterov: bool = False,
                              scale_by_dual_norm: bool = False,
                              dual_norm_mode: str = "global",
                              dimension_numbers=None,
                              fallback: str = "l2",
                              mu_dtype=None) -> optax.GradientTransformation:
  """Spectral steepest-descent direction ``U V^T`` (no learning rate).

  Every leaf of rank >= 2 is dualized in the spectral norm (Shampoo without
  accumulation; Muon without its shape factor when ``b1 = 0``); rank >= 3
  leaves are viewed as ``(prod(...), out)`` matrices (Flax layout) or by
  ``dimension_numbers``. 0-D and 1-D leaves use ``fallback``: ``'l2'``
  (default; the spectral norm of the vector seen as a one-row matrix, so the
  result is what the matrix path would give), ``'rms'`` or ``'sign'``.

  Args:
    b1: EMA coefficient of the momentum (0: the paper's EMA-free form).
    ns_steps: Newton-Schulz iterations (static Python int).
    method: ``'newton_schulz'`` (default) or ``'svd'`` (exact).
    ns_coeffs: Newton-Schulz ``(a, b, c)`` (default Muon's) or one per step.
    eps: added to ``||G||_F`` before Newton-Schulz.
    nesterov: dualize ``b1 m_t + (1 - b1) g_t``.
    scale_by_dual_norm: multiply by the dual norm (nuclear norm for matrices).
    dual_norm_mode: ``'global'`` or ``'per_leaf'``.
    dimension_numbers: see :func:`scale_by_steepest_descent`.
    fallback: dualizer of 0-D and 1-D leaves.
    mu_dtype: dtype of the momentum buffer.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_spectral_descent(method="svd")
    >>> g = {"w": jnp.array([[0.0, 2.0], [-5.0, 0.0]]), "b": jnp.array([3.0, 4.0])}
    >>> d, _ = tx.update(g, tx.init(g))
    >>> d["w"], d["b"]
    (Array([[ 0.,  1.],
           [-1.,  0.]], dtype=float32), Array([0.6, 0.8], dtype=float32))

  References:
    Bernstein & Newhouse, `Old Optimizer, New Norm: An Anthology
    <https://arxiv.org/abs/2409.20325>`_, 2024.
  """
  return _spectral("spectral_descent", b1, ns_steps, method, ns_coeffs, eps=eps,
                   nesterov=nesterov, scale_by_dual_norm=scale_by_dual_norm,
                   dual_norm_mode=dual_norm_mode, dimension_numbers=dimension_numbers,
                   fallback=fallback, mu_dtype=mu_dtype)


def _spectral(algo, b1, ns_steps, method, ns_coeffs, *, eps, nesterov, scale_by_dual_norm,
              dual_norm_mode, dimension_numbers, fallback, mu_dtype):
  validate.one_of(algo, "fallback", fallback, _FALLBACKS)
  return _steepest_descent(
      algo, _spectral_labels(fallback), b1, scale_by_dual_norm=scale_by_dual_norm,
      dual_norm_mode=dual_norm_mode, nesterov=nesterov, method=method, ns_steps=ns_steps,
      ns_coeffs=ns_coeffs, eps=eps, dimension_numbers=dimension_numbers, mu_dtype=mu_dtype)


def _with_lr(algo, direction, learning_rate, weight_decay, mask):
  validate.learning_rate(algo, learning_rate)
  validate.non_negative(algo, weight_decay=weight_decay)
  return optax.chain(direction,
                     optax.add_decayed_weights(weight_decay, mask),
                     optax.scale_by_learning_rate(learning_rate))


def steepest_descent(learning_rate: optax.ScalarOrSchedule,
                     norms: Labels,
                     b1: float = 0.0,
                     weight_decay: float = 0.0,
                     *,
                     mask=None,
                     scale_by_dual_norm: bool = False,
                     dual_norm_mode: str = "global",
                     nesterov: bool = False,
                     method: str = "newton_schulz",
                     ns_steps: int = 5,
                     ns_coeffs=MUON_COEFFS,
                     eps: float = NS_EPS,
                     dimension_numbers=None,
                     mu_dtype=None) -> optax.GradientTransformation:
  """Steepest descent with a norm per leaf: ``W <- W - eta (dualize(m) + wd W)``.

  ``chain(scale_by_steepest_descent(norms, ...), add_decayed_weights(
  weight_decay, mask), scale_by_learning_rate(learning_rate))``. The step of
  a leaf has norm ``eta`` in its own norm (``eta * ||G||_*`` with
  ``scale_by_dual_norm``), whatever the gradient's size: with a constant
  learning rate the iterates end up oscillating at the scale of ``eta``, so
  use a decaying schedule to converge.

  Args:
    learning_rate: eta, a float or an optax schedule.
    norms: per-leaf norm labels (see :func:`scale_by_steepest_descent`).
    b1: EMA coefficient of the momentum.
    weight_decay: decoupled weight decay (multiplied by the learning rate).
    mask: weight-decay mask (tree or callable), as in ``optax.add_decayed_weights``.
    scale_by_dual_norm, dual_norm_mode, nesterov, method, ns_steps, ns_coeffs,
      eps, dimension_numbers, mu_dtype: see :func:`scale_by_steepest_descent`.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.steepest_descent(0.1, norms={"w": "rms_to_rms", "b": "l2"}, method="svd")
    >>> p = {"w": jnp.array([[1.0, 0.0, 0.0, 0.0]]), "b": jnp.array([0.0, -4.0])}
    >>> u, _ = opt.update(p, opt.init(p), p)
    >>> u["w"], u["b"]
    (Array([[-0.2, -0. , -0. , -0. ]], dtype=float32), Array([-0. ,  0.1], dtype=float32))

  References:
    Bernstein & Newhouse, `Old Optimizer, New Norm: An Anthology
    <https://arxiv.org/abs/2409.20325>`_, 2024.
  """
  algo = "steepest_descent"
  direction = _steepest_descent(
      algo, norms, b1, scale_by_dual_norm=scale_by_dual_norm, dual_norm_mode=dual_norm_mode,
      nesterov=nesterov, method=method, ns_steps=ns_steps, ns_coeffs=ns_coeffs, eps=eps,
      dimension_numbers=dimension_numbers, mu_dtype=mu_dtype)
  return _with_lr(algo, direction, learning_rate, weight_decay, mask)


def spectral_descent(learning_rate: optax.ScalarOrSchedule,
                     b1: float = 0.0,
                     ns_steps: int = 5,
                     method: str = "newton_schulz",
                     ns_coeffs=MUON_COEFFS,
                     weight_decay: float = 0.0,
                     *,
                     mask=None,
                     eps: float = NS_EPS,
                     nesterov: bool = False,
                     scale_by_dual_norm: bool = False,
                     dual_norm_mode: str = "global",
                     dimension_numbers=None,
                     fallback: str = "l2",
                     mu_dtype=None) -> optax.GradientTransformation:
  """Spectral steepest descent: ``W <- W - eta (U V^T + wd W)`` for matrices.

  Shampoo without accumulation (equivalently Muon with ``b1 = 0`` and no
  shape factor). 0-D/1-D leaves follow ``fallback`` (default ``'l2'``);
  rank >= 3 leaves are orthogonalized in their ``(prod(...), out)`` view. See
  :func:`scale_by_spectral_descent` for the arguments; ``weight_decay`` and
  ``mask`` are decoupled weight decay, as in ``optax.add_decayed_weights``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.spectral_descent(learning_rate=0.5, method="svd")
    >>> p = {"w": jnp.array([[0.0, 2.0], [-5.0, 0.0]])}
    >>> opt.update(p, opt.init(p), p)[0]["w"]
    Array([[-0. , -0.5],
           [ 0.5, -0. ]], dtype=float32)

  References:
    Bernstein & Newhouse, `Old Optimizer, New Norm: An Anthology
    <https://arxiv.org/abs/2409.20325>`_, 2024.
  """
  algo = "spectral_descent"
  direction = _spectral(algo, b1, ns_steps, method, ns_coeffs, eps=eps, nesterov=nesterov,
                        scale_by_dual_norm=scale_by_dual_norm, dual_norm_mode=dual_norm_mode,
                        dimension_numbers=dimension_numbers, fallback=fallback,
                        mu_dtype=mu_dtype)
  return _with_lr(algo, direction, learning_rate, weight_decay, mask)


def sign_descent(learning_rate: optax.ScalarOrSchedule,
                 b1: float = 0.0,
                 weight_decay: float = 0.0,
                 *,
                 mask=None,
                 nesterov: bool = False,
                 scale_by_dual_norm: bool = False,
                 dual_norm_mode: str = "global",
                 mu_dtype=None) -> optax.GradientTransformation:
  """Sign descent, steepest descent under the l_inf norm: ``W <- W - eta sign(m)``.

  Adam with ``b1 = b2 = 0`` and ``eps = 0`` is exactly this method (the
  paper's first equivalence); with ``b1 > 0`` it is Signum. With
  ``scale_by_dual_norm=True`` (global mode) the step is ``eta ||g||_1
  sign(g)``, steepest descent under the infinity norm of all parameters.

  Args:
    learning_rate: eta, a float or an optax schedule.
    b1: EMA coefficient of the momentum (0: plain sign descent).
    weight_decay: decoupled weight decay (multiplied by the learning rate).
    mask: weight-decay mask.
    nesterov, scale_by_dual_norm, dual_norm_mode, mu_dtype: see
      :func:`scale_by_steepest_descent`.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.sign_descent(learning_rate=0.1)
    >>> p = jnp.array([1.0, -2.0, 0.0])
    >>> opt.update(p, opt.init(p), p)[0]
    Array([-0.1,  0.1, -0. ], dtype=float32)

  References:
    Bernstein & Newhouse, `Old Optimizer, New Norm: An Anthology
    <https://arxiv.org/abs/2409.20325>`_, 2024.
  """
  algo = "sign_descent"
  direction = _steepest_descent(
      algo, "sign", b1, scale_by_dual_norm=scale_by_dual_norm, dual_norm_mode=dual_norm_mode,
      nesterov=nesterov, method="newton_schulz", ns_steps=5, ns_coeffs=MUON_COEFFS,
      eps=NS_EPS, dimension_numbers=None, mu_dtype=mu_dtype)
  return _with_lr(algo, direction, learning_rate, weight_decay, mask)
