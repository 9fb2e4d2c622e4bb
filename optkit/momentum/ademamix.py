"""AdEMAMix: Adam with a mixture of a fast and a slow gradient EMA.

Pagliardini, Ablin, Grangier, "The AdEMAMix Optimizer: Better, Faster, Older",
arXiv:2409.03137, Algorithm 1.

One step (gradient g, t = count + 1, counted from 1)::

  m1 <- b1 m1 + (1 - b1) g                 # fast EMA, bias-corrected below
  m2 <- b3(t) m2 + (1 - b3(t)) g           # slow EMA, NO bias correction
  nu <- b2 nu + (1 - b2) g^2
  u   = (m1 / (1 - b1^t) + alpha(t) m2) / (sqrt(nu / (1 - b2^t) + eps_root) + eps)
  x  <- x - lr (u + lambda x)              # decoupled decay, as AdamW

Warm-up schedulers of the paper (used when ``t_alpha`` / ``t_b3`` are given)::

  alpha(t) = min(t alpha / T_alpha, alpha)
  b3(t)    = min(exp(ln b1 ln b3 / ((1 - t/T_b3) ln b3 + (t/T_b3) ln b1)), b3)

Paper -> code: beta_1 -> ``b1``, beta_2 -> ``b2``, beta_3 -> ``b3``, alpha ->
``alpha``, epsilon -> ``eps``, T_alpha -> ``t_alpha``, T_beta3 -> ``t_b3``,
lambda -> ``weight_decay``, eta -> ``learning_rate``; m1, m2, nu ->
``state.m1``, ``state.m2``, ``state.nu``.

Defaults: b1 0.9, b2 0.999, b3 0.9999, alpha 5 (paper range about 4-10;
``optax.contrib.ademamix``'s default; optax's ``scale_by_ademamix`` defaults to
6, optkit uses 5 in both), eps 1e-8, eps_root 0, weight_decay 0. The paper sets
T_alpha = T_b3 = the total number of steps when warm-up is used.

Re-use: ``optax.contrib.scale_by_ademamix`` (optax 0.2.8) is faithful and does
the arithmetic here. optkit adds: the paper's two warm-up schedules
(``ademamix_alpha_schedule``, ``ademamix_b3_schedule``); construction-time
validation; a structure check; float32 slow EMA and second moment even for bf16
params (optax stores all three buffers in ``mu_dtype`` or the params' dtype; a
bf16 m2 with b3 = 0.9999 loses the update); ``mu_dtype`` acting on the fast
EMA m1 only; dtype-stable state and updates of the gradient's dtype. In float32
with constant alpha and b3 the numbers are exactly optax's.

Step index of the schedules: optax evaluates callable ``alpha`` / ``b3`` at its
0-based counter ``count_m2`` (0 on the first update). The paper's formulas
with t = 0 would give alpha = 0 and b3 = b1 on the first step, so the two
schedule functions here evaluate the formulas at t = count_m2 + 1, which
reproduces pytorch_optimizer's ``AdEMAMix(t_alpha_beta3=T)`` (its ``step`` is
1 on the first update). The int counter is cast to float before dividing.
``T_b3 = 0`` (0/0 in the formula) means no warm-up: b3(t) = b3; likewise
``T_alpha = 0`` gives alpha(t) = alpha. ``log(b1)`` and ``log(b3)`` are taken
of ``max(b, tiny)`` so that b1 = 0 stays finite.

Re-export: ``simplified_ademamix`` is ``optax.contrib.simplified_ademamix``
(Morwani et al., arXiv:2502.02431; a later paper, not this entry's).

UNSURE (catalog), decided: the alpha the paper recommends for LLMs (range
4-10); the default 5 follows ``optax.contrib.ademamix``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax
from optax import contrib as optax_contrib

from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "ademamix"

# optax's state: count (int32, ()), count_m2 (int32, (); the schedules' step),
# m1 (fast EMA, mu_dtype or params' dtype), m2 (slow EMA, float32), nu (second
# moment, float32).
ScaleByAdemamixState = optax_contrib.ScaleByAdemamixState

simplified_ademamix = optax_contrib.simplified_ademamix


def ademamix_alpha_schedule(alpha: float, t_alpha: float) -> Callable[[Any], jax.Array]:
  """The paper's linear warm-up of alpha, for optax's 0-based counter.

  Returns ``step -> min(t alpha / T_alpha, alpha)`` with ``t = step + 1``.

  Example:
    >>> from optkit.momentum import ademamix_alpha_schedule
    >>> s = ademamix_alpha_schedule(5.0, 100)
    >>> float(s(0)), float(s(49)), float(s(1000))
    (0.05..., 2.5, 5.0)
  """
  validate.non_negative(_NAME, alpha=alpha, t_alpha=t_alpha)

  def schedule(step):
    t = jnp.asarray(step).astype(jnp.result_type(float)) + 1.0
    a = jnp.asarray(alpha, t.dtype)
    big_t = jnp.asarray(t_alpha, t.dtype)
    frac = jnp.where(big_t > 0, t / jnp.where(big_t > 0, big_t, 1.0), 1.0)
    return jnp.minimum(frac * a, a)

  return schedule


def ademamix_b3_schedule(b1: float, b3: float, t_b3: float) -> Callable[[Any], jax.Array]:
  """The paper's b3 warm-up (from b1 towards b3), for optax's 0-based counter.

  Returns ``step -> min(exp(ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1)), b3)``
  with ``t = step + 1``; ``T = 0`` gives the constant ``b3``.

  Example:
    >>> from optkit.momentum import ademamix_b3_schedule
    >>> s = ademamix_b3_schedule(0.9, 0.9999, 100)
    >>> float(s(99))  # t = T: the target b3
    0.9999...
  """
  validate.unit_interval(_NAME, b1=b1, b3=b3)
  validate.non_negative(_NAME, t_b3=t_b3)

  def schedule(step):
    t = jnp.asarray(step).astype(jnp.result_type(float)) + 1.0
    tiny = jnp.finfo(t.dtype).tiny
    b1_ = jnp.asarray(b1, t.dtype)
    b3_ = jnp.asarray(b3, t.dtype)
    big_t = jnp.asarray(t_b3, t.dtype)
    frac = jnp.where(big_t > 0, t / jnp.where(big_t > 0, big_t, 1.0), 1.0)
    log1 = jnp.log(jnp.maximum(b1_, tiny))
    log3 = jnp.log(jnp.maximum(b3_, tiny))
    den = (1.0 - frac) * log3 + frac * log1
    den = jnp.where(den < 0, den, -tiny)  # both logs are < 0; guard b3 = b1 = 1
    return jnp.minimum(jnp.exp(log1 * log3 / den), b3_)

  return schedule


def scale_by_ademamix(
    b1: float = 0.9,
    b2: float = 0.999,
    b3: optax.ScalarOrSchedule = 0.9999,
    alpha: optax.ScalarOrSchedule = 5.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    t_alpha: Optional[float] = None,
    t_b3: Optional[float] = None,
    *,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformation:
  r"""AdEMAMix's direction (no learning rate, no weight decay).

  .. math::
    u_t = \frac{\hat m_1 + \alpha(t)\, m_2}{\sqrt{\hat\nu + \bar\epsilon} + \epsilon},

  with bias correction on m1 and nu only.

  Args:
    b1: beta_1, fast EMA decay (paper: 0.9).
    b2: beta_2, second-moment decay (paper: 0.999).
    b3: beta_3, slow EMA decay (paper: 0.9999), a number or a schedule of
      optax's 0-based ``count_m2``.
    alpha: mixing weight of the slow EMA (paper: 5, range 4-10), a number or a
      schedule of ``count_m2``.
    eps: added outside the square root (paper: 1e-8).
    eps_root: added inside the square root (default 0).
    t_alpha: T_alpha; when given, ``alpha`` (a number) is warmed up linearly
      over T_alpha steps (``ademamix_alpha_schedule``).
    t_b3: T_beta3; when given, ``b3`` (a number) is warmed up from b1 over
      T_beta3 steps (``ademamix_b3_schedule``).
    mu_dtype: dtype of the fast EMA m1; None keeps the params' dtype. m2 and
      nu are always float32 (float64 for float64 params).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.momentum import scale_by_ademamix
    >>> tx = scale_by_ademamix(alpha=0.0, eps=0.0)
    >>> g = jnp.array([0.5, -2.0])
    >>> tx.update(g, tx.init(g))[0]  # alpha = 0, first step: sign(g) like Adam
    Array([ 1., -1.], dtype=float32)

  References:
    Pagliardini et al., The AdEMAMix Optimizer: Better, Faster, Older,
    https://arxiv.org/abs/2409.03137
  """
  validate.unit_interval(_NAME, b1=b1, b2=b2, b3=b3)
  validate.non_negative(_NAME, alpha=alpha, eps=eps, eps_root=eps_root,
                        t_alpha=t_alpha, t_b3=t_b3)
  if t_alpha is not None:
    if callable(alpha):
      raise ValueError(f"{_NAME}: `alpha` must be a number when `t_alpha` is given "
                       "(the warm-up builds the schedule).")
    alpha = ademamix_alpha_schedule(alpha, t_alpha)
  if t_b3 is not None:
    if callable(b3):
      raise ValueError(f"{_NAME}: `b3` must be a number when `t_b3` is given "
                       "(the warm-up builds the schedule).")
    b3 = ademamix_b3_schedule(b1, b3, t_b3)
  inner = optax_contrib.scale_by_ademamix(b1=b1, b2=b2, b3=b3, alpha=alpha, eps=eps,
                                          eps_root=eps_root)

  def init_fn(params):
    stat = lambda p: jnp.zeros(jnp.shape(p), numerics.stat_dtype(p))
    return ScaleByAdemamixState(
        count=jnp.zeros([], jnp.int32),
        count_m2=jnp.zeros([], jnp.int32),
        m1=optax.tree.zeros_like(params, dtype=mu_dtype),
        m2=jax.tree.map(stat, params),
        nu=jax.tree.map(stat, params))

  def update_fn(updates, state, params=None):
    tree_lib.check_same_structure(_NAME, updates, state.m1)
    direction, new = inner.update(updates, state, params)
    new = new._replace(m1=optax.tree.cast_like(new.m1, state.m1),
                       m2=optax.tree.cast_like(new.m2, state.m2),
                       nu=optax.tree.cast_like(new.nu, state.nu))
    return optax.tree.cast_like(direction, updates), new

  return optax.GradientTransformation(init_fn, update_fn)


def ademamix(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    b3: optax.ScalarOrSchedule = 0.9999,
    alpha: optax.ScalarOrSchedule = 5.0,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    mask: Optional[Any] = None,
    *,
    t_alpha: Optional[float] = None,
    t_b3: Optional[float] = None,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""The AdEMAMix optimizer with decoupled weight decay.

  .. math::
    x_t = x_{t-1} - \eta\Big(\frac{\hat m_1 + \alpha\, m_2}
          {\sqrt{\hat\nu} + \epsilon} + \lambda x_{t-1}\Big).

  Equal to ``optax.contrib.ademamix`` in float32 with constant alpha and b3;
  with ``t_alpha = t_b3 = T`` equal to pytorch_optimizer's
  ``AdEMAMix(t_alpha_beta3=T, weight_decouple=True)``.

  Args:
    learning_rate: eta, a number or an optax schedule.
    b1, b2, b3, alpha, eps, eps_root, t_alpha, t_b3, mu_dtype: see
      ``scale_by_ademamix``.
    weight_decay: lambda, decoupled (default 0).
    mask: tree or callable selecting the decayed params.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.momentum import ademamix
    >>> opt = ademamix(learning_rate=0.1, alpha=0.0, eps=0.0)
    >>> p = jnp.array([1.0, 1.0])
    >>> opt.update(jnp.array([0.3, -2.0]), opt.init(p), p)[0]
    Array([-0.1,  0.1], dtype=float32)

  References:
    Pagliardini et al., The AdEMAMix Optimizer: Better, Faster, Older,
    https://arxiv.org/abs/2409.03137
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root, t_alpha, t_b3,
                        mu_dtype=mu_dtype),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
