"""Normalized IGT (N-PG-IGT) and normalized HARPG (N-HARPG).

Fatkhullin, Barakat, Kireeva, He, "Stochastic Policy Gradient Methods: Improved
Sample Complexity for Fisher-non-degenerate Policies", arXiv:2302.01734
(ICML 2023), Algorithms N-PG-IGT and (N)-HARPG, stated here in minimization
form (the paper maximizes a return J; pass the gradient of -J). The rules are
generic: in RL the gradient is the user's REINFORCE/GPOMDP estimate.

N-IGT (implicit gradient transport), t = count (0 at the first update)::

  theta~_t = theta_t + ((1 - eta_t) / eta_t) (theta_t - theta_{t-1})
  g_t      = grad f(theta~_t)                          # the user's gradient
  d_t      = (1 - eta_t) d_{t-1} + eta_t g_t
  theta_{t+1} = theta_t - gamma_t d_t / ||d_t||

N-HARPG (Hessian-aided recursive momentum)::

  q ~ U(0, 1);  theta^_t = q theta_t + (1 - q) theta_{t-1}
  d_t = (1 - eta_t) (d_{t-1} + H(theta^_t) (theta_t - theta_{t-1})) + eta_t grad f(theta_t)
  theta_{t+1} = theta_t - gamma_t d_t / ||d_t||

Paper -> code: gamma_t -> ``learning_rate`` (a number or schedule), eta_t ->
``eta`` (a number or schedule), d_t -> ``state.d``, theta_t ->
``state.theta``, theta_{t-1} -> ``state.theta_prev``, q -> drawn from
``state.key``. ||.|| is the GLOBAL Euclidean norm of the whole pytree.

Conventions (shared/algorithms/README.md):

* Shifted point (N-IGT): the state keeps the true iterate theta_t (and not
  theta_{t-1}: theta~_{t+1} = theta_{t+1} + s (theta_{t+1} - theta_t) is formed
  from this step's move); ``update``
  returns ``theta~_{t+1} - params``, so the params the user sees (and
  differentiates at) are the transported point theta~. Read the true iterate
  with ``normalized_igt_eval_params(state)`` (e.g. for evaluation). At init
  theta_{-1} = theta_0, so theta~_0 = theta_0 = the initial params.
* N-HARPG evaluates its gradient at theta_t itself (visible params = theta_t)
  and needs ``value_fn`` (``params -> loss`` on the current batch) for one
  Hessian-vector product at theta^_t per step, computed as
  ``jax.jvp(jax.grad(value_fn), (theta^,), (theta_t - theta_{t-1},))``. Its
  random q comes from the key in the state (``seed``), split every step.
* The learning rate lives in the direction (the step is normalized): neither
  optimizer is followed by ``scale_by_learning_rate``; ``learning_rate`` is
  gamma_t, the exact length of every step (when d_t != 0; d_t = 0 gives a zero
  step). Schedules are evaluated at ``count`` (0 first), optax convention.
* First step: d_{-1} = 0 and theta_{-1} = theta_0, so d_0 = eta_0 g_0 and
  the Hessian term vanishes.

UNSURE (catalog: schedule exponents and constants), decided:

* N-IGT default ``eta=None`` means eta_t = (t + 1)^(-4/5) (so eta_0 = 1 and
  d_0 = g_0); the companion step size gamma_t = gamma_0 (t + 1)^(-3/5) is the
  catalog's, available as ``learning_rate=igt_step_size_schedule(gamma_0)``.
  A constant ``learning_rate`` is accepted (the paper's theory wants the
  decay; with a constant gamma the transport distance (1/eta_t - 1) gamma
  grows like t^(4/5)).
* N-HARPG default ``eta=None`` means eta_t = 2 / (t + 2) (eta_0 = 1; the
  "1/t style" weight of the catalog, as in STORM-type analyses);
  ``learning_rate`` is taken as given (constant or schedule).
* eta_t must lie in (0, 1]; eta_t = 1 is normalized SGD (tested). eta_t is
  clipped to [tiny, 1] inside ``update`` so a schedule reaching 0 cannot
  divide by zero.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as extra_args_lib
from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_IGT_NAME = "normalized_igt"
_HARPG_NAME = "normalized_harpg"
_TINY_ETA = 1e-12


class NormalizedIGTState(NamedTuple):
  count: jax.Array          # int32, shape (): t
  d: optax.Updates          # d_{t-1}; float32 (float64 for float64 params)
  theta: optax.Updates      # theta_t, the true iterate; float32 (float64 for f64 params)


class NormalizedHARPGState(NamedTuple):
  count: jax.Array          # int32, shape (): t
  d: optax.Updates          # d_{t-1}; float32
  theta_prev: optax.Updates  # theta_{t-1} (= theta_0 at init); float32
  key: jax.Array            # uint32 key data, shape (2,) (threefry)


def _stat_copy(params):
  # A copy (never an alias of params: users donate params and state).
  return jax.tree.map(lambda p: jnp.array(p, dtype=numerics.stat_dtype(p), copy=True), params)


def _value_at(sched, count):
  return sched(count) if callable(sched) else sched


def _eta_value(eta, default, count, dtype):
  e = default(count) if eta is None else _value_at(eta, count)
  return jnp.clip(jnp.asarray(e, dtype), _TINY_ETA, 1.0)


def _tree_dtype(tree):
  """float32, or float64 when the state is float64 (x64 params)."""
  leaves = jax.tree.leaves(tree)
  return jnp.result_type(*leaves) if leaves else jnp.float32


def _igt_default_eta(count):
  return (jnp.asarray(count, jnp.float32) + 1.0) ** (-0.8)


def _harpg_default_eta(count):
  return 2.0 / (jnp.asarray(count, jnp.float32) + 2.0)


def igt_step_size_schedule(init_value) -> optax.Schedule:
  """gamma_t = init_value (t + 1)^(-3/5): the catalog's N-IGT step size.

  Example:
    >>> import optkit
    >>> float(optkit.igt_step_size_schedule(0.1)(0))
    0.1
  """
  validate.learning_rate(_IGT_NAME, init_value)
  return lambda count: init_value * (jnp.asarray(count, jnp.float32) + 1.0) ** (-0.6)


def _normalized_step(d, gamma):
  """-gamma d / ||d|| (global norm), zero when d = 0."""
  norm = optax.tree.norm(d)
  scale = jnp.where(norm > 0, gamma / jnp.where(norm > 0, norm, 1.0), 0.0)
  return jax.tree.map(lambda x: -scale.astype(x.dtype) * x, d)


def _check_eta(algo, eta):
  if eta is None or callable(eta):
    return
  validate.positive(algo, eta=eta)
  validate._check(algo, {"eta": eta}, lambda v: v <= 1, "in (0, 1]")  # pylint: disable=protected-access


def normalized_igt_eval_params(state) -> optax.Params:
  """The true iterate theta_t of ``normalized_igt`` / ``scale_by_normalized_igt``.

  Accepts the direction's state or the state of ``normalized_igt`` (searched
  for a ``NormalizedIGTState``).

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> opt = optkit.normalized_igt(0.1)
    >>> p = jnp.array([1.0, -2.0])
    >>> state = opt.init(p)
    >>> u, state = opt.update(2 * p, state, p)
    >>> [round(float(x), 3) for x in optkit.normalized_igt_eval_params(state)]
    [0.955, -1.911]
  """
  found = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(
      x, NormalizedIGTState)) if isinstance(s, NormalizedIGTState)]
  if not found:
    raise ValueError(f"{_IGT_NAME}: no NormalizedIGTState in the given state.")
  return found[0].theta


def scale_by_normalized_igt(learning_rate: optax.ScalarOrSchedule,
                            eta: Optional[optax.ScalarOrSchedule] = None
                            ) -> optax.GradientTransformation:
  """Normalized IGT step (learning rate inside; shifted-point convention).

  .. math::
    \\tilde\\theta_t = \\theta_t + \\tfrac{1-\\eta_t}{\\eta_t}(\\theta_t - \\theta_{t-1}),
    \\quad d_t = (1-\\eta_t) d_{t-1} + \\eta_t \\nabla f(\\tilde\\theta_t), \\quad
    \\theta_{t+1} = \\theta_t - \\gamma_t d_t / \\|d_t\\|.

  ``update(g, state, params)`` expects ``g`` = gradient at the visible params
  theta~_t and returns ``theta~_{t+1} - params``.

  Args:
    learning_rate: gamma_t, the step length (number or schedule).
    eta: eta_t in (0, 1] (number or schedule); ``None``: (t + 1)^(-4/5).

  Returns:
    An ``optax.GradientTransformation`` (``update`` requires ``params``).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_normalized_igt(learning_rate=0.5, eta=0.5)
    >>> p = jnp.array([1.0, 1.0])
    >>> u, state = tx.update(jnp.array([3.0, 4.0]), tx.init(p), p)
    >>> state.theta  # theta_1 = theta_0 - 0.5 d / ||d||
    Array([0.7, 0.6], dtype=float32)
    >>> u.round(5)  # to theta~_1 = theta_1 + (1 - eta)/eta (theta_1 - theta_0)
    Array([-0.6, -0.8], dtype=float32)

  References:
    Fatkhullin, Barakat, Kireeva, He, "Stochastic Policy Gradient Methods:
    Improved Sample Complexity for Fisher-non-degenerate Policies", 2023.
    https://arxiv.org/abs/2302.01734
  """
  validate.learning_rate(_IGT_NAME, learning_rate)
  _check_eta(_IGT_NAME, eta)

  def init_fn(params):
    theta = _stat_copy(params)
    return NormalizedIGTState(jnp.zeros([], jnp.int32), optax.tree.zeros_like(theta),
                              theta)

  def update_fn(updates, state, params=None):
    params = extra_args_lib.require_params(
        _IGT_NAME, params, "the update moves params to the next transported point")
    tree_lib.check_same_structure(_IGT_NAME, updates, state.d)
    c = state.count
    dt = _tree_dtype(state.d)
    eta_t = _eta_value(eta, _igt_default_eta, c, dt)
    gamma_t = jnp.asarray(_value_at(learning_rate, c), dt)
    d = jax.tree.map(lambda dp, g: (1 - eta_t).astype(dp.dtype) * dp
                     + eta_t.astype(dp.dtype) * g.astype(dp.dtype), state.d, updates)
    step = _normalized_step(d, gamma_t)
    theta_next = jax.tree.map(lambda th, s: th + s, state.theta, step)
    eta_n = _eta_value(eta, _igt_default_eta, c + 1, dt)
    shift = ((1 - eta_n) / eta_n)
    visible = jax.tree.map(lambda tn, s: tn + shift.astype(tn.dtype) * s, theta_next, step)
    u = jax.tree.map(lambda v, p: (v - p.astype(v.dtype)).astype(jnp.result_type(p)),
                     visible, params)
    u = optax.tree.cast_like(u, updates)
    return u, NormalizedIGTState(optax.safe_increment(c), d, theta_next)

  return optax.GradientTransformation(init_fn, update_fn)


def normalized_igt(learning_rate: optax.ScalarOrSchedule,
                   eta: Optional[optax.ScalarOrSchedule] = None
                   ) -> optax.GradientTransformation:
  """N-PG-IGT optimizer (minimization form): normalized IGT momentum.

  The learning rate (gamma_t) is the exact step length of the true iterate and
  lives inside the direction; the visible params are the transported point
  theta~ (read theta with ``normalized_igt_eval_params``).

  Args:
    learning_rate: gamma_t (number or schedule), e.g.
      ``igt_step_size_schedule(0.1)`` for the catalog's t^(-3/5) decay.
    eta: eta_t in (0, 1]; ``None``: (t + 1)^(-4/5).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> f = lambda p: jnp.sum((p - 1.0) ** 2)
    >>> opt = optkit.normalized_igt(learning_rate=0.1, eta=0.5)
    >>> p = jnp.zeros(2)
    >>> state = opt.init(p)
    >>> for _ in range(30):
    ...   u, state = opt.update(jax.grad(f)(p), state, p)
    ...   p = p + u
    >>> bool(f(optkit.normalized_igt_eval_params(state)) < 0.05)
    True

  References:
    Fatkhullin, Barakat, Kireeva, He, "Stochastic Policy Gradient Methods:
    Improved Sample Complexity for Fisher-non-degenerate Policies", 2023.
    https://arxiv.org/abs/2302.01734
  """
  return scale_by_normalized_igt(learning_rate, eta)


def normalized_harpg(learning_rate: optax.ScalarOrSchedule,
                     eta: Optional[optax.ScalarOrSchedule] = None,
                     seed: int = 0) -> optax.GradientTransformationExtraArgs:
  """N-HARPG optimizer: Hessian-aided recursive momentum, normalized step.

  .. math::
    d_t = (1-\\eta_t)\\,(d_{t-1} + \\nabla^2 f(\\hat\\theta_t)(\\theta_t - \\theta_{t-1}))
    + \\eta_t \\nabla f(\\theta_t), \\quad
    \\hat\\theta_t = q\\theta_t + (1-q)\\theta_{t-1},\\ q \\sim U(0, 1), \\quad
    \\theta_{t+1} = \\theta_t - \\gamma_t d_t / \\|d_t\\|.

  ``update(g, state, params, value_fn=...)``: ``g`` is the gradient at
  ``params`` = theta_t; ``value_fn`` (loss on the same batch) gives the
  Hessian-vector product.

  Args:
    learning_rate: gamma_t, the step length (number or schedule).
    eta: eta_t in (0, 1] (number or schedule); ``None``: 2 / (t + 2).
    seed: seeds the key that draws q.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (requires ``params`` and
    ``value_fn``).

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> f = lambda p: jnp.sum((p - 1.0) ** 2)
    >>> opt = optkit.normalized_harpg(learning_rate=0.1)
    >>> p = jnp.zeros(2)
    >>> state = opt.init(p)
    >>> u, state = opt.update(jax.grad(f)(p), state, p, value_fn=f)
    >>> u
    Array([0.07071068, 0.07071068], dtype=float32)

  References:
    Fatkhullin, Barakat, Kireeva, He, "Stochastic Policy Gradient Methods:
    Improved Sample Complexity for Fisher-non-degenerate Policies", 2023.
    https://arxiv.org/abs/2302.01734
  """
  validate.learning_rate(_HARPG_NAME, learning_rate)
  _check_eta(_HARPG_NAME, eta)
  validate.seed(_HARPG_NAME, seed)

  def init_fn(params):
    theta = _stat_copy(params)
    return NormalizedHARPGState(jnp.zeros([], jnp.int32), optax.tree.zeros_like(theta),
                                theta, jax.random.key_data(jax.random.key(seed)))

  def update_fn(updates, state, params=None, **extra_args):
    params = extra_args_lib.require_params(_HARPG_NAME, params, "theta_t")
    value_fn = extra_args_lib.require(_HARPG_NAME, extra_args, "value_fn")
    tree_lib.check_same_structure(_HARPG_NAME, updates, state.d)
    c = state.count
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    q = jax.random.uniform(sub, (), jnp.float32)
    theta = jax.tree.map(lambda p, r: p.astype(r.dtype), params, state.theta_prev)
    delta = jax.tree.map(lambda a, b: a - b, theta, state.theta_prev)
    theta_hat = jax.tree.map(lambda a, b: q.astype(a.dtype) * a
                             + (1 - q).astype(a.dtype) * b, theta, state.theta_prev)
    # value_fn sees the params' dtypes; the HVP is taken back to float32.
    to_p = lambda tree: jax.tree.map(lambda x, p: x.astype(jnp.result_type(p)), tree, params)
    _, hvp = jax.jvp(jax.grad(value_fn), (to_p(theta_hat),), (to_p(delta),))
    dt = _tree_dtype(state.d)
    eta_t = _eta_value(eta, _harpg_default_eta, c, dt)
    gamma_t = jnp.asarray(_value_at(learning_rate, c), dt)
    d = jax.tree.map(
        lambda dp, h, g: (1 - eta_t).astype(dp.dtype) * (dp + h.astype(dp.dtype))
        + eta_t.astype(dp.dtype) * g.astype(dp.dtype), state.d, hvp, updates)
    step = _normalized_step(d, gamma_t)
    u = optax.tree.cast_like(step, updates)
    return u, NormalizedHARPGState(optax.safe_increment(c), d, theta,
                                   jax.random.key_data(key))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
