"""Saddle-free Newton: |H|^-1 g in a Krylov subspace.

Pascanu, Dauphin, Ganguli, Bengio, "On the saddle point problem for non-convex
optimization", arXiv:1405.4604 (the saddle-free Newton method; its Krylov
subspace form and |H| in the subspace are detailed in the follow-up by
Dauphin et al., "Identifying and attacking the saddle point problem in
high-dimensional non-convex optimization", arXiv:1406.2572, Algorithm 1).

One step (gradient g at x, k = ``krylov_dim``)::

  V = [v_1, ..., v_k]      k Lanczos steps with HVPs of f at x, v_1 = g / ||g||
  T = V' H V = U diag(lambda) U'           (tridiagonal, k x k)
  direction = V U (|lambda| + delta)^-1 U' V' g

Newton's step H^-1 g is attracted by saddle points (along a negative-curvature
direction it moves towards the saddle); replacing H by |H| (absolute
eigenvalues) keeps Newton's rescaling while moving away from them. The
returned direction is the positive-gradient one; ``saddle_free_newton(lr)``
scales it by lr (1.0: the paper's step before its line search).

Paper -> code: k (Krylov subspace size) -> ``krylov_dim``, the damping lambda
added to |H^| -> ``damping``; the Lanczos vectors are recomputed each step
(the paper's Algorithm 1 does the same, one Krylov subspace per update).

Decisions:

* Start vector: the gradient (``start='gradient'``, default), so g lies in
  the subspace and V V' g = g; ``start='random'`` draws a Gaussian start
  vector from the key in the state (the catalog's alternative). In either
  case the components of g outside the Krylov subspace are dropped (the
  paper's choice).
* Full re-orthogonalization (twice, classical Gram-Schmidt) of every Lanczos
  vector against all previous ones; a new vector whose norm after it is below
  sqrt(machine eps) times ||H v|| is a breakdown (invariant subspace found):
  it and all later vectors are 0, which leaves their coefficients 0.
* The paper's step-size line search (over a few values, with ``value_fn``) is
  not done here: use ``learning_rate`` (or a line search in the chain).
* k is capped at the number of parameters.

The Lanczos vectors live on the flattened params (``ravel_pytree``): the
memory is k x d, one HVP per Lanczos step; no dense Hessian is formed.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from optkit.core import extra_args as extra_args_lib
from optkit.core import hessian as hessian_lib
from optkit.core import linalg
from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "saddle_free_newton"
STARTS = ("gradient", "random")


class ScaleBySaddleFreeNewtonState(NamedTuple):
  count: jax.Array   # int32, shape (): t
  key: jax.Array     # uint32 key data; split every step (used by start='random')


def scale_by_saddle_free_newton(
    krylov_dim: int = 20,
    damping: float = 1e-3,
    *,
    start: str = "gradient",
    seed: int = 0,
) -> optax.GradientTransformationExtraArgs:
  r"""Saddle-free Newton direction :math:`V U (|\Lambda| + \delta I)^{-1} U^\top V^\top g`.

  ``krylov_dim`` Lanczos steps (one Hessian-vector product of ``value_fn`` at
  ``params`` each) build the Krylov basis V; :math:`V^\top H V = U\Lambda
  U^\top`. ``update`` needs ``params`` and ``value_fn``.

  Args:
    krylov_dim: k, Lanczos steps / subspace size (20; static; capped at the
      number of parameters).
    damping: delta added to |lambda| (1e-3).
    start: ``'gradient'`` (default) or ``'random'`` Lanczos start vector.
    seed: seeds the PRNG key kept in the state (``start='random'``).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: p[0] ** 2 - p[1] ** 2          # saddle at 0
    >>> tx = optkit.scale_by_saddle_free_newton(damping=0.0)
    >>> p = jnp.array([0.1, 0.1])
    >>> p - tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)[0]
    Array([0. , 0.2], dtype=float32)

  References:
    Pascanu, Dauphin, Ganguli, Bengio, On the saddle point problem for
    non-convex optimization, https://arxiv.org/abs/1405.4604
  """
  validate.integer_at_least(_NAME, 1, krylov_dim=krylov_dim)
  validate.non_negative(_NAME, damping=damping)
  validate.one_of(_NAME, "start", start, STARTS)
  validate.seed(_NAME, seed)
  krylov_dim = int(krylov_dim)

  def init_fn(params):
    del params
    return ScaleBySaddleFreeNewtonState(
        count=jnp.zeros([], jnp.int32), key=jax.random.key_data(jax.random.key(seed)))

  def update_fn(updates, state, params=None, **extra_args):
    params = extra_args_lib.require_params(
        _NAME, params, "the Hessian-vector products are taken at params")
    tree_lib.check_same_structure(_NAME, updates, params, what="the params")
    value_fn = extra_args_lib.require(_NAME, extra_args, "value_fn")
    new_key, start_key = jax.random.split(jax.random.wrap_key_data(state.key))
    new_state = ScaleBySaddleFreeNewtonState(
        count=optax.safe_increment(state.count), key=jax.random.key_data(new_key))
    dtype = numerics.stat_dtype(params)
    x = jax.tree.map(lambda p: jnp.asarray(p, dtype), params)
    g, unravel = ravel_pytree(jax.tree.map(lambda u: jnp.asarray(u, dtype), updates))
    n = g.shape[0]
    if n == 0:
      return jax.tree.map(jnp.zeros_like, updates), new_state
    k = min(krylov_dim, n)

    def matvec(v):
      return ravel_pytree(hessian_lib.hvp(value_fn, x, unravel(v)))[0].astype(dtype)

    v0 = g if start == "gradient" else jax.random.normal(start_key, (n,), dtype)
    vs, alpha, beta, _ = linalg.lanczos(matvec, v0, k)
    t = jnp.diag(alpha) + jnp.diag(beta, 1) + jnp.diag(beta, -1)
    lam, u = jnp.linalg.eigh(t)
    coef = u.T @ (vs @ g)
    den = jnp.abs(lam) + jnp.asarray(damping, dtype)
    coef = jnp.where(den > 0, coef / jnp.where(den > 0, den, 1), 0)
    d = vs.T @ (u @ coef)
    return optax.tree.cast_like(unravel(d), updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def saddle_free_newton(
    learning_rate: optax.ScalarOrSchedule,
    krylov_dim: int = 20,
    damping: float = 1e-3,
    weight_decay: float = 0.0,
    *,
    start: str = "gradient",
    seed: int = 0,
    mask: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Saddle-free Newton: :math:`x_{t+1} = x_t - \eta\,|H|_k^{-1} g_t`.

  Built as ``chain(scale_by_saddle_free_newton(...),
  add_decayed_weights(weight_decay, mask), scale_by_learning_rate(lr))``.
  ``update`` needs ``params`` and ``value_fn=lambda p: loss(p, batch)``.

  Args:
    learning_rate: eta (1.0: a full saddle-free Newton step); number or schedule.
    krylov_dim: Lanczos steps per update (static).
    damping: delta added to |lambda| (1e-3).
    weight_decay: decoupled weight decay added before the lr (0).
    start: Lanczos start vector, ``'gradient'`` or ``'random'``.
    seed: seeds the PRNG key kept in the state.
    mask: optional tree or callable selecting the decayed params.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optax
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: p[0] ** 2 - p[1] ** 2 + 0.25 * p[1] ** 4   # minima at y = +-sqrt(2)
    >>> params = jnp.array([0.5, 1e-3])                             # next to the saddle
    >>> opt = optkit.saddle_free_newton(learning_rate=1.0)
    >>> state = opt.init(params)
    >>> for _ in range(20):
    ...   updates, state = opt.update(jax.grad(loss)(params), state, params, value_fn=loss)
    ...   params = optax.apply_updates(params, updates)
    >>> abs(float(params[0])) < 1e-6, round(float(params[1]), 3)
    (True, 1.414)

  References:
    Pascanu, Dauphin, Ganguli, Bengio, On the saddle point problem for
    non-convex optimization, https://arxiv.org/abs/1405.4604
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_saddle_free_newton(krylov_dim, damping, start=start, seed=seed),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
