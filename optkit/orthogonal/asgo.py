"""ASGO: one-sided (structured) adaptive preconditioning, and its diagonal DASGO.

An, Liu, Pan, Ren, Ma, Goldfarb & Zhang, "ASGO: Adaptive Structured Gradient
Optimization", arXiv:2503.20762 (NeurIPS 2025); reference code
infinity-stars/ASGO ``optimizers/asgo.py``, ``optimizers/dasgo.py``,
``optimizers/utils/matrix_decom.py`` (read at commit d3ef14b; formulas restated,
nothing copied).

Theory (Algorithm 1), for a matrix parameter ``W`` (m x n, m <= n)::

    V_t = V_{t-1} + G_t G_t^T,      W_{t+1} = W_t - eta (V_t^(1/2) + eps I)^(-1) G_t

Without accumulation (``V_t = G_t G_t^T``) the step is ``(G G^T)^(-1/2) G = U V^T``
(``G = U S V^T``): momentum-free ASGO is Muon / spectral descent, as the paper
states (the analogue of AdaGrad without accumulation being sign descent).

Practical form (the released code), per matrix view ``G`` of a leaf (r x c)::

    M_t = b1 M_{t-1} + (1 - b1) G_t                     (momentum, EMA, no bias correction)
    side: left if r <= c (V is r x r), else right (V is c x c)
    V_t = b2 V_{t-1} + (1 - b2) G_t G_t^T     (right side: G_t^T G_t)
    every `precondition_every` steps: P = (V_t + damping I)^(-1/2)   (else P is reused)
    U_t = P M_t                                (right side: M_t P)
    D_t = rms_scale sqrt(r c) U_t / ||U_t||_F  (update RMS = rms_scale; rms_scale = 0: D_t = U_t)
    W_{t+1} = (1 - eta lambda) W_t - eta D_t

DASGO keeps only the diagonal, one statistic per row of the optkit matrix view
(the fan-in axis, see below)::

    v_t = b2 v_{t-1} + (1 - b2) sum_j G_t[:, j]^2       (= diag(G G^T))
    U_t = M_t / sqrt(v_t + damping)[:, None]            (damping inside the root)

Paper/code -> optkit: momentum beta_1 -> ``b1``; beta2 -> ``b2``; eps
(code ``eps``, config ``damping``) -> ``damping``; tau -> ``precondition_every``;
``matalg_steps`` -> ``matrix_steps``; ``inv_method`` -> ``inverse``; the code's
constant 0.2 -> ``rms_scale``. ``asgo``/``dasgo`` are ``chain(scale_by_asgo(...),
add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))``,
which is the code's ``p *= 1 - lr wd; p -= lr D``.

Defaults and their source (the code's class defaults; the training script
passes only the learning rate, the yaml's other fields are unused):
ASGO lr 0.01, b1 0.9, b2 0.8, damping 1e-10, weight decay 0.1, PolarExpress
inverse root with 10 steps, recomputed every step; DASGO lr from the config
(0.01), b1 0.9, b2 0.95, damping 1e-8, weight decay 0.1. ``rms_scale`` 0.2
for both.

Inverse square roots (``inverse``, static), in float32 (float64 for float64
leaves), matrix products at ``Precision.HIGHEST``, on device:

* ``'polar_express'`` (the code's default): the coupled iteration
  ``Y_0 = (V + damping I)/s``, ``Z_0 = I``, ``s = 1.01 ||V + damping I||_F``;
  ``B = b ZY + c (ZY)^2``, ``Y <- a Y + Y B``, ``Z <- a Z + B Z`` with the
  PolarExpress coefficient schedule (Amsel et al., arXiv:2505.16932, as the
  code uses it: first seven triples divided by (1.01, 1.01^3, 1.01^5), the last
  repeated); result ``Z / sqrt(s)``, ``matrix_steps`` iterations.
* ``'newton_schulz'``: the same coupled iteration with ``(a, b, c) = (2, -1.5,
  0.5)`` at every step and ``s = ||V + damping I||_F`` (the code's alternative).
* ``'eigh'``: exact, ``optkit.core.linalg.inverse_pth_root(V, 2,
  ridge_epsilon=damping, relative_ridge=False)`` (eigenvalues floored at 0).

Decisions on the catalog's UNSURE points and other choices:

* Bias correction: none, on ``M`` or ``V`` (read in the code). With
  ``rms_scale > 0`` a scalar bias correction would cancel anyway.
* RMS scaling: the code rescales every ASGO and DASGO update to RMS 0.2
  (``0.2 sqrt(r c) / ||U||_F``); the catalog entry omitted it. optkit applies it
  by default (``rms_scale=0.2``); ``rms_scale=0`` gives the entry's plain
  ``P M``. A zero ``U`` gives a zero update (the code would divide by zero).
* DASGO form: the code keeps ``sum_i G[i, j]^2`` over the rows of the PyTorch
  ``(out, in)`` weight, i.e. one statistic per input feature. In optkit's
  ``(in, out)`` matrix view that is one statistic per ROW (``diag(G G^T)``),
  whatever the shape, with damping inside the square root.
* Side: the code preconditions the smaller side; on square PyTorch weights it
  uses ``G^T G`` (the input side). Translated to the ``(in, out)`` view: left
  (rows, ``G G^T``) when ``r <= c``, right (``G^T G``) when ``r > c``.
* Damping placement: the code's PolarExpress adds ``eps I`` only inside the
  normalizer ``s``; optkit iterates on ``V + damping I`` so that every method
  computes the same ``(V + damping I)^(-1/2)``. The difference is of relative
  size ``damping / lambda_min(V)`` (1e-8 or less in the fixture test).
* Refresh: ``P`` is recomputed when ``count % precondition_every == 0``
  (``lax.cond``, so the root is skipped at run time on other steps) from the
  current ``V_t``, and cached in the state; ``precondition_every=1`` is the code.
  DASGO recomputes its (cheap) diagonal every step.
* Damping 1e-10 is far below float32 resolution relative to ``||V||``: it only
  keeps the root finite. For rank-deficient statistics (b2 = 0 with momentum,
  tiny layers) raise it, or use ``inverse='eigh'``.
* The paper's head-wise preconditioning of Q/K projections is a model-side
  reshaping: give those heads as separate leaves (or use ``dimension_numbers``).
* The code sends 1-D parameters and embeddings to Adam; optkit handles every
  leaf (below). Use ``optax.multi_transform`` to reproduce the code's split.

Rank handling (ARCHITECTURE.md item 7): 2-D leaves are matrices as they are;
higher-rank leaves use Flax's kernel layout ``(..., in, out)`` viewed as
``(prod(...), out)``, or ``dimension_numbers=(row_axes, col_axes)`` (a callable
``shape -> (row_axes, col_axes) | None`` applies to every leaf of rank >= 2).
0-D and 1-D leaves are one-row matrices ``(1, d)`` (a bias maps a constant input
to the outputs, as in ``optkit.spectral_descent``): their statistic is the
scalar ``EMA ||g||^2`` and the update is ``M / sqrt(v + damping)`` (normalized
momentum; with ``rms_scale`` it is ``rms_scale sqrt(d) M / ||M||``), for ASGO
and DASGO alike. ``dimension_numbers`` that do not split a leaf's axes raise
ValueError naming the leaf's path.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import linalg
from optkit.core import numerics
from optkit.core import tree as _tree
from optkit.core import validate
from optkit.orthogonal.steepest_descent import _with_lr

INVERSES = ("polar_express", "newton_schulz", "eigh")
_HIGHEST = jax.lax.Precision.HIGHEST

# PolarExpress coefficients (Amsel, Persson, Musco & Gower, arXiv:2505.16932),
# the schedule the ASGO code uses for the coupled inverse square root; the last
# triple is the fixed point's Taylor polynomial (15/8, -5/4, 3/8), repeated.
_PE_COEFFS = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
)
_PE_SAFETY = 1.01
_NS_COEFFS = (2.0, -1.5, 0.5)


def _coefficient_schedule(inverse: str, steps: int) -> np.ndarray:
  """Per-step ``(a, b, c)`` of the coupled iteration, shape (steps, 3)."""
  if inverse == "newton_schulz":
    return np.tile(np.asarray(_NS_COEFFS, np.float64), (steps, 1))
  f = _PE_SAFETY
  safe = [(a / f, b / f**3, c / f**5) for a, b, c in _PE_COEFFS[:-1]] + [_PE_COEFFS[-1]]
  sched = safe[:steps] + [_PE_COEFFS[-1]] * max(0, steps - len(safe))
  return np.asarray(sched, np.float64)


def coupled_inverse_sqrt(v: jax.Array, damping, coeffs, safety: float = 1.0) -> jax.Array:
  """``(V + damping I)^(-1/2)`` by a coupled polynomial iteration (matmuls only).

  ``Y_0 = (V + damping I)/s``, ``s = safety ||V + damping I||_F``, ``Z_0 = I``;
  per step ``(a, b, c)``: ``B = b ZY + c (ZY)^2``, ``Y <- a Y + Y B``,
  ``Z <- a Z + B Z``; returns ``Z / sqrt(s)`` (``Z -> Y_0^(-1/2)``).

  Args:
    v: symmetric PSD (k, k) matrix.
    damping: added to the diagonal.
    coeffs: (steps, 3) array of per-step coefficients.
    safety: the normalizer's factor (1.01 for PolarExpress).

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.orthogonal.asgo import coupled_inverse_sqrt
    >>> coeffs = jnp.tile(jnp.array([1.5, -0.5, 0.0]), (30, 1))
    >>> jnp.round(coupled_inverse_sqrt(jnp.diag(jnp.array([4.0, 1.0])), 0.0, coeffs), 4)
    Array([[0.5, 0. ],
           [0. , 1. ]], dtype=float32)
  """
  x = v.astype(jnp.promote_types(v.dtype, jnp.float32))
  eye = jnp.eye(x.shape[0], dtype=x.dtype)
  a_mat = 0.5 * (x + x.T) + damping * eye
  s = safety * jnp.sqrt(jnp.sum(a_mat * a_mat))
  s = jnp.maximum(s, jnp.finfo(x.dtype).tiny)
  mm = lambda p, q: jnp.matmul(p, q, precision=_HIGHEST)

  def body(carry, abc):
    y, z = carry
    a, b, c = abc[0], abc[1], abc[2]
    zy = mm(z, y)
    poly = b * zy + c * mm(zy, zy)
    return (a * y + mm(y, poly), a * z + mm(poly, z)), None

  (_, z), _ = jax.lax.scan(body, (a_mat / s, eye), jnp.asarray(coeffs, x.dtype))
  return (z / jnp.sqrt(s)).astype(v.dtype)


class ScaleByAsgoState(NamedTuple):
  """State of :func:`scale_by_asgo`. Per leaf with matrix view (r, c), k = min side."""
  count: jax.Array       # int32, shape (): number of updates so far
  mu: optax.Updates      # M_t, shaped like the params; dtype mu_dtype
  nu: optax.Updates      # V_t: (k, k) (ASGO) or (r,) (DASGO); float32 (float64 for f64 leaves)
  precond: optax.Updates  # cached P = (V + damping I)^(-1/2): (k, k) or (r,); as nu


class _View(NamedTuple):
  """How one leaf is seen as a matrix (static)."""
  dims: Any       # (row_axes, col_axes) or None
  rows: int
  cols: int
  left: bool      # ASGO preconditions the rows (G G^T) when True, else the columns


def _view(algo, path, shape, dimension_numbers) -> _View:
  shape = tuple(shape)
  if len(shape) < 2:
    return _View(None, 1, int(np.prod(shape, dtype=np.int64)), True)
  dims = linalg.leaf_dimension_numbers(algo, path, shape, dimension_numbers)
  rows, cols = linalg.matrix_dims(shape, dims)
  return _View(dims, rows, cols, rows <= cols)


def _to_matrix(x, view: _View):
  if x.ndim < 2:
    return x.reshape(1, -1), lambda y: y.reshape(x.shape)
  return linalg.as_matrix(x, view.dims)


def _asgo(algo: str, b1, b2, damping, precondition_every, matrix_steps, *, inverse: str,
          diagonal: bool, rms_scale, dimension_numbers, mu_dtype):
  validate.unit_interval(algo, b1=b1, b2=b2)
  validate.non_negative(algo, damping=damping, rms_scale=rms_scale)
  validate.at_least(algo, 1, precondition_every=precondition_every)
  if isinstance(precondition_every, float) and not float(precondition_every).is_integer():
    raise ValueError(
        f"{algo}: `precondition_every` must be an integer >= 1, got {precondition_every!r}.")
  validate.integer_at_least(algo, 1, matrix_steps=matrix_steps)
  validate.one_of(algo, "inverse", inverse, INVERSES)
  if not isinstance(diagonal, bool):
    raise ValueError(f"{algo}: `diagonal` must be a bool, got {diagonal!r}.")
  if dimension_numbers is not None and not callable(dimension_numbers):
    try:
      _rows, _cols = dimension_numbers
    except (TypeError, ValueError):
      raise ValueError(
          f"{algo}: `dimension_numbers` must be (row_axes, col_axes), a callable "
          f"shape -> (row_axes, col_axes) | None, or None, got {dimension_numbers!r}."
      ) from None
  mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)
  coeffs = None if inverse == "eigh" else _coefficient_schedule(inverse, matrix_steps)
  safety = _PE_SAFETY if inverse == "polar_express" else 1.0

  def views(tree):
    return [_view(algo, path, jnp.shape(x), dimension_numbers)
            for path, x in jax.tree_util.tree_leaves_with_path(tree)]

  def stat_shape(view: _View):
    if diagonal:
      return (view.rows,)
    k = view.rows if view.left else view.cols
    return (k, k)

  def inverse_root(v):
    if diagonal:
      a = v + damping
      return jnp.where(a > 0, jax.lax.rsqrt(jnp.where(a > 0, a, 1.0)), 0.0)
    if inverse == "eigh":
      return linalg.inverse_pth_root(v, 2, ridge_epsilon=damping, relative_ridge=False)
    return coupled_inverse_sqrt(v, damping, coeffs, safety)

  def init_fn(params):
    leaves, treedef = jax.tree.flatten(params)
    vs = views(params)
    nu = [jnp.zeros(stat_shape(vw), numerics.stat_dtype(p)) for p, vw in zip(leaves, vs)]
    # P of a zero statistic is never used: step 0 always refreshes it.
    precond = [jnp.zeros(stat_shape(vw), numerics.stat_dtype(p)) for p, vw in zip(leaves, vs)]
    return ScaleByAsgoState(
        count=jnp.zeros([], jnp.int32),
        mu=optax.tree.zeros_like(params, dtype=mu_dtype),
        nu=jax.tree.unflatten(treedef, nu),
        precond=jax.tree.unflatten(treedef, precond))

  def update_fn(updates, state, params=None):
    del params
    _tree.check_same_structure(algo, updates, state.mu)
    g_leaves, treedef = jax.tree.flatten(updates)
    vs = views(updates)
    mu_leaves = treedef.flatten_up_to(state.mu)
    nu_leaves = treedef.flatten_up_to(state.nu)
    p_leaves = treedef.flatten_up_to(state.precond)

    new_mu, new_nu = [], []
    for g, m, v, vw in zip(g_leaves, mu_leaves, nu_leaves, vs):
      wd = numerics.stat_dtype(g)
      g32 = g.astype(wd)
      m_new = b1 * m.astype(wd) + (1 - b1) * g32                     # M_t
      gm, _ = _to_matrix(g32, vw)
      if diagonal:
        stat = jnp.sum(gm * gm, axis=1)                                # diag(G G^T)
      elif vw.left:
        stat = jnp.matmul(gm, gm.T, precision=_HIGHEST)                # G G^T
      else:
        stat = jnp.matmul(gm.T, gm, precision=_HIGHEST)                # G^T G
      new_mu.append(m_new)
      new_nu.append(b2 * v + (1 - b2) * stat.astype(v.dtype))         # V_t

    refresh = jnp.mod(state.count, jnp.asarray(precondition_every, jnp.int32)) == 0
    new_p = jax.lax.cond(refresh,
                         lambda nus, _: [inverse_root(v).astype(v.dtype) for v in nus],
                         lambda _, ps: list(ps),
                         new_nu, p_leaves)

    out = []
    for m_new, p, vw in zip(new_mu, new_p, vs):
      mm, unflatten = _to_matrix(m_new, vw)
      p = p.astype(mm.dtype)
      if diagonal:
        u = mm * p[:, None]
      elif vw.left:
        u = jnp.matmul(p, mm, precision=_HIGHEST)
      else:
        u = jnp.matmul(mm, p, precision=_HIGHEST)
      norm = jnp.sqrt(jnp.sum(u * u))
      factor = rms_scale * np.sqrt(vw.rows * vw.cols) / jnp.where(norm > 0, norm, 1.0)
      u = jnp.where(rms_scale > 0, jnp.where(norm > 0, factor * u, 0.0), u)
      out.append(unflatten(u))

    d = optax.tree.cast_like(jax.tree.unflatten(treedef, out), updates)
    mu = optax.tree.cast_like(jax.tree.unflatten(treedef, new_mu), state.mu)
    nu = jax.tree.unflatten(treedef, new_nu)
    precond = jax.tree.unflatten(treedef, new_p)
    return d, ScaleByAsgoState(optax.safe_increment(state.count), mu, nu, precond)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_asgo(b1: float = 0.9,
                  b2: float = 0.8,
                  damping: float = 1e-10,
                  precondition_every: int = 1,
                  matrix_steps: int = 10,
                  *,
                  inverse: str = "polar_express",
                  diagonal: bool = False,
                  rms_scale: float = 0.2,
                  dimension_numbers=None,
                  mu_dtype=None) -> optax.GradientTransformation:
  """ASGO direction: one-sided ``(V + damping I)^(-1/2) M``, rescaled to RMS ``rms_scale``.

  ::

    M_t = b1 M_{t-1} + (1 - b1) G_t,        V_t = b2 V_{t-1} + (1 - b2) G_t G_t^T
    U_t = (V_t + damping I)^(-1/2) M_t       (the smaller side; right: M_t (...)^(-1/2))
    D_t = rms_scale sqrt(r c) U_t / ||U_t||_F

  With ``b1 = b2 = 0``, ``damping -> 0`` and ``rms_scale = 0`` this is
  ``U V^T`` of ``G`` (Muon without momentum), as the paper states.

  Args:
    b1: momentum EMA coefficient (code default 0.9).
    b2: EMA coefficient of the one-sided statistic (code default 0.8).
    damping: added to ``V`` before the inverse root (code default 1e-10).
    precondition_every: recompute ``P`` every this many steps (1: the code).
    matrix_steps: iterations of the coupled inverse root (static; code 10).
    inverse: ``'polar_express'`` (code default), ``'newton_schulz'`` or
      ``'eigh'`` (exact; static).
    diagonal: DASGO: keep only ``diag(G G^T)`` per row (static).
    rms_scale: target RMS of each leaf's update (code 0.2); 0 disables the
      rescaling.
    dimension_numbers: matrix view of the leaves (see the module docstring).
    mu_dtype: dtype of the momentum buffer (default: the params' dtype).

  Returns:
    An ``optax.GradientTransformation``; updates keep the gradients' dtypes.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_asgo(b1=0.0, b2=0.0, damping=0.0, inverse="eigh", rms_scale=0.0)
    >>> g = {"w": jnp.array([[0.0, 2.0], [-5.0, 0.0]])}
    >>> d, _ = tx.update(g, tx.init(g))
    >>> jnp.round(d["w"], 4)
    Array([[ 0.,  1.],
           [-1.,  0.]], dtype=float32)

  References:
    An et al., `ASGO: Adaptive Structured Gradient Optimization
    <https://arxiv.org/abs/2503.20762>`_, 2025.
  """
  return _asgo("dasgo" if diagonal is True else "asgo", b1, b2, damping,
               precondition_every, matrix_steps, inverse=inverse, diagonal=diagonal,
               rms_scale=rms_scale, dimension_numbers=dimension_numbers, mu_dtype=mu_dtype)


def asgo(learning_rate: optax.ScalarOrSchedule,
         b1: float = 0.9,
         b2: float = 0.8,
         damping: float = 1e-10,
         weight_decay: float = 0.1,
         precondition_every: int = 1,
         matrix_steps: int = 10,
         *,
         inverse: str = "polar_express",
         rms_scale: float = 0.2,
         mask: Optional[Any] = None,
         dimension_numbers=None,
         mu_dtype=None) -> optax.GradientTransformation:
  """ASGO optimizer: ``W <- (1 - eta lambda) W - eta D_t`` (see :func:`scale_by_asgo`).

  Args:
    learning_rate: eta, a float or an optax schedule (code default 0.01).
    b1, b2, damping, precondition_every, matrix_steps, inverse, rms_scale,
      dimension_numbers, mu_dtype: see :func:`scale_by_asgo`.
    weight_decay: decoupled weight decay lambda, multiplied by eta (code 0.1).
    mask: weight-decay mask, as in ``optax.add_decayed_weights``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.asgo(learning_rate=1.0, b1=0.0, b2=0.0, damping=0.0,
    ...                   weight_decay=0.0, inverse="eigh")
    >>> p = {"w": jnp.array([[0.0, 2.0], [-5.0, 0.0]])}  # U V^T at RMS 0.2
    >>> jnp.round(opt.update(p, opt.init(p), p)[0]["w"], 4)
    Array([[-0.    , -0.2828],
           [ 0.2828, -0.    ]], dtype=float32)

  References:
    An et al., `ASGO: Adaptive Structured Gradient Optimization
    <https://arxiv.org/abs/2503.20762>`_, 2025.
  """
  algo = "asgo"
  direction = _asgo(algo, b1, b2, damping, precondition_every, matrix_steps,
                    inverse=inverse, diagonal=False, rms_scale=rms_scale,
                    dimension_numbers=dimension_numbers, mu_dtype=mu_dtype)
  return _with_lr(algo, direction, learning_rate, weight_decay, mask)


def dasgo(learning_rate: optax.ScalarOrSchedule,
          b1: float = 0.9,
          b2: float = 0.95,
          damping: float = 1e-8,
          weight_decay: float = 0.1,
          *,
          rms_scale: float = 0.2,
          mask: Optional[Any] = None,
          dimension_numbers=None,
          mu_dtype=None) -> optax.GradientTransformation:
  """DASGO (diagonal ASGO): ``U = M / sqrt(v + damping)`` with one ``v`` per row.

  ``v_t = b2 v_{t-1} + (1 - b2) diag(G_t G_t^T)`` (the code's per-input-feature
  sum of squares), update rescaled to RMS ``rms_scale``, decoupled decay.

  Args:
    learning_rate: eta, a float or an optax schedule (code config 0.01).
    b1: momentum EMA coefficient (code 0.9).
    b2: EMA coefficient of the diagonal statistic (code 0.95).
    damping: added inside the square root (code 1e-8).
    weight_decay: decoupled weight decay, multiplied by eta (code 0.1).
    rms_scale, dimension_numbers, mu_dtype: see :func:`scale_by_asgo`.
    mask: weight-decay mask.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.dasgo(learning_rate=1.0, b1=0.0, b2=0.0, damping=0.0,
    ...                    weight_decay=0.0, rms_scale=0.0)
    >>> p = {"w": jnp.array([[3.0, 4.0], [0.0, -2.0]])}
    >>> opt.update(p, opt.init(p), p)[0]["w"]
    Array([[-0.6, -0.8],
           [-0. ,  1. ]], dtype=float32)

  References:
    An et al., `ASGO: Adaptive Structured Gradient Optimization
    <https://arxiv.org/abs/2503.20762>`_, 2025.
  """
  algo = "dasgo"
  direction = _asgo(algo, b1, b2, damping, 1, 10, inverse="eigh", diagonal=True,
                    rms_scale=rms_scale, dimension_numbers=dimension_numbers,
                    mu_dtype=mu_dtype)
  return _with_lr(algo, direction, learning_rate, weight_decay, mask)
