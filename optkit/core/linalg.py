"""Matrix kernels shared by the orthogonal and curvature families.

All functions are pure, jittable and act on one matrix (use ``jax.vmap`` for a
stack). They compute in float32 (or the input's dtype when it is float64) and
return the input's dtype.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp

# Quintic Newton-Schulz coefficients (a, b, c) tuned for Muon: they push all
# singular values of a Frobenius-normalised matrix into roughly [0.7, 1.2] in
# five steps rather than converging to exactly 1.
MUON_COEFFS = (3.4445, -4.7750, 2.0315)
# The classic cubic iteration X <- 1.5 X - 0.5 X X^T X (a=1.5, b=-0.5, c=0):
# converges to the exact polar factor for singular values in (0, sqrt(3)).
CUBIC_COEFFS = (1.5, -0.5, 0.0)


def _work_dtype(x):
  return jnp.float64 if x.dtype == jnp.float64 else jnp.float32


@functools.partial(jax.jit, static_argnames=("steps",))
def newton_schulz(g: jax.Array,
                  steps: int = 5,
                  coeffs: Union[Sequence[float], Sequence[Sequence[float]]] = MUON_COEFFS,
                  eps: float = 1e-7) -> jax.Array:
  """Approximates the orthogonal polar factor ``U V^T`` of a matrix.

  With ``G = U S V^T``, iterates ``X <- a X + (b A + c A^2) X`` with
  ``A = X X^T`` starting from ``X_0 = G / (||G||_F + eps)``. Matrices with more
  rows than columns are transposed first so that ``A`` is the smaller Gramian.

  Args:
    g: a 2-D matrix.
    steps: number of iterations (>= 1).
    coeffs: ``(a, b, c)`` used at every step, or one triple per step.
      Default: Muon's quintic coefficients (singular values land in about
      [0.7, 1.2]); ``CUBIC_COEFFS`` converge to exactly 1 with more steps.
    eps: added to the Frobenius norm in the pre-scaling.

  Returns:
    A matrix of ``g``'s shape and dtype.
  """
  if g.ndim != 2:
    raise ValueError(f"newton_schulz: expected a 2-D matrix, got shape {g.shape}.")
  if int(steps) != steps or steps < 1:
    raise ValueError(f"newton_schulz: `steps` must be an integer >= 1, got {steps!r}.")
  coeffs = jnp.asarray(coeffs, dtype=_work_dtype(g))
  if coeffs.ndim == 1:
    if coeffs.shape != (3,):
      raise ValueError(f"newton_schulz: `coeffs` must be (a, b, c), got {coeffs.shape}.")
    coeffs = jnp.broadcast_to(coeffs, (steps, 3))
  elif coeffs.shape != (steps, 3):
    raise ValueError(
        f"newton_schulz: per-step `coeffs` must have shape ({steps}, 3), got {coeffs.shape}.")
  x = g.astype(_work_dtype(g))
  transpose = x.shape[0] > x.shape[1]
  if transpose:
    x = x.T
  x = x / (jnp.linalg.norm(x) + eps)

  def body(x, abc):
    a, b, c = abc[0], abc[1], abc[2]
    gram = x @ x.T
    poly = b * gram + c * (gram @ gram)
    return a * x + poly @ x, None

  x, _ = jax.lax.scan(body, x, coeffs)
  if transpose:
    x = x.T
  return x.astype(g.dtype)


def orthogonalize_svd(g: jax.Array) -> jax.Array:
  """Exact polar factor ``U V^T`` of a matrix from its thin SVD (reference path).

  Zero singular values contribute nothing (``U V^T`` restricted to the range),
  so a zero matrix maps to a zero matrix.
  """
  if g.ndim != 2:
    raise ValueError(f"orthogonalize_svd: expected a 2-D matrix, got shape {g.shape}.")
  x = g.astype(_work_dtype(g))
  u, s, vt = jnp.linalg.svd(x, full_matrices=False)
  tol = jnp.max(s, initial=0.0) * max(x.shape) * jnp.finfo(x.dtype).eps
  keep = (s > tol).astype(x.dtype)
  # Full-precision product: the default float32 matmul on GPUs/TPUs rounds
  # its inputs (TF32/bf16 passes), which would leave singular values ~1e-3
  # from 1 on this "exact" path.
  return jnp.matmul(u * keep, vt, precision=jax.lax.Precision.HIGHEST).astype(g.dtype)


def inverse_pth_root(a: jax.Array, p: int, ridge_epsilon: float = 1e-6,
                     relative_ridge: bool = True) -> jax.Array:
  """``(A + eps I)^(-1/p)`` of a symmetric positive semi-definite matrix.

  Computed by a symmetric eigendecomposition, with eigenvalues floored at the
  ridge so the result is finite for singular input.

  Args:
    a: symmetric PSD (n, n) matrix.
    p: the root (p = 2 gives the inverse square root; Shampoo uses 2k).
    ridge_epsilon: damping added to the eigenvalues.
    relative_ridge: scale the ridge by the largest eigenvalue (Shampoo's
      convention) instead of using it as an absolute value.
  """
  if a.ndim != 2 or a.shape[0] != a.shape[1]:
    raise ValueError(f"inverse_pth_root: expected a square matrix, got shape {a.shape}.")
  if p <= 0:
    raise ValueError(f"inverse_pth_root: `p` must be positive, got {p!r}.")
  x = a.astype(_work_dtype(a))
  x = 0.5 * (x + x.T)
  w, v = jnp.linalg.eigh(x)
  w = jnp.maximum(w, 0.0)
  ridge = ridge_epsilon * (jnp.max(w) if relative_ridge else 1.0)
  ridge = jnp.maximum(ridge, jnp.finfo(x.dtype).tiny)
  inv_root = (w + ridge) ** (-1.0 / p)
  # Full precision: a TF32/bf16 product would undo the float32 eigensolve.
  return jnp.matmul(v * inv_root, v.T,
                    precision=jax.lax.Precision.HIGHEST).astype(a.dtype)


def power_iteration(matrix_or_matvec: Union[jax.Array, Callable[[jax.Array], jax.Array]],
                    v0: jax.Array,
                    num_iters: int = 100,
                    error_tolerance: float = 1e-6):
  """Largest-magnitude eigenvalue of a symmetric operator by power iteration.

  Args:
    matrix_or_matvec: a symmetric (n, n) matrix or a function ``v -> A v``.
    v0: the starting vector (n,), e.g. from ``jax.random.normal``; must not be
      orthogonal to the top eigenvector.
    num_iters: maximum number of iterations.
    error_tolerance: stop when the eigenvalue estimate changes by less than
      this relative amount.

  Returns:
    ``(eigenvalue, eigenvector)``, the vector normalised to unit length.
  """
  if callable(matrix_or_matvec):
    matvec = matrix_or_matvec
  else:
    mat = matrix_or_matvec
    matvec = lambda v: mat @ v
  tiny = jnp.finfo(v0.dtype).tiny
  v = v0 / jnp.maximum(jnp.linalg.norm(v0), tiny)
  w = matvec(v)
  lam = jnp.vdot(v, w)

  def cond(carry):
    i, _, _, lam, lam_prev = carry
    return (i < num_iters) & (jnp.abs(lam - lam_prev) > error_tolerance * jnp.abs(lam))

  def body(carry):
    # Carry w = A v so that each iteration costs one matvec.
    i, v, w, lam, _ = carry
    norm = jnp.linalg.norm(w)
    v_new = jnp.where(norm > 0, w / jnp.maximum(norm, tiny), v)
    w_new = matvec(v_new)
    return i + 1, v_new, w_new, jnp.vdot(v_new, w_new), lam

  init = (jnp.asarray(0), v, w, lam, lam + 1.0 + jnp.abs(lam))
  _, v, _, lam, _ = jax.lax.while_loop(cond, body, init)
  return lam, v


def _scaled_norm(v: jax.Array) -> jax.Array:
  """Euclidean norm of a vector without overflow or underflow in the squares."""
  m = jnp.max(jnp.abs(v))
  safe = jnp.where(m > 0, m, 1)
  return jnp.where(m > 0, safe * jnp.sqrt(jnp.sum(jnp.square(v / safe))), 0)


def lanczos(matvec: Callable[[jax.Array], jax.Array],
            start: jax.Array,
            num_steps: int,
            breakdown_tol: Optional[float] = None):
  """``num_steps`` Lanczos steps with full re-orthogonalization (done twice).

  Builds an orthonormal basis Q of the Krylov space of a symmetric operator A
  from ``start`` and the tridiagonal ``T = Q A Q^T`` (alpha on the diagonal,
  beta beside it). A breakdown (the new direction's norm at most
  ``breakdown_tol`` times the norm of ``A q`` it came from: an invariant
  subspace) ends the basis: later rows of Q are zero, their alpha and the
  coupling into them are 0, and ``num_valid`` counts the genuine rows.

  Args:
    matvec: ``v -> A v`` on flat vectors, A symmetric.
    start: the first direction (n,); a zero vector gives ``num_valid == 0``.
    num_steps: m, a static Python int >= 1 (at most n is useful).
    breakdown_tol: relative breakdown threshold; default sqrt(eps) of the
      working dtype (float32, or float64 for float64 input).

  Returns:
    ``(basis, alpha, beta, num_valid)``: basis (m, n) with orthonormal rows
    (zero after a breakdown), alpha (m,), beta (m - 1,), num_valid an int32
    scalar.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.core import linalg
    >>> d = jnp.array([1.0, 2.0, 3.0])
    >>> basis, alpha, beta, k = linalg.lanczos(lambda v: d * v, jnp.ones(3), 3)
    >>> t = jnp.diag(alpha) + jnp.diag(beta, 1) + jnp.diag(beta, -1)
    >>> jnp.round(jnp.linalg.eigvalsh(t), 4), int(k)
    (Array([1., 2., 3.], dtype=float32), 3)
  """
  m = int(num_steps)
  if m < 1:
    raise ValueError(f"lanczos: `num_steps` must be >= 1, got {num_steps!r}.")
  dtype = jnp.promote_types(start.dtype, jnp.float32)
  start = start.astype(dtype)
  tol = jnp.sqrt(jnp.finfo(dtype).eps) if breakdown_tol is None else breakdown_tol
  hi = jax.lax.Precision.HIGHEST
  nrm = _scaled_norm(start)
  q0 = jnp.where(nrm > 0, start / jnp.where(nrm > 0, nrm, 1), 0)
  basis = jnp.zeros((m, start.shape[0]), dtype).at[0].set(q0)

  def body(j, carry):
    basis, alpha, beta, valid, count = carry
    q = basis[j]
    w = matvec(q).astype(dtype)
    a = jnp.vdot(q, w)
    scale = _scaled_norm(w)
    for _ in range(2):
      w = w - jnp.matmul(basis.T, jnp.matmul(basis, w, precision=hi), precision=hi)
    b = _scaled_norm(w)
    ok = valid & (b > tol * scale) & (b > 0)
    q_next = jnp.where(ok, w / jnp.where(ok, b, 1), 0)
    alpha = alpha.at[j].set(jnp.where(valid, a, 0))
    beta = beta.at[j].set(jnp.where(ok, b, 0))
    basis = basis.at[j + 1].set(q_next, mode="drop")  # no row m: dropped at j = m - 1
    return basis, alpha, beta, ok, count + valid.astype(jnp.int32)

  init = (basis, jnp.zeros((m,), dtype), jnp.zeros((m,), dtype), nrm > 0,
          jnp.zeros((), jnp.int32))
  basis, alpha, beta, _, count = jax.lax.fori_loop(0, m, body, init)
  return basis, alpha, beta[:-1], count


def matrix_dims(shape: Sequence[int], dimension_numbers: Optional[tuple] = None):
  """How a leaf of ``shape`` is viewed as a matrix by rank-aware methods.

  Returns ``(rows, cols)`` or None for 0-D/1-D leaves. 2-D leaves are used as
  they are. Higher-rank leaves default to Flax's kernel layout
  ``(..., in, out)``: rows = product of all axes but the last (the fan-in, e.g.
  ``kh*kw*in`` for a conv kernel ``(kh, kw, in, out)``), cols = the last axis
  (fan-out). ``dimension_numbers=(row_axes, col_axes)`` overrides this.
  """
  shape = tuple(shape)
  if len(shape) < 2:
    return None
  if dimension_numbers is None:
    rows = 1
    for d in shape[:-1]:
      rows *= d
    return rows, shape[-1]
  row_axes, col_axes = dimension_numbers
  rows = 1
  for a in row_axes:
    rows *= shape[a]
  cols = 1
  for a in col_axes:
    cols *= shape[a]
  return rows, cols


def as_matrix(x: jax.Array, dimension_numbers: Optional[tuple] = None):
  """Reshapes a leaf of rank >= 2 to the matrix ``matrix_dims`` describes.

  Returns ``(matrix, unflatten)`` where ``unflatten(matrix)`` restores the
  leaf's shape (and axis order).
  """
  if x.ndim < 2:
    raise ValueError(f"as_matrix: expected rank >= 2, got shape {x.shape}.")
  if dimension_numbers is None:
    m = x.reshape(-1, x.shape[-1])
    return m, lambda y: y.reshape(x.shape)
  row_axes, col_axes = tuple(dimension_numbers[0]), tuple(dimension_numbers[1])
  perm = row_axes + col_axes
  if sorted(perm) != list(range(x.ndim)):
    raise ValueError(
        f"as_matrix: dimension_numbers {dimension_numbers} must partition the "
        f"{x.ndim} axes of a leaf of shape {x.shape}.")
  xt = jnp.transpose(x, perm)
  rows, cols = matrix_dims(x.shape, dimension_numbers)
  inv = [perm.index(i) for i in range(x.ndim)]
  tshape = xt.shape
  return xt.reshape(rows, cols), lambda y: jnp.transpose(y.reshape(tshape), inv)


def normalize_dimension_numbers(dimension_numbers, ndim: int):
  """``(row_axes, col_axes)`` as two tuples of non-negative axis indices."""
  rows, cols = dimension_numbers
  rows = (rows,) if isinstance(rows, int) else tuple(rows)
  cols = (cols,) if isinstance(cols, int) else tuple(cols)
  return tuple(a % ndim for a in rows), tuple(a % ndim for a in cols)


def leaf_dimension_numbers(algo: str, path, shape, dimension_numbers):
  """The validated ``(row_axes, col_axes)`` of a rank >= 2 leaf, or None.

  ``dimension_numbers`` is None (2-D leaves as they are, the default view for
  higher ranks), a fixed pair (applied to rank >= 3 leaves) or a callable
  ``shape -> pair | None`` (applied to every rank >= 2 leaf). A pair that does
  not split the leaf's axes into two non-empty groups raises a ValueError
  naming ``algo`` and the leaf's path.
  """
  ndim = len(shape)
  if callable(dimension_numbers):
    dims = dimension_numbers(tuple(shape))
  else:
    dims = dimension_numbers if ndim > 2 else None
  if dims is None:
    return None
  try:
    dims = normalize_dimension_numbers(dims, ndim)
  except (TypeError, ValueError):
    dims = None
  if dims is None or sorted(dims[0] + dims[1]) != list(range(ndim)) \
      or not dims[0] or not dims[1]:
    raise ValueError(
        f"{algo}: the leaf at {jax.tree_util.keystr(path)} has rank {ndim} (shape "
        f"{tuple(shape)}), but dimension_numbers {dimension_numbers!r} do not split its "
        "axes into non-empty (row_axes, col_axes).")
  return dims
