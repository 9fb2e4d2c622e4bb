"""Subset-Norm step sizes and Subspace-Momentum (AdamW-SNSM).

Nguyen, Nguyen, Ene, Nguyen, "Efficient Adaptive Optimization via Subset-Norm
and Subspace-Momentum: Fast, Memory-Reduced Training with Convergence
Guarantees", arXiv:2411.07120. Reference code: timmytonga/sn-sm
(``adamw_sng.py``, ``subspace_momentum.py``, ``projectors/svd_projector.py``)
and pytorch_optimizer 4.1.0 ``AdamWSN`` (subset-norm part only).

Update, per leaf, in optkit's positive-gradient convention (t = count + 1)::

  Subset-Norm (second moment shared within a subset of k coordinates):
    s_t = sum over each subset of g_t**2      # a SUM, shape (numel / k, 1)
    v_t = b2 v_{t-1} + (1 - b2) s_t
    d_t = sqrt(1 - b2**t) * n_t / (sqrt(v_t) + eps)   # broadcast over subsets
  Subspace-Momentum (matrix leaves; A = G if m >= n else G^T, A is (M, N)):
    every T steps (count % T == 0): P = top-r left singular vectors of A
                                    (M, r); m reset to 0 (default)
    R = P^T A                                  # (r, N)
    m_t = b1 m_{t-1} + (1 - b1) R
    n_t = (P m_t + (A - P R)) / (1 - b1**t)    # subspace momentum + plain
                                               # gradient in the complement
  AdamW-SNSM:  x <- x - lr * d_t - lr * wd * x   (n_t from Subspace-Momentum)

The bias factors are the PyTorch "efficient" form of the reference code:
``step_size = lr * sqrt(1 - b2**t) / (1 - b1**t)`` and eps added to sqrt(v)
before correction. Paper -> code: beta_1 -> ``b1``, beta_2 -> ``b2``, k ->
``subset_size``, r -> ``rank``, T -> ``update_proj_gap``, m -> ``state.mu``,
v -> ``state.nu``, P -> ``state.projector``.

Subset sizes (``subset_size``, static; applied to leaves of rank >= 2):

* an int k > 0: the closest divisor of numel(leaf) that is <= k; the flat
  (row-major) leaf is cut into consecutive groups of k (AdamWSN, sn-sm);
* an int -c < 0: k = floor(sqrt(numel) / c) rounded down to a divisor
  (``-1``, the default, is AdamWSN's default ``subset_size=-1``; sn-sm's
  AdamWSN uses ``-2``);
* ``'heuristic'``: the leaf as a matrix (m, n) (``optkit.core.linalg``'s
  view: rows = all axes but the last); reduce over the smaller dimension,
  keep the larger (sn-sm's ``adamw_sn.py``): v has shape (m, 1) or (1, n).

Fallback for leaves of rank < 2 (biases, norms, scalars), documented decision:
subset size 1 (per-coordinate second moment, i.e. Adam's) and full momentum,
so ``adamw_snsm`` is plain AdamW on them, as the paper applies SN/SM to the
linear layers only. Leaves of rank > 2 are matrices by the same view as above.

Defaults and their source: b1 = 0.9, b2 = 0.999 (paper, reference code);
eps = 1e-8 for ``scale_by_subset_norm`` (AdamWSN, pytorch_optimizer) and
1e-6 for ``adamw_snsm`` (sn-sm's default); update_proj_gap = 200 (sn-sm,
GaLore); rank: no default for ``scale_by_subspace_momentum`` (required), 128
for ``adamw_snsm`` (GaLore's; sn-sm sets it per model).

UNSURE points of the catalog, decided:

* rank / T per model: not fixed by the paper; defaults above, the user sets
  them. A rank larger than min(m, n) of a matrix leaf raises ValueError at
  ``init`` (naming the leaf) rather than being clipped silently.
* eps: 1e-6 in ``adamw_snsm`` (sn-sm's repo), 1e-8 in ``scale_by_subset_norm``
  (AdamWSN's, so that it matches pytorch_optimizer with its defaults).
* Projection side: sn-sm's 'svd' projector puts the orthonormal factor on the
  smaller side; optkit follows optax.contrib.galore (and the catalog): P holds
  left singular vectors of A = G (m >= n) or G^T (m < n), the momentum is
  (r, min(m, n)). At a refresh both give the same rank-r truncated SVD of G;
  between refreshes the momentum lives in a column (not row) subspace.
* Reset on refresh: sn-sm replaces ``state['exp_avg']`` by zeros but still
  updates the old tensor at that step (a Python aliasing detail), so its reset
  takes effect one step late; optkit resets before the update at the refresh
  step (``reset_on_refresh=True``) or keeps m (False, sn-sm's
  ``overlap_state``). The bias correction uses the global t, as the reference.
* 'random' projector: an orthonormal basis of a Gaussian (M, r) matrix (QR),
  drawn from the state's key at each refresh; 'topk_norm': the r coordinate
  rows of A with the largest norms (P is a column selection of I).
* Weight decay: decoupled, -lr * wd * x computed from the params before the
  step (optax ``add_decayed_weights``); the reference applies it after the
  step, x <- (x - step)(1 - lr wd), which differs at second order.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import optax

from optkit.core import linalg, numerics, tree, validate

_SN = "scale_by_subset_norm"
_SM = "scale_by_subspace_momentum"
_SNSM = "adamw_snsm"
PROJECTORS = ("svd", "random", "topk_norm")


# ----------------------------------------------------------------------------
# Shapes (static, from the leaf shapes only)
# ----------------------------------------------------------------------------


def _placeholder(dtype=jnp.float32):
  """A 1-element stand-in for an absent statistic (orbax cannot save zero-size arrays)."""
  return jnp.zeros((1,), dtype)


def _check_structure(algo, updates, stats, expected_shape, what):
  """ValueError unless ``updates`` has the tree of ``stats`` and matching shapes.

  ``stats`` is a per-leaf statistic of the state (same tree as the params);
  ``expected_shape(leaf_shape)`` is the shape it must have for a gradient leaf
  of ``leaf_shape``. Static (shapes only): free under ``jax.jit``.
  """
  s_u, s_r = jax.tree.structure(updates), jax.tree.structure(stats)
  if s_u != s_r:
    raise ValueError(
        f"{algo}: the gradient tree does not match the optimizer state: got structure "
        f"{s_u}, expected {s_r}. Was the state initialized with other params?")
  for (path, u), s in zip(jax.tree_util.tree_leaves_with_path(updates),
                          jax.tree.leaves(stats)):
    tree.check_floating(algo, path, u)
    want = tuple(expected_shape(tuple(jnp.shape(u))))
    if want != tuple(jnp.shape(s)):
      raise ValueError(
          f"{algo}: the gradient leaf at {jax.tree_util.keystr(path)} has shape "
          f"{tuple(jnp.shape(u))}, which does not match the optimizer state ({what} of "
          f"shape {tuple(jnp.shape(s))}, expected {want} for this gradient). Was the "
          "state initialized with other params?")


def _closest_divisor(n: int, k: int) -> int:
  """The largest divisor of n that is <= k (k >= 1)."""
  k = max(1, min(int(k), n))
  for i in range(k, 0, -1):
    if n % i == 0:
      return i
  return 1


def subset_layout(shape, subset_size: Union[int, str] = -1):
  """How ``scale_by_subset_norm`` groups a leaf of ``shape``.

  Returns ``("flat", k)`` (consecutive groups of k of the flattened leaf; the
  second moment has shape (numel // k, 1)), ``("rows", None)`` /
  ``("cols", None)`` (the 'heuristic' matrix view: reduce over the columns /
  rows; second moment (m, 1) / (1, n)), or ``("coord", None)`` for leaves of
  rank < 2 (per-coordinate, the Adam fallback).

  Example:
    >>> from optkit.memory.subset_norm import subset_layout
    >>> subset_layout((4, 3)), subset_layout((4, 3), 'heuristic'), subset_layout((3,))
    (('flat', 3), ('rows', None), ('coord', None))
  """
  shape = tuple(shape)
  if len(shape) < 2:
    return ("coord", None)
  numel = math.prod(shape)
  if subset_size == "heuristic":
    m, n = linalg.matrix_dims(shape)
    return ("rows", None) if m >= n else ("cols", None)
  k = int(subset_size)
  if k < 0:
    k = max(1, int(math.sqrt(numel) / abs(k)))
  return ("flat", _closest_divisor(numel, k))


def _nu_shape(shape, subset_size):
  kind, k = subset_layout(shape, subset_size)
  shape = tuple(shape)
  if kind == "coord":
    return shape
  if kind == "flat":
    return (math.prod(shape) // k, 1)
  m, n = linalg.matrix_dims(shape)
  return (m, 1) if kind == "rows" else (1, n)


def _nu_zeros(p, subset_size):
  return jnp.zeros(_nu_shape(jnp.shape(p), subset_size), numerics.stat_dtype(p))


def _subset_sum_sq(g, subset_size):
  kind, k = subset_layout(g.shape, subset_size)
  if kind == "coord":
    return g * g
  if kind == "flat":
    return jnp.sum(jnp.square(g.reshape(-1, k)), axis=1, keepdims=True)
  a, _ = linalg.as_matrix(g)
  return jnp.sum(jnp.square(a), axis=1 if kind == "rows" else 0, keepdims=True)


def _divide_by_subset(num, denom, subset_size):
  kind, k = subset_layout(num.shape, subset_size)
  if kind == "coord":
    return num / denom
  if kind == "flat":
    return (num.reshape(-1, k) / denom).reshape(num.shape)
  a, unflatten = linalg.as_matrix(num)
  return unflatten(a / denom)


# ----------------------------------------------------------------------------
# Subset-Norm
# ----------------------------------------------------------------------------


def _check_subset_size(algo, subset_size):
  if isinstance(subset_size, jax.core.Tracer):
    raise TypeError(f"{algo}: `subset_size` must be static; list it in `static_args`.")
  ok = subset_size == "heuristic" or (
      not isinstance(subset_size, (str, bool)) and float(subset_size) == int(subset_size)
      and int(subset_size) != 0)
  if not ok:
    raise ValueError(f"{algo}: `subset_size` must be a nonzero int or 'heuristic', "
                     f"got {subset_size!r}.")


class ScaleBySubsetNormState(NamedTuple):
  count: jax.Array            # int32, shape (): t - 1
  nu: optax.Updates           # v: (numel // k, 1), (m, 1), (1, n) or leaf shape; f32 (f64 for f64)
  numerator: optax.OptState   # state of the numerator transformation (or empty)


def scale_by_subset_norm(
    b2: float = 0.999,
    eps: float = 1e-8,
    subset_size: Union[int, str] = -1,
    *,
    numerator: Optional[optax.GradientTransformation] = None,
) -> optax.GradientTransformation:
  r"""Subset-Norm adaptive step: one second moment per subset of coordinates.

  .. math::
     v_t = \beta_2 v_{t-1} + (1 - \beta_2) \sum_{i \in S} g_{t,i}^2, \qquad
     d_{t,i} = \sqrt{1 - \beta_2^t}\, n_{t,i} / (\sqrt{v_{t,S(i)}} + \epsilon)

  where :math:`n_t` is the numerator: the gradient itself (``numerator=None``,
  an RMSProp-like step), or the output of ``numerator`` applied to the
  gradient, e.g. ``optax.ema(b1, debias=True)`` (AdamWSN, full momentum) or
  :func:`scale_by_subspace_momentum` (AdamW-SNSM). The second moment of a
  matrix leaf of numel N has about sqrt(N) entries instead of N.

  Args:
    b2: decay :math:`\beta_2` of the subset second moment (0.999, paper).
    eps: added to :math:`\sqrt{v_t}` before the bias correction (1e-8,
      AdamWSN; the efficient PyTorch form).
    subset_size: static; int k > 0, -c < 0 (k = sqrt(numel)/c) or
      ``'heuristic'``; see the module docstring. Leaves of rank < 2 use
      subset size 1 (Adam's per-coordinate second moment).
    numerator: optional gradient transformation producing :math:`n_t`.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_subset_norm(subset_size=2, eps=0.0)
    >>> g = jnp.array([[3.0, 4.0], [0.0, 1.0]])
    >>> d, _ = tx.update(g, tx.init(g))
    >>> import numpy as np
    >>> print(np.array2string(np.asarray(d), precision=3))  # rows / their norms
    [[0.6 0.8]
     [0.  1. ]]

  References:
    Nguyen et al., `Efficient Adaptive Optimization via Subset-Norm and
    Subspace-Momentum <https://arxiv.org/abs/2411.07120>`_, 2024.
  """
  validate.unit_interval(_SN, b2=b2)
  validate.non_negative(_SN, eps=eps)
  _check_subset_size(_SN, subset_size)
  if numerator is not None:
    validate.transformation(_SN, numerator=numerator)
    numerator = optax.with_extra_args_support(numerator)

  def init_fn(params):
    return ScaleBySubsetNormState(
        count=jnp.zeros([], jnp.int32),
        nu=jax.tree.map(lambda p: _nu_zeros(p, subset_size), params),
        numerator=numerator.init(params) if numerator is not None else optax.EmptyState())

  def update_fn(updates, state, params=None, **extra_args):
    _check_structure(_SN, updates, state.nu, lambda sh: _nu_shape(sh, subset_size),
                     "second moment")
    t = optax.safe_increment(state.count)
    sq = jax.tree.map(lambda g: _subset_sum_sq(g.astype(numerics.stat_dtype(g)), subset_size), updates)
    nu = optax.tree.update_moment(sq, state.nu, b2, 1)
    if numerator is not None:
      num, num_state = numerator.update(updates, state.numerator, params, **extra_args)
    else:
      num, num_state = updates, state.numerator
    bc2 = numerics.bias_correction(b2, t)
    scale = jnp.sqrt(bc2)
    d = jax.tree.map(
        lambda n, v: _divide_by_subset(scale * n.astype(v.dtype), jnp.sqrt(v) + eps,
                                       subset_size), num, nu)
    d = optax.tree.cast_like(d, updates)
    return d, ScaleBySubsetNormState(t, nu, num_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# ----------------------------------------------------------------------------
# Subspace-Momentum
# ----------------------------------------------------------------------------


def _matrix_sides(shape):
  """(M, N, left): A = G (M=m, N=n) if m >= n (left) else G^T."""
  m, n = linalg.matrix_dims(shape)
  return (m, n, True) if m >= n else (n, m, False)


def check_rank(algo: str, params: Any, rank: int) -> None:
  """ValueError if ``rank`` exceeds min(m, n) of a matrix leaf of ``params``."""
  for path, p in jax.tree_util.tree_leaves_with_path(params):
    if len(jnp.shape(p)) < 2:
      continue
    m, n = linalg.matrix_dims(jnp.shape(p))
    if rank > min(m, n):
      raise ValueError(
          f"{algo}: `rank`={rank} exceeds min(m, n)={min(m, n)} of the leaf at "
          f"{jax.tree_util.keystr(path)} (shape {tuple(jnp.shape(p))}, viewed as a "
          f"({m}, {n}) matrix); use a smaller `rank` or optax.masked to leave that "
          "leaf out.")


def _sm_shapes(shape, rank):
  """(projector, momentum) shapes of a leaf: (M, r), (r, N) for matrix leaves
  (rank > 0), a (1,) projector placeholder and the leaf shape for the others,
  (1,) placeholders for both when rank == 0."""
  if len(shape) < 2:
    return (1,), tuple(shape)
  if rank == 0:
    return (1,), (1,)
  big, small, _ = _matrix_sides(shape)
  return (big, rank), (rank, small)


def _new_projector(kind, a, rank, key):
  """An orthonormal (M, rank) basis for the column space of a (M, N) matrix."""
  m = a.shape[0]
  if rank == 0:
    return jnp.zeros((m, 0), a.dtype)
  if kind == "svd":
    u, _, _ = jnp.linalg.svd(a, full_matrices=False)
    return u[:, :rank]
  if kind == "random":
    q, _ = jnp.linalg.qr(jax.random.normal(key, (m, rank), a.dtype))
    return q
  # topk_norm: the rank rows of A with the largest norms.
  _, idx = jax.lax.top_k(jnp.sum(a * a, axis=1), rank)
  return jax.nn.one_hot(idx, m, dtype=a.dtype).T


class ScaleBySubspaceMomentumState(NamedTuple):
  count: jax.Array          # int32, shape (): t - 1
  key: jax.Array            # uint32 (2,): PRNG key data (random projector)
  projector: optax.Updates  # P: (M, r) f32 (f64 for f64) for matrix leaves, (1,) otherwise
  mu: optax.Updates         # m: (r, N) f32 for matrix leaves, leaf shape otherwise
  # (rank 0: P and m of matrix leaves are (1,) placeholders; no zero-size arrays)


def scale_by_subspace_momentum(
    rank: int,
    b1: float = 0.9,
    update_proj_gap: int = 200,
    *,
    projector: str = "svd",
    reset_on_refresh: bool = True,
    seed: int = 0,
) -> optax.GradientTransformation:
  r"""Subspace-Momentum: momentum kept only in a rank-r subspace.

  For a matrix leaf, with :math:`A = G` if m >= n else :math:`G^\top`
  (shape (M, N)), every ``update_proj_gap`` steps (at ``count % T == 0``,
  under ``lax.cond``) :math:`P \in \mathbb{R}^{M \times r}` is refreshed
  (top-r left singular vectors of A for ``'svd'``) and :math:`m` is reset:

  .. math::
     R = P^\top A,\quad m_t = \beta_1 m_{t-1} + (1-\beta_1) R,\quad
     n_t = \frac{P m_t + (A - P R)}{1 - \beta_1^t}

  Leaves of rank < 2 keep full momentum, :math:`n_t = m_t/(1-\beta_1^t)`.
  The output is the numerator of AdamW-SNSM (use it as ``numerator`` of
  :func:`scale_by_subset_norm`); on its own it is bias-corrected momentum SGD
  in the subspace plus plain SGD in the complement (times
  :math:`1/(1-\beta_1^t)`, as the reference's step size). ``rank = 0`` gives
  :math:`n_t = g_t / (1 - \beta_1^t)` on matrix leaves.

  Args:
    rank: static int >= 0, r; must not exceed min(m, n) of any matrix leaf
      (ValueError at init naming the leaf).
    b1: momentum decay :math:`\beta_1` (0.9).
    update_proj_gap: T, steps between projector refreshes (200).
    projector: ``'svd'``, ``'random'`` (orthonormalized Gaussian) or
      ``'topk_norm'`` (the r rows of A with the largest norms).
    reset_on_refresh: zero m when P is refreshed (True, the reference).
    seed: seeds the state's PRNG key (used by ``'random'``).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_subspace_momentum(rank=1, b1=0.5)
    >>> g = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    >>> d, _ = tx.update(g, tx.init(g))
    >>> print(d)  # (P m + (A - P R)) / (1 - b1) with m = (1 - b1) R
    [[2. 0.]
     [0. 2.]]

  References:
    Nguyen et al., `Efficient Adaptive Optimization via Subset-Norm and
    Subspace-Momentum <https://arxiv.org/abs/2411.07120>`_, 2024.
  """
  validate.integer_at_least(_SM, 0, rank=rank)
  validate.unit_interval(_SM, b1=b1)
  validate.positive(_SM, update_proj_gap=update_proj_gap)
  validate.one_of(_SM, "projector", projector, PROJECTORS)
  rank = int(rank)

  def init_fn(params):
    check_rank(_SM, params, rank)

    def proj_zeros(p):
      return jnp.zeros(_sm_shapes(jnp.shape(p), rank)[0], numerics.stat_dtype(p))

    def mu_zeros(p):
      return jnp.zeros(_sm_shapes(jnp.shape(p), rank)[1], numerics.stat_dtype(p))

    return ScaleBySubspaceMomentumState(
        count=jnp.zeros([], jnp.int32),
        key=jax.random.key_data(jax.random.key(seed)),
        projector=jax.tree.map(proj_zeros, params),
        mu=jax.tree.map(mu_zeros, params))

  def update_fn(updates, state, params=None):
    del params
    _check_structure(_SM, updates, state.mu, lambda sh: _sm_shapes(sh, rank)[1], "momentum")
    _check_structure(_SM, updates, state.projector, lambda sh: _sm_shapes(sh, rank)[0],
                     "projector")
    t = optax.safe_increment(state.count)
    refresh = (state.count % update_proj_gap) == 0
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    leaves, treedef = jax.tree.flatten(updates)
    keys = jax.random.split(sub, max(len(leaves), 1))
    bc1 = numerics.bias_correction(b1, t)

    def one(g, p_old, mu_old, k):
      g32 = g.astype(numerics.stat_dtype(g))
      if g.ndim < 2:
        mu = b1 * mu_old + (1 - b1) * g32
        return mu / bc1, p_old, mu
      if rank == 0:  # no subspace: n_t = g_t / (1 - b1**t); P, m are placeholders
        return g32 / bc1, p_old, mu_old
      gm, unflatten = linalg.as_matrix(g32)
      _, _, left = _matrix_sides(g.shape)
      a = gm if left else gm.T
      p = jax.lax.cond(refresh, lambda: _new_projector(projector, a, rank, k),
                       lambda: p_old)
      mu_prev = jnp.where(refresh, 0.0, mu_old) if reset_on_refresh else mu_old
      r = p.T @ a                                                    # (r, N)
      mu = b1 * mu_prev + (1 - b1) * r
      num = p @ mu + (a - p @ r)
      num = num if left else num.T
      return unflatten(num) / bc1, p, mu

    outs = [one(g, p, m, k) for g, p, m, k in zip(
        leaves, treedef.flatten_up_to(state.projector), treedef.flatten_up_to(state.mu),
        list(keys))]
    d = treedef.unflatten([o[0] for o in outs])
    proj = treedef.unflatten([o[1] for o in outs])
    mu = treedef.unflatten([o[2] for o in outs])
    d = optax.tree.cast_like(d, updates)
    return d, ScaleBySubspaceMomentumState(t, jax.random.key_data(key), proj, mu)

  return optax.GradientTransformation(init_fn, update_fn)


def adamw_snsm(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    rank: int = 128,
    update_proj_gap: int = 200,
    subset_size: Union[int, str] = -1,
    *,
    projector: str = "svd",
    reset_on_refresh: bool = True,
    seed: int = 0,
    mask: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""AdamW with Subset-Norm step sizes and Subspace-Momentum (AdamW-SNSM).

  .. math::
     x_{t+1} = x_t - \eta\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,
       \frac{P m_t + (g_t - P P^\top g_t)}{\sqrt{v_t} + \epsilon}
       - \eta \lambda x_t

  with :math:`v_t` the subset second moment of :func:`scale_by_subset_norm`
  and :math:`P, m_t` from :func:`scale_by_subspace_momentum`. Leaves of rank
  < 2 get plain AdamW (per-coordinate v, full momentum). Optimizer state per
  (m, n) matrix: about sqrt(mn) + r(m + n) numbers instead of AdamW's 2mn.

  Args:
    learning_rate: :math:`\eta`, a number or an optax schedule.
    b1, b2: momentum and second-moment decays (0.9, 0.999).
    eps: added to :math:`\sqrt{v_t}` (1e-6, sn-sm's default).
    weight_decay: decoupled weight decay :math:`\lambda` (0).
    rank: subspace rank r (static; 128, GaLore's default).
    update_proj_gap: steps between projector refreshes (200).
    subset_size: see :func:`scale_by_subset_norm` (static; -1).
    projector, reset_on_refresh, seed: see :func:`scale_by_subspace_momentum`.
    mask: weight-decay mask, as ``optax.add_decayed_weights``.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.adamw_snsm(learning_rate=0.1, rank=1, eps=0.0)
    >>> p = {'w': jnp.array([[3.0, 0.0], [0.0, 4.0]]), 'b': jnp.array([1.0, -2.0])}
    >>> u, _ = opt.update(p, opt.init(p), p)
    >>> print(u['b'])  # plain Adam first step on a vector: -lr * sign(g)
    [-0.1  0.1]

  References:
    Nguyen et al., `Efficient Adaptive Optimization via Subset-Norm and
    Subspace-Momentum <https://arxiv.org/abs/2411.07120>`_, 2024.
  """
  validate.learning_rate(_SNSM, learning_rate)
  validate.non_negative(_SNSM, weight_decay=weight_decay)
  validate.unit_interval(_SNSM, b1=b1, b2=b2)
  validate.non_negative(_SNSM, eps=eps)
  validate.integer_at_least(_SNSM, 0, rank=rank)
  validate.positive(_SNSM, update_proj_gap=update_proj_gap)
  _check_subset_size(_SNSM, subset_size)
  sm = scale_by_subspace_momentum(rank, b1, update_proj_gap, projector=projector,
                                  reset_on_refresh=reset_on_refresh, seed=seed)
  rank_checked = _with_rank_check(sm, rank)
  return optax.with_extra_args_support(optax.chain(
      scale_by_subset_norm(b2, eps, subset_size, numerator=rank_checked),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate)))


def _with_rank_check(tx, rank):
  """``tx`` whose init raises the rank error under ``adamw_snsm``'s name."""

  def init_fn(params):
    check_rank(_SNSM, params, rank)
    return tx.init(params)

  return optax.GradientTransformation(init_fn, tx.update)
