"""LV-HBA: a single-loop, Hessian-free solver for constrained bilevel problems.

Yao, Yu, Zeng & Zhang, "Constrained Bi-Level Optimization: Proximal Lagrangian
Value function Approach and Hessian-free Algorithm", ICLR 2024,
arXiv:2401.16164, Algorithm 1 (LV-HBA). Tier C: a solver step function
(:class:`~optkit.perturbation.target_surrogates.StepFunction`), not a
gradient transformation.

Problem::

    min_{x in X, y in Y} F(x, y)   s.t.  y in argmin_{theta in Y} { f(x, theta) : g(x, theta) <= 0 }

Proximal Lagrangian value function (gamma = (gamma_1, gamma_2) > 0)::

    v_gamma(x, y, z) = min_theta max_{lam >= 0} f(x, theta) + lam^T g(x, theta)
                        + ||theta - y||^2 / (2 gamma_1) - ||lam - z||^2 / (2 gamma_2)

and the penalized reformulation min (1/c_k) F + f - v_gamma over (x, y, z).
One iteration k (all gradients by autodiff, no Hessians)::

    d_theta = grad_theta f(x, theta) + grad_theta g(x, theta)^T lam + (theta - y) / gamma_1
    d_lam   = -g(x, theta) + (lam - z) / gamma_2
    (theta, lam) <- Proj_{Y x R+}((theta, lam) - eta (d_theta, d_lam))
    d_x = grad_x F(x, y) / c_k + grad_x f(x, y) - grad_x [f + lam^T g](x, theta)   # Danskin
    d_y = grad_y F(x, y) / c_k + grad_y f(x, y) - (y - theta) / gamma_1
    d_z = (z - lam) / gamma_2
    (x, y) <- Proj_C((x, y) - alpha (d_x, d_y));   z <- Proj_{R+}(z - beta d_z)
    c_k = c_0 (k + 1)^p

(theta, lam on the right of d_x, d_y, d_z are the new ones.)

Paper -> code: F -> ``upper_fn(x, y)``; f -> ``lower_fn(x, theta)``; g ->
``lower_constraint_fn(x, theta)`` (a vector, <= 0 feasible); Proj_X, Proj_Y ->
``project_x``, ``project_y``; Proj_C -> ``project_xy`` (default: Proj_X x
Proj_Y); alpha, beta, eta -> ``alpha``, ``beta``, ``eta``; gamma_1, gamma_2
-> ``gamma1``, ``gamma2``; c_0, p -> ``c0``, ``c_power``; (theta, lam, z) ->
``state.theta``, ``state.lam``, ``state.z``. ``params`` is the pair ``(x, y)``
(each any pytree).

UNSURE (catalog: all constants), decided:

* gamma1 = 1, gamma2 = 1, alpha = beta = eta = 0.05, c0 = 1, p = 0.3:
  the paper states step-size conditions (eta below the inner problem's
  strong-convexity/smoothness ratio, alpha, beta below the inverse smoothness of the
  penalized function) and p in (0, 1/2) for the penalty, but the constants of
  its experiments are problem-specific; these work on the unit-scale toys in
  tests/constraints/test_bilevel_lagrangian.py and must be tuned per problem.
* Proj_C: the paper projects (x, y) onto C = {(x, y) in X x Y : g(x, y) <= 0}.
  That projection is problem-specific, so ``project_xy`` takes it; the default
  projects onto X x Y only, which is right only when g <= 0 holds on all of
  X x Y. It matters: for an infeasible y, f(x, y) - v_gamma can be negative and
  unbounded below, and the iterates then diverge (seen on the tests' toy
  problem without ``project_xy``).
* The (theta, lam) step uses x^k, y^k, z^k and the (x, y, z) step uses the new
  (theta^{k+1}, lam^{k+1}) (Gauss-Seidel order, as in Algorithm 1).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import numerics
from optkit.core import validate
from optkit.perturbation.target_surrogates import StepFunction, require_callable

_NAME = "lv_hba"


class LVHBAState(NamedTuple):
  """State of :func:`lv_hba`."""
  count: jax.Array   # int32, (): k
  theta: Any         # lower-level variable theta^k, like y
  lam: jax.Array     # (m,): lower-level multipliers lambda^k >= 0
  z: jax.Array       # (m,): proximal centre of lambda, z^k >= 0


def _identity(v):
  return v


def _axpy(a, x, y):
  return jax.tree.map(lambda xi, yi: xi + a * yi, x, y)


def lv_hba(
    upper_fn: Callable[[Any, Any], jax.Array],
    lower_fn: Callable[[Any, Any], jax.Array],
    lower_constraint_fn: Callable[[Any, Any], jax.Array],
    project_x: Optional[Callable[[Any], Any]] = None,
    project_y: Optional[Callable[[Any], Any]] = None,
    *,
    project_xy: Optional[Callable[[Any, Any], Any]] = None,
    alpha: float = 0.05,
    beta: float = 0.05,
    eta: float = 0.05,
    gamma1: float = 1.0,
    gamma2: float = 1.0,
    c0: float = 1.0,
    c_power: float = 0.3,
) -> StepFunction:
  r"""LV-HBA (Alg. 1): proximal Lagrangian value-function penalty, single loop.

  .. math::
    \min_{x,y,z}\ \tfrac{1}{c_k}F(x,y) + f(x,y) - v_\gamma(x,y,z),\qquad
    c_k = c_0 (k+1)^p

  with one projected gradient step on the inner max-min variables
  (theta, lambda) and one on (x, y, z) per iteration; the gradient of
  v_gamma is taken by Danskin's theorem at the current (theta, lambda).

  Args:
    upper_fn: F(x, y), scalar.
    lower_fn: f(x, theta), scalar.
    lower_constraint_fn: g(x, theta), a vector (m,); feasible where <= 0.
    project_x: projection onto X (default: identity, X = R^n).
    project_y: projection onto Y (default: identity).
    project_xy: ``(x, y) -> (x, y)``, the projection onto C (default
      ``(project_x(x), project_y(y))``).
    alpha: step on (x, y); beta: step on z; eta: step on (theta, lambda)
      (all > 0).
    gamma1, gamma2: proximal parameters (> 0).
    c0, c_power: penalty schedule c_k = c0 (k + 1)^c_power (c0 > 0,
      c_power in [0, 1/2) per the paper).

  Returns:
    A ``StepFunction``: ``init((x, y)) -> LVHBAState`` (theta = y, lambda =
    z = 0) and ``step((x, y), state) -> ((x, y), state)``, pure and jittable.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> F = lambda x, y: 0.5 * (x - 2.0) ** 2 + 0.5 * y ** 2
    >>> f = lambda x, th: 0.5 * (th - x) ** 2
    >>> g = lambda x, th: jnp.array([th - 1.0])          # lower level: theta <= 1
    >>> proj_c = lambda x, y: (x, jnp.minimum(y, 1.0))   # C = {(x, y): g(x, y) <= 0}
    >>> solver = optkit.lv_hba(F, f, g, project_xy=proj_c)
    >>> params = (jnp.asarray(0.0), jnp.asarray(0.0))
    >>> state = solver.init(params)
    >>> run = jax.jit(lambda p, s: jax.lax.fori_loop(
    ...     0, 4000, lambda i, c: solver.step(*c), (p, s)))
    >>> (x, y), state = run(params, state)
    >>> print(f"{float(x):.1f} {float(y):.1f}")     # the solution (2, 1)
    2.0 1.0

  References:
    Yao, Yu, Zeng & Zhang, Constrained Bi-Level Optimization: Proximal
    Lagrangian Value function Approach and Hessian-free Algorithm, ICLR 2024.
    https://arxiv.org/abs/2401.16164
  """
  require_callable(_NAME, upper_fn=upper_fn, lower_fn=lower_fn,
                   lower_constraint_fn=lower_constraint_fn)
  validate.callable_or_none(_NAME, project_x=project_x, project_y=project_y,
                            project_xy=project_xy)
  validate.positive(_NAME, alpha=alpha, beta=beta, eta=eta, gamma1=gamma1, gamma2=gamma2,
                    c0=c0)
  validate.non_negative(_NAME, c_power=c_power)
  proj_x = project_x or _identity
  proj_y = project_y or _identity
  proj_xy = project_xy or (lambda x, y: (proj_x(x), proj_y(y)))

  def init(params):
    x, y = params
    g0 = jnp.atleast_1d(jnp.asarray(lower_constraint_fn(x, y)))
    dtype = numerics.stat_dtype(params)
    zeros = jnp.zeros(g0.shape, dtype)
    return LVHBAState(count=jnp.zeros((), jnp.int32), theta=jax.tree.map(jnp.asarray, y),
                      lam=zeros, z=zeros)

  def step(params, state):
    x, y = params
    theta, lam, z = state.theta, state.lam, state.z
    dtype = lam.dtype
    g_fn = lambda xx, th: jnp.atleast_1d(lower_constraint_fn(xx, th)).astype(dtype)
    lagr = lambda xx, th, la: lower_fn(xx, th) + la @ g_fn(xx, th)

    # (theta, lambda): projected descent-ascent on the proximal Lagrangian.
    d_theta = jax.grad(lagr, argnums=1)(x, theta, lam)
    d_theta = jax.tree.map(lambda d, t, yy: d + (t - yy) / gamma1, d_theta, theta, y)
    d_lam = -g_fn(x, theta) + (lam - z) / gamma2
    theta_new = proj_y(_axpy(-eta, theta, d_theta))
    lam_new = jnp.maximum(lam - eta * d_lam, 0.0)

    # (x, y, z): projected gradient on F / c_k + f - v_gamma (Danskin).
    c_k = c0 * (state.count.astype(dtype) + 1.0) ** c_power
    fx, fy = jax.grad(upper_fn, argnums=(0, 1))(x, y)
    lx, ly = jax.grad(lower_fn, argnums=(0, 1))(x, y)
    vx = jax.grad(lagr, argnums=0)(x, theta_new, lam_new)
    d_x = jax.tree.map(lambda a, b, v: a / c_k + b - v, fx, lx, vx)
    d_y = jax.tree.map(lambda a, b, yy, t: a / c_k + b - (yy - t) / gamma1, fy, ly, y, theta_new)
    d_z = (z - lam_new) / gamma2
    x_new, y_new = proj_xy(_axpy(-alpha, x, d_x), _axpy(-alpha, y, d_y))
    z_new = jnp.maximum(z - beta * d_z, 0.0)
    new_params = (optax.tree.cast_like(x_new, x), optax.tree.cast_like(y_new, y))
    theta_new = optax.tree.cast_like(theta_new, theta)
    return new_params, LVHBAState(optax.safe_increment(state.count), theta_new,
                                  lam_new.astype(dtype), z_new.astype(dtype))

  return StepFunction(init, step)
