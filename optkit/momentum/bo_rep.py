"""BO-REP: bilevel optimization under unbounded smoothness (a solver), and
its normalized-momentum upper-level update (a transformation).

Hao, Gong, Liu, "Bilevel Optimization under Unbounded Smoothness: A New
Algorithm and Convergence Analysis", arXiv:2401.09587 (ICLR 2024), Alg. 1.

Problem: min_x Phi(x) = f(x, y*(x)),  y*(x) = argmin_y g(x, y), g strongly
convex in y; f may be (L_0, L_1)-smooth (unbounded smoothness), which is why
the upper level uses normalized momentum.

One upper step t (x_t, y_t, momentum m)::

  if t % I == 0: y <- N SGD steps on g(x_t, .) from y_t     # periodic update
  v  = gamma sum_{q<Q} (I - gamma grad^2_yy g)^q grad_y f    # Neumann series
  h  = grad_x f(x_t, y_t) - grad^2_xy g(x_t, y_t) v          # hypergradient
  m <- beta m + (1 - beta) h
  x <- x - eta m / ||m||

and before the loop, initialization refinement: N_0 SGD steps on g(x_0, .).
All second-order products are Jacobian-vector products of ``jax.grad``
(Hessian-vector product in y; the cross term as grad_x <grad_y g, v>).

Paper -> code: x, y -> ``x0``/``y0`` and the returned pair; f -> ``upper_fn``;
g -> ``lower_fn``; eta -> ``learning_rate``; beta -> ``beta``; gamma (lower
SGD step) -> ``lower_learning_rate``; I -> ``update_interval``; N ->
``lower_steps``; N_0 -> ``init_steps``; Q -> ``neumann_steps``; the Neumann
step 1/L_g -> ``neumann_learning_rate``; m -> ``ScaleByNormalizedMomentumState.mu``.

``scale_by_normalized_momentum`` (m <- beta m + (1 - beta) g, output
m / ||m||, global l2 norm over the tree) is the upper-level update as an
ordinary transformation; chain it with ``optax.scale_by_learning_rate``.
m is kept in float32 (bf16 params give bf16 updates); ||m|| = 0 gives a zero
update (no division).

UNSURE (catalog), decided:
* Hypergradient estimator: the deterministic truncated Neumann series with Q
  terms and step 1/L_g (the catalog's form); the paper's stochastic variant
  samples a random number of terms. With batches, all Neumann terms use the
  same lower batch. Q must satisfy neumann_learning_rate < 2 / L_g.
* I, N, Q, N_0 defaults (2, 3, 10, 100) are small working values, not the
  paper's tuned ones. The paper's lower-level updates project y onto a ball
  around the previous y; optkit omits the projection (not needed for the
  strongly convex quadratic lower levels of the tests).
* Order within a step: lower update (when due) before the hypergradient, so
  the hypergradient is always evaluated at the freshest y.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "bo_rep"
_NM = "normalized_momentum"


class ScaleByNormalizedMomentumState(NamedTuple):
  mu: optax.Updates  # m_t, float32 (float64 for float64 params), params' shapes


def scale_by_normalized_momentum(beta: float = 0.9) -> optax.GradientTransformation:
  r"""Normalized momentum: the direction m_t / ||m_t||.

  .. math::
    m_t = \beta m_{t-1} + (1 - \beta) g_t, \qquad u_t = m_t / \|m_t\|_2 ,

  with the l2 norm over the whole tree; m_0 = 0; ||m|| = 0 gives u = 0.

  Args:
    beta: momentum decay (BO-REP's upper level; default 0.9), in [0, 1).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.momentum import scale_by_normalized_momentum
    >>> tx = scale_by_normalized_momentum(beta=0.9)
    >>> g = jnp.array([3.0, -4.0])
    >>> tx.update(g, tx.init(g))[0]  # unit norm
    Array([ 0.6, -0.8], dtype=float32)

  References:
    Hao, Gong, Liu, Bilevel Optimization under Unbounded Smoothness: A New
    Algorithm and Convergence Analysis, https://arxiv.org/abs/2401.09587
  """
  validate.unit_interval(_NM, beta=beta)

  def init_fn(params):
    return ScaleByNormalizedMomentumState(mu=jax.tree.map(
        lambda p: jnp.zeros(jnp.shape(p), jnp.promote_types(jnp.result_type(p), jnp.float32)),
        params))

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure(_NM, updates, state.mu)
    b = jnp.asarray(beta, jnp.float32)
    mu = jax.tree.map(lambda m, g: (b * m + (1 - b) * g.astype(m.dtype)).astype(m.dtype),
                      state.mu, updates)
    norm = optax.tree.norm(mu)
    safe = jnp.where(norm > 0, norm, 1.0)
    out = jax.tree.map(lambda m: jnp.where(norm > 0, m / safe, 0.0).astype(m.dtype), mu)
    return optax.tree.cast_like(out, updates), ScaleByNormalizedMomentumState(mu=mu)

  return optax.GradientTransformation(init_fn, update_fn)


def _batch(batches, i):
  if batches is None:
    return None
  size = jnp.shape(jax.tree.leaves(batches)[0])[0]
  return jax.tree.map(lambda b: b[i % size], batches)


def bo_rep_hypergradient(
    upper_fn: Callable[..., jax.Array],
    lower_fn: Callable[..., jax.Array],
    x: Any,
    y: Any,
    neumann_steps: int,
    neumann_learning_rate: float,
    upper_batch: Any = None,
    lower_batch: Any = None,
) -> Any:
  r"""BO-REP's hypergradient estimate of grad Phi(x) at (x, y).

  .. math::
    \hat\nabla f = \nabla_x f - \nabla^2_{xy} g\; \gamma\sum_{q=0}^{Q-1}
    (I - \gamma \nabla^2_{yy} g)^q \nabla_y f .

  Args:
    upper_fn: f, ``(x, y, batch) -> scalar``.
    lower_fn: g, ``(x, y, batch) -> scalar``, strongly convex in y.
    x, y: the points (pytrees).
    neumann_steps: Q (a Python int >= 1).
    neumann_learning_rate: gamma, below 2 / L_g (1 / L_g is the usual choice).
    upper_batch, lower_batch: passed to ``upper_fn`` / ``lower_fn``.

  Returns:
    A tree shaped like ``x``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.momentum import bo_rep_hypergradient
    >>> f = lambda x, y, b: 0.5 * (y - 1.0) ** 2        # y*(x) = x / 2
    >>> g = lambda x, y, b: y ** 2 - x * y
    >>> bo_rep_hypergradient(f, g, 1.0, 0.5, 50, 0.5)   # Phi = (x/2 - 1)^2 / 2
    Array(-0.25, dtype=float32, weak_type=True)

  References:
    Hao, Gong, Liu, https://arxiv.org/abs/2401.09587
  """
  validate.integer_at_least(_NAME, 1, neumann_steps=neumann_steps)
  validate.positive(_NAME, neumann_learning_rate=neumann_learning_rate)
  gx, gy = jax.grad(upper_fn, argnums=(0, 1))(x, y, upper_batch)
  grad_y_g = lambda xx, yy: jax.grad(lower_fn, argnums=1)(xx, yy, lower_batch)
  hvp = lambda p: jax.jvp(lambda yy: grad_y_g(x, yy), (y,), (p,))[1]
  gamma = neumann_learning_rate

  def body(_, carry):
    v, p = carry
    v = jax.tree.map(jnp.add, v, p)
    p = jax.tree.map(lambda a, h: a - gamma * h, p, hvp(p))
    return v, p

  v, _ = jax.lax.fori_loop(0, neumann_steps, body, (optax.tree.zeros_like(gy), gy))
  v = jax.tree.map(lambda a: gamma * a, v)
  cross = jax.grad(lambda xx: optax.tree.vdot(grad_y_g(xx, y), v))(x)
  return jax.tree.map(jnp.subtract, gx, cross)


def bo_rep(
    upper_fn: Callable[..., jax.Array],
    lower_fn: Callable[..., jax.Array],
    x0: Any,
    y0: Any,
    learning_rate: optax.ScalarOrSchedule,
    num_steps: int,
    *,
    lower_learning_rate: float,
    neumann_learning_rate: float,
    beta: float = 0.9,
    init_steps: int = 100,
    update_interval: int = 2,
    lower_steps: int = 3,
    neumann_steps: int = 10,
    upper_batches: Optional[Any] = None,
    lower_batches: Optional[Any] = None,
) -> tuple[Any, Any]:
  r"""Runs BO-REP for ``num_steps`` upper-level steps; returns ``(x, y)``.

  See the module docstring for the algorithm. Jittable: every step count is a
  static Python int; the loops are ``lax`` loops.

  Args:
    upper_fn: f, ``(x, y, batch) -> scalar`` (batch is None without batches).
    lower_fn: g, ``(x, y, batch) -> scalar``, strongly convex in y.
    x0, y0: initial points (pytrees).
    learning_rate: eta, upper step, a number or a schedule of the upper step t.
    num_steps: number of upper steps T.
    lower_learning_rate: gamma, the lower-level SGD step.
    neumann_learning_rate: the Neumann step, below 2 / L_g (use 1 / L_g).
    beta: upper momentum decay (0.9).
    init_steps: N_0, lower SGD steps on g(x0, .) before the loop.
    update_interval: I, the lower level is updated every I upper steps.
    lower_steps: N, lower SGD steps per update.
    neumann_steps: Q, terms of the Neumann series.
    upper_batches, lower_batches: optional pytrees with a leading batch axis;
      upper step t uses upper batch t (cyclically); the k-th lower SGD step
      (counting the initialization) uses lower batch k; the hypergradient of
      step t uses lower batch t.

  Returns:
    ``(x_T, y_T)``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.momentum import bo_rep
    >>> f = lambda x, y, b: 0.5 * (y - 1.0) ** 2        # y*(x) = x / 2, x* = 2
    >>> g = lambda x, y, b: y ** 2 - x * y
    >>> sched = lambda t: 0.1 * 0.98 ** t
    >>> x, y = bo_rep(f, g, jnp.array(0.0), jnp.array(0.0), sched, 300,
    ...               lower_learning_rate=0.25, neumann_learning_rate=0.5)
    >>> round(float(x), 2), round(float(y), 2)
    (2.0, 1.0)

  References:
    Hao, Gong, Liu, Bilevel Optimization under Unbounded Smoothness: A New
    Algorithm and Convergence Analysis, https://arxiv.org/abs/2401.09587
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.positive(_NAME, lower_learning_rate=lower_learning_rate,
                    neumann_learning_rate=neumann_learning_rate)
  validate.unit_interval(_NAME, beta=beta)
  validate.integer_at_least(_NAME, 0, num_steps=num_steps, init_steps=init_steps,
                            lower_steps=lower_steps)
  validate.integer_at_least(_NAME, 1, update_interval=update_interval,
                            neumann_steps=neumann_steps)
  validate.callable_or_none(_NAME, upper_fn=upper_fn, lower_fn=lower_fn)

  upper = optax.chain(scale_by_normalized_momentum(beta),
                      optax.scale_by_learning_rate(learning_rate))
  grad_y_g = jax.grad(lower_fn, argnums=1)

  def lower_sgd(x, y, k, steps):
    def body(_, carry):
      y, k = carry
      g = grad_y_g(x, y, _batch(lower_batches, k))
      return jax.tree.map(lambda a, b: a - lower_learning_rate * b, y, g), k + 1
    return jax.lax.fori_loop(0, steps, body, (y, k))

  y, k = lower_sgd(x0, y0, jnp.zeros([], jnp.int32), init_steps)

  def step(carry, t):
    x, y, k, opt_state = carry
    y, k = jax.lax.cond(t % update_interval == 0,
                        lambda: lower_sgd(x, y, k, lower_steps), lambda: (y, k))
    h = bo_rep_hypergradient(upper_fn, lower_fn, x, y, neumann_steps,
                             neumann_learning_rate, _batch(upper_batches, t),
                             _batch(lower_batches, t))
    u, opt_state = upper.update(h, opt_state, x)
    return (optax.apply_updates(x, u), y, k, opt_state), None

  carry = (x0, y, k, upper.init(x0))
  (x, y, _, _), _ = jax.lax.scan(step, carry, jnp.arange(num_steps, dtype=jnp.int32))
  return x, y
