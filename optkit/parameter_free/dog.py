"""DoG and L-DoG: distance-over-gradients step sizes, and polynomial-decay averaging.

Ivgi, Hinder, Carmon, "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step
Size Schedule", arXiv:2302.12022, eqs. (1)-(3) and Section 4 (L-DoG).

One DoG step (gradient g_t at x_t, x_0 the params given to ``init``)::

  r_eps   = reps_rel * (1 + ||x_0||)                     # 'heuristic' initial distance
  rbar_t  = max(r_eps, max_{i<=t} ||x_i - x_0||)         # current params included
  G_t     = sum_{i<=t} ||g_i||^2
  eta_t   = c * rbar_t / sqrt(G_t + eps)
  x_{t+1} = x_t - eta_t g_t

L-DoG: the same with rbar, G (and r_eps, from ``||x_0||`` of the leaf) kept per
leaf (per layer). Polynomial-decay averaging (Shamir & Zhang 2013, the authors'
recommendation, Section 5)::

  xbar_t = (1 - w_t) xbar_{t-1} + w_t x_t,     w_t = (1 + gamma) / (t + gamma),  t = 1, 2, ...

Paper -> code: r_eps -> ``reps_rel * (1 + ||x_0||)``; rbar_t -> ``max_dist``;
G_t -> ``sum_sq_norm_grads``; c -> ``learning_rate`` (a multiplier, 1.0 by
default: parameter-free methods take ``learning_rate=1.0`` by convention and the
authors advise against changing it; a schedule is evaluated at the step count);
gamma -> ``gamma``; xbar -> ``averaged_params``.

Defaults and their source: ``reps_rel = 1e-6`` (paper; 1e-4 for models with
batch normalization), ``eps = 1e-8`` added to G inside the root (formll/dog and
optax), ``gamma = 8`` (formll/dog ``PolynomialDecayAverager``).

Re-use: optax 0.2.8 has a faithful DoG, but exports only the full optimizer
``optax.contrib.dog`` (its ``scale_by_dog`` lives in ``optax.contrib._dog``, a
private module optkit does not import). optkit therefore implements the few
lines of arithmetic once for DoG and L-DoG (global vs per-leaf reductions) and
tests that ``optkit.dog`` equals ``optax.contrib.dog`` (20 steps, float32, with
and without weight decay, and the ``init_eta`` / ``('learning_rate', v)`` mode).
optkit adds construction-time validation, a structure check, a clear error
when ``params`` is missing, and float32 statistics for low-precision params
(optax stores rbar and G in the params' lowest dtype: a bf16 G loses the
accumulation); x_0 is kept in the params' dtype (an exact copy) and the update
is cast back to it. ``init_eta`` (formll/dog) is optax's
``('learning_rate', init_eta)`` initial-step mode: the first step size is
``init_eta`` and r_eps = 0.

Weight decay: ``dog`` adds ``weight_decay * x_t`` to the gradient BEFORE
``scale_by_dog`` (coupled L2, so the decay term enters G), as both
``optax.contrib.dog`` and formll/dog (``p.grad.add_(p, alpha=weight_decay)``
before the state update) do.

Pitfall (float32): r_eps must exceed the rounding of x_0. With reps_rel =
1e-8 and params of order 1, the first step (length r_eps) is below float32's
resolution, x does not change, ||x_t - x_0|| stays 0 and DoG never moves
(observed on the ill-conditioned test quadratic); the default 1e-6 is safe.

UNSURE (catalog), decided:

* the averaging weights: formll/dog's PyTorch averager starts at t = 1, so
  w_1 = 1 and the weights of x_1..x_t sum to 1 (gamma = 0: the uniform average;
  gamma -> inf: the last iterate). formll/dog's JAX averager starts at t = 0,
  which gives w_1 = (1 + gamma)/gamma > 1 (weights that do not sum to 1); optkit
  follows the PyTorch form.
* ``polynomial_decay_averaging`` is a separate transformation placed LAST in a
  chain (it reads the final update and the params, returns the update
  unchanged and keeps xbar in its state); ``polynomial_decay_averaged_params``
  reads xbar out of an optimizer state. It is not a registry record: it does
  not move the params, so the "decreases the loss" contract does not apply.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as extra_args_lib
from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_DOG = "dog"
_LDOG = "l_dog"
_AVG = "polynomial_decay_averaging"


def _f32_copy(tree):
  # A float32 (or wider) copy, never an alias of params: users donate params and state.
  return jax.tree.map(lambda x: jnp.array(
      x, dtype=jnp.promote_types(jnp.result_type(x), jnp.float32), copy=True), tree)


def _copy(tree):
  return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


class ScaleByDogState(NamedTuple):
  """State of DoG (the fields of ``optax.contrib.DoGState``, float32 statistics)."""
  is_init_step: jax.Array        # bool, (): True before the first update
  init_params: optax.Params      # x_0, params' dtype and shapes
  max_dist: jax.Array            # rbar, float32 (float64 for float64 params), ()
  sum_sq_norm_grads: jax.Array   # G, same dtype as max_dist, ()


def _check_dog_args(name, reps_rel, eps, init_eta):
  validate.positive(name, eps=eps)
  if init_eta is None:
    validate.positive(name, reps_rel=reps_rel)
  else:
    validate.positive(name, init_eta=init_eta)


def _dog_direction(name, reps_rel, eps, init_eta, layerwise):
  """DoG (global rbar, G) or L-DoG (per leaf); shared arithmetic."""
  _check_dog_args(name, reps_rel, eps, init_eta)
  state_cls = ScaleByLDogState if layerwise else ScaleByDogState

  def reduce(tree, dt):  # per-leaf scalars -> the state's layout
    if layerwise:
      return tree
    return sum(jax.tree.leaves(tree), jnp.zeros([], dt))

  def init_fn(params):
    dt = numerics.stat_dtype(params)
    sq = jax.tree.map(lambda x: jnp.sum(jnp.square(jnp.asarray(x).astype(dt))), params)
    norm_x0 = jax.tree.map(jnp.sqrt, reduce(sq, dt))
    if init_eta is None:  # 'heuristic' r_eps = reps_rel (1 + ||x_0||)
      r_eps = jax.tree.map(lambda n: (jnp.asarray(reps_rel, dt) * (1.0 + n)).astype(dt), norm_x0)
    else:  # formll/dog: reps_rel = 0 when init_eta is given
      r_eps = jax.tree.map(jnp.zeros_like, norm_x0)
    return state_cls(
        is_init_step=jnp.asarray(True),
        init_params=_copy(params),
        max_dist=r_eps,
        sum_sq_norm_grads=jax.tree.map(jnp.zeros_like, norm_x0))

  def update_fn(updates, state, params=None, **extra):
    del extra
    tree_lib.check_same_structure(name, updates, state.init_params)
    extra_args_lib.require_params(name, params, "DoG measures ||x_t - x_0||")
    dt = jnp.result_type(jnp.float32, *jax.tree.leaves(state.max_dist))
    dist_sq = jax.tree.map(
        lambda p, p0: jnp.sum(jnp.square(jnp.asarray(p).astype(dt) - p0.astype(dt))),
        params, state.init_params)
    dist = jax.tree.map(jnp.sqrt, reduce(dist_sq, dt))
    max_dist = jax.tree.map(jnp.maximum, state.max_dist, dist)           # rbar_t
    g_sq = jax.tree.map(lambda g: jnp.sum(jnp.square(jnp.asarray(g).astype(dt))), updates)
    sum_sq = jax.tree.map(jnp.add, state.sum_sq_norm_grads, reduce(g_sq, dt))  # G_t
    eta = jax.tree.map(lambda r, s: r / jnp.sqrt(s + eps), max_dist, sum_sq)
    if init_eta is not None:
      eta = jax.tree.map(lambda e: jnp.where(state.is_init_step, init_eta, e).astype(dt), eta)
    if layerwise:
      d = jax.tree.map(lambda e, g: e * jnp.asarray(g).astype(dt), eta, updates)
    else:
      d = jax.tree.map(lambda g: eta * jnp.asarray(g).astype(dt), updates)
    new_state = state_cls(
        is_init_step=jnp.zeros_like(state.is_init_step),
        init_params=state.init_params,
        max_dist=optax.tree.cast_like(max_dist, state.max_dist),
        sum_sq_norm_grads=optax.tree.cast_like(sum_sq, state.sum_sq_norm_grads))
    return optax.tree.cast_like(d, state.init_params), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_dog(reps_rel: float = 1e-6, eps: float = 1e-8, *,
                 init_eta: Optional[float] = None) -> optax.GradientTransformationExtraArgs:
  r"""DoG's scaling (no multiplier c), eqs. (1)-(3).

  .. math::
    \bar r_t = \max(r_\epsilon, \max_{i\le t}\|x_i - x_0\|),\quad
    \eta_t = \bar r_t / \sqrt{\textstyle\sum_{i\le t}\|g_i\|^2 + \epsilon},\quad
    d_t = \eta_t g_t.

  Global over the whole tree. ``init`` must receive the real initial params
  (x_0 and r_eps come from them); ``update`` needs ``params``.

  Args:
    reps_rel: r_eps = reps_rel (1 + ||x_0||) (paper: 1e-6; 1e-4 with batch norm).
    eps: added to G inside the square root (formll/dog, optax).
    init_eta: if given, the first step size (formll/dog ``init_eta``; optax's
      ``('learning_rate', init_eta)`` mode); then r_eps = 0 and ``reps_rel`` is ignored.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> p = jnp.array([3.0, 4.0])
    >>> tx = optkit.scale_by_dog(reps_rel=0.1)
    >>> d, _ = tx.update(jnp.array([0.0, 1.0]), tx.init(p), p)
    >>> d  # r_eps = 0.1 * (1 + 5) = 0.6; eta_0 = 0.6 / 1
    Array([0. , 0.6], dtype=float32)

  References:
    Ivgi, Hinder, Carmon, 2023, https://arxiv.org/abs/2302.12022
  """
  return _dog_direction(_DOG, reps_rel, eps, init_eta, layerwise=False)


def dog(learning_rate: optax.ScalarOrSchedule = 1.0, reps_rel: float = 1e-6,
        eps: float = 1e-8, weight_decay: float = 0.0, *,
        init_eta: Optional[float] = None,
        mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None
        ) -> optax.GradientTransformationExtraArgs:
  r"""DoG optimizer: ``x_{t+1} = x_t - c * rbar_t / sqrt(G_t + eps) * g_t``.

  ``chain(add_decayed_weights(weight_decay, mask), scale_by_dog(...),
  scale_by_learning_rate(learning_rate))``, the same as
  ``optax.contrib.dog(learning_rate, ('heuristic', reps_rel), eps, weight_decay, mask)``.
  The authors recommend iterate averaging: append
  ``optkit.polynomial_decay_averaging()``.

  Args:
    learning_rate: the multiplier c (paper), 1.0 by convention for a
      parameter-free method; a number or an optax schedule.
    reps_rel: r_eps = reps_rel (1 + ||x_0||).
    eps: added to G inside the square root.
    weight_decay: coupled L2: ``weight_decay * x_t`` is added to the gradient
      before DoG (it enters G), as in formll/dog and optax.
    init_eta: optional first step size (overrides ``reps_rel``).
    mask: weight-decay mask (optax convention).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax, optax
    >>> import jax.numpy as jnp
    >>> f = lambda x: jnp.sum((x - 3.0) ** 2)
    >>> x = jnp.zeros(2)
    >>> opt = optkit.dog(reps_rel=1e-4)
    >>> s = opt.init(x)
    >>> for _ in range(100):
    ...   u, s = opt.update(jax.grad(f)(x), s, x)
    ...   x = optax.apply_updates(x, u)
    >>> bool(f(x) < 1e-3)
    True

  References:
    Ivgi, Hinder, Carmon, 2023, https://arxiv.org/abs/2302.12022
  """
  validate.learning_rate(_DOG, learning_rate)
  validate.non_negative(_DOG, weight_decay=weight_decay)
  return optax.with_extra_args_support(optax.chain(
      optax.add_decayed_weights(weight_decay, mask),
      scale_by_dog(reps_rel, eps, init_eta=init_eta),
      optax.scale_by_learning_rate(learning_rate),
  ))


class ScaleByLDogState(NamedTuple):
  """State of L-DoG: per-leaf rbar and G."""
  is_init_step: jax.Array        # bool, (): True before the first update
  init_params: optax.Params      # x_0, params' dtype and shapes
  max_dist: optax.Params         # rbar per leaf: tree of float32 ()
  sum_sq_norm_grads: optax.Params  # G per leaf: tree of float32 ()


def scale_by_l_dog(reps_rel: float = 1e-6, eps: float = 1e-8, *,
                   init_eta: Optional[float] = None) -> optax.GradientTransformationExtraArgs:
  r"""Layer-wise DoG's scaling (Section 4): DoG with rbar and G per leaf.

  For every leaf (layer) l:
  :math:`\eta^l_t = \bar r^l_t / \sqrt{G^l_t + \epsilon}`,
  :math:`\bar r^l_t = \max(r^l_\epsilon, \max_{i\le t}\|x^l_i - x^l_0\|)`,
  :math:`r^l_\epsilon = \text{reps\_rel}\,(1 + \|x^l_0\|)`,
  :math:`G^l_t = \sum_{i\le t}\|g^l_i\|^2`; the direction is :math:`\eta^l_t g^l_t`.

  Args:
    reps_rel: per-leaf r_eps = reps_rel (1 + ||x_0^l||).
    eps: added to each G inside the square root.
    init_eta: if given, the first step size of every leaf (r_eps = 0).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> p = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.0])}
    >>> tx = optkit.scale_by_l_dog(reps_rel=0.1)
    >>> d, _ = tx.update({"a": jnp.array([0.0, 2.0]), "b": jnp.array([1.0])}, tx.init(p), p)
    >>> d["a"], d["b"]  # eta_a = 0.6 / 2, eta_b = 0.1 / 1
    (Array([0. , 0.6], dtype=float32), Array([0.1], dtype=float32))

  References:
    Ivgi, Hinder, Carmon, 2023, https://arxiv.org/abs/2302.12022
  """
  return _dog_direction(_LDOG, reps_rel, eps, init_eta, layerwise=True)


def l_dog(learning_rate: optax.ScalarOrSchedule = 1.0, reps_rel: float = 1e-6,
          eps: float = 1e-8, weight_decay: float = 0.0, *,
          init_eta: Optional[float] = None,
          mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None
          ) -> optax.GradientTransformationExtraArgs:
  r"""L-DoG optimizer (layer-wise DoG): per-leaf ``c * rbar^l / sqrt(G^l + eps)``.

  ``chain(add_decayed_weights(weight_decay, mask), scale_by_l_dog(...),
  scale_by_learning_rate(learning_rate))`` (coupled L2, as ``dog``).

  Args:
    learning_rate: the multiplier c, 1.0 by convention; a number or a schedule.
    reps_rel: per-leaf r_eps = reps_rel (1 + ||x_0^l||).
    eps: added to each G inside the square root.
    weight_decay: coupled L2 added to the gradient before L-DoG.
    init_eta: optional first step size (overrides ``reps_rel``).
    mask: weight-decay mask.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax, optax
    >>> import jax.numpy as jnp
    >>> f = lambda p: jnp.sum((p["a"] - 3.0) ** 2) + 100.0 * jnp.sum((p["b"] + 1.0) ** 2)
    >>> p = {"a": jnp.zeros(2), "b": jnp.zeros(3)}
    >>> opt = optkit.l_dog(reps_rel=1e-4)
    >>> s = opt.init(p)
    >>> for _ in range(80):
    ...   u, s = opt.update(jax.grad(f)(p), s, p)
    ...   p = optax.apply_updates(p, u)
    >>> bool(f(p) < 1e-2)
    True

  References:
    Ivgi, Hinder, Carmon, 2023, https://arxiv.org/abs/2302.12022
  """
  validate.learning_rate(_LDOG, learning_rate)
  validate.non_negative(_LDOG, weight_decay=weight_decay)
  return optax.with_extra_args_support(optax.chain(
      optax.add_decayed_weights(weight_decay, mask),
      scale_by_l_dog(reps_rel, eps, init_eta=init_eta),
      optax.scale_by_learning_rate(learning_rate),
  ))


class PolynomialDecayAveragingState(NamedTuple):
  """State of polynomial-decay averaging."""
  count: jax.Array              # int32, (): number of averaged iterates t
  averaged_params: optax.Params  # xbar_t, float32 (or wider) like the params


def polynomial_decay_averaging(gamma: float = 8.0) -> optax.GradientTransformationExtraArgs:
  r"""Polynomial-decay iterate averaging (Shamir & Zhang 2013; DoG paper, Section 5).

  Place it LAST in a chain. With the final update u_t and the params x_t it
  forms x_{t+1} = x_t + u_t and updates

  .. math::
    \bar x_{t} = \Big(1 - \frac{1+\gamma}{t+\gamma}\Big)\bar x_{t-1}
                 + \frac{1+\gamma}{t+\gamma}\, x_{t},\qquad t = 1, 2, \dots

  (w_1 = 1, so xbar_1 = x_1; gamma = 0 gives the uniform average of x_1..x_t,
  gamma -> inf the last iterate). The update passes through unchanged; read the
  average with ``polynomial_decay_averaged_params(opt_state)``.

  Args:
    gamma: decay parameter (default 8, formll/dog).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (needs ``params``).

  Example:
    >>> import optkit
    >>> import optax
    >>> import jax.numpy as jnp
    >>> tx = optax.chain(optax.sgd(1.0), optkit.polynomial_decay_averaging(gamma=0.0))
    >>> x = jnp.array([0.0])
    >>> s = tx.init(x)
    >>> for g in (-1.0, -1.0, -1.0):  # iterates 1, 2, 3
    ...   u, s = tx.update(jnp.array([g]), s, x)
    ...   x = optax.apply_updates(x, u)
    >>> optkit.polynomial_decay_averaged_params(s)  # uniform average
    Array([2.], dtype=float32)

  References:
    Ivgi, Hinder, Carmon, 2023, https://arxiv.org/abs/2302.12022;
    Shamir & Zhang, 2013, https://arxiv.org/abs/1212.1824
  """
  validate.non_negative(_AVG, gamma=gamma)

  def init_fn(params):
    return PolynomialDecayAveragingState(jnp.zeros([], jnp.int32), _f32_copy(params))

  def update_fn(updates, state, params=None, **extra):
    del extra
    tree_lib.check_same_structure(_AVG, updates, state.averaged_params)
    extra_args_lib.require_params(_AVG, params, "the average is of the iterates x_t + u_t")
    count = optax.safe_increment(state.count)
    dt = jnp.result_type(jnp.float32, *jax.tree.leaves(state.averaged_params))
    t = count.astype(dt)
    gam = jnp.asarray(gamma, dt)
    w = (1.0 + gam) / (t + gam)
    avg = jax.tree.map(
        lambda a, p, u: (1.0 - w) * a + w * (jnp.asarray(p, a.dtype) + jnp.asarray(u, a.dtype)),
        state.averaged_params, params, updates)
    avg = optax.tree.cast_like(avg, state.averaged_params)
    return updates, PolynomialDecayAveragingState(count, avg)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def polynomial_decay_averaged_params(opt_state: Any) -> Any:
  """The averaged params xbar held by a ``polynomial_decay_averaging`` in ``opt_state``.

  Searches the (nested) optimizer state; raises ValueError if there is none.
  See ``polynomial_decay_averaging`` for an example.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optkit
    >>> opt = optax.chain(optax.sgd(0.1), optkit.polynomial_decay_averaging(gamma=8.0))
    >>> p = jnp.array([1.0, -2.0])
    >>> state = opt.init(p)
    >>> u, state = opt.update(2 * p, state, p)
    >>> optkit.polynomial_decay_averaged_params(state).round(3)
    Array([ 0.8, -1.6], dtype=float32)
  """
  found = []

  def visit(s):
    if isinstance(s, PolynomialDecayAveragingState):
      found.append(s.averaged_params)
    elif isinstance(s, (tuple, list)):
      for x in s:
        visit(x)
    elif isinstance(s, dict):
      for x in s.values():
        visit(x)

  visit(opt_state)
  if not found:
    raise ValueError(f"{_AVG}: the optimizer state holds no PolynomialDecayAveragingState; "
                     "chain `optkit.polynomial_decay_averaging()` last.")
  return found[0]
