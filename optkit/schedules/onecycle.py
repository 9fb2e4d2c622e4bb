"""1cycle learning-rate and momentum schedules, and the LR range test.

Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks Using
Large Learning Rates", arXiv:1708.07120 (Sections 3-4, Figs. 1-2).

**Learning rate** (``onecycle_schedule``, the paper's linear 1cycle), with T =
``transition_steps``, a = ``pct_start``, b = ``pct_final``, eta_max =
``peak_value``, eta_min = eta_max / ``div_factor`` and the step t counted from
0 (optax's ``count``)::

    t <= aT       : eta = eta_min + (eta_max - eta_min) t / (aT)
    aT <= t <= bT : eta = eta_max - (eta_max - eta_min) (t - aT) / ((b - a) T)
    bT <= t <= T  : eta = eta_min - (eta_min - eta_min / final_div_factor)
                                    (t - bT) / ((1 - b) T)      ("annihilation")
    t >= T        : eta = eta_min / final_div_factor

The phase boundaries are int(aT) and int(bT) (optax's convention). The linear
shape IS ``optax.linear_onecycle_schedule`` (re-used, only the defaults
differ); ``shape='cosine'`` is ``optax.cosine_onecycle_schedule`` (two phases,
cosine warm-up to eta_max over aT steps then cosine annealing to
eta_min / final_div_factor at T; ``pct_final`` is not used). Both equal
PyTorch's ``OneCycleLR`` (``three_phase=True`` with
``anneal_strategy='linear'``, resp. the two-phase cosine default) run for
T + 1 steps with ``pct_start = (aT + 1) / (T + 1)`` -- PyTorch ends its phases
one step earlier (at ``pct * total - 1``) and reaches its final value at its
last step; the fixture test checks this. PyTorch's final value is also
``initial_lr / final_div_factor``.

**Momentum** (``onecycle_momentum_schedule``, the paper's "cyclical
momentum", Section 4.4): the mirror image of the learning rate, from
``max_momentum`` down to ``min_momentum`` while eta rises and back while eta
falls, constant at ``max_momentum`` in the annihilation phase::

    beta(t) = beta_max - (beta_max - beta_min) (eta(t) - eta_min) / (eta_max - eta_min)
              for t <= bT,    beta(t) = beta_max for t >= bT

(PyTorch's ``cycle_momentum`` with ``base_momentum = min_momentum``). Use it
for SGD momentum or Adam's b1 through ``optax.inject_hyperparams``.

**LR range test** (``lr_range_test``, Section 4.1): a run whose learning rate
grows linearly from ``init_value`` to ``end_value`` over ``num_steps``;
``lr_range_test_peak`` reads the peak learning rate off the logged losses.

Paper -> code: stepsize (half cycle) -> a T; maximum_lr -> ``peak_value``;
minimum lr -> ``peak_value / div_factor``; cyclical momentum 0.95 -> 0.85 ->
``max_momentum``, ``min_momentum``.

Defaults: a = 0.45, b = 0.9 (b = 2a: symmetric cycle then ~10% annihilation),
div_factor = 10 (the paper's "a factor of 3 to 4 ... up to 10" range; 10 as in
its CIFAR runs 0.1 -> 1.0 and 0.08 -> 0.8 ...), final_div_factor = 100,
momentum 0.95 / 0.85 (Section 4.4).

UNSURE, decided:
  * The exact fractions per experiment vary in the paper; the defaults above
    are the catalog's paper-style values, and every one is an argument.
  * The paper's Hessian-free estimate of the optimal learning rate,
    alpha* ~ delta ||g||^2 / <g, grad L(theta + delta g) - grad L(theta)>
    (Section 5), is documented here and not shipped (research-only).
  * ``lr_range_test_peak`` returns the learning rate at the minimum of the
    exponentially smoothed loss (the point where the loss stops improving,
    the paper's "the loss starts to increase / accuracy peaks" criterion),
    not the fast.ai "min / 10" rule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import validate

SHAPES = ("linear", "cosine")


def _check_fractions(name, pct_start, pct_final, shape):
  validate.one_of(name, "shape", shape, SHAPES)
  if not 0.0 < float(pct_start) < 1.0:
    raise ValueError(f"{name}: `pct_start` must be in (0, 1), got {pct_start!r}.")
  if shape == "linear" and not float(pct_start) < float(pct_final) <= 1.0:
    raise ValueError(
        f"{name}: `pct_final` must be in (pct_start, 1], got {pct_final!r} "
        f"(pct_start={pct_start!r}).")


def _elementwise(schedule):
  """A scalar optax schedule made to accept step arrays of any shape."""
  vec = jnp.vectorize(schedule)

  def wrapped(step):
    return vec(jnp.asarray(step))

  return wrapped


def onecycle_schedule(transition_steps: int, peak_value, pct_start: float = 0.45,
                      pct_final: float = 0.9, div_factor=10.0,
                      final_div_factor=100.0, shape: str = "linear") -> optax.Schedule:
  """The 1cycle learning-rate schedule (module docstring).

  Args:
    transition_steps: T, the length of the cycle (a Python int >= 1).
    peak_value: eta_max (> 0).
    pct_start: a, fraction of T spent rising to eta_max (static float).
    pct_final: b, fraction of T at which the cycle ends and annihilation
      starts (linear shape only; the paper uses b = 2a).
    div_factor: eta_min = eta_max / div_factor (>= 1).
    final_div_factor: the last value is eta_min / final_div_factor (>= 1).
    shape: ``'linear'`` (the paper's, three phases) or ``'cosine'`` (two
      phases, fast.ai / PyTorch default).

  Returns:
    ``step -> learning rate``; jittable, elementwise on step arrays.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> sched = optkit.onecycle_schedule(100, 1.0)
    >>> sched(jnp.array([0, 45, 90, 100]))
    Array([0.1  , 1.   , 0.1  , 0.001], dtype=float32)

  References:
    Smith & Topin, "Super-Convergence: Very Fast Training of Neural Networks
    Using Large Learning Rates", 2017. https://arxiv.org/abs/1708.07120
  """
  name = "onecycle_schedule"
  validate.integer_at_least(name, 1, transition_steps=transition_steps)
  _check_fractions(name, pct_start, pct_final, shape)
  validate.positive(name, peak_value=peak_value)
  validate.at_least(name, 1.0, div_factor=div_factor,
                    final_div_factor=final_div_factor)
  if shape == "linear":
    sched = optax.linear_onecycle_schedule(
        int(transition_steps), peak_value, pct_start=float(pct_start),
        pct_final=float(pct_final), div_factor=div_factor,
        final_div_factor=final_div_factor)
  else:
    sched = optax.cosine_onecycle_schedule(
        int(transition_steps), peak_value, pct_start=float(pct_start),
        div_factor=div_factor, final_div_factor=final_div_factor)
  return _elementwise(sched)


def onecycle_momentum_schedule(transition_steps: int, max_momentum=0.95,
                               min_momentum=0.85, pct_start: float = 0.45,
                               pct_final: float = 0.9,
                               shape: str = "linear") -> optax.Schedule:
  """Cyclical momentum mirroring ``onecycle_schedule`` (module docstring).

  ``max_momentum`` at t = 0, ``min_momentum`` at t = int(aT) (the learning
  rate's peak), ``max_momentum`` again at t = int(bT) and after. With
  ``shape='cosine'`` both halves are cosine interpolations and the return to
  ``max_momentum`` happens at t = T (PyTorch's two-phase convention).

  Args:
    transition_steps: T (a Python int >= 1); use the learning rate's value.
    max_momentum: beta_max in [0, 1) (paper: 0.95).
    min_momentum: beta_min in [0, max_momentum] (paper: 0.85).
    pct_start: a, as in ``onecycle_schedule``.
    pct_final: b, as in ``onecycle_schedule`` (linear shape only).
    shape: ``'linear'`` or ``'cosine'``.

  Returns:
    ``step -> momentum``; feed it to ``optax.inject_hyperparams`` (e.g.
    ``optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=m)``).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> m = optkit.onecycle_momentum_schedule(100)
    >>> m(jnp.array([0, 45, 90, 100]))
    Array([0.95, 0.85, 0.95, 0.95], dtype=float32)

  References:
    Smith & Topin 2017, Section 4.4, https://arxiv.org/abs/1708.07120
  """
  name = "onecycle_momentum_schedule"
  validate.integer_at_least(name, 1, transition_steps=transition_steps)
  _check_fractions(name, pct_start, pct_final, shape)
  validate.unit_interval(name, max_momentum=max_momentum)
  validate.non_negative(name, min_momentum=min_momentum)
  try:
    if float(min_momentum) > float(max_momentum):
      raise ValueError(
          f"{name}: `min_momentum` must be <= `max_momentum`, got "
          f"{min_momentum!r} > {max_momentum!r}.")
  except (TypeError, jax.errors.ConcretizationTypeError):
    pass  # traced values: checked by the caller
  t_peak = float(int(pct_start * transition_steps))
  t_end = float(int(pct_final * transition_steps) if shape == "linear"
                else int(transition_steps))
  up = max(t_peak, 1.0)
  down = max(t_end - t_peak, 1.0)

  def schedule(step):
    t = jnp.asarray(step).astype(jnp.result_type(float))
    hi = jnp.asarray(max_momentum, t.dtype)
    lo = jnp.asarray(min_momentum, t.dtype)
    # Fraction of the way from beta_max to beta_min, in [0, 1].
    p1 = jnp.clip(t / up, 0.0, 1.0)
    p2 = jnp.clip((t - t_peak) / down, 0.0, 1.0)
    if shape == "linear":
      frac = jnp.where(t <= t_peak, p1, 1.0 - p2)
    else:
      frac = jnp.where(t <= t_peak, 0.5 * (1.0 - jnp.cos(jnp.pi * p1)),
                       0.5 * (1.0 + jnp.cos(jnp.pi * p2)))
    return hi - (hi - lo) * frac

  return schedule


def lr_range_test(init_value, end_value, num_steps: int) -> optax.Schedule:
  """The LR range test: a learning rate growing linearly over a short run.

  eta(t) = init + (end - init) t / num_steps for 0 <= t <= num_steps, then
  ``end_value`` (``optax.linear_schedule``'s values, computed without its
  float32 cancellation). Log the loss at every step and
  pass it to ``lr_range_test_peak`` to choose ``onecycle_schedule``'s
  ``peak_value``.

  Args:
    init_value: first learning rate (>= 0).
    end_value: last learning rate (>= init_value).
    num_steps: length of the test run (a Python int >= 1).

  Returns:
    ``step -> learning rate``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> sched = optkit.lr_range_test(0.0, 1.0, num_steps=4)
    >>> sched(jnp.arange(6))
    Array([0.  , 0.25, 0.5 , 0.75, 1.  , 1.  ], dtype=float32)

  References:
    Smith & Topin 2017, Section 4.1, https://arxiv.org/abs/1708.07120;
    Smith, "Cyclical Learning Rates for Training Neural Networks", 2017.
  """
  name = "lr_range_test"
  validate.integer_at_least(name, 1, num_steps=num_steps)
  validate.non_negative(name, init_value=init_value, end_value=end_value)
  try:
    if float(end_value) < float(init_value):
      raise ValueError(f"{name}: `end_value` must be >= `init_value`, got "
                       f"{end_value!r} < {init_value!r}.")
  except (TypeError, jax.errors.ConcretizationTypeError):
    pass
  n = float(int(num_steps))

  def schedule(step):
    t = jnp.asarray(step).astype(jnp.result_type(float))
    init = jnp.asarray(init_value, t.dtype)
    end = jnp.asarray(end_value, t.dtype)
    # init + (end - init) t / n: optax.linear_schedule's (init - end)(1 - t/n)
    # + end cancels in float32 (jit and eager then differ by ~1e-5 relative).
    return init + (end - init) * jnp.clip(t / n, 0.0, 1.0)

  return schedule


def lr_range_test_peak(learning_rates, losses, smoothing: float = 0.0) -> float:
  """Picks the peak learning rate from an LR range test's log (host side).

  The losses are smoothed by a bias-corrected exponential moving average
  with factor ``smoothing`` (0: none); the result is the learning rate at
  which the smoothed loss is smallest -- beyond it the loss stops improving
  and soon diverges. Non-finite losses (a blown-up run) count as +inf.

  Args:
    learning_rates: 1-D array of the learning rates used (e.g.
      ``lr_range_test(...)(jnp.arange(n))``).
    losses: 1-D array of the same length, the loss logged at each step.
    smoothing: EMA factor in [0, 1).

  Returns:
    The chosen learning rate (a Python float).

  Example:
    >>> import optkit
    >>> import numpy as np
    >>> lrs = np.linspace(0.0, 1.0, 11)
    >>> losses = (lrs - 0.6) ** 2
    >>> optkit.lr_range_test_peak(lrs, losses)
    0.6...

  References:
    Smith & Topin 2017, Section 4.1, https://arxiv.org/abs/1708.07120
  """
  name = "lr_range_test_peak"
  validate.unit_interval(name, smoothing=smoothing)
  lrs = np.asarray(learning_rates, np.float64).reshape(-1)
  loss = np.asarray(losses, np.float64).reshape(-1)
  if lrs.shape != loss.shape or lrs.size == 0:
    raise ValueError(
        f"{name}: `learning_rates` and `losses` must be 1-D of the same positive "
        f"length, got {lrs.shape} and {loss.shape}.")
  loss = np.where(np.isfinite(loss), loss, np.inf)
  smooth = loss.copy()
  if smoothing > 0:
    avg = 0.0
    for i, v in enumerate(loss):
      avg = smoothing * avg + (1.0 - smoothing) * v
      smooth[i] = avg / (1.0 - smoothing ** (i + 1))
  return float(lrs[int(np.argmin(smooth))])
