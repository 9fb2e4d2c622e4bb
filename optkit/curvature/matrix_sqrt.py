"""Matrix square roots by Taylor and Pade approximants (utilities, no record).

Song, Sebe, Wang, "Fast Differentiable Matrix Square Root", arXiv:2201.08663
(Sec. 3: Matrix Taylor Polynomial (MTP) and Matrix Pade Approximants (MPA)).

For a symmetric positive (semi-)definite A, with ||A||_F its Frobenius norm
and Z = I - A / ||A||_F (all eigenvalues of Z in [0, 1) for SPD A)::

  MTP:  A^(1/2) ~= sqrt(||A||_F) (I - sum_{k=1..K} |binom(1/2, k)| Z^k)
  MPA:  A^(1/2) ~= sqrt(||A||_F) Q_N(Z)^-1 P_M(Z)
  inverse (MPA):  A^(-1/2) ~= P_M(Z)^-1 Q_N(Z) / sqrt(||A||_F)

P_M / Q_N is the [M/N] Pade approximant of sqrt(1 - z) (Q_N(0) = 1): it
matches the Taylor series of sqrt(1 - z) up to z^(M+N). Its coefficients are
computed once, in float64 NumPy, from the Taylor coefficients (the linear
system of the Pade conditions); the matrix polynomials are evaluated by
Horner's rule and one linear solve replaces the inverse (P and Q commute).
The inverse square root is the reciprocal of the same approximant, as in the
paper (no separate approximant of (1 - z)^(-1/2)).

Decisions (UNSURE: default orders): ``matrix_sqrt_pade`` and
``matrix_inv_sqrt_pade`` default to [5/5] (the catalog's test order; about
the cost of ten matrix products plus one solve), ``matrix_sqrt_taylor`` to
K = 10 terms. Accuracy depends on the conditioning: an eigenvalue lambda of A
maps to z = 1 - lambda / ||A||_F, close to the branch point z = 1 when
lambda << ||A||_F, where the Taylor series converges slowly and the Pade
approximant much faster. Add a damping (A + eps I) for singular A. The
backward pass (the paper's Lyapunov-equation solvers) is not provided:
optimizers use the forward value only (``jax.grad`` still differentiates
through the polynomial evaluation).

All functions accept a matrix or a stack (..., n, n), compute in float32
(float64 for float64 input) and return the input's dtype.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["matrix_inv_sqrt_pade", "matrix_sqrt_pade", "matrix_sqrt_taylor",
           "pade_coefficients", "taylor_coefficients"]


def taylor_coefficients(num_terms: int) -> np.ndarray:
  """Taylor coefficients c_0..c_K of sqrt(1 - z) = sum_k c_k z^k (float64).

  c_0 = 1 and c_k = -|binom(1/2, k)| for k >= 1.
  """
  c = np.zeros(num_terms + 1)
  c[0] = 1.0
  b = 1.0  # binom(1/2, k) by the recurrence b_k = b_{k-1} (1/2 - k + 1) / k
  for k in range(1, num_terms + 1):
    b *= (0.5 - k + 1) / k
    c[k] = -abs(b)
  return c


@functools.lru_cache(maxsize=None)
def pade_coefficients(m: int, n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """``(p, q)``: the [m/n] Pade approximant p(z)/q(z) of sqrt(1 - z), q_0 = 1.

  Solves the Pade conditions sum_{j=0..n} q_j c_{i-j} = 0 for i = m+1..m+n
  (c the Taylor coefficients), then p_i = sum_{j<=min(i,n)} q_j c_{i-j}.
  """
  c = taylor_coefficients(m + n)
  coef = lambda i: c[i] if i >= 0 else 0.0
  if n:
    lhs = np.array([[coef(i - j) for j in range(1, n + 1)] for i in range(m + 1, m + n + 1)])
    rhs = -np.array([coef(i) for i in range(m + 1, m + n + 1)])
    q = np.concatenate([[1.0], np.linalg.solve(lhs, rhs)])
  else:
    q = np.array([1.0])
  p = np.array([sum(q[j] * coef(i - j) for j in range(min(i, n) + 1)) for i in range(m + 1)])
  return tuple(float(x) for x in p), tuple(float(x) for x in q)


def _check(name: str, a, **orders):
  if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
    raise ValueError(f"{name}: expected a square matrix or a stack (..., n, n), got "
                     f"shape {a.shape}.")
  for arg, v in orders.items():
    if isinstance(v, bool) or int(v) != v or v < 0:
      raise ValueError(f"{name}: `{arg}` must be an integer >= 0, got {v!r}.")


def _prepare(a):
  dtype = jnp.float64 if a.dtype == jnp.float64 else jnp.float32
  x = a.astype(dtype)
  norm = jnp.sqrt(jnp.sum(x * x, axis=(-2, -1), keepdims=True))
  safe = jnp.where(norm > 0, norm, 1)
  eye = jnp.broadcast_to(jnp.eye(a.shape[-1], dtype=dtype), x.shape)
  return eye - x / safe, eye, norm, safe


def _polyval(coeffs, z, eye):
  """sum_k coeffs[k] Z^k by Horner's rule."""
  out = coeffs[-1] * eye
  for c in reversed(coeffs[:-1]):
    out = z @ out + c * eye
  return out


def matrix_sqrt_taylor(a: jax.Array, num_terms: int = 10) -> jax.Array:
  r"""Matrix Taylor Polynomial square root of an SPD matrix (or a stack).

  .. math::
    A^{1/2} \approx \sqrt{\|A\|_F}\Big(I - \sum_{k=1}^{K}
    \big|\tbinom{1/2}{k}\big| Z^k\Big),\qquad Z = I - A/\|A\|_F.

  Args:
    a: (..., n, n) symmetric positive (semi-)definite.
    num_terms: K (10).

  Returns:
    The approximate square root, shape and dtype of ``a``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.curvature.matrix_sqrt import matrix_sqrt_taylor
    >>> matrix_sqrt_taylor(jnp.diag(jnp.array([4.0, 4.0])))
    Array([[2., 0.],
           [0., 2.]], dtype=float32)

  References:
    Song, Sebe, Wang, Fast Differentiable Matrix Square Root,
    https://arxiv.org/abs/2201.08663
  """
  a = jnp.asarray(a)
  _check("matrix_sqrt_taylor", a, num_terms=num_terms)
  z, eye, norm, _ = _prepare(a)
  coeffs = tuple(float(x) for x in taylor_coefficients(int(num_terms)))
  out = jnp.sqrt(norm) * _polyval(coeffs, z, eye)
  return out.astype(a.dtype)


def matrix_sqrt_pade(a: jax.Array, m: int = 5, n: int = 5) -> jax.Array:
  r"""Matrix Pade Approximant square root :math:`\sqrt{\|A\|_F}\,Q_N(Z)^{-1}P_M(Z)`.

  Args:
    a: (..., n, n) symmetric positive (semi-)definite.
    m: numerator degree M (5).
    n: denominator degree N (5).

  Returns:
    The approximate square root, shape and dtype of ``a``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.curvature.matrix_sqrt import matrix_sqrt_pade
    >>> matrix_sqrt_pade(jnp.array([[2.0, 1.0], [1.0, 2.0]]))  # eigenvalues 1, 3
    Array([[1.366..., 0.366...],
           [0.366..., 1.366...]], dtype=float32)

  References:
    Song, Sebe, Wang, Fast Differentiable Matrix Square Root,
    https://arxiv.org/abs/2201.08663
  """
  a = jnp.asarray(a)
  _check("matrix_sqrt_pade", a, m=m, n=n)
  z, eye, norm, _ = _prepare(a)
  p, q = pade_coefficients(int(m), int(n))
  out = jnp.linalg.solve(_polyval(q, z, eye), _polyval(p, z, eye))
  return (jnp.sqrt(norm) * out).astype(a.dtype)


def matrix_inv_sqrt_pade(a: jax.Array, m: int = 5, n: int = 5) -> jax.Array:
  r"""Matrix Pade inverse square root :math:`P_M(Z)^{-1}Q_N(Z)/\sqrt{\|A\|_F}`.

  The reciprocal of ``matrix_sqrt_pade``'s approximant (one linear solve).
  ``a`` must be positive definite (a zero matrix gives a non-finite result).

  Args:
    a: (..., n, n) symmetric positive definite.
    m: numerator degree M of the square root's approximant (5).
    n: denominator degree N (5).

  Returns:
    The approximate inverse square root, shape and dtype of ``a``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.curvature.matrix_sqrt import matrix_inv_sqrt_pade
    >>> x = matrix_inv_sqrt_pade(jnp.diag(jnp.array([4.0, 4.0])))
    >>> bool(jnp.allclose(x, 0.5 * jnp.eye(2), atol=1e-6))
    True

  References:
    Song, Sebe, Wang, Fast Differentiable Matrix Square Root,
    https://arxiv.org/abs/2201.08663
  """
  a = jnp.asarray(a)
  _check("matrix_inv_sqrt_pade", a, m=m, n=n)
  z, eye, norm, _ = _prepare(a)
  p, q = pade_coefficients(int(m), int(n))
  out = jnp.linalg.solve(_polyval(p, z, eye), _polyval(q, z, eye))
  return (out / jnp.sqrt(norm)).astype(a.dtype)
