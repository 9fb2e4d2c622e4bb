"""AdaMomentum: Adam whose second moment tracks the squared momentum.

Wang, Kang, Qin, Wang, Xu, Zhang & Fu, "Rethinking Adam: A Twofold Exponential
Moving Average Approach", arXiv:2106.11514 (AdaMomentum, Algorithm 2). With
t = count + 1::

  m_t = b1 m_{t-1} + (1 - b1) g_t
  v_t = b2 v_{t-1} + (1 - b2) m_t^2 + eps      # the momentum, not g_t, is squared
  u_t = (m_t / (1 - b1^t)) / sqrt(v_t / (1 - b2^t))

Paper -> code: alpha -> ``learning_rate``, beta_1 -> ``b1``, beta_2 -> ``b2``,
epsilon -> ``eps``, m_t -> ``state.mu``, v_t -> ``state.nu``, t -> ``state.count`` + 1.
Defaults (paper, as Adam): alpha = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8.

eps placement: eps is added to the accumulator ``v`` itself at every step (so it
is carried forward by b2, and v_t >= eps (1 - b2^t) / (1 - b2) > 0), and NOT
added again outside the root: the update is m_hat / sqrt(v_hat). Since v_t > 0
from the first step on, the division is always safe.

UNSURE (catalog: "whether eps also appears in the denominator"), decided: no
eps outside the root by default, as in the paper's algorithm box; an AdaFamily
port that states it was adapted from the AdaMomentum source code adds eps
in-place to the second-moment buffer and then divides by sqrt(v)/sqrt(1 - b2^t)
with no further eps, which agrees. ``eps_denominator`` (default 0) adds an
extra eps to sqrt(v_hat) for users who want the AdaBelief-style double eps.
No public reference implementation was run (none found); the tests check the
rule against a float64 NumPy re-derivation and hand-computed steps.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate


class ScaleByAdaMomentumState(NamedTuple):
  """State of AdaMomentum."""
  count: jax.Array      # int32, shape (): t - 1
  mu: optax.Updates     # m_t, params-shaped; dtype mu_dtype or the params'
  nu: optax.Updates     # v_t (includes the accumulated eps); params-shaped, float32+


def scale_by_adamomentum(b1: float = 0.9,
                         b2: float = 0.999,
                         eps: float = 1e-8,
                         eps_denominator: float = 0.0,
                         *,
                         mu_dtype: Optional[Any] = None) -> optax.GradientTransformation:
  r"""AdaMomentum's direction (no learning rate), Algorithm 2 of Wang et al.

  .. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) m_t^2 + \epsilon,\quad
    u_t = \frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)}}.

  Args:
    b1: beta_1 (0.9, paper).
    b2: beta_2 (0.999, paper).
    eps: epsilon, added to v_t at every step (1e-8, paper).
    eps_denominator: an optional extra eps added to sqrt(v_hat) (0: the paper).
    mu_dtype: dtype of the first-moment buffer; None keeps the params' dtype.

  Returns:
    An ``optax.GradientTransformation`` with state ``ScaleByAdaMomentumState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.adaptive.scale_by_adamomentum(eps=0.0)
    >>> g = jnp.array([0.5, -2.0])
    >>> s = tx.init(g)
    >>> u, s = tx.update(g, s)   # m_hat = g, v_hat = (1 - b1)^2 g^2
    >>> u
    Array([ 9.99..., -9.99...], dtype=float32)

  References:
    Wang et al., Rethinking Adam: A Twofold Exponential Moving Average Approach,
    https://arxiv.org/abs/2106.11514
  """
  validate.unit_interval("adamomentum", b1=b1, b2=b2)
  validate.non_negative("adamomentum", eps=eps, eps_denominator=eps_denominator)
  mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

  def init_fn(params):
    mu = jax.tree.map(lambda p: jnp.zeros(
        jnp.shape(p), jnp.result_type(p) if mu_dtype is None else mu_dtype), params)
    return ScaleByAdaMomentumState(count=jnp.zeros([], jnp.int32), mu=mu,
                                   nu=numerics.stat_zeros(params))

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure("adamomentum", updates, state.mu)
    count_inc = optax.safe_increment(state.count)
    # betas as float32 arrays, so that (1 - b) and the bias corrections 1 - b^t
    # round alike whether they arrive as Python floats or injected arrays.
    b1_, b2_ = jnp.asarray(b1, jnp.float32), jnp.asarray(b2, jnp.float32)
    # m_t in float32 (or wider) so that v_t sees the unrounded momentum.
    mu = optax.tree.update_moment(
        jax.tree.map(lambda g, v: g.astype(v.dtype), updates, state.nu),
        jax.tree.map(lambda m, v: m.astype(v.dtype), state.mu, state.nu), b1_, 1)
    nu = jax.tree.map(lambda m, v: b2_ * v + (1.0 - b2_) * jnp.square(m) + eps,
                      mu, state.nu)                              # v_t, eps inside
    mu_hat = optax.tree.bias_correction(mu, b1_, count_inc)
    nu_hat = optax.tree.bias_correction(nu, b2_, count_inc)
    direction = jax.tree.map(
        lambda m, v: m / (jnp.sqrt(v) + eps_denominator), mu_hat, nu_hat)
    direction = optax.tree.cast_like(direction, updates)
    return direction, ScaleByAdaMomentumState(
        count=count_inc, mu=optax.tree.cast_like(mu, state.mu),
        nu=optax.tree.cast_like(nu, state.nu))

  return optax.GradientTransformation(init_fn, update_fn)


def adamomentum(learning_rate: optax.ScalarOrSchedule,
                b1: float = 0.9,
                b2: float = 0.999,
                eps: float = 1e-8,
                weight_decay: optax.ScalarOrSchedule = 0.0,
                mask: Optional[Any] = None,
                *,
                eps_denominator: float = 0.0,
                mu_dtype: Optional[Any] = None) -> optax.GradientTransformationExtraArgs:
  r"""AdaMomentum, with optional decoupled weight decay.

  .. math::
    x_t = x_{t-1} - \alpha_t\Big(\frac{\hat m_t}{\sqrt{\hat v_t}} + \lambda x_{t-1}\Big),
    \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) m_t^2 + \epsilon.

  Args:
    learning_rate: alpha (the paper uses 1e-3), a number or an optax schedule.
    b1: beta_1 (0.9).
    b2: beta_2 (0.999).
    eps: added to v_t at every step (1e-8).
    weight_decay: lambda, decoupled decay (0: AdaMomentum itself).
    mask: optional tree or callable selecting the decayed params.
    eps_denominator: an optional extra eps added to sqrt(v_hat) (0: the paper).
    mu_dtype: dtype of the first-moment buffer.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.adaptive.adamomentum(learning_rate=0.01, eps=0.0)
    >>> p = jnp.zeros(2)
    >>> opt.update(jnp.array([0.3, -2.0]), opt.init(p), p)[0]
    Array([-0.1,  0.1], dtype=float32)

  References:
    Wang et al., Rethinking Adam: A Twofold Exponential Moving Average Approach,
    https://arxiv.org/abs/2106.11514
  """
  validate.learning_rate("adamomentum", learning_rate)
  validate.non_negative("adamomentum", weight_decay=weight_decay)
  return optax.chain(
      scale_by_adamomentum(b1, b2, eps, eps_denominator, mu_dtype=mu_dtype),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
