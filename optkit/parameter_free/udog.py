"""U-DoG: UniXGrad's extra-gradient averaging with DoG step sizes.

Kreisler, Ivgi, Hinder, Carmon, "Accelerated Parameter-Free Stochastic
Optimization", arXiv:2404.00666 (U-DoG = UniXGrad of Kavis et al. 2019 + DoG
of Ivgi et al. 2023 + iterate stabilization).

Iteration t = 0, 1, ... (x_0 the initial params, y_0 = x_0, xbar_0 = x_0)::

  rbar_t   = max(r_eps, max_{k<=t} ||y_k - x_0||, max_{k<=t} ||x_k - x_0||)
  alpha_t  = (sum_{k<=t} rbar_k) / rbar_t          # stabilized weights (alpha_t = t+1 for constant rbar)
  omega_t  = alpha_t rbar_t                         # averaging weights, W_t = sum_{k<=t} omega_k
  xtil_t   = (W_{t-1} xbar_t + omega_t y_t) / W_t   # extrapolated average (y_t in place of x_{t+1})
  m_t      = grad f(xtil_t)                         # first gradient (value_fn)
  x_{t+1}  = y_t - alpha_t eta_{x,t} m_t,           eta_{x,t} = c rbar_t / sqrt(G_{x,t} + eps)
  xbar_{t+1} = (W_{t-1} xbar_t + omega_t x_{t+1}) / W_t
  g_t      = grad f(xbar_{t+1})                     # second gradient: the next call's input
  y_{t+1}  = y_t - alpha_t eta_{y,t} g_t,           eta_{y,t} = c rbar_t / sqrt(G_{y,t} + eps)
  G_{x,t}  = G_{y,t-1},   G_{y,t} = G_{x,t} + alpha_t^2 ||g_t - m_t||^2,   G_{y,-1} = ||grad f(x_0)||^2

The method returns (and optkit's visible params are) the weighted average
xbar_t. r_eps = reps_rel (1 + ||x_0||), as in DoG.

How it maps onto ``update``: the params the user holds are xbar_t and the
gradient passed to ``update`` is the gradient there, i.e. g_{t-1} (at t = 0,
grad f(x_0)). One call finishes iteration t-1 (the y-step with g_{t-1}) and
runs the x-step of iteration t, which needs a second gradient m_t at xtil_t:
``value_fn`` (the loss on the current batch) is required and differentiated
there (``jax.grad(value_fn)``). The returned update is the displacement
xbar_{t+1} - xbar_t (apply it with ``optax.apply_updates``); the base
sequences y, xbar and the previous m are kept in float32 in the state.
Two gradients per step, as in the paper.

Paper -> code: x_0 -> ``state.init_params``; y_t -> ``state.y``; xbar_t ->
``state.xbar``; m_{t-1} -> ``state.m_prev``; rbar -> ``state.rbar``;
sum_k rbar_k -> ``state.sum_rbar``; W -> ``state.weight_sum``; alpha_{t-1} ->
``state.alpha_prev``; G_{y,t-1} -> ``state.sum_sq``; max ||x_k - x_0|| of the
last x -> ``state.x_dist``; c -> ``learning_rate`` (multiplier, 1.0 by
convention for a parameter-free method; a schedule is evaluated at ``count``).

Defaults: reps_rel = 1e-6 and eps = 1e-8 (as DoG; the paper's experiments use
DoG's r_eps heuristic).

UNSURE (catalog: "implement from the paper's algorithm box"; the algorithm box
could not be read for this implementation, only secondary summaries of it and
the authors' related A-DoG research code), decided:

* the recursions above follow UniXGrad's structure with D replaced by rbar_t,
  alpha_t = sum_k rbar_k / rbar_t and omega_t = alpha_t rbar_t (the
  "stabilized" weights of the U-DoG summary); rbar includes both the y and the
  x sequences;
* the "ordered" step sizes: eta_x uses the sum through t-1 (g_t is not known
  yet when x_{t+1} is formed, as in UniXGrad) and eta_y the sum through t;
* the initial value of the sum, G_{y,-1} = ||grad f(x_0)||^2, plays the role of
  UniXGrad's constant 1 and of the paper's loose noise/gradient-scale bound;
  it keeps the method invariant to scaling the loss and makes the first
  extrapolation move exactly r_eps (alpha_0 = 1);
* no projection (unconstrained, K = R^d); the paper's additional
  high-probability safeguards (log factors in the step size) are omitted, as
  in its practical experiments.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as extra_args_lib
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "u_dog"


class ScaleByUDogState(NamedTuple):
  """State of U-DoG (float32 statistics and sequences)."""
  count: jax.Array          # int32, (): iterations started (t)
  init_params: optax.Params  # x_0, params' dtype
  y: optax.Params           # y_t, float32
  xbar: optax.Params        # xbar_t, float32 (the returned average)
  m_prev: optax.Params      # m_{t-1}, float32
  rbar: jax.Array           # rbar_{t-1}, float32, ()
  x_dist: jax.Array         # ||x_t - x_0||, float32, ()
  sum_rbar: jax.Array       # sum_{k<t} rbar_k, float32, ()
  weight_sum: jax.Array     # W_{t-1} = sum_{k<t} omega_k, float32, ()
  alpha_prev: jax.Array     # alpha_{t-1}, float32, ()
  sum_sq: jax.Array         # G_{y,t-1}, float32, ()


def _f32_copy(tree):
  return jax.tree.map(lambda x: jnp.array(
      x, dtype=jnp.promote_types(jnp.result_type(x), jnp.float32), copy=True), tree)


def _sq_norm(tree):
  return sum((jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))) for x in jax.tree.leaves(tree)),
             jnp.zeros([], jnp.float32))


def scale_by_u_dog(reps_rel: float = 1e-6, eps: float = 1e-8, *,
                   learning_rate: optax.ScalarOrSchedule = 1.0
                   ) -> optax.GradientTransformationExtraArgs:
  r"""U-DoG as a transformation that returns the displacement of the average.

  See the module docstring for the recursions. The multiplier c
  (``learning_rate``) scales both DoG step sizes inside the method, because
  the update is a displacement of the averaged iterate (not a gradient
  direction to be scaled afterwards).

  Args:
    reps_rel: r_eps = reps_rel (1 + ||x_0||).
    eps: added inside the square roots of the step sizes.
    learning_rate: the multiplier c of both step sizes (1.0 by convention).

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``update`` needs ``params``
    and the extra argument ``value_fn``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> f = lambda x: 0.5 * jnp.sum(x ** 2)
    >>> x = jnp.array([3.0, 4.0])
    >>> tx = optkit.scale_by_u_dog(reps_rel=0.1)
    >>> u, _ = tx.update(x, tx.init(x), x, value_fn=f)
    >>> u  # x_1 = x_0 - r_eps g/||g|| with r_eps = 0.6; xbar_1 = x_1
    Array([-0.36, -0.48], dtype=float32)

  References:
    Kreisler, Ivgi, Hinder, Carmon, 2024, https://arxiv.org/abs/2404.00666
  """
  validate.positive(_NAME, reps_rel=reps_rel, eps=eps)
  validate.learning_rate(_NAME, learning_rate)

  def init_fn(params):
    x0 = _f32_copy(params)
    norm_x0 = jnp.sqrt(_sq_norm(params))
    z = lambda: jnp.zeros([], jnp.float32)  # distinct buffers (state may be donated)
    return ScaleByUDogState(
        count=jnp.zeros([], jnp.int32),
        init_params=jax.tree.map(lambda p: jnp.array(p, copy=True), params),
        y=x0,
        xbar=_f32_copy(params),
        m_prev=jax.tree.map(jnp.zeros_like, x0),
        rbar=jnp.asarray(reps_rel, jnp.float32) * (1.0 + norm_x0),  # r_eps
        x_dist=z(), sum_rbar=z(), weight_sum=z(), alpha_prev=z(), sum_sq=z())

  def update_fn(updates, state, params=None, **extra):
    tree_lib.check_same_structure(_NAME, updates, state.init_params)
    extra_args_lib.require_params(_NAME, params, "U-DoG tracks ||x - x_0||")
    value_fn = extra_args_lib.require(_NAME, extra, "value_fn")
    c = learning_rate(state.count) if callable(learning_rate) else learning_rate
    c = jnp.asarray(c, jnp.float32)
    first = state.count == 0
    g = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), updates)  # g_{t-1} at xbar_t
    x0 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), state.init_params)

    # Finish iteration t-1: the y-step with g_{t-1} (at t = 0: y_0 = x_0 and
    # G_{y,-1} = ||grad f(x_0)||^2).
    diff_sq = _sq_norm(jax.tree.map(jnp.subtract, g, state.m_prev))
    sum_sq = jnp.where(first, _sq_norm(g), state.sum_sq + state.alpha_prev ** 2 * diff_sq)
    eta_y = c * state.rbar / jnp.sqrt(sum_sq + eps)
    step_y = jnp.where(first, 0.0, state.alpha_prev * eta_y)
    y = jax.tree.map(lambda yy, gg: yy - step_y * gg, state.y, g)

    # Iteration t: rbar_t, the weights, the extrapolated average and m_t.
    y_dist = jnp.sqrt(_sq_norm(jax.tree.map(jnp.subtract, y, x0)))
    rbar = jnp.maximum(state.rbar, jnp.maximum(y_dist, state.x_dist))
    sum_rbar = state.sum_rbar + rbar
    alpha = sum_rbar / rbar
    omega = alpha * rbar
    weight_sum = state.weight_sum + omega
    mix = omega / weight_sum  # omega_t / W_t (1 at t = 0)
    xtil = jax.tree.map(lambda xb, yy: (1.0 - mix) * xb + mix * yy, state.xbar, y)
    m = jax.grad(lambda p: jnp.asarray(value_fn(p), jnp.float32))(
        optax.tree.cast_like(xtil, state.init_params))
    m = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), m)
    eta_x = c * rbar / jnp.sqrt(sum_sq + eps)
    x_new = jax.tree.map(lambda yy, mm: yy - alpha * eta_x * mm, y, m)
    xbar = jax.tree.map(lambda xb, xn: (1.0 - mix) * xb + mix * xn, state.xbar, x_new)
    x_dist = jnp.sqrt(_sq_norm(jax.tree.map(jnp.subtract, x_new, x0)))

    u = jax.tree.map(lambda xb, p: xb - jnp.asarray(p, jnp.float32), xbar, params)
    new_state = ScaleByUDogState(
        count=optax.safe_increment(state.count),
        init_params=state.init_params,
        y=optax.tree.cast_like(y, state.y),
        xbar=optax.tree.cast_like(xbar, state.xbar),
        m_prev=optax.tree.cast_like(m, state.m_prev),
        rbar=rbar.astype(jnp.float32),
        x_dist=x_dist.astype(jnp.float32),
        sum_rbar=sum_rbar.astype(jnp.float32),
        weight_sum=weight_sum.astype(jnp.float32),
        alpha_prev=alpha.astype(jnp.float32),
        sum_sq=sum_sq.astype(jnp.float32))
    return optax.tree.cast_like(u, state.init_params), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def u_dog(learning_rate: optax.ScalarOrSchedule = 1.0, reps_rel: float = 1e-6,
          eps: float = 1e-8) -> optax.GradientTransformationExtraArgs:
  r"""U-DoG optimizer (accelerated, parameter-free); needs ``value_fn``.

  ``scale_by_u_dog(reps_rel, eps, learning_rate=learning_rate)``: the update
  moves the params (the weighted average xbar_t, the method's output) to
  xbar_{t+1}. Pass ``value_fn=lambda p: loss(p, batch)`` (the current batch)
  to ``update``: U-DoG takes a second gradient at an extrapolated point.

  Args:
    learning_rate: the multiplier c of the DoG step sizes, 1.0 by convention
      for a parameter-free method; a number or an optax schedule.
    reps_rel: r_eps = reps_rel (1 + ||x_0||).
    eps: added inside the square roots of the step sizes.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax, optax
    >>> import jax.numpy as jnp
    >>> f = lambda x: jnp.sum(jnp.array([1.0, 10.0]) * (x - 3.0) ** 2)
    >>> x = jnp.zeros(2)
    >>> opt = optkit.u_dog(reps_rel=1e-4)
    >>> s = opt.init(x)
    >>> for _ in range(100):
    ...   u, s = opt.update(jax.grad(f)(x), s, x, value_fn=f)
    ...   x = optax.apply_updates(x, u)
    >>> bool(f(x) < 1e-3)
    True

  References:
    Kreisler, Ivgi, Hinder, Carmon, 2024, https://arxiv.org/abs/2404.00666
  """
  return scale_by_u_dog(reps_rel, eps, learning_rate=learning_rate)
