"""Random scaling and momentum: SGDM whose step is scaled by s ~ Exp(1).

Zhang & Cutkosky, "Random Scaling and Momentum for Non-smooth Non-convex
Optimization", arXiv:2405.09742 (ICML 2024). The paper's "exponentiated O2NC"
run with (unconstrained) online gradient descent as the online learner gives
SGD with momentum whose update is multiplied, at every step, by one scalar
s_t drawn from the exponential distribution with mean 1::

  m_t = beta m_{t-1} + (1 - beta) g_t          # g_t = grad F(x_t; z_t)
  s_t ~ Exp(1)                                  # ONE scalar per step, all leaves
  x_{t+1} = x_t - eta s_t m_t

Paper -> code: beta -> ``beta``, eta -> ``learning_rate``, s_t ->
``state.scale`` of ``scale_by_exponential_random``, m_t -> the ``optax.ema``
state. The gradient is taken at the new iterate x_{t+1} itself (the visible
params), so no shifted-point bookkeeping is needed.

Re-use: the momentum is ``optax.ema(beta, debias=False)`` (m = beta m + (1 -
beta) g, no bias correction) and the step is ``optax.scale_by_learning_rate``;
optkit adds only ``scale_by_exponential_random``.

Decisions on the catalog's UNSURE points and on details the catalog leaves open:

* Where the gradient is evaluated: at the randomly scaled point, which IS the
  new iterate x_{t+1} = x_t + s_t Delta_t of exponentiated O2NC (the memoryless
  exponential makes the interpolation of plain O2NC unnecessary). The authors'
  JAX code (``eo2nc`` = online learner followed by ``scale_by_exponential``)
  does the same.
* Momentum form: the EMA of the catalog. The authors' online learner writes
  Delta <- beta / (1 + eta' mu) (Delta - eta' g) (heavy-ball form with a
  regularizer mu); with mu = 0 it equals this EMA form with
  ``learning_rate = beta eta' / (1 - beta)``. mu is not exposed.
* Weight decay (not in the paper): decoupled, AdamW-style, added after the
  random scaling and so not scaled by s_t (default 0).
* The default beta 0.9 is the usual SGDM value (the paper's experiments use
  SGDM defaults); the paper gives no other recommendation.

Test hook: ``sample_fn(key) -> scalar`` replaces the Exp(1) draw (e.g.
``lambda key: 1.0`` turns ``random_scaled_sgdm`` into EMA SGDM).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "random_scaled_sgdm"
_SCALE_NAME = "scale_by_exponential_random"

SampleFn = Callable[[jax.Array], Any]


class ScaleByExponentialRandomState(NamedTuple):
  key: jax.Array    # uint32 key data; split at every update
  scale: jax.Array  # float32, shape (): the last s_t drawn (1 at init)
  tree: Any         # one float32 () zero per params leaf: the tree the state was made for


def _key_data(seed: int) -> jax.Array:
  return jax.random.key_data(jax.random.key(seed))


def _exponential(key: jax.Array) -> jax.Array:
  return jax.random.exponential(key, dtype=jnp.float32)


def scale_by_exponential_random(
    seed: int = 0,
    *,
    sample_fn: Optional[SampleFn] = None,
) -> optax.GradientTransformation:
  r"""Multiplies the whole update by one scalar :math:`s_t \sim \mathrm{Exp}(1)`.

  .. math::
    u_t = s_t\,v_t,\qquad s_t \sim \mathrm{Exp}(1)\ \text{i.i.d.},\ \mathbb{E}[s_t] = 1,

  where :math:`v_t` is the incoming update. One scalar per step is shared by
  every leaf; the key lives in the state and is split at every update.

  Args:
    seed: seed of the PRNG key kept in the state.
    sample_fn: test hook, ``typed_key -> scalar``; default draws Exp(1).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> tx = optkit.scale_by_exponential_random(sample_fn=lambda key: 2.0)
    >>> g = jnp.array([1.0, -2.0])
    >>> tx.update(g, tx.init(g))[0]
    Array([ 2., -4.], dtype=float32)

  References:
    Zhang & Cutkosky, Random Scaling and Momentum for Non-smooth Non-convex
    Optimization, https://arxiv.org/abs/2405.09742
  """
  validate.callable_or_none(_SCALE_NAME, sample_fn=sample_fn)
  draw = _exponential if sample_fn is None else sample_fn

  def init_fn(params):
    return ScaleByExponentialRandomState(
        key=_key_data(seed), scale=jnp.ones([], jnp.float32),
        tree=jax.tree.map(lambda _: jnp.zeros([], jnp.float32), params))

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_floating_tree(_SCALE_NAME, updates)
    if jax.tree.structure(updates) != jax.tree.structure(state.tree):
      raise ValueError(
          f"{_SCALE_NAME}: the gradient tree does not match the optimizer state: got "
          f"structure {jax.tree.structure(updates)}, expected "
          f"{jax.tree.structure(state.tree)}.")
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    s = jnp.asarray(draw(sub), jnp.float32).reshape(())
    out = jax.tree.map(lambda u: (s * u.astype(jnp.promote_types(u.dtype, jnp.float32))
                                  ).astype(u.dtype), updates)
    return out, ScaleByExponentialRandomState(key=jax.random.key_data(key), scale=s,
                                              tree=state.tree)

  return optax.GradientTransformation(init_fn, update_fn)


def random_scaled_sgdm(
    learning_rate: optax.ScalarOrSchedule,
    beta: float = 0.9,
    weight_decay: float = 0.0,
    *,
    mask: Any = None,
    seed: int = 0,
    sample_fn: Optional[SampleFn] = None,
) -> optax.GradientTransformation:
  r"""SGD with EMA momentum whose step is scaled by :math:`s_t \sim \mathrm{Exp}(1)`.

  .. math::
    m_t = \beta m_{t-1} + (1-\beta) g_t,\qquad
    x_{t+1} = x_t - \eta\,(s_t m_t + \lambda x_t),\qquad s_t\sim\mathrm{Exp}(1).

  Args:
    learning_rate: eta, a number or an optax schedule.
    beta: EMA momentum coefficient (default 0.9).
    weight_decay: lambda, decoupled (not randomly scaled); default 0.
    mask: weight-decay mask, as in ``optax.add_decayed_weights``.
    seed: seed of the PRNG key in the state.
    sample_fn: test hook for the random scalar (see
      ``scale_by_exponential_random``).

  Returns:
    An ``optax.GradientTransformation``
    (``chain(ema, scale_by_exponential_random, add_decayed_weights,
    scale_by_learning_rate)``).

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> opt = optkit.random_scaled_sgdm(0.1, beta=0.5, sample_fn=lambda k: 1.0)
    >>> p = jnp.array([1.0, -2.0])
    >>> opt.update(p, opt.init(p), p)[0]  # -0.1 * 1 * (1 - 0.5) * g
    Array([-0.05,  0.1 ], dtype=float32)

  References:
    Zhang & Cutkosky, Random Scaling and Momentum for Non-smooth Non-convex
    Optimization, https://arxiv.org/abs/2405.09742
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.unit_interval(_NAME, beta=beta)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return tree_lib.floating_only(_NAME, optax.chain(
      optax.ema(beta, debias=False),
      scale_by_exponential_random(seed, sample_fn=sample_fn),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  ))
