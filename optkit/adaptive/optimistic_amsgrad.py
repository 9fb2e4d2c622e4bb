"""Optimistic AMSGrad (OPT-AMSGrad).

Wang, Li, Karimi & Li, "An Optimistic Acceleration of AMSGrad for Nonconvex
Optimization", arXiv:1903.01435, Algorithm 1 (OPT-AMSGRAD) and Algorithm 2
(regularized minimal polynomial extrapolation, RMPE, as the gradient guess).
With t = count + 1 and g_t the gradient at the visible params w_t::

  theta_t = b1 theta_{t-1} + (1 - b1) g_t
  v_t     = b2 v_{t-1} + (1 - b2) g_t^2,     v_hat_t = max(v_hat_{t-1}, v_t)
  w_{t+1/2} = w_{t-1/2} - eta_t theta_t / (sqrt(v_hat_t) + eps)
  m_{t+1} = guess of g_{t+1}  ('last': g_t; 'rmpe': RMPE over the last
            ``window`` gradients; 'zero': 0)
  h_{t+1} = b1 theta_{t-1} + (1 - b1) m_{t+1}          (default; see UNSURE)
  w_{t+1} = w_{t+1/2} - eta_{t+1} h_{t+1} / (sqrt(v_hat_t) + eps)
  returned update = w_{t+1} - w_t

Paper -> code: eta_t -> ``learning_rate`` (evaluated at count for eta_t and at
count + 1 for eta_{t+1}), beta_1 -> ``b1``, beta_2 -> ``b2``, theta_t ->
``state.mu``, v_t -> ``state.nu``, v_hat_t -> ``state.nu_max``, w_{t+1/2} ->
``state.w_half``, m_{t+1} -> the predictor's output, r -> ``window``.
Defaults: b1 = 0.9, b2 = 0.999 (AMSGrad's), eps = 1e-8.

"Gradient at a shifted point" pattern (shared/algorithms/README.md): the base
iterate w_{t+1/2} lives in the state (``init`` copies the params into it, i.e.
w_{1/2} = w_1), the visible params are the optimistic points w_{t+1} where the
next gradient is taken, and ``optimistic_amsgrad_eval_params(state)`` returns
the base iterate. There is no projection (K = R^d) and no bias correction (as
in the paper). eps is added to sqrt(v_hat) (the catalog's guard; the paper
divides by sqrt(v_hat) directly).

RMPE (Algorithm 2): with the last r = ``window`` gradients x_0..x_{r-1} (oldest
first), U = [x_1 - x_0, ..., x_{r-1} - x_{r-2}] (inner products over the whole
tree), z solves (U^T U + lambda I) z = 1, c = z / sum(z), and the guess is
sum_i c_i x_i (i < r - 1). lambda = ``rmpe_reg`` * ||U^T U||_F (scale-free, as in
Scieur et al.'s regularized nonlinear acceleration), floored at 1e-30. Until r
gradients have been seen the guess is g_t ('last').

UNSURE (catalog), decided:
- h_{t+1} uses theta_{t-1} or theta_t: the paper's algorithm box defines
  h_{t+1} := b1 theta_{t-1} + (1 - b1) m_{t+1} (read from memory of the arXiv
  text; only the abstract was retrievable in this session, so this is flagged),
  which is the default ``h_momentum='previous'``. ``h_momentum='current'`` uses
  theta_t, the natural one-step-ahead estimate of theta_{t+1}. Both are cheap
  (theta_{t-1} is the incoming state), so both are offered.
- RMPE window and regularization are not fixed by the catalog: ``window=5``
  (static), ``rmpe_reg=1e-3`` relative to ||U^T U||_F.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "optimistic_amsgrad"
_PREDICTORS = ("last", "rmpe", "zero")
_H_MOMENTUM = ("previous", "current")
_RMPE_FLOOR = 1e-30


class OptimisticAmsgradState(NamedTuple):
  """State of optimistic AMSGrad."""
  count: jax.Array         # int32, shape (): t - 1
  mu: optax.Updates        # theta_t, params-shaped, float32+
  nu: optax.Updates        # v_t, params-shaped, float32+
  nu_max: optax.Updates    # v_hat_t, params-shaped, float32+
  w_half: optax.Params     # base iterate w_{t+1/2}, params-shaped, float32+
  grad_window: optax.Updates  # last `window` gradients, shape (window, *param) ('rmpe'),
                              # oldest first; () for the other predictors


def _f32(x):
  return jnp.asarray(x).astype(jnp.promote_types(jnp.result_type(x), jnp.float32))


def _stat_zeros(params, lead=()):
  return jax.tree.map(lambda p: jnp.zeros(
      tuple(lead) + jnp.shape(p), jnp.promote_types(jnp.result_type(p), jnp.float32)), params)


def _step(w, eta, d, v, eps):
  """w - eta d / (sqrt(v) + eps), with 0 / 0 -> 0 (eps = 0 and v = 0)."""
  den = jnp.sqrt(v) + eps
  return w - eta * jnp.where(den > 0, d / jnp.where(den > 0, den, 1.0), 0.0)


def rmpe_extrapolate(window_tree, reg: float = 1e-3):
  """Regularized minimal polynomial extrapolation of a sequence of trees.

  ``window_tree`` has leaves of shape (r, ...): the sequence x_0..x_{r-1},
  oldest first (r >= 3). In float32 keep ``reg`` >= ~1e-6 (below that
  U^T U + lambda I is numerically singular for exactly geometric sequences). Returns sum_i c_i x_i (i < r - 1), c = z / sum(z),
  (U^T U + reg ||U^T U||_F I) z = 1, U the successive differences.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> k = jnp.arange(5.0)[:, None]
    >>> seq = {"x": 3.0 + 0.5 ** k * jnp.array([[1.0, -2.0]])}   # -> [3, 3]
    >>> jnp.round(optkit.adaptive.rmpe_extrapolate(seq, reg=1e-5)["x"], 3)
    Array([3., 3.], dtype=float32)
  """
  leaves = jax.tree.leaves(window_tree)
  r = jnp.shape(leaves[0])[0]
  flat = [jnp.reshape(_f32(x), (r, -1)) for x in leaves]
  diffs = [x[1:] - x[:-1] for x in flat]
  gram = sum(d @ d.T for d in diffs)
  lam = jnp.maximum(reg * jnp.linalg.norm(gram), _RMPE_FLOOR)
  z = jnp.linalg.solve(gram + lam * jnp.eye(r - 1, dtype=gram.dtype),
                       jnp.ones((r - 1,), gram.dtype))
  c = z / jnp.sum(z)
  return jax.tree.map(lambda x: jnp.tensordot(c, _f32(x)[:-1], axes=1), window_tree)


def optimistic_amsgrad_eval_params(state) -> optax.Params:
  """The base iterate w_{t+1/2} of an ``optimistic_amsgrad`` state (float32).

  The visible params are the optimistic points where gradients are taken;
  use this for evaluation (it is the AMSGrad-like sequence of the paper).
  Accepts the optimizer's state or any tuple holding it.

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> opt = optkit.optimistic_amsgrad(0.1)
    >>> p = jnp.array([1.0, -2.0])
    >>> state = opt.init(p)
    >>> u, state = opt.update(2 * p, state, p)
    >>> optkit.optimistic_amsgrad_eval_params(state).shape
    (2,)
  """
  return optax.tree.get(state, "w_half")


def optimistic_amsgrad(learning_rate: optax.ScalarOrSchedule,
                       b1: float = 0.9,
                       b2: float = 0.999,
                       eps: float = 1e-8,
                       rmpe_reg: float = 1e-3,
                       *,
                       predictor: str = "last",
                       window: int = 5,
                       h_momentum: str = "previous") -> optax.GradientTransformation:
  r"""Optimistic AMSGrad (Algorithm 1 of Wang et al.).

  .. math::
    w_{t+\frac12} = w_{t-\frac12} - \eta_t\frac{\theta_t}{\sqrt{\hat v_t}+\epsilon},\quad
    w_{t+1} = w_{t+\frac12} - \eta_{t+1}\frac{\beta_1\theta_{t-1} + (1-\beta_1) m_{t+1}}
      {\sqrt{\hat v_t}+\epsilon}

  with m_{t+1} the guess of the next gradient. The learning rate lives inside
  (the base iterate is in parameter space): do not chain another
  ``scale_by_learning_rate``. ``update`` needs ``params`` (the visible w_t).

  Args:
    learning_rate: eta_t, a number or an optax schedule (evaluated at count and
      count + 1).
    b1: beta_1 (0.9).
    b2: beta_2 (0.999).
    eps: added to sqrt(v_hat) (1e-8).
    rmpe_reg: RMPE regularization, relative to ||U^T U||_F (1e-3).
    predictor: the gradient guess: 'last' (g_t, default), 'rmpe', or 'zero'.
    window: number of gradients RMPE extrapolates from (>= 3; static).
    h_momentum: 'previous' (theta_{t-1}, the paper's box) or 'current' (theta_t).

  Returns:
    An ``optax.GradientTransformation`` with state ``OptimisticAmsgradState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.adaptive.optimistic_amsgrad(learning_rate=0.1, b1=0.0, b2=0.0, eps=0.0)
    >>> p = jnp.zeros(2)
    >>> u, s = opt.update(jnp.array([0.5, -2.0]), opt.init(p), p)
    >>> u      # half step -0.1 sign(g), then the optimistic step with m = g_1
    Array([-0.2,  0.2], dtype=float32)
    >>> optkit.adaptive.optimistic_amsgrad_eval_params(s)
    Array([-0.1,  0.1], dtype=float32)

  References:
    Wang, Li, Karimi & Li, An Optimistic Acceleration of AMSGrad for Nonconvex
    Optimization, https://arxiv.org/abs/1903.01435
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.unit_interval(_NAME, b1=b1, b2=b2)
  validate.non_negative(_NAME, eps=eps, rmpe_reg=rmpe_reg)
  validate.one_of(_NAME, "predictor", predictor, _PREDICTORS)
  validate.one_of(_NAME, "h_momentum", h_momentum, _H_MOMENTUM)
  validate.integer_at_least(_NAME, 3, window=window)
  buffer_len = window if predictor == "rmpe" else 0

  def lr_at(count):
    return learning_rate(count) if callable(learning_rate) else learning_rate

  def init_fn(params):
    return OptimisticAmsgradState(
        count=jnp.zeros([], jnp.int32), mu=_stat_zeros(params), nu=_stat_zeros(params),
        nu_max=_stat_zeros(params),
        w_half=jax.tree.map(lambda p: jnp.array(_f32(p), copy=True), params),
        # No window without RMPE: an empty tuple, not (0, *param) arrays, which
        # checkpointers such as orbax refuse to save.
        grad_window=_stat_zeros(params, (buffer_len,)) if buffer_len else ())

  def update_fn(updates, state, params=None):
    extra_args.require_params(_NAME, params, "the update moves the visible params")
    tree_lib.check_same_structure(_NAME, updates, state.mu)
    g = jax.tree.map(_f32, updates)
    t = optax.safe_increment(state.count)
    # Betas as float32 arrays, so that (1 - b) rounds alike whether b arrives as
    # a Python float or as an array injected by optax.inject_hyperparams.
    b1_, b2_ = jnp.asarray(b1, jnp.float32), jnp.asarray(b2, jnp.float32)
    mu = optax.tree.update_moment(g, state.mu, b1_, 1)                  # theta_t
    nu = optax.tree.update_moment_per_elem_norm(g, state.nu, b2_, 2)    # v_t
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)                # v_hat_t
    eta_t, eta_next = lr_at(state.count), lr_at(t)
    w_half = jax.tree.map(lambda w, m, v: _step(w, eta_t, m, v, eps),
                          state.w_half, mu, nu_max)                     # w_{t+1/2}
    if predictor == "rmpe":
      window_tree = jax.tree.map(
          lambda buf, x: jnp.concatenate([buf[1:], x[None]], axis=0), state.grad_window, g)
      full = t >= window
      guess_rmpe = rmpe_extrapolate(window_tree, rmpe_reg)
      guess = jax.tree.map(lambda a, b: jnp.where(full, a, b), guess_rmpe, g)
    else:
      window_tree = state.grad_window
      guess = g if predictor == "last" else jax.tree.map(jnp.zeros_like, g)
    theta = state.mu if h_momentum == "previous" else mu
    h = jax.tree.map(lambda m, x: b1_ * m + (1.0 - b1_) * x, theta, guess)  # h_{t+1}
    w_next = jax.tree.map(lambda w, hh, v: _step(w, eta_next, hh, v, eps),
                          w_half, h, nu_max)                            # w_{t+1}
    new_updates = jax.tree.map(lambda w, p: (w - _f32(p)).astype(jnp.result_type(p)),
                               w_next, params)
    return new_updates, OptimisticAmsgradState(count=t, mu=mu, nu=nu, nu_max=nu_max,
                                               w_half=w_half, grad_window=window_tree)

  return optax.GradientTransformation(init_fn, update_fn)
