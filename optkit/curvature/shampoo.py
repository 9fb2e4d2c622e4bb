"""Shampoo: Kronecker-factored preconditioning, scaled to deep learning.

Anil, Gupta, Koren, Regan, Singer, "Scalable Second Order Optimization for Deep
Learning", arXiv:2002.09018 (distributed Shampoo; Sec. 3-5: blocking, grafting,
delayed inverse roots). The step below restates google-research
``scalable_shampoo/optax/distributed_shampoo.py`` (the authors' code, read, not
copied); pytorch_optimizer 4.1.0 ``ScalableShampoo`` is a port of it.

One step for a leaf with gradient g (t = count, starting at 0)::

  view g with its "transformed shape" (see below) and cut it into blocks G of
  at most block_size along every axis
  every statistics_compute_steps steps (t % k_s == 0), for every block G and
  every axis i of G:
     S_i <- b2 S_i + w2 Gram_i(G)     Gram_i = contraction of G with itself over
                                      all axes but i (G G^T, G^T G for a matrix);
                                      w2 = 1 if b2 == 1 (AdaGrad sum) else 1 - b2
  every preconditioning_compute_steps steps (t % k_p == 0), from the new S:
     P_i = (S_i + eps_r lambda_max(S_i) I)^(-1/p)      p = 2 * (order of G)
                                      (p = 4 for matrices: P_L G P_R)
  D     = P_1 x_1 P_2 x_2 ... G       (every axis multiplied by its P_i), blocks
                                      merged back to the leaf's shape
  D_g   = graft direction: g (sgd), g / (sqrt(sum g^2) + eps_d) (adagrad),
          g / (sqrt(EMA_b2 g^2) + eps_d) (rmsprop), sign(g) (sqrt_n); the
          *_normalized variants use g / ||g|| in place of g
  D     <- D ||D_g||_F / (||D||_F + 1e-16)             (per leaf; not if graft=None)
  m     <- b1 m + D                   (heavy ball, not an EMA)
  m_g   <- b1 m_g + D_g               (the graft keeps its own buffer)
  u     = m, d = D       if t >= start_preconditioning_step
        = m_g, d = D_g   otherwise
  out   = b1 u + d (nesterov) or u

``shampoo`` adds ``weight_decay * x`` and scales by ``-learning_rate``.

Paper/code -> optkit: block size -> ``block_size``; beta_1 -> ``b1``; beta_2 ->
``b2``; diagonal epsilon (graft) -> ``diagonal_eps``; matrix epsilon ->
``matrix_eps`` (initial statistics ``matrix_eps * I`` and, by default, the
relative ridge of the root); L_t, R_t -> ``state.statistics``; L^(-1/4),
R^(-1/4) -> ``state.preconditioners``; Shampoo momentum -> ``state.mu``;
graft momentum / diagonal statistics -> ``state.graft_mu`` / ``state.graft_nu``.

Defaults (google-research ``distributed_shampoo``): b1 0.9, b2 0.999,
diagonal_epsilon 1e-10, matrix_epsilon 1e-6, start_preconditioning_step 5,
preconditioning_compute_steps 1, statistics_compute_steps 1, graft SGD,
nesterov True, skip_preconditioning_dim_size_gt 4096, exponent_override 0,
merge_small_dims_block_size 4096, skip_preconditioning_rank_lt 1.
google-research makes block_size a required argument; the catalog's default
is 256. One default differs, see below: best_effort_shape_interpretation
(google-research: True; optkit: False).

Rank handling (which "transformed shape" a leaf is preconditioned with):

* ``best_effort_shape_interpretation=False`` (optkit default): the leaf's own
  axes. A matrix gets L and R (exponent -1/4); an order-k tensor gets k
  statistics and the exponent -1/(2k) (-1/6 for 3-D, -1/8 for 4-D kernels).
* ``True`` (google-research default): adjacent axes are merged while their
  product stays <= ``merge_small_dims_block_size``
  (``(1, 2, 768, 1, 2048) -> (2, 768, 2048)``), so a (4, 3) matrix, or a
  (3, 3, 2, 4) conv kernel, becomes ONE axis: full-matrix AdaGrad-style
  statistics over the (blocked) flattened leaf, exponent -1/2; big matrices
  ((1000, 1000)) stay matrices. Why optkit does not default to it: (a) 2-D
  leaves should be preconditioned as matrices (ARCHITECTURE.md item 7), and
  (b) in float32 it is fragile: the statistic of a merged leaf of n entries
  has rank <= t after t steps, its near-null eigenvalues (~ matrix_eps) sit
  at the float32 eigensolver's noise level, and on the contract tree's 72-entry
  kernel jitted and eager runs differed by 1e-3 relative after 3 steps (4e-8
  without merging). google-research computes its roots in float64 where it can.
* 1-D leaves get one d x d statistic (exponent -1/2), as in google-research
  and pytorch_optimizer's ``Shampoo``; ``skip_preconditioning_rank_lt=2``
  sends them to the graft direction instead (pytorch_optimizer
  ``ScalableShampoo``'s behaviour). 0-D leaves, empty leaves and leaves with
  any axis longer than ``skip_preconditioning_dim_size_gt`` use the graft
  direction (D = D_g).

Decisions on the catalog entry:

* Step counting follows google-research: statistics, roots and the start test
  use the 0-based ``count``. pytorch_optimizer counts from 1: its
  ``start_preconditioning_step=s`` is optkit's ``s - 1``, and its roots are
  computed when ``count + 1`` (not ``count``) is a multiple of the interval
  (the same for an interval of 1).
* Skipped large axes: the entry says "identity on that side"; google-research
  and pytorch_optimizer both skip the WHOLE leaf (graft direction) when any
  axis exceeds ``skip_preconditioning_dim_size_gt``. optkit follows the code.
* The inverse root is ``optkit.core.linalg.inverse_pth_root`` (exact symmetric
  eigendecomposition, relative ridge ``ridge_epsilon * lambda_max``) instead
  of google-research's coupled Newton iteration (which stops at error 1e-6 and
  keeps the previous root when the error exceeds 0.1). A root with a
  non-finite entry keeps the previous root. ``ridge_epsilon`` defaults to
  ``matrix_eps`` (google-research); ``ridge_epsilon=0`` gives the
  pytorch_optimizer ``use_svd=True`` / ``Shampoo`` convention (no ridge beyond
  the ``matrix_eps * I`` initial statistics).
* Weight decay is decoupled (optkit convention, entry: Delta = -eta (D_mom +
  lambda x)); google-research defaults to coupled decay (added to D and D_g
  before momentum), which with weight_decay = 0 is the same.
* Not implemented: google-research's one-sided ``preconditioner_type``,
  ``moving_average_for_momentum``, ``clip_by_scaled_gradient_norm``,
  quantized/sharded statistics, LOBPCG. Roots run in float32 (float64 for
  float64 leaves).

Checked (tests/curvature/test_shampoo.py): pytorch_optimizer 4.1.0
``ScalableShampoo(start_preconditioning_step=s, preconditioning_compute_steps=1,
shape_interpretation=False, use_svd=True)`` equals ``scale_by_shampoo(
start_preconditioning_step=s - 1, skip_preconditioning_rank_lt=2,
ridge_epsilon=0)`` (its 1-D leaves use the graft) to ~1e-14 in float64 for the
SGD, AdaGrad and RMSProp grafts, with blocking and a 3-D leaf; its original
``Shampoo(momentum=0)`` equals ``b1=0, b2=1, graft=None, nesterov=False,
start_preconditioning_step=0, block_size=0, ridge_epsilon=0`` (~1e-13); with the
default relative ridge the trajectories differ by ~1e-5 relative.

Cost: statistics cost one Gram product per block axis per step; roots one
eigendecomposition per block per ``preconditioning_compute_steps`` (under
``lax.cond``; blocks of equal size and exponent are batched with ``vmap``).
Stale roots are normal (the paper computes them asynchronously).
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import linalg
from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "shampoo"
GRAFTS = ("sgd", "adagrad", "adagrad_normalized", "rmsprop", "rmsprop_normalized",
          "sqrt_n", None)
_DIAGONAL_GRAFTS = ("adagrad", "adagrad_normalized", "rmsprop", "rmsprop_normalized")
# Added to ||D||_F in the grafting ratio and to ||g|| in the *_normalized
# grafts (google-research's constant).
_NORM_EPS = 1e-16
_HIGHEST = jax.lax.Precision.HIGHEST


class ScaleByShampooState(NamedTuple):
  """State of :func:`scale_by_shampoo` (statistics in float32; float64 leaves: float64)."""
  count: jax.Array              # int32, shape (): t
  mu: optax.Updates             # Shampoo momentum m, params' shapes
  graft_mu: optax.Updates       # graft momentum m_g, params' shapes
  graft_nu: Any                 # graft diagonal statistics (params' shapes) for
                                # adagrad/rmsprop grafts, else () per leaf
  statistics: Any               # per leaf: tuple of (d, d) matrices S_i, one per
                                # block and block axis (block-major), () if none
  preconditioners: Any          # per leaf: matching tuple of S_i^(-1/p)


class _Plan(NamedTuple):
  """Static layout of one leaf."""
  shape: tuple                  # the leaf's shape
  transformed: tuple            # shape the blocks are cut from
  splits: tuple                 # ((axis, block sizes), ...) of the split axes
  blocks: tuple                 # block shapes, in partition order
  exponent: int                 # p of S^(-1/p)
  preconditioned: bool


# --------------------------------------------------------------------------
# Private helpers (static layout, blocks, statistics).


def merge_small_dims(shape, max_dim: int) -> tuple:
  """Merges adjacent axes while their product stays <= ``max_dim``.

  google-research's "best-effort shape interpretation": size-1 axes vanish
  and runs of small axes are merged, ``(1, 2, 512, 1, 2048, 1, 3, 4) ->
  (1024, 2048, 12)`` for ``max_dim=1024``. An all-ones shape gives ``(1,)``
  and a scalar ``()``.

  Example:
    >>> from optkit.curvature.shampoo import merge_small_dims
    >>> merge_small_dims((1, 2, 768, 1, 2048), 1024)
    (2, 768, 2048)
  """
  shape = tuple(int(d) for d in shape)
  if shape and all(d == 1 for d in shape):
    return (1,)
  out, prod = [], 1
  for d in shape:
    if prod * d <= max_dim:
      prod *= d
    else:
      if prod > 1:
        out.append(prod)
      prod = d
  if prod > 1:
    out.append(prod)
  return tuple(out)


def _plan(shape, block_size, exponent_override, skip_dim_gt, skip_rank_lt,
          merge_dims, merge_block) -> _Plan:
  shape = tuple(int(d) for d in shape)
  size = int(np.prod(shape, dtype=np.int64))
  transformed = merge_small_dims(shape, merge_block) if merge_dims else shape
  skip = (len(shape) < skip_rank_lt or any(d > skip_dim_gt for d in shape)
          or size == 0 or not transformed)
  if skip:
    return _Plan(shape, shape, (), (), 0, False)
  splits, sizes_per_axis = [], []
  for axis, d in enumerate(transformed):
    if 0 < block_size < d:
      sizes = [block_size] * ((d - 1) // block_size)
      sizes.append(d - sum(sizes))
      splits.append((axis, tuple(sizes)))
      sizes_per_axis.append(sizes)
    else:
      sizes_per_axis.append([d])
  blocks = tuple(tuple(b) for b in itertools.product(*sizes_per_axis))
  exponent = exponent_override if exponent_override > 0 else 2 * len(transformed)
  return _Plan(shape, transformed, tuple(splits), blocks, exponent, True)


def _partition(x, splits):
  """Cuts ``x`` into blocks (first split axis slowest)."""
  parts = [x]
  for axis, sizes in splits:
    cuts = list(np.cumsum(sizes)[:-1])
    parts = [b for p in parts for b in jnp.split(p, cuts, axis=axis)]
  return parts


def _merge(parts, splits):
  """Inverse of ``_partition``."""
  for axis, sizes in reversed(splits):
    n = len(sizes)
    parts = [jnp.concatenate(parts[i:i + n], axis=axis) for i in range(0, len(parts), n)]
  return parts[0]


def _gram(block, axis):
  """``Gram_i(G)``: contraction over every axis but ``axis`` (G G^T for axis 0)."""
  others = [a for a in range(block.ndim) if a != axis]
  return jnp.tensordot(block, block, axes=(others, others), precision=_HIGHEST)


def _precondition_block(block, mats):
  """Multiplies every axis of ``block`` by its (symmetric) matrix."""
  for m in mats:
    # Contracting axis 0 appends the new axis last: after ndim steps the
    # original axis order is back.
    block = jnp.tensordot(block, m, axes=([0], [0]), precision=_HIGHEST)
  return block


def _norm(x):
  return jnp.sqrt(jnp.sum(x * x))


def _inverse_roots(stats, old, exponents, ridge):
  """``S^(-1/p)`` for every matrix; equal (size, p) are batched with vmap.

  A root with a non-finite entry keeps the previous root.
  """
  groups = {}
  for i, (s, p) in enumerate(zip(stats, exponents)):
    groups.setdefault((s.shape[0], p, s.dtype), []).append(i)
  out = list(old)
  for (_, p, _), idx in groups.items():
    s = jnp.stack([stats[i] for i in idx])
    o = jnp.stack([old[i] for i in idx])
    def one(m, p=p):
      return linalg.inverse_pth_root(m, p, ridge_epsilon=ridge, relative_ridge=True)
    # CPU: one matrix at a time. jaxlib's batched syevd waits for its batch on
    # XLA's intra-op pool, and two batched calls in flight on a 2-thread pool
    # (a 2-core machine) deadlock (seen at the 1M-parameter benchmark tree).
    root = jax.lax.platform_dependent(s, cpu=lambda x: jax.lax.map(one, x),
                                      default=jax.vmap(one))
    ok = jnp.all(jnp.isfinite(root), axis=(1, 2), keepdims=True)
    new = jnp.where(ok, root, o)
    for j, i in enumerate(idx):
      out[i] = new[j]
  return out


def _check_int(algo: str, minimum: int, **kwargs):
  """Integer >= minimum; tracers (inject_hyperparams under jit) are skipped."""
  for arg, value in kwargs.items():
    if isinstance(value, (jax.core.Tracer,)) or callable(value):
      continue
    v = np.asarray(value)
    if (isinstance(value, bool) or v.size != 1 or v.dtype.kind not in "iuf"
        or not np.isfinite(v.reshape(())) or float(v.reshape(())) != int(v.reshape(()))
        or v.reshape(()) < minimum):
      raise ValueError(f"{algo}: `{arg}` must be an integer >= {minimum}, got {value!r}.")


class _Config(NamedTuple):
  """Static part of one update (hashable: the jit cache key)."""
  plans: tuple
  graft: Optional[str]
  nesterov: bool


@functools.partial(jax.jit, static_argnums=0)
def _step(config, grads, count, mus, gmus, gnus, old_stats, old_precs, hp):
  """One Shampoo update on flat per-leaf lists (jitted once per layout, so
  that eager calls do not re-dispatch every small op and ``lax.cond``)."""
  graft, t = config.graft, count
  gs = [g.astype(m.dtype) for g, m in zip(grads, mus)]
  b1 = jnp.asarray(hp["b1"])
  b2 = jnp.asarray(hp["b2"])
  w2 = jnp.where(b2 == 1, 1.0, 1.0 - b2)

  # Statistics S_i <- b2 S_i + w2 Gram_i(G) of every block axis.
  def new_statistics():
    out = []
    for g, pl, olds in zip(gs, config.plans, old_stats):
      if not pl.preconditioned:
        out.append(tuple(olds))
        continue
      blocks = _partition(g.reshape(pl.transformed), pl.splits)
      grams = [_gram(b, a) for b in blocks for a in range(b.ndim)]
      out.append(tuple(b2.astype(s.dtype) * s + w2.astype(s.dtype) * gm
                       for s, gm in zip(olds, grams)))
    return out

  if any(len(s) for s in old_stats):
    stats = jax.lax.cond(t % hp["stats_every"] == 0, new_statistics,
                         lambda: [tuple(s) for s in old_stats])
    flat_s = [s for leaf in stats for s in leaf]
    flat_p = [p for leaf in old_precs for p in leaf]
    exps = [pl.exponent for pl, leaf in zip(config.plans, old_precs) for _ in leaf]
    # Inverse p-th roots from the new statistics, every k_p steps.
    flat_p = jax.lax.cond(t % hp["precond_every"] == 0,
                          lambda: _inverse_roots(flat_s, flat_p, exps, hp["ridge"]),
                          lambda: list(flat_p))
    precs, i = [], 0
    for leaf in old_precs:
      precs.append(tuple(flat_p[i:i + len(leaf)]))
      i += len(leaf)
  else:
    stats = [tuple(s) for s in old_stats]
    precs = [tuple(p) for p in old_precs]

  run_shampoo = t >= hp["start"]
  outs, new_mus, new_gmus, new_gnus = [], [], [], []
  for g, pl, mats, m, mg, nu in zip(gs, config.plans, precs, mus, gmus, gnus):
    # Graft direction D_g.
    if graft in _DIAGONAL_GRAFTS:
      s = g / (_norm(g) + _NORM_EPS) if graft.endswith("_normalized") else g
      if graft.startswith("adagrad"):
        nu = nu + s * s
      else:
        nu = b2.astype(nu.dtype) * nu + w2.astype(nu.dtype) * s * s
      d_graft = s / (jnp.sqrt(nu) + jnp.asarray(hp["diagonal_eps"], nu.dtype))
    elif graft == "sqrt_n":
      d_graft = jnp.sign(g)
    else:  # 'sgd' or None
      d_graft = g
    # Shampoo direction D: every axis of every block times its P_i.
    if pl.preconditioned:
      blocks = _partition(g.reshape(pl.transformed), pl.splits)
      nmat = len(pl.transformed)
      pre = [_precondition_block(b, mats[j * nmat:(j + 1) * nmat])
             for j, b in enumerate(blocks)]
      d = _merge(pre, pl.splits).reshape(pl.shape)
    else:
      d = d_graft
    if graft is not None:  # layer-wise grafting: ||D|| <- ||D_g||
      d = d * (_norm(d_graft) / (_norm(d) + _NORM_EPS))
    b1c = b1.astype(g.dtype)
    m = b1c * m + d
    mg = b1c * mg + d_graft
    u = jnp.where(run_shampoo, m, mg)
    if config.nesterov:
      u = b1c * u + jnp.where(run_shampoo, d, d_graft)
    outs.append(u)
    new_mus.append(m)
    new_gmus.append(mg)
    new_gnus.append(nu)
  return (outs, optax.safe_increment(count), new_mus, new_gmus, new_gnus,
          [tuple(s) for s in stats], [tuple(p) for p in precs])


# --------------------------------------------------------------------------
# Public transformations.


def scale_by_shampoo(
    block_size: int = 256,
    b1: float = 0.9,
    b2: float = 0.999,
    diagonal_eps: float = 1e-10,
    matrix_eps: float = 1e-6,
    start_preconditioning_step: int = 5,
    preconditioning_compute_steps: int = 1,
    *,
    graft: Optional[str] = "sgd",
    nesterov: bool = True,
    skip_preconditioning_dim_size_gt: int = 4096,
    exponent_override: int = 0,
    statistics_compute_steps: int = 1,
    ridge_epsilon: Optional[float] = None,
    best_effort_shape_interpretation: bool = False,
    merge_small_dims_block_size: int = 4096,
    skip_preconditioning_rank_lt: int = 1,
) -> optax.GradientTransformation:
  r"""Distributed Shampoo's direction (no learning rate, no weight decay).

  For a matrix block G (general order-k blocks: one statistic per axis and
  exponent -1/(2k)):

  .. math::
    L_t = \beta_2 L_{t-1} + (1-\beta_2) G_t G_t^\top,\quad
    R_t = \beta_2 R_{t-1} + (1-\beta_2) G_t^\top G_t,\quad
    L_0 = R_0 = \epsilon_m I,

  .. math::
    D_t = (L_t + \epsilon\lambda_{\max} I)^{-1/4}\, G_t\,
          (R_t + \epsilon\lambda_{\max} I)^{-1/4},\qquad
    D_t \leftarrow D_t\,\frac{\|D^{graft}_t\|_F}{\|D_t\|_F + 10^{-16}},

  then heavy-ball momentum ``m = b1 m + D`` (Nesterov: ``b1 m + D``); before
  ``start_preconditioning_step`` the graft direction (with its own momentum)
  is used instead. See the module docstring for blocking, shape handling and
  step counting.

  Args:
    block_size: axes longer than this are cut into blocks of this size
      (0: no blocking; static). Catalog default 256.
    b1: momentum (heavy ball; google-research 0.9).
    b2: statistics decay; 1 sums the statistics (AdaGrad-style; 0.999).
    diagonal_eps: added to sqrt of the graft's diagonal statistics (1e-10).
    matrix_eps: initial statistics ``matrix_eps * I`` and default relative
      ridge of the roots (1e-6).
    start_preconditioning_step: steps with ``count <`` this use the graft
      direction (5).
    preconditioning_compute_steps: roots are recomputed when
      ``count % this == 0`` (1).
    graft: ``'sgd'`` (default), ``'adagrad'``, ``'adagrad_normalized'``,
      ``'rmsprop'``, ``'rmsprop_normalized'``, ``'sqrt_n'`` or None (no norm
      grafting; the warm-up direction is then g).
    nesterov: Nesterov momentum (True).
    skip_preconditioning_dim_size_gt: leaves with an axis longer than this use
      the graft direction (4096; static).
    exponent_override: p > 0 replaces ``2 * order`` in ``S^(-1/p)`` (static).
    statistics_compute_steps: statistics are updated when
      ``count % this == 0`` (1).
    ridge_epsilon: relative ridge of the roots (times lambda_max); None:
      ``matrix_eps``; 0: none (pytorch_optimizer ``use_svd``).
    best_effort_shape_interpretation: merge small adjacent axes first
      (google-research default True; optkit default False, see module doc).
    merge_small_dims_block_size: largest merged axis (4096; static).
    skip_preconditioning_rank_lt: leaves of lower rank use the graft
      direction (1: only scalars; static).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> g = jnp.array([[3.0, 0.0], [0.0, -2.0]])
    >>> tx = optkit.scale_by_shampoo(b1=0.0, b2=0.0, start_preconditioning_step=0,
    ...                              graft=None)
    >>> tx.update(g, tx.init(g))[0].round(4)  # no accumulation: U V^T of g
    Array([[ 1.,  0.],
           [ 0., -1.]], dtype=float32)

  References:
    Anil et al., Scalable Second Order Optimization for Deep Learning,
    https://arxiv.org/abs/2002.09018
  """
  validate.integer_at_least(_NAME, 0, block_size=block_size,
                            exponent_override=exponent_override,
                            skip_preconditioning_rank_lt=skip_preconditioning_rank_lt)
  validate.integer_at_least(_NAME, 1,
                            skip_preconditioning_dim_size_gt=skip_preconditioning_dim_size_gt,
                            merge_small_dims_block_size=merge_small_dims_block_size)
  validate.unit_interval(_NAME, b1=b1)
  validate.closed_unit_interval(_NAME, b2=b2)
  validate.non_negative(_NAME, diagonal_eps=diagonal_eps, matrix_eps=matrix_eps)
  if ridge_epsilon is not None:
    validate.non_negative(_NAME, ridge_epsilon=ridge_epsilon)
  _check_int(_NAME, 0, start_preconditioning_step=start_preconditioning_step)
  _check_int(_NAME, 1, preconditioning_compute_steps=preconditioning_compute_steps,
             statistics_compute_steps=statistics_compute_steps)
  validate.one_of(_NAME, "graft", graft, GRAFTS)
  validate.boolean(_NAME, nesterov=nesterov,
              best_effort_shape_interpretation=best_effort_shape_interpretation)
  layout = dict(block_size=int(block_size), exponent_override=int(exponent_override),
                skip_dim_gt=int(skip_preconditioning_dim_size_gt),
                skip_rank_lt=int(skip_preconditioning_rank_lt),
                merge_dims=best_effort_shape_interpretation,
                merge_block=int(merge_small_dims_block_size))
  diagonal_graft = graft in _DIAGONAL_GRAFTS

  def plan_of(x):
    return _plan(jnp.shape(x), **layout)

  def init_fn(params):
    def zeros(p):
      return jnp.zeros(jnp.shape(p), numerics.stat_dtype(p))

    def stats(p):
      pl = plan_of(p)
      dt = numerics.stat_dtype(p)
      return tuple(matrix_eps * jnp.eye(d, dtype=dt) for b in pl.blocks for d in b)

    def precs(p):
      pl = plan_of(p)
      dt = numerics.stat_dtype(p)
      return tuple(jnp.eye(d, dtype=dt) for b in pl.blocks for d in b)

    return ScaleByShampooState(
        count=jnp.zeros([], jnp.int32),
        mu=jax.tree.map(zeros, params),
        graft_mu=jax.tree.map(zeros, params),
        graft_nu=jax.tree.map(zeros if diagonal_graft else (lambda p: ()), params),
        statistics=jax.tree.map(stats, params),
        preconditioners=jax.tree.map(precs, params))

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure(_NAME, updates, state.mu)
    grads, treedef = jax.tree.flatten(updates)
    config = _Config(tuple(plan_of(g) for g in grads), graft, nesterov)
    hparams = dict(b1=b1, b2=b2, diagonal_eps=diagonal_eps,
                   ridge=matrix_eps if ridge_epsilon is None else ridge_epsilon,
                   start=start_preconditioning_step,
                   precond_every=preconditioning_compute_steps,
                   stats_every=statistics_compute_steps)
    outs, count, mus, gmus, gnus, stats, precs = _step(
        config, grads, state.count, jax.tree.leaves(state.mu),
        jax.tree.leaves(state.graft_mu), treedef.flatten_up_to(state.graft_nu),
        treedef.flatten_up_to(state.statistics),
        treedef.flatten_up_to(state.preconditioners), hparams)
    unflat = lambda xs: jax.tree.unflatten(treedef, xs)
    new_state = ScaleByShampooState(
        count=count, mu=unflat(mus), graft_mu=unflat(gmus), graft_nu=unflat(gnus),
        statistics=unflat(stats), preconditioners=unflat(precs))
    return optax.tree.cast_like(unflat(outs), updates), new_state

  return optax.GradientTransformation(init_fn, update_fn)


def shampoo(
    learning_rate: optax.ScalarOrSchedule,
    block_size: int = 256,
    b1: float = 0.9,
    b2: float = 0.999,
    diagonal_eps: float = 1e-10,
    matrix_eps: float = 1e-6,
    weight_decay: float = 0.0,
    start_preconditioning_step: int = 5,
    preconditioning_compute_steps: int = 1,
    *,
    graft: Optional[str] = "sgd",
    nesterov: bool = True,
    skip_preconditioning_dim_size_gt: int = 4096,
    exponent_override: int = 0,
    statistics_compute_steps: int = 1,
    ridge_epsilon: Optional[float] = None,
    best_effort_shape_interpretation: bool = False,
    merge_small_dims_block_size: int = 4096,
    skip_preconditioning_rank_lt: int = 1,
    mask: Optional[Any] = None,
) -> optax.GradientTransformation:
  r"""The (distributed) Shampoo optimizer with grafting and momentum.

  .. math::
    x_{t+1} = x_t - \eta\,\big(\text{(Nesterov) momentum of } D_t + \lambda x_t\big),

  with ``D_t`` the grafted Kronecker-preconditioned gradient of
  :func:`scale_by_shampoo`. Built as ``chain(scale_by_shampoo(...),
  add_decayed_weights(weight_decay, mask), scale_by_learning_rate(lr))``.

  Args:
    learning_rate: eta, a number or schedule. With the default SGD graft the
      per-leaf step has the norm of an SGD-with-momentum step of this size.
    block_size, b1, b2, diagonal_eps, matrix_eps, start_preconditioning_step,
    preconditioning_compute_steps, graft, nesterov,
    skip_preconditioning_dim_size_gt, exponent_override,
    statistics_compute_steps, ridge_epsilon, best_effort_shape_interpretation,
    merge_small_dims_block_size, skip_preconditioning_rank_lt: see
      :func:`scale_by_shampoo`.
    weight_decay: lambda, decoupled decay (0).
    mask: optional tree or callable selecting the decayed params.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax
    >>> import optax
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> a = jnp.array([[4.0, 0.0], [0.0, 1.0]])   # loss tr(A W B W^T)/2
    >>> b = jnp.array([[9.0, 0.0], [0.0, 1.0]])
    >>> loss = lambda w: 0.5 * jnp.trace(a @ w @ b @ w.T)
    >>> w = jnp.ones((2, 2))
    >>> opt = optkit.shampoo(learning_rate=0.03, start_preconditioning_step=0)
    >>> state, update = opt.init(w), jax.jit(opt.update)
    >>> for _ in range(30):
    ...   updates, state = update(jax.grad(loss)(w), state, w)
    ...   w = optax.apply_updates(w, updates)
    >>> bool(loss(w) < 1e-3 * loss(jnp.ones((2, 2))))
    True

  References:
    Anil et al., Scalable Second Order Optimization for Deep Learning,
    https://arxiv.org/abs/2002.09018
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_shampoo(
          block_size, b1, b2, diagonal_eps, matrix_eps, start_preconditioning_step,
          preconditioning_compute_steps, graft=graft, nesterov=nesterov,
          skip_preconditioning_dim_size_gt=skip_preconditioning_dim_size_gt,
          exponent_override=exponent_override,
          statistics_compute_steps=statistics_compute_steps,
          ridge_epsilon=ridge_epsilon,
          best_effort_shape_interpretation=best_effort_shape_interpretation,
          merge_small_dims_block_size=merge_small_dims_block_size,
          skip_preconditioning_rank_lt=skip_preconditioning_rank_lt),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
