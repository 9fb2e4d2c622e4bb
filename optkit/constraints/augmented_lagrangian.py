"""Sketched Newton-KKT steps with an exact augmented Lagrangian merit (a solver).

Hong, Na, Mahoney & Kolar, "Constrained Optimization via Exact Augmented
Lagrangian and Randomized Iterative Sketching", ICML 2023, arXiv:2305.18379
(the AdaSketch-SQP scheme). Tier C: a deterministic full-batch solver for

    min_x f(x)  s.t.  c(x) = 0,     L(x, lam) = f(x) + lam^T c(x),  G = dc/dx,

shipped as a :class:`~optkit.perturbation.target_surrogates.StepFunction`. One step::

    K = [[H, G^T], [G, 0]],  H = hess_x L(x, lam)            (dense, by jax.hessian)
    r = -[grad_x L; c]
    z = (dx, dlam) ~ K^{-1} r  by randomized sketch-and-project (Gower & Richtarik):
        z <- z - K S (S^T K K S)^+ S^T (K z - r),  S ~ N(0, 1)^(N x q) fresh every iteration,
        until ||K z - r|| <= theta_k ||r||,  theta_k = min(theta_max, ||r||)   (adaptive accuracy)
    merit: L_{mu,nu}(x, lam) = L + mu/2 ||c||^2 + nu/2 ||grad_x L||^2     (exact augmented Lagrangian)
    while grad L_{mu,nu}^T z > -kappa ||z||^2:  mu <- rho mu          (penalty update)
    alpha: Armijo backtracking from 1 on L_{mu,nu} (sufficient decrease beta, halving)
    (x, lam) <- (x, lam) + alpha z

Sketch-and-project on K itself (not on the normal equations K^T K explicitly):
with B = I it is the projection of z onto the solutions of the sketched system
S^T K z = S^T r, which converges for any nonsingular K, indefinite KKT
matrices included (the catalog's pitfall); the q x q system S^T K K S is PSD
and solved by pseudo-inverse.

Paper -> code: mu (penalty) -> ``state.mu`` (starts at ``mu``), nu -> ``nu``,
rho -> ``mu_growth``, beta (Armijo) -> ``armijo``, theta -> ``theta_max``,
sketch size -> ``sketch_size``, tau (max sketch iterations) -> ``max_sketch_iters``.

UNSURE (catalog: the adaptive accuracy rule and penalty update constants),
decided, with reasons:

* Accuracy: theta_k = min(theta_max, ||KKT residual||) with theta_max = 0.5:
  the relative residual of the Newton system goes to 0 with the KKT residual,
  the classical condition for local superlinear convergence of inexact Newton,
  and the paper's motivation for adaptive sketching; the number of sketch
  iterations is capped by ``max_sketch_iters`` (static) so the step is jittable.
* Penalty test: grad L_{mu,nu}^T z <= -kappa ||z||^2 with kappa = 1e-4 (a
  sufficient-descent test of the Armijo kind); mu is multiplied by rho = 10 at
  most ``max_mu_updates`` = 10 times a step and never decreases.
* nu = 0.1, mu = 1 (start), Armijo beta = 1e-4 with halving (at most 40
  halvings): standard line-search constants; the paper tunes them per problem.
* H is the exact Hessian of the Lagrangian (jax.hessian), the KKT matrix is
  dense: the solver is meant for problems with up to a few thousand variables.
* Params may be any pytree (flattened with ``jax.flatten_util.ravel_pytree``);
  c returns a vector (m,); the multipliers live in the state.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import optax

from optkit.core import numerics
from optkit.core import validate
from optkit.perturbation.target_surrogates import StepFunction, require_callable

_NAME = "sketched_newton_augmented_lagrangian"


class SketchedNewtonALState(NamedTuple):
  """State of :func:`sketched_newton_augmented_lagrangian`."""
  count: jax.Array          # int32, (): steps taken
  lam: jax.Array            # (m,): Lagrange multipliers lambda_k
  mu: jax.Array             # (): merit penalty mu_k
  key: jax.Array            # uint32 key data (2,): sketches
  kkt_residual: jax.Array   # (): ||(grad_x L, c)|| at the start of the last step
  sketch_iters: jax.Array   # int32, (): sketch iterations used in the last step
  step_size: jax.Array      # (): the accepted alpha of the last step


def sketch_and_project_solve(k_mat: jax.Array, rhs: jax.Array, key: jax.Array,
                             sketch_size: int, tol: Any, max_iters: int,
                             z0: Optional[jax.Array] = None):
  """Randomized sketch-and-project for ``K z = rhs`` (K square, nonsingular).

  Gaussian sketches S (N x q), fresh each iteration;
  ``z <- z - K S (S^T K K S)^+ S^T (K z - rhs)``, stopping when
  ``||K z - rhs|| <= tol`` or after ``max_iters`` iterations (static).

  Returns ``(z, iterations, residual_norm)``.

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> k = jnp.array([[2.0, 1.0], [1.0, 3.0]])
    >>> rhs = jnp.array([3.0, 5.0])
    >>> z, iters, residual = optkit.sketch_and_project_solve(
    ...     k, rhs, jax.random.key(0), sketch_size=1, tol=1e-6, max_iters=200)
    >>> bool(jnp.allclose(z, jnp.linalg.solve(k, rhs), atol=1e-4))
    True
  """
  n = rhs.shape[0]
  q = int(min(sketch_size, n))
  z = jnp.zeros_like(rhs) if z0 is None else z0

  def cond(carry):
    i, _, res, _ = carry
    return (i < max_iters) & (jnp.linalg.norm(res) > tol)

  def body(carry):
    i, z, res, key = carry
    key, sub = jax.random.split(key)
    s = jax.random.normal(sub, (n, q), rhs.dtype)
    ks = k_mat @ s                                   # K S (K symmetric: = (S^T K)^T)
    gram = ks.T @ ks                                 # S^T K K S
    y = jnp.linalg.pinv(gram, hermitian=True) @ (s.T @ res)
    z = z - ks @ y
    return i + 1, z, k_mat @ z - rhs, key

  i, z, res, _ = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), z,
                                                 k_mat @ z - rhs, key))
  return z, i, jnp.linalg.norm(res)


def sketched_newton_augmented_lagrangian(
    f: Callable[[Any], jax.Array],
    c: Callable[[Any], jax.Array],
    *,
    mu: float = 1.0,
    nu: float = 0.1,
    mu_growth: float = 10.0,
    armijo: float = 1e-4,
    theta_max: float = 0.5,
    sketch_size: int = 8,
    max_sketch_iters: int = 200,
    max_backtracks: int = 40,
    max_mu_updates: int = 10,
    descent_kappa: float = 1e-4,
    seed: int = 0,
) -> StepFunction:
  r"""Equality-constrained Newton-KKT solver with randomized sketching (AdaSketch-SQP).

  .. math::
    \begin{bmatrix} H & G^\top \\ G & 0 \end{bmatrix}
    \begin{bmatrix}\Delta x\\ \Delta\lambda\end{bmatrix}
    \approx -\begin{bmatrix}\nabla_x L\\ c\end{bmatrix},\qquad
    \mathcal L_{\mu,\nu} = L + \tfrac{\mu}{2}\|c\|^2 + \tfrac{\nu}{2}\|\nabla_x L\|^2

  with Armijo backtracking on the exact augmented Lagrangian
  :math:`\mathcal L_{\mu,\nu}` (see the module docstring).

  Args:
    f: objective ``x -> scalar`` (x any pytree of float arrays).
    c: equality constraints ``x -> (m,)`` vector.
    mu: initial penalty mu (> 0); nu: the gradient-penalty weight (>= 0).
    mu_growth: rho > 1, factor of each penalty increase.
    armijo: sufficient-decrease constant beta in (0, 1/2).
    theta_max: cap of the relative accuracy of the sketched solve, in (0, 1).
    sketch_size: columns q of each Gaussian sketch (static int >= 1).
    max_sketch_iters: cap of sketch iterations per step (static int >= 1).
    max_backtracks: cap of halvings of alpha (static int >= 1).
    max_mu_updates: cap of penalty increases per step (static int >= 0).
    descent_kappa: kappa in the descent test (> 0).
    seed: seeds the sketch key (kept in the state).

  Returns:
    A ``StepFunction``: ``init(params, lam=None) -> SketchedNewtonALState``
    (``lam`` defaults to zeros) and ``step(params, state) -> (params, state)``,
    both pure and jittable.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> f = lambda x: jnp.sum((x - 2.0) ** 2)
    >>> c = lambda x: jnp.array([x[0] + x[1] - 1.0])   # minimum on the line: (0.5, 0.5)
    >>> solver = optkit.sketched_newton_augmented_lagrangian(f, c, sketch_size=2)
    >>> x = jnp.zeros(2)
    >>> state = solver.init(x)
    >>> step = jax.jit(solver.step)
    >>> for _ in range(10):
    ...   x, state = step(x, state)
    >>> x.round(4), state.lam.round(4)
    (Array([0.5, 0.5], dtype=float32), Array([3.], dtype=float32))

  References:
    Hong, Na, Mahoney & Kolar, Constrained Optimization via Exact Augmented
    Lagrangian and Randomized Iterative Sketching, ICML 2023.
    https://arxiv.org/abs/2305.18379
  """
  require_callable(_NAME, f=f, c=c)
  validate.positive(_NAME, mu=mu, theta_max=theta_max, armijo=armijo,
                    descent_kappa=descent_kappa)
  validate.non_negative(_NAME, nu=nu)
  validate.at_least(_NAME, 1.0, mu_growth=mu_growth)
  validate.closed_unit_interval(_NAME, theta_max=theta_max)
  validate.unit_interval(_NAME, armijo=armijo)
  validate.integer_at_least(_NAME, 1, sketch_size=sketch_size,
                            max_sketch_iters=max_sketch_iters, max_backtracks=max_backtracks)
  validate.integer_at_least(_NAME, 0, max_mu_updates=max_mu_updates, seed=seed)

  def init(params, lam=None):
    dtype = numerics.stat_dtype(params)
    m = jnp.shape(c(params))[0]
    lam = jnp.zeros((m,), dtype) if lam is None else jnp.asarray(lam, dtype)
    return SketchedNewtonALState(
        count=jnp.zeros((), jnp.int32), lam=lam, mu=jnp.asarray(mu, dtype),
        key=jax.random.key_data(jax.random.key(seed)),
        kkt_residual=jnp.zeros((), dtype), sketch_iters=jnp.zeros((), jnp.int32),
        step_size=jnp.zeros((), dtype))

  def step(params, state):
    dtype = numerics.stat_dtype(params)
    flat, unravel = ravel_pytree(params)
    flat = flat.astype(dtype)
    n = flat.shape[0]
    fx = lambda x: jnp.asarray(f(unravel(x.astype(flat.dtype))), dtype)
    cx = lambda x: jnp.asarray(c(unravel(x.astype(flat.dtype))), dtype)
    lag = lambda x, lam: fx(x) + lam @ cx(x)
    grad_l = jax.grad(lag)

    def merit(x, lam, mu_):
      cv, gl = cx(x), grad_l(x, lam)
      return lag(x, lam) + 0.5 * mu_ * cv @ cv + 0.5 * nu * gl @ gl

    x, lam = flat, state.lam.astype(dtype)
    g, cv = grad_l(x, lam), cx(x)
    h = jax.hessian(lag)(x, lam)
    jac = jax.jacobian(cx)(x)
    m = cv.shape[0]
    k_mat = jnp.block([[h, jac.T], [jac, jnp.zeros((m, m), dtype)]])
    rhs = -jnp.concatenate([g, cv])
    r_norm = jnp.linalg.norm(rhs)
    # relative accuracy theta_k, floored at 10 ulp (unreachable below rounding)
    theta = jnp.maximum(jnp.minimum(theta_max, r_norm), 10.0 * jnp.finfo(dtype).eps)
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    z, iters, _ = sketch_and_project_solve(k_mat, rhs, sub, sketch_size, theta * r_norm,
                                           int(max_sketch_iters))
    dx, dlam = z[:n], z[n:]

    merit_grad = jax.grad(merit, argnums=(0, 1))

    def slope(mu_):
      gx, glam = merit_grad(x, lam, mu_)
      return gx @ dx + glam @ dlam

    zz = z @ z

    def mu_cond(carry):
      j, mu_ = carry
      return (j < max_mu_updates) & (slope(mu_) > -descent_kappa * zz)

    _, mu_new = jax.lax.while_loop(mu_cond, lambda cr: (cr[0] + 1, cr[1] * mu_growth),
                                   (jnp.zeros((), jnp.int32), state.mu.astype(dtype)))
    m0, s0 = merit(x, lam, mu_new), slope(mu_new)

    def ls_cond(carry):
      j, alpha = carry
      trial = merit(x + alpha * dx, lam + alpha * dlam, mu_new)
      ok = trial <= m0 + armijo * alpha * s0
      return (j < max_backtracks) & ~ok

    _, alpha = jax.lax.while_loop(ls_cond, lambda cr: (cr[0] + 1, 0.5 * cr[1]),
                                  (jnp.zeros((), jnp.int32), jnp.ones((), dtype)))
    # r = 0 (a KKT point) gives z = 0: the step is a no-op.
    new_x = unravel((x + alpha * dx).astype(flat.dtype))
    new_params = optax.tree.cast_like(new_x, params)
    return new_params, SketchedNewtonALState(
        count=optax.safe_increment(state.count), lam=(lam + alpha * dlam).astype(state.lam.dtype),
        mu=mu_new.astype(state.mu.dtype), key=jax.random.key_data(key),
        kkt_residual=r_norm.astype(state.kkt_residual.dtype), sketch_iters=iters,
        step_size=alpha.astype(state.step_size.dtype))

  return StepFunction(init, step)
