"""Lazy Newton: regularized Newton steps with a Hessian refreshed every m steps.

Doikov, Chayti, Jaggi, "Second-order optimization with lazy Hessians",
arXiv:2212.00781 (Algorithm 1: lazy cubic Newton; Sec. 4: lazy
gradient-regularized Newton).

Every ``update_every`` = m steps the Hessian is taken at the current point
z = x_t (the snapshot) and its eigendecomposition H = U diag(lambda) U' is
kept in the state. Each step then uses the CURRENT gradient g = grad f(x_t)
with the snapshot Hessian::

  gradient-regularized (convex):  x+ = x - (H + sqrt(M ||g||) I)^-1 g
  cubic (non-convex):             x+ = argmin_y <g, y - x> + 1/2 <H(y - x), y - x>
                                              + M/6 ||y - x||^3
      = x - (H + (M r / 2) I)^-1 g,  r = ||x+ - x||,  H + (M r / 2) I >= 0,

the cubic step's r found by bisection on the secular equation
||U' g / (lambda + M r / 2)|| = r over r > max(0, -2 lambda_min / M) (the
function is decreasing there; the bracket's upper end
r_min + sqrt(2 ||g|| / M) always satisfies it).

The returned direction is (H + reg I)^-1 g (positive-gradient convention);
``lazy_newton(learning_rate)`` scales it (1.0: the paper's step).

DENSE: the Hessian is built on the flattened params
(``jax.flatten_util.ravel_pytree``, ``jax.hessian``) and eigendecomposed:
O(d^2) memory and O(d^3) time per refresh. Suitable for small models
(d up to a few thousand); the paper's optimal m is about d, which amortizes
the O(d^3) refresh over d cheap steps.

Paper -> code: m -> ``update_every``, M (Lipschitz constant of the Hessian /
regularization) -> ``M``, z (snapshot) -> ``state.eigvecs``/``state.eigvals``
(the Hessian at z, decomposed), t -> ``count``.

Decisions:

* The catalog's ``solver='cg'`` (HVPs at the stored snapshot point for large
  models) is not implemented; only the dense eigendecomposition path exists
  (the catalog recommends it for d <= 5000). The snapshot is therefore kept
  as its eigendecomposition, not as the point z.
* Gradient-regularized steps assume convexity (the paper's setting); negative
  snapshot eigenvalues are clipped at 0 so that the step stays a descent
  direction. Use ``reg='cubic'`` for non-convex problems.
* The cubic "hard case" (g orthogonal to the eigenvector of a negative
  lambda_min) is not treated specially: that component of the step is 0.
* ``value_fn`` is evaluated with the params cast to float32 (float64 for
  float64 params) for the Hessian.
* M = 0 with ``reg='gradient'`` is the pure (lazy) Newton step.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from optkit.core import extra_args as extra_args_lib
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "lazy_newton"
REGS = ("gradient", "cubic")


class ScaleByLazyNewtonState(NamedTuple):
  count: jax.Array     # int32, shape (): t
  eigvals: jax.Array   # (d,) eigenvalues of the snapshot Hessian; float32 (d = #params, >= 1)
  eigvecs: jax.Array   # (d, d) its eigenvectors (columns)


# --------------------------------------------------------------------------
# Dense-Hessian helpers (shared with regularized_newton).


def work_dtype(tree) -> Any:
  """float32, or float64 when a leaf is float64."""
  leaves = jax.tree.leaves(tree)
  return (jnp.result_type(*[jnp.promote_types(jnp.result_type(x), jnp.float32)
                            for x in leaves]) if leaves else jnp.float32)


def flat_size(params) -> int:
  return sum(int(jnp.size(x)) for x in jax.tree.leaves(params))


def flatten(tree, dtype):
  """``(flat vector in dtype, unravel)``; unravel gives leaves in ``dtype``."""
  return ravel_pytree(jax.tree.map(lambda x: jnp.asarray(x, dtype), tree))


def dense_hessian(value_fn, params, dtype) -> jax.Array:
  """The symmetrized Hessian of ``value_fn`` at ``params``, on the flat vector."""
  flat, unravel = flatten(params, dtype)
  h = jax.hessian(lambda x: value_fn(unravel(x)))(flat)
  h = jnp.asarray(h, dtype)
  return 0.5 * (h + h.T)


def scaled_norm(v: jax.Array) -> jax.Array:
  """||v||_2 as m ||v / m|| (m = max |v|): no overflow of the squares."""
  if v.size == 0:
    return jnp.zeros([], v.dtype)
  m = jnp.max(jnp.abs(v))
  safe = jnp.where(m > 0, m, 1)
  return jnp.where(m > 0, safe * jnp.sqrt(jnp.sum((v / safe) ** 2)), 0)


def solve_shifted(eigvals, gt, shift):
  """``gt / (eigvals + shift)`` where the denominator is > 0, else 0."""
  den = eigvals + shift
  return jnp.where(den > 0, gt / jnp.where(den > 0, den, 1), 0)


def cubic_radius(eigvals, gt, gnorm, M, steps: int):
  """r solving ||gt / (eigvals + M r / 2)|| = r by bisection (see module doc)."""
  lo = jnp.maximum(0.0, -2 * jnp.min(eigvals) / M)
  hi = lo + jnp.sqrt(2 * gnorm / M)

  def body(_, bounds):
    a, b = bounds
    mid = 0.5 * (a + b)
    phi = scaled_norm(solve_shifted(eigvals, gt, M * mid / 2)) - mid
    above = (phi > 0) | (eigvals[0] + M * mid / 2 <= 0)
    return jnp.where(above, mid, a), jnp.where(above, b, mid)

  _, hi = jax.lax.fori_loop(0, steps, body, (lo, hi))
  return hi


def newton_direction(eigvals, eigvecs, g, M, reg: str, steps: int):
  """(H + reg I)^-1 g from the eigendecomposition, for ``reg`` in REGS."""
  gt = eigvecs.T @ g
  gnorm = scaled_norm(g)
  if reg == "gradient":
    lam = jnp.sqrt(M * gnorm)
    coef = solve_shifted(jnp.maximum(eigvals, 0), gt, lam)
  else:
    r = cubic_radius(eigvals, gt, gnorm, M, steps)
    coef = solve_shifted(eigvals, gt, M * r / 2)
  return eigvecs @ coef


# --------------------------------------------------------------------------


def scale_by_lazy_newton(
    update_every: int,
    M: float = 1.0,
    *,
    reg: str = "gradient",
    bisection_steps: int = 60,
) -> optax.GradientTransformationExtraArgs:
  r"""Lazy Newton direction: :math:`(\nabla^2 f(z) + \rho I)^{-1}\nabla f(x_t)`.

  The snapshot Hessian :math:`\nabla^2 f(z)` is recomputed (with ``value_fn``
  at the current params, under ``lax.cond``) when ``count % update_every ==
  0`` and reused otherwise. :math:`\rho = \sqrt{M\|g\|}` (``reg='gradient'``)
  or :math:`M r/2` with :math:`r` the cubic step's length (``reg='cubic'``).
  Dense (flattened params): for small models. ``update`` needs ``params`` and
  ``value_fn``.

  Args:
    update_every: m, steps between Hessian refreshes (static; paper: about d).
    M: Hessian-Lipschitz regularization constant (1.0; 0 with
      ``reg='gradient'`` is plain Newton).
    reg: ``'gradient'`` (convex) or ``'cubic'`` (non-convex).
    bisection_steps: bisection iterations of the cubic step's radius (static).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 100.0]) * p ** 2)
    >>> tx = optkit.scale_by_lazy_newton(update_every=5, M=0.0)
    >>> p = jnp.array([1.0, 1.0])
    >>> tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)[0]  # Newton
    Array([1., 1.], dtype=float32)

  References:
    Doikov, Chayti, Jaggi, Second-order optimization with lazy Hessians,
    https://arxiv.org/abs/2212.00781
  """
  validate.integer_at_least(_NAME, 1, update_every=update_every,
                            bisection_steps=bisection_steps)
  validate.one_of(_NAME, "reg", reg, REGS)
  if reg == "cubic":
    validate.positive(_NAME, M=M)
  else:
    validate.non_negative(_NAME, M=M)
  update_every, bisection_steps = int(update_every), int(bisection_steps)

  def init_fn(params):
    n = max(flat_size(params), 1)
    dtype = work_dtype(params)
    return ScaleByLazyNewtonState(
        count=jnp.zeros([], jnp.int32), eigvals=jnp.zeros((n,), dtype),
        eigvecs=jnp.eye(n, dtype=dtype))

  def update_fn(updates, state, params=None, **extra_args):
    params = extra_args_lib.require_params(_NAME, params, "the Hessian is taken at params")
    tree_lib.check_same_structure(_NAME, updates, params, what="the params")
    value_fn = extra_args_lib.require(_NAME, extra_args, "value_fn")
    count = optax.safe_increment(state.count)
    dtype = state.eigvals.dtype
    if flat_size(params) == 0:
      return (jax.tree.map(jnp.zeros_like, updates),
              state._replace(count=count))
    refresh = state.count % update_every == 0

    def fresh():
      w, v = jnp.linalg.eigh(dense_hessian(value_fn, params, dtype))
      return w, v

    eigvals, eigvecs = jax.lax.cond(refresh, fresh,
                                    lambda: (state.eigvals, state.eigvecs))
    g, unravel = flatten(updates, dtype)
    d = newton_direction(eigvals, eigvecs, g, jnp.asarray(M, dtype), reg, bisection_steps)
    out = unravel(d)
    new_state = ScaleByLazyNewtonState(count=count, eigvals=eigvals, eigvecs=eigvecs)
    return optax.tree.cast_like(out, updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def lazy_newton(
    learning_rate: optax.ScalarOrSchedule,
    update_every: int,
    M: float = 1.0,
    weight_decay: float = 0.0,
    *,
    reg: str = "gradient",
    bisection_steps: int = 60,
    mask: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Lazy (gradient-regularized or cubic) Newton.

  .. math::
    x_{t+1} = x_t - \eta\,(\nabla^2 f(z_{\lfloor t/m\rfloor m}) + \rho_t I)^{-1}
    \nabla f(x_t).

  Built as ``chain(scale_by_lazy_newton(...), add_decayed_weights(weight_decay,
  mask), scale_by_learning_rate(learning_rate))``; ``learning_rate = 1`` is the
  paper's method. Dense Hessian on the flattened params: small models only.
  ``update`` needs ``params`` and ``value_fn=lambda p: loss(p, batch)``.

  Args:
    learning_rate: eta (1.0 in the paper); a number or a schedule.
    update_every: m, steps between Hessian refreshes (static).
    M: regularization constant (1.0).
    weight_decay: decoupled weight decay added before the lr (0).
    reg: ``'gradient'`` or ``'cubic'``.
    bisection_steps: bisection iterations for the cubic step (static).
    mask: optional tree or callable selecting the decayed params.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optax
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: jnp.sum(jnp.logaddexp(0.0, -p * jnp.array([1.0, 3.0])))
    >>> params = jnp.array([-1.0, -1.0])
    >>> opt = optkit.lazy_newton(1.0, update_every=2, M=0.1)
    >>> state = opt.init(params)
    >>> for _ in range(6):
    ...   updates, state = opt.update(jax.grad(loss)(params), state, params, value_fn=loss)
    ...   params = optax.apply_updates(params, updates)
    >>> bool(loss(params) < 0.1)
    True

  References:
    Doikov, Chayti, Jaggi, Second-order optimization with lazy Hessians,
    https://arxiv.org/abs/2212.00781
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_lazy_newton(update_every, M, reg=reg, bisection_steps=bisection_steps),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
