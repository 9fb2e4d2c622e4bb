"""beta-normalized gradient descent for generalized-smooth problems.

Chen, Zhou, Liang, Lu, "Generalized-Smooth Nonconvex Optimization is As
Efficient As Smooth Nonconvex Optimization", arXiv:2303.02854, the beta-GD
update (section 3)::

  x_{t+1} = x_t - gamma * grad f(x_t) / ||grad f(x_t)||^beta,   beta in [alpha, 1]

where alpha is the generalized-smoothness exponent of
||grad f(x) - grad f(y)|| <= (L0 + L1 ||grad f||^alpha) ||x - y||. beta = 0 is
gradient descent, beta = 1 normalized gradient descent. Paper -> code:
beta -> ``beta``, gamma -> the learning rate of a following
``optax.scale_by_learning_rate`` (this module gives the direction only), the
norm is the L2 norm over the whole pytree (float32 for low-precision leaves).

Guard: the update is g / (||g|| + eps)^beta, and 0 where that denominator is
0 (eps = 0 and g = 0), so zero gradients give zero updates. With the same
eps, beta = 1 is exactly ``optax.normalize_by_update_norm(1.0, eps)`` and
beta = 0 is the identity.

The stochastic method of the paper (SPIDER with the same normalization:
v_t = v_{t-1} + grad f_B(x_t) - grad f_B(x_{t-1}), refreshed with a large
batch every q steps) is a loop over a data pipeline, not a per-step
transformation of one gradient; it composes as::

  v = g_big if t % q == 0 else v + grad(loss_B)(x) - grad(loss_B)(x_prev)
  u, s = optkit.scale_by_power_normalization(beta).update(v, s)
  x_prev, x = x, optax.apply_updates(x, jax.tree.map(lambda a: -gamma * a, u))

Catalog UNSURE points, decided:

* exact normalization in the stochastic method: the same ||v_t||^beta as in
  beta-GD (the normalized SPIDER step of the paper's stochastic section),
  which is what the loop above does;
* gamma(L0, L1, alpha): the paper's theoretical step size depends on unknown
  smoothness constants; optkit leaves gamma to the user (a learning rate or
  schedule chained after the direction) and offers no closed form.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optkit.clipping.global_norm import check_tree, leaf_norm_tree
from optkit.core import numerics
from optkit.core import validate

_NAME = "scale_by_power_normalization"


class ScaleByPowerNormalizationState(NamedTuple):
  norm: jax.Array    # float32, shape (): the last global norm ||g||
  leaf_norms: Any    # float32 () per leaf: the last norm of each leaf


def _work(x):
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def scale_by_power_normalization(beta: float = 1.0,
                                 eps: float = 1e-12) -> optax.GradientTransformation:
  r"""Divides the gradient by the beta-th power of its global norm.

  .. math::
    u = \frac{g}{(\|g\|_2 + \epsilon)^{\beta}}

  so ||u|| = ||g||^(1 - beta) up to eps: beta = 0 is the gradient, beta = 1
  the unit-norm direction (normalized GD). Chain a learning rate after it.

  Args:
    beta: the power beta in [0, 1] (paper: beta in [alpha, 1], alpha the
      generalized-smoothness exponent; default 1, normalized GD).
    eps: epsilon >= 0 added to ||g|| before the power (default 1e-12).

  Returns:
    An ``optax.GradientTransformation`` with state
    ``ScaleByPowerNormalizationState`` (the last norms, for logging).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_power_normalization(beta=0.5)
    >>> g = jnp.array([3.0, 4.0])                  # ||g|| = 5
    >>> u, _ = tx.update(g, tx.init(g))            # g / sqrt(5)
    >>> [round(float(x), 4) for x in u]
    [1.3416, 1.7889]

  References:
    Chen, Zhou, Liang, Lu, Generalized-Smooth Nonconvex Optimization is As
    Efficient As Smooth Nonconvex Optimization,
    https://arxiv.org/abs/2303.02854
  """
  validate.closed_unit_interval(_NAME, beta=beta)
  validate.non_negative(_NAME, eps=eps)

  def init_fn(params):
    return ScaleByPowerNormalizationState(
        jnp.zeros([], jnp.float32), jax.tree.map(lambda _: jnp.zeros([], jnp.float32), params))

  def update_fn(updates, state, params=None):
    del params
    check_tree(_NAME, updates, state.leaf_norms)
    work = jax.tree.map(_work, updates)
    norm = optax.tree.norm(work)
    den = jnp.power(norm + eps, beta)
    out = jax.tree.map(lambda g: numerics.safe_div(g, den.astype(g.dtype)), work)
    new_state = ScaleByPowerNormalizationState(norm.astype(jnp.float32), leaf_norm_tree(work))
    return optax.tree.cast_like(out, updates), new_state

  return optax.GradientTransformation(init_fn, update_fn)
