"""Warmup-stable-decay (WSD) schedule and the last-iterate bound that explains it.

Schaipp, Hägele, Taylor, Şimşekli & Bach, "The Surprising Agreement Between
Convex Optimization Theory and Learning-Rate Scheduling for Large Model
Training", ICML 2025, arXiv:2501.18965.

**Schedule** (``wsd_schedule``), with T = ``total_steps``, T_w =
``warmup_steps``, T_c = ``cooldown_steps``, eta_peak = ``peak_value``,
eta_end = ``end_value`` and the step t counted from 0 (optax's ``count``)::

    eta(t) = eta_peak * t / T_w                              t < T_w
    eta(t) = eta_peak                                        T_w <= t < T - T_c
    eta(t) = eta_end + (eta_peak - eta_end) * c(p)           T - T_c <= t < T
    eta(t) = eta_end                                         t >= T
    p = (t - (T - T_c)) / T_c,  c(p) = 1 - p ('linear'), 1 - sqrt(p) ('1-sqrt'),
                                       (1 + cos(pi p)) / 2 ('cosine')

Boundary conventions follow pytorch_optimizer's ``get_wsd_schedule`` (4.1.0):
warm-up uses t / T_w, so eta(0) = 0 and eta(T_w) = eta_peak; the cool-down
starts at eta_peak at t = T - T_c and its last value (t = T - 1) is
eta_end + (eta_peak - eta_end) c(1 - 1/T_c), not eta_end; eta(t) = eta_end from
t = T on. ``T_w = 0`` or ``T_c = 0`` remove that phase (the divisions use
max(1, .) as the reference does).

Decision (UNSURE in the catalog, documented deviation): pytorch_optimizer
applies its ``min_lr_ratio`` floor only to the cosine cool-down; its 'linear'
and '1-sqrt' cool-downs decay towards 0 and jump up to the floor at t = T.
optkit decays every shape towards ``end_value`` (continuous at t = T). For
``end_value = 0`` (all shapes) and for the cosine shape with any
``end_value`` the two agree exactly; the fixture test checks those cases.

**Bound** (``schedule_bound``): Theorem 3.1 of the paper (the last-iterate
bound of Defazio et al. 2023, arXiv:2310.07831, Thm. 10), for SGD
x_{t+1} = x_t - eta_t g_t on a convex f with E||g_t||^2 <= G_t^2 and
D >= ||x_1 - x*||, for the last iterate x_T (T >= 1)::

    E[f(x_T) - f*] <= (D^2 + sum_{t=1}^T eta_t^2 G_t^2) / (2 sum_{t=1}^T eta_t)
        + 1/2 sum_{k=1}^{T-1} eta_k / (sum_{t=k+1}^T eta_t)
              * (sum_{t=k}^T eta_t^2 G_t^2) / (sum_{t=k}^T eta_t)

Cross-checked against the authors' code (fabian-sp/lr-scheduling,
``ScheduleBase._compute_refined_rate``, read only, not copied) and its test:
for a constant schedule eta_t = gamma it is D^2/(2 gamma T) +
gamma G^2 (1 + H_{T-1}) / 2 (H_n the harmonic number) -- the log T term that
a cool-down removes. The bound is A / gamma + B gamma in a global multiplier
gamma of the schedule, so the best multiplier is sqrt(A / B);
``transfer_learning_rate`` uses the ratio of the best multipliers of two
schedules to carry a tuned learning rate from one shape (or length) to
another, as in the paper's Section 5.

Paper -> code: T -> ``total_steps`` (schedule) / ``len(learning_rates)``
(bound); eta_t -> ``learning_rates[t - 1]``; D -> ``D``; G, G_t -> ``G``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import validate

_NAME = "wsd_schedule"
COOLDOWN_SHAPES = ("linear", "1-sqrt", "cosine")


def wsd_schedule(peak_value, total_steps: int, warmup_steps: int,
                 cooldown_steps: int, cooldown_shape: str = "linear",
                 end_value=0.0) -> optax.Schedule:
  """Warmup-stable-decay learning-rate schedule (see the module docstring).

  Linear warm-up from 0 over ``warmup_steps``, constant ``peak_value``, then a
  cool-down of ``cooldown_steps`` ending at step ``total_steps``, after which
  the value is ``end_value``. The returned callable is jittable, accepts
  Python ints and integer (or float) arrays of any shape (elementwise), and
  can be passed as an optax ``learning_rate``.

  Args:
    peak_value: eta_peak (>= 0); may be a traced array.
    total_steps: T, a Python int >= 0.
    warmup_steps: T_w, a Python int >= 0.
    cooldown_steps: T_c, a Python int >= 0 (the paper finds ~20% of T good).
    cooldown_shape: ``'linear'`` (the paper's analysed shape), ``'1-sqrt'``
      (pytorch_optimizer's default) or ``'cosine'``.
    end_value: eta_end (>= 0), the value reached by the cool-down and kept
      for t >= T.

  Returns:
    ``step -> learning rate`` (float32, or float64 under x64).

  Raises:
    ValueError: negative or non-integer step counts, ``warmup_steps +
      cooldown_steps > total_steps``, an unknown shape, or a negative value.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> sched = optkit.wsd_schedule(1.0, total_steps=10, warmup_steps=2,
    ...                             cooldown_steps=4)
    >>> sched(jnp.arange(12))
    Array([0.  , 0.5 , 1.  , 1.  , 1.  , 1.  , 1.  , 0.75, 0.5 , 0.25, 0.  ,
           0.  ], dtype=float32)

  References:
    Schaipp et al., "The Surprising Agreement Between Convex Optimization
    Theory and Learning-Rate Scheduling for Large Model Training", 2025.
    https://arxiv.org/abs/2501.18965
  """
  validate.integer_at_least(_NAME, 0, total_steps=total_steps,
                            warmup_steps=warmup_steps,
                            cooldown_steps=cooldown_steps)
  total_steps, warmup_steps, cooldown_steps = (
      int(total_steps), int(warmup_steps), int(cooldown_steps))
  if warmup_steps + cooldown_steps > total_steps:
    raise ValueError(
        f"{_NAME}: `warmup_steps + cooldown_steps` must be <= `total_steps`, "
        f"got {warmup_steps} + {cooldown_steps} > {total_steps}.")
  validate.one_of(_NAME, "cooldown_shape", cooldown_shape, COOLDOWN_SHAPES)
  validate.non_negative(_NAME, peak_value=peak_value, end_value=end_value)

  cooldown_start = total_steps - cooldown_steps
  warmup_div = float(max(1, warmup_steps))
  cooldown_div = float(max(1, cooldown_steps))

  def schedule(step):
    t = jnp.asarray(step)
    dtype = jnp.result_type(float)
    tf = t.astype(dtype)
    peak = jnp.asarray(peak_value, dtype)
    end = jnp.asarray(end_value, dtype)
    warm = peak * (tf / warmup_div)
    # Progress through the cool-down, clipped so the unused branches of the
    # `where` below stay finite (sqrt of a negative number).
    p = jnp.clip((tf - cooldown_start) / cooldown_div, 0.0, 1.0)
    if cooldown_shape == "linear":
      frac = 1.0 - p
    elif cooldown_shape == "1-sqrt":
      frac = 1.0 - jnp.sqrt(p)
    else:  # cosine, half a period as in pytorch_optimizer (num_cycles=0.5)
      frac = 0.5 * (1.0 + jnp.cos(jnp.pi * p))
    cool = end + (peak - end) * frac
    value = jnp.where(t < warmup_steps, warm,
                      jnp.where(t < cooldown_start, peak,
                                jnp.where(t < total_steps, cool, end)))
    return value.astype(dtype)

  return schedule


def _as_rates(schedule, steps, name) -> jax.Array:
  """A 1-D float array of learning rates from an array or a callable."""
  if callable(schedule):
    if steps is None:
      raise ValueError(
          f"{name}: a callable schedule needs its number of steps "
          "(`steps_a` / `steps_b`).")
    validate.integer_at_least(name, 1, steps=steps)
    return jnp.asarray(jax.jit(schedule)(jnp.arange(int(steps))),
                       jnp.result_type(float))
  eta = jnp.asarray(schedule)
  eta = eta.astype(jnp.promote_types(eta.dtype, jnp.result_type(float)))
  if eta.ndim != 1 or eta.shape[0] < 1:
    raise ValueError(
        f"{name}: `learning_rates` must be a 1-D array of at least one step "
        f"(eta_1, ..., eta_T), got shape {eta.shape}.")
  if not isinstance(eta, jax.core.Tracer) and bool(np.any(np.asarray(eta) < 0)):
    raise ValueError(f"{name}: `learning_rates` must be non-negative.")
  return eta


@jax.jit
def _bound_coefficients(eta: jax.Array, D, G) -> tuple[jax.Array, jax.Array]:
  """(A, B) with bound(gamma * eta) = A / gamma + B * gamma (Theorem 3.1)."""
  g2 = jnp.broadcast_to(jnp.square(jnp.asarray(G, eta.dtype)), eta.shape)
  w = jnp.square(eta) * g2                       # eta_t^2 G_t^2
  beta = jnp.cumsum(eta[::-1])[::-1]             # sum_{t=k}^T eta_t
  gam = jnp.cumsum(w[::-1])[::-1]                # sum_{t=k}^T eta_t^2 G_t^2
  total = beta[0]
  a = jnp.square(jnp.asarray(D, eta.dtype)) / (2.0 * total)
  # k = 1..T-1: eta_k / alpha_k * gamma_k / beta_k, alpha_k = beta_{k+1}.
  # Steps with eta_k = 0 contribute 0; eta_k > 0 followed only by zeros makes
  # the bound infinite (its theorem needs eta_t > 0), which it returns.
  eta_k, alpha, gam_k, beta_k = eta[:-1], beta[1:], gam[:-1], beta[:-1]
  pos = eta_k > 0
  safe = lambda x: jnp.where(pos, x, 1.0)
  ratio = jnp.where(pos, eta_k / jnp.where(pos & (alpha == 0), 0.0, safe(alpha))
                    * (gam_k / safe(beta_k)), 0.0)
  b = gam[0] / (2.0 * total) + 0.5 * jnp.sum(ratio)
  return a, b


def schedule_bound(learning_rates, D, G) -> jax.Array:
  r"""The paper's last-iterate bound on E[f(x_T) - f*] for SGD with a schedule.

  Theorem 3.1 (module docstring): with S = sum_{t<=T} eta_t,

      (D^2 + sum_t eta_t^2 G_t^2) / (2 S)
        + 1/2 sum_{k<T} eta_k / (sum_{t>k} eta_t)
              * (sum_{t>=k} eta_t^2 G_t^2) / (sum_{t>=k} eta_t)

  for a convex G-Lipschitz (or E||g_t||^2 <= G_t^2) problem with
  ``D >= ||x_1 - x*||``. Pure jnp: jittable and differentiable in the rates.

  Which rates to pass: eta_T enters the bound although x_T does not depend on
  it (x_T = x_1 - sum_{t<T} eta_t g_t). For a schedule driving T optimizer
  steps (optax counts t = 0..T-1) pass ``schedule(jnp.arange(T))``; with
  ``wsd_schedule`` the last of these is the last positive cool-down value.
  Appending the final zero (t = T) makes the bound ``inf``.

  Args:
    learning_rates: 1-D array (eta_1, ..., eta_T), T >= 1, non-negative with a
      positive sum; e.g. ``wsd_schedule(...)(jnp.arange(T))``.
    D: distance from the start to a solution.
    G: gradient-norm bound, a scalar or a length-T array of G_t.

  Returns:
    The bound (a scalar); ``inf`` where a positive step is followed only by
    zero steps.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> # constant eta = 0.5, T = 4: 1/4 + 0.5 (1 + H_3) / 2 = 0.25 + 0.7083
    >>> optkit.schedule_bound(jnp.full(4, 0.5), D=1.0, G=1.0)
    Array(0.95833..., dtype=float32)

  References:
    Schaipp et al. 2025, arXiv:2501.18965, Theorem 3.1; Defazio et al. 2023,
    arXiv:2310.07831, Theorem 10.
  """
  validate.non_negative("schedule_bound", D=D)
  eta = _as_rates(learning_rates, None, "schedule_bound")
  a, b = _bound_coefficients(eta, D, G)
  return a + b


def transfer_learning_rate(schedule_a: Union[Any, Callable],
                           schedule_b: Union[Any, Callable], D=1.0, G=1.0,
                           learning_rate=1.0, *, steps_a: Optional[int] = None,
                           steps_b: Optional[int] = None) -> jax.Array:
  r"""Carries a tuned learning rate from schedule a to schedule b via the bound.

  For each schedule s the bound of ``s`` scaled by gamma is A_s / gamma +
  B_s gamma, minimized at gamma*_s = sqrt(A_s / B_s) (``schedule_bound``).
  Assuming the tuned multiplier of ``schedule_a`` relates to gamma*_a as the
  (unknown) multiplier of ``schedule_b`` to gamma*_b, the transferred value is

      learning_rate * gamma*_b / gamma*_a.

  Multiply ``schedule_b``'s values by the result. With a scalar ``G`` the
  result does not depend on ``D`` or ``G``. Identical schedules return
  ``learning_rate``.

  Args:
    schedule_a: the schedule the learning rate was tuned on: a 1-D array of
      rates (eta_1..eta_T) or a ``step -> rate`` callable (then ``steps_a``).
    schedule_b: the target schedule (array, or callable with ``steps_b``);
      it may be longer or shorter than ``schedule_a`` (extending a run).
    D: distance to the solution in the bound.
    G: gradient bound, a scalar or a per-step array (then both schedules must
      have its length).
    learning_rate: the multiplier tuned for ``schedule_a``.
    steps_a: number of steps of a callable ``schedule_a``.
    steps_b: number of steps of a callable ``schedule_b``.

  Returns:
    The multiplier for ``schedule_b`` (a scalar array).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> wsd = optkit.wsd_schedule(1.0, 100, 0, 20)
    >>> lr = optkit.transfer_learning_rate(wsd, wsd, learning_rate=3e-3,
    ...                                    steps_a=100, steps_b=100)
    >>> float(lr)
    0.003...

  References:
    Schaipp et al. 2025, arXiv:2501.18965, Section 5 (learning-rate transfer
    across schedules and horizons).
  """
  validate.non_negative("transfer_learning_rate", D=D,
                        learning_rate=learning_rate)
  eta_a = _as_rates(schedule_a, steps_a, "transfer_learning_rate")
  eta_b = _as_rates(schedule_b, steps_b, "transfer_learning_rate")
  a_a, b_a = _bound_coefficients(eta_a, D, G)
  a_b, b_b = _bound_coefficients(eta_b, D, G)
  return learning_rate * jnp.sqrt((a_b * b_a) / (a_a * b_b))
