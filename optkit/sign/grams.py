"""Grams: Adam's magnitude, the current gradient's sign.

Cao, Li, Song, "Grams: Gradient Descent with Adaptive Momentum
Scaling", arXiv:2412.17107, Algorithm 1.

Update (t from 1, gradient g_t, lr eta, decoupled weight decay lambda)::

  m_t = beta_1 m_{t-1} + (1 - beta_1) g_t
  v_t = beta_2 v_{t-1} + (1 - beta_2) g_t^2
  a_t = (m_t / (1 - beta_1^t)) / (sqrt(v_t / (1 - beta_2^t)) + eps)   # Adam's step
  u_t = sign(g_t) * |a_t|                                            # sign from g_t
  x_t = x_{t-1} - eta (u_t + lambda x_{t-1})

Paper -> code: beta_1 -> ``b1``, beta_2 -> ``b2``, epsilon -> ``eps``,
eta -> ``learning_rate``, lambda -> ``weight_decay``, m_t / v_t ->
``state.inner_state.mu`` / ``.nu`` (optax's ``ScaleByAdamState``).

The method is a wrapper: ``with_gradient_sign(inner)`` replaces the sign of
any direction by the sign of the incoming gradient, keeping the direction's
magnitude; ``scale_by_grams`` is ``with_gradient_sign`` around Adam's
direction a_t (state ``optax.ScaleByAdamState``, moments in float32 for bf16
params).

Why not ``optax.scale_by_adam`` itself: it is the same a_t in exact
arithmetic (the tests check equality in float64 to 1e-10), but in float32 it
forms the bias correction as ``1 - float32(b2) ** t``, and float32(0.999) is
off by 1.3e-7, so at t = 1 the correction 1 - b2 is off by 1.3e-5 relative
(|a_1| = 0.9999934 instead of 1). optkit computes ``1 - b**t`` as
``-expm1(t * log1p(-(1 - b)))`` with ``1 - b`` formed in Python double
precision when b is a number (``optkit.core.numerics.bias_correction``),
which is what pytorch_optimizer's Python-float corrections give; with it the
pytorch_optimizer trajectories match to 1e-6.

Defaults and their source: b1 = 0.9, b2 = 0.999, eps = 1e-8 (paper, as Adam);
lr 1e-3 is the paper's (and pytorch_optimizer's) default but the learning
rate is a required argument here as everywhere in optkit; weight_decay = 0
(pytorch_optimizer's default; the paper's decay is decoupled, as here).
pytorch_optimizer 4.1.0 ``Grams`` defaults to eps = 1e-6: pass ``eps=1e-6``
to reproduce it (the tests do, to 1e-6).

Catalog UNSURE points: none. The earlier concern that pytorch_optimizer's EMA
weights were swapped does not apply to 4.1.0 (``lerp(grad, 1 - beta1)`` is the
standard EMA), checked by the trajectory fixture.

Numerics: sign(0) = 0, so a coordinate whose current gradient is 0 does not
move even when its momentum is non-zero (as in the paper and the reference).
The wrapper uses the raw incoming gradient's sign: place it where the
gradient it should read arrives (e.g. after clipping only on purpose).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "grams"


class WithGradientSignState(NamedTuple):
  inner_state: Any   # the wrapped transformation's state (for Grams: ScaleByAdamState)


def _work(x):
  """Low-precision floats are mapped in float32; float32/64 stay as they are."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def with_gradient_sign(inner: optax.GradientTransformation
                       ) -> optax.GradientTransformationExtraArgs:
  r"""Replaces the sign of ``inner``'s output by the sign of the incoming gradient.

  .. math::
    u = \mathrm{sign}(g) \odot |\mathrm{inner}(g)|

  ``inner`` must produce a *direction* (gradient-signed, before any learning
  rate, e.g. ``optax.scale_by_adam()``); chain the learning rate after the
  wrapper. Extra arguments are forwarded to ``inner``.

  Args:
    inner: a gradient transformation producing a direction.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with state
    ``WithGradientSignState``.

  Example:
    >>> import optkit
    >>> import optax
    >>> import jax.numpy as jnp
    >>> tx = optkit.with_gradient_sign(optax.scale(-2.0))
    >>> tx.update(jnp.array([1.0, -3.0, 0.0]), tx.init(jnp.zeros(3)))[0]
    Array([ 2., -6.,  0.], dtype=float32)

  References:
    Cao, Li, Song, Grams: Gradient Descent with Adaptive Momentum Scaling,
    https://arxiv.org/abs/2412.17107
  """
  validate.transformation("with_gradient_sign", inner=inner)
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    return WithGradientSignState(inner_state=inner.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    tree_lib.check_floating_tree("with_gradient_sign", updates)
    a, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
    tree_lib.check_same_structure("with_gradient_sign", a, updates,
                                  what="the incoming gradient")
    u = jax.tree.map(lambda g, x: jnp.sign(_work(g)) * jnp.abs(_work(x)), updates, a)
    return optax.tree.cast_like(u, updates), WithGradientSignState(inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _scale_by_adam_f32(b1, b2, eps):
  """Adam's bias-corrected direction m_hat / (sqrt(v_hat) + eps), moments in
  float32 (or wider), state ``optax.ScaleByAdamState``. Equal to
  ``optax.scale_by_adam`` in exact arithmetic (tested in float64); in float32
  the bias corrections are computed without cancellation (see above)."""

  def init_fn(params):
    return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32),
                                  mu=numerics.stat_zeros(params),
                                  nu=numerics.stat_zeros(params))

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure(_NAME, updates, state.mu)
    count = optax.safe_increment(state.count)
    t = count.astype(jnp.result_type(float))  # float32, or float64 under x64
    bc1, bc2 = numerics.bias_correction(b1, t), numerics.bias_correction(b2, t)
    mu = jax.tree.map(lambda g, m: b1 * m + (1.0 - b1) * g.astype(m.dtype),      # m_t
                      updates, state.mu)
    nu = jax.tree.map(lambda g, v: b2 * v + (1.0 - b2) * jnp.square(g.astype(v.dtype)),  # v_t
                      updates, state.nu)
    a = jax.tree.map(lambda m, v: (m / bc1) / (jnp.sqrt(v / bc2) + eps), mu, nu)  # a_t
    return a, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_grams(b1: float = 0.9, b2: float = 0.999,
                   eps: float = 1e-8) -> optax.GradientTransformationExtraArgs:
  r"""Grams direction :math:`\mathrm{sign}(g_t)\,|\hat m_t / (\sqrt{\hat v_t} + \epsilon)|`.

  Args:
    b1: beta_1, first-moment decay (paper: 0.9).
    b2: beta_2, second-moment decay (paper: 0.999).
    eps: epsilon added to sqrt(v_hat) (paper: 1e-8; pytorch_optimizer: 1e-6).

  Returns:
    ``with_gradient_sign(<Adam direction>(b1, b2, eps))`` with float32 moments;
    state ``WithGradientSignState(inner_state=optax.ScaleByAdamState)``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_grams()
    >>> g = jnp.array([0.5, -2.0, 0.0])
    >>> jnp.round(tx.update(g, tx.init(g))[0], 4)   # first Adam step: +-1 (0 where g = 0)
    Array([ 1., -1.,  0.], dtype=float32)

  References:
    Cao, Li, Song, Grams: Gradient Descent with Adaptive Momentum Scaling,
    https://arxiv.org/abs/2412.17107
  """
  validate.unit_interval(_NAME, b1=b1, b2=b2)
  validate.non_negative(_NAME, eps=eps)
  return with_gradient_sign(_scale_by_adam_f32(b1, b2, eps))


def grams(learning_rate: optax.ScalarOrSchedule,
          b1: float = 0.9,
          b2: float = 0.999,
          eps: float = 1e-8,
          weight_decay: optax.ScalarOrSchedule = 0.0,
          mask: Optional[Any] = None) -> optax.GradientTransformationExtraArgs:
  r"""Grams: Adam's step magnitude with the current gradient's sign, decoupled decay.

  .. math::
    x_t = x_{t-1} - \eta\,\big(\mathrm{sign}(g_t)\odot
          |\hat m_t / (\sqrt{\hat v_t} + \epsilon)| + \lambda x_{t-1}\big)

  Every coordinate moves against its current gradient (never along it, as
  Adam can when momentum and gradient disagree), by Adam's step size.

  Args:
    learning_rate: eta, a number or an optax schedule (paper default 1e-3).
    b1: beta_1 (0.9).
    b2: beta_2 (0.999).
    eps: epsilon (paper 1e-8; pytorch_optimizer 1e-6).
    weight_decay: lambda, decoupled (default 0).
    mask: optional tree or callable selecting the decayed params.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.grams(learning_rate=0.1)
    >>> p = jnp.zeros(2)
    >>> u, s = opt.update(jnp.array([4.0, -4.0]), opt.init(p), p)
    >>> u, s = opt.update(jnp.array([-1.0, -4.0]), s, p)   # m_2[0] > 0 but g_2[0] < 0
    >>> u   # Adam would move coordinate 0 down here; Grams moves it up
    Array([0.0469..., 0.1...], dtype=float32)

  References:
    Cao, Li, Song, Grams: Gradient Descent with Adaptive Momentum Scaling,
    https://arxiv.org/abs/2412.17107
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_grams(b1=b1, b2=b2, eps=eps),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
