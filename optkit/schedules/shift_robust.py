"""Learning-rate schedule for online least squares under distribution shift.

Fahrbach, Javanmard, Mirrokni & Worah, "Learning Rate Schedules in the
Presence of Distribution Shift", ICML 2023, arXiv:2303.15634.

Setting (the paper's online linear regression, one eigen-direction of the
data covariance with curvature lambda): the optimum drifts by a random step
of variance D = ``drift_rate``^2 per step, and each stochastic gradient has
noise of variance sigma^2 = ``noise_level``^2. With e_t = theta_t - theta*_t,

    e_{t+1} = (1 - eta_t lambda) e_t - eta_t xi_t + delta_t
    m_{t+1} = (1 - eta_t lambda)^2 m_t + eta_t^2 sigma^2 + D      (m_t = E e_t^2)

Minimizing m_{t+1} over eta_t gives

    eta_t = lambda m_t / (lambda^2 m_t + sigma^2),
    m_{t+1} = m_t sigma^2 / (lambda^2 m_t + sigma^2) + D,

and because m_{t+1} is increasing in m_t for every eta, this greedy choice
minimizes every m_t (hence the cumulative regret sum_t lambda m_t / 2) at
once: it is the optimal schedule (a scalar Kalman gain). ``base_lr`` sets
eta_0, i.e. the initial uncertainty m_0 = eta_0 sigma^2 / (lambda (1 - eta_0
lambda)).

* No drift (D = 0): eta_t = eta_0 / (1 + eta_0 lambda t), the stationary
  1/t schedule.
* Drift (D > 0): eta_t converges monotonically to the positive floor
  eta* = lambda m* / (lambda^2 m* + sigma^2) with
  m* = (D + sqrt(D^2 + 4 D sigma^2 / lambda^2)) / 2, and eta_t is never below
  the no-drift schedule: shift makes the optimal learning rate larger.

The continuous-time limit is the Riccati equation dm/dt = D -
lambda^2 m^2 / sigma^2 with eta = lambda m / sigma^2 (floor sqrt(D) / sigma
for small D), the paper's SDE picture. The recursion is evaluated once on
the host (float64) for ``total_steps`` steps and returned as an
``array_schedule``; after ``total_steps`` the last value is kept.

Paper -> code: drift variance -> ``drift_rate``^2; noise variance ->
``noise_level``^2; initial learning rate -> ``base_lr``; eigenvalue of the
covariance -> ``curvature`` (1: eta in units of 1 / lambda).

UNSURE, decided (the paper's closed forms could not be re-read here):
  * The recursion above was derived for this module from the model the
    paper states (random-walk drift, additive gradient noise, squared-error
    regret), not transcribed; it reproduces the paper's qualitative claims
    (1/t without shift, a positive, higher floor with shift).
  * Only ``model='linear_regression'`` is shipped; the paper's schedules for
    general convex and non-convex losses are not (their constants were not
    available), and ``model='convex'`` raises a ValueError.
  * A single curvature is modelled; for a spectrum, use its dominant (or
    smallest relevant) eigenvalue as ``curvature``.
"""

from __future__ import annotations

import numpy as np
import optax

from optkit.core import validate
from optkit.schedules.refinement import array_schedule

MODELS = ("linear_regression",)


def shift_robust_floor(drift_rate, noise_level, curvature=1.0) -> float:
  """The limit eta* of ``shift_robust_schedule`` (module docstring)."""
  d = float(drift_rate) ** 2
  s2 = float(noise_level) ** 2
  lam = float(curvature)
  m_star = 0.5 * (d + np.sqrt(d * d + 4.0 * d * s2 / lam ** 2))
  return float(lam * m_star / (lam ** 2 * m_star + s2))


def shift_robust_schedule(total_steps: int, drift_rate, noise_level, base_lr,
                          model: str = "linear_regression", *,
                          curvature=1.0) -> optax.Schedule:
  """Optimal SGD learning rates for online least squares with a drifting optimum.

  Args:
    total_steps: number of steps to precompute (Python int >= 1).
    drift_rate: standard deviation of the optimum's drift per step (>= 0).
    noise_level: standard deviation of the gradient noise (> 0).
    base_lr: eta_0 in (0, 1 / curvature).
    model: ``'linear_regression'`` (the only one shipped).
    curvature: lambda > 0, the curvature of the modelled direction.

  Returns:
    ``step -> learning rate`` (an ``array_schedule``; jittable).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> stationary = optkit.shift_robust_schedule(100, 0.0, 1.0, base_lr=0.5)
    >>> [round(float(v), 4) for v in stationary(jnp.array([0, 1, 2, 98]))]
    [0.5, 0.3333, 0.25, 0.01]
    >>> drifting = optkit.shift_robust_schedule(100, 0.1, 1.0, base_lr=0.5)
    >>> round(float(drifting(99)), 4)                # the floor
    0.0951

  References:
    Fahrbach et al., "Learning Rate Schedules in the Presence of Distribution
    Shift", 2023. https://arxiv.org/abs/2303.15634
  """
  name = "shift_robust_schedule"
  validate.one_of(name, "model", model, MODELS)
  validate.integer_at_least(name, 1, total_steps=total_steps)
  validate.non_negative(name, drift_rate=drift_rate)
  validate.positive(name, noise_level=noise_level, base_lr=base_lr, curvature=curvature)
  lam = float(curvature)
  eta0 = float(base_lr)
  if not eta0 * lam < 1.0:
    raise ValueError(f"{name}: `base_lr` must be < 1 / curvature = {1.0 / lam!r}, "
                     f"got {base_lr!r}.")
  d = float(drift_rate) ** 2
  s2 = float(noise_level) ** 2
  m = eta0 * s2 / (lam * (1.0 - eta0 * lam))
  out = np.empty(int(total_steps), np.float64)
  for t in range(int(total_steps)):
    denom = lam * lam * m + s2
    out[t] = lam * m / denom
    m = m * s2 / denom + d
  return array_schedule(out)
