"""Gravity: a kinematic, saturating gradient step averaged into a velocity.

Bahrami & Pouriyan Zadeh, "Gravity Optimizer: a Kinematic Approach on
Optimization in Deep Learning", arXiv:2101.09192. One step, PER TENSOR
(t = count + 1)::

  init:  V_0 ~ N(0, (alpha / eta)^2)   elementwise
  beta_t = (beta t + 1) / (t + 2)                  # alternative to a moving average
  M_t    = 1 / max_i |g_i|                         # per tensor
  zeta_t = g / (1 + (g / M_t)^2)                   # = g / (1 + (g max|g|)^2)
  V_t    = beta_t V_{t-1} + (1 - beta_t) zeta_t
  theta <- theta - eta V_t

Paper -> code: eta -> ``learning_rate`` (``learning_rate_for_init`` in the
direction), alpha -> ``alpha``, beta -> ``beta``, V -> ``state.v``,
M_t, zeta_t -> (not stored). ``scale_by_gravity`` returns V_t (positive-gradient
convention); ``gravity`` chains it with ``optax.add_decayed_weights`` and
``optax.scale_by_learning_rate``.

Defaults: alpha = 0.01, beta = 0.9 (paper and pytorch_optimizer 4.1.0).
Learning rate: required in ``gravity`` (optkit convention); the paper
proposes eta = 0.1 (catalog), pytorch_optimizer defaults to 1e-2.
``scale_by_gravity(learning_rate_for_init=0.1)`` follows the paper.

Decisions:

* M_t is formed as ``g * max|g|`` instead of ``g / (1 / max|g|)``: equal for
  non-zero tensors, and an all-zero gradient tensor gives zeta = 0 with no
  infinity in between (pytorch_optimizer divides by ``1/0 = inf``).
* The initial velocity: one float32 Gaussian draw for the whole tree
  (``optkit.core.tree.random_like``), from the key ``jax.random.key(seed)``,
  times alpha / eta_0 where eta_0 is the learning rate at step 0 (a schedule
  is evaluated at 0). The key is used only by ``init``: the state keeps no key
  (nothing random happens after step 0). ``learning_rate = 0`` gives V_0 = 0
  rather than an infinite standard deviation.
* Test hook / matching a reference's draw: the initial velocity is plain
  state; replace it, e.g. ``state[0]._replace(v=v0)`` for ``gravity`` (the
  first element of its chain state), before the first update. The fixture test
  injects pytorch_optimizer's V_0 this way.
* ``v`` is float32 (float64 for float64 params) for bf16 params; the update
  is cast back to the gradient's dtype.

UNSURE (catalog): the paper's default eta (0.1 per catalog vs 1e-2 in
pytorch_optimizer): ``gravity`` takes it as a required argument; the
docstring example and the direction's ``learning_rate_for_init`` use 0.1.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "gravity"


class ScaleByGravityState(NamedTuple):
  count: jax.Array    # int32, shape (): t - 1
  v: optax.Updates    # V_t, float32 (float64 for float64 params)


def _beta_t(beta, t, dtype):
  """beta_t = (beta t + 1) / (t + 2), t = 1, 2, ... (paper's alternative EMA)."""
  t = jnp.asarray(t, dtype)
  return (jnp.asarray(beta, dtype) * t + 1.0) / (t + 2.0)


def _zeta(g):
  """zeta = g / (1 + (g / M)^2), M = 1 / max|g| (per tensor)."""
  gmax = jnp.max(jnp.abs(g)) if g.size else jnp.zeros((), g.dtype)
  return g / (1.0 + (g * gmax) ** 2)


def scale_by_gravity(alpha=0.01, beta=0.9, learning_rate_for_init=0.1,
                     seed: int = 0) -> optax.GradientTransformation:
  """Gravity direction V_t (no learning rate).

  .. math::
    \\zeta_t = \\frac{g_t}{1 + (g_t \\max|g_t|)^2}, \\quad
    \\beta_t = \\frac{\\beta t + 1}{t + 2}, \\quad
    V_t = \\beta_t V_{t-1} + (1 - \\beta_t) \\zeta_t,
    \\quad V_0 \\sim \\mathcal N(0, (\\alpha/\\eta)^2).

  Args:
    alpha: alpha, scale of the initial velocity (std alpha / eta); paper 0.01.
    beta: beta, the limit of the averaging weight beta_t; paper 0.9.
    learning_rate_for_init: eta in the initial velocity's std (a number or a
      schedule, evaluated at step 0); the paper's 0.1.
    seed: seeds the initial velocity draw.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_gravity(alpha=0.0, beta=0.9)
    >>> g = jnp.array([1.0, -0.5])
    >>> v, _ = tx.update(g, tx.init(g))   # beta_1 = 1.9 / 3, zeta = g / (1 + g^2)
    >>> v
    Array([ 0.18333, -0.14667], dtype=float32)

  References:
    Bahrami & Pouriyan Zadeh, "Gravity Optimizer: a Kinematic Approach on
    Optimization in Deep Learning", 2021. https://arxiv.org/abs/2101.09192
  """
  validate.closed_unit_interval(_NAME, alpha=alpha, beta=beta)
  validate.learning_rate(_NAME, learning_rate_for_init)
  validate.seed(_NAME, seed)

  def init_fn(params):
    eta0 = (learning_rate_for_init(0) if callable(learning_rate_for_init)
            else learning_rate_for_init)
    eta0 = jnp.asarray(eta0, jnp.float32)
    std = jnp.where(eta0 > 0, alpha / jnp.where(eta0 > 0, eta0, 1.0), 0.0)
    key = jax.random.key(seed)
    noise = tree_lib.random_like(key, params, "gaussian", dtype=jnp.float32)
    v = jax.tree.map(lambda n, p: (std * n).astype(numerics.stat_dtype(p)), noise, params)
    return ScaleByGravityState(jnp.zeros([], jnp.int32), v)

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure(_NAME, updates, state.v)
    t = optax.safe_increment(state.count)

    def leaf(g, v):
      b_t = _beta_t(beta, t, v.dtype)
      return (b_t * v + (1.0 - b_t) * _zeta(g.astype(v.dtype))).astype(v.dtype)

    v = jax.tree.map(leaf, updates, state.v)
    return optax.tree.cast_like(v, updates), ScaleByGravityState(t, v)

  return optax.GradientTransformation(init_fn, update_fn)


def gravity(learning_rate: optax.ScalarOrSchedule, alpha=0.01, beta=0.9,
            weight_decay=0.0, seed: int = 0, *,
            mask: Optional[Any] = None) -> optax.GradientTransformation:
  """Gravity optimizer: theta <- theta - eta (V_t + lambda theta).

  Args:
    learning_rate: eta (number or schedule); also sets the initial velocity's
      std alpha / eta_0. The paper proposes 0.1.
    alpha: alpha, initial-velocity scale; paper 0.01.
    beta: beta, limit of the averaging weight; paper 0.9.
    weight_decay: decoupled weight decay lambda (not in the paper; 0).
    seed: seeds the initial velocity draw.
    mask: weight-decay mask (as in ``optax.add_decayed_weights``).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.gravity(learning_rate=0.1, alpha=0.0)
    >>> p = jnp.array([1.0, -0.5])
    >>> u, _ = opt.update(p, opt.init(p), p)
    >>> u
    Array([-0.018333,  0.014667], dtype=float32)

  References:
    Bahrami & Pouriyan Zadeh, "Gravity Optimizer: a Kinematic Approach on
    Optimization in Deep Learning", 2021. https://arxiv.org/abs/2101.09192
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_gravity(alpha, beta, learning_rate, seed),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate))
