"""O2NC: online-to-non-convex conversion with projected online gradient descent.

Cutkosky, Mehta & Orabona, "Optimal Stochastic Non-smooth Non-convex
Optimization through Online-to-Non-convex Conversion", arXiv:2302.03775
(ICML 2023), Algorithm 1 with online gradient descent on the D-ball as the
online learner (the instance of its Corollary for stochastic gradients; restated
as "Algorithm 2" by later papers that build on it). Round n = 1, 2, ...::

  Delta_1 = 0
  s_n ~ Uniform[0, 1]
  x_n = x_{n-1} + Delta_n                      # the anchor moves by the full Delta
  w_n = x_{n-1} + s_n Delta_n                  # the gradient is taken HERE
  g_n = grad F(w_n; z_n)
  Delta_{n+1} = min(1, D / ||Delta_n - eta g_n||) (Delta_n - eta g_n)
  output: average of w over periods of T rounds (w-bar_k), one picked at random

Paper -> code: D -> ``radius``, eta -> ``learning_rate``, T (period length) ->
``period``, s_n -> ``state.scale``, x_{n-1} -> ``state.anchor``, Delta_n ->
``state.delta``. The theory sets eta = D / (G sqrt(T)) and T D <= delta (the
Goldstein radius); there are no practical defaults, so ``radius`` and
``learning_rate`` are required.

Gradient at a shifted point (catalog convention): the params the model sees are
w_n; the anchor x_{n-1} and Delta_n live in the state (float32). ``update``
receives g_n (computed at w_n = the visible params) and returns
``w_{n+1} - params``, which moves the visible params to the next evaluation
point (re-anchored on the state every step, so low-precision params do not
drift from the float32 anchor). The returned update is a displacement, not a
gradient direction: do not chain ``scale_by_learning_rate`` after it (eta and D
act inside). ``update`` requires ``params``. ``o2nc_eval_params(state)`` gives
the point to evaluate: the mean of w over the last completed period (``period``
given), else the anchor x_n.

Decisions on the catalog's UNSURE points:

* s is drawn afresh every round (Algorithm 1 samples s_n per round).
* Output iterate: the mean of the evaluation points w over consecutive periods
  of ``period`` rounds; the paper returns one period mean chosen uniformly at
  random, which an online transformation cannot do, so the state keeps the mean
  of the LAST completed period (and the running sum of the current one).
  ``period=None`` keeps no averages (two params-sized buffers fewer). Before
  the first period completes, the "last period mean" is x_0.
* Delta is never reset at period boundaries (the restated Algorithm uses plain
  projected OGD over all rounds).
* D and eta: required arguments (theory values depend on G, delta, T).
* The ball projection is on the GLOBAL norm of Delta over the whole pytree.

Weight decay (not in the paper): ``o2nc(weight_decay=lambda)`` adds lambda w_n
to the gradient before the online learner (the gradient of
F + lambda/2 ||w||^2 at the evaluation point); decoupled decay would break the
anchor bookkeeping.

Test hook: ``sample_fn(key) -> scalar`` replaces the Uniform[0, 1] draw (e.g.
``lambda key: 1.0`` makes the visible params the anchor x_n, i.e. projected
online GD on x).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as extra_args_lib
from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "o2nc"
_DIR_NAME = "scale_by_o2nc"

SampleFn = Callable[[jax.Array], Any]


class ScaleByO2ncState(NamedTuple):
  count: jax.Array          # int32, shape (): rounds done (n - 1)
  key: jax.Array            # uint32 key data, split every round
  scale: jax.Array          # float32, shape (): s_n of the current visible point
  anchor: optax.Params      # x_{n-1}; float32 (float64 for f64 params)
  delta: optax.Updates      # Delta_n; float32
  period_sum: Any           # sum of w over the current period, or None
  period_mean: Any          # mean of w over the last completed period, or None


def _uniform(key):
  return jax.random.uniform(key, dtype=jnp.float32)


def _project_to_ball(tree, radius):
  """min(1, D / ||v||) v with the global norm (0 / 0 guarded)."""
  norm = optax.tree.norm(tree)
  big = norm > radius
  factor = jnp.where(big, radius / jnp.where(big, norm, 1.0), 1.0)
  return jax.tree.map(lambda v: (factor * v).astype(v.dtype), tree)


def scale_by_o2nc(
    learning_rate: optax.ScalarOrSchedule,
    radius: float,
    period: Optional[int] = None,
    *,
    seed: int = 0,
    sample_fn: Optional[SampleFn] = None,
) -> optax.GradientTransformation:
  r"""O2NC with projected online gradient descent (the learning rate acts inside).

  .. math::
    \Delta_{n+1} = \Pi_{\|\cdot\|\le D}(\Delta_n - \eta g_n),\quad
    x_n = x_{n-1} + \Delta_n,\quad
    w_{n+1} = x_n + s_{n+1}\Delta_{n+1},\ s\sim U[0,1],

  where :math:`g_n` is the gradient at the visible params :math:`w_n`; returns
  :math:`w_{n+1} - w_n` (a displacement: do not scale it by a learning rate).

  Args:
    learning_rate: eta, the online learner's step (a number or a schedule,
      evaluated at the round count).
    radius: D, the radius of the ball Delta is projected on (global norm).
    period: T, the averaging period of the output iterate (static); None keeps
      no average.
    seed: seed of the PRNG key for s_n.
    sample_fn: test hook, ``typed_key -> scalar in [0, 1]`` (default U[0, 1]).

  Returns:
    An ``optax.GradientTransformation``; ``update`` requires ``params``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.momentum import scale_by_o2nc
    >>> tx = scale_by_o2nc(0.1, radius=1.0, sample_fn=lambda key: 1.0)
    >>> w = jnp.array([1.0, -2.0])
    >>> tx.update(w, tx.init(w), w)[0]  # Delta_2 = -0.1 g, s = 1
    Array([-0.1,  0.2], dtype=float32)

  References:
    Cutkosky, Mehta, Orabona, Optimal Stochastic Non-smooth Non-convex
    Optimization through Online-to-Non-convex Conversion,
    https://arxiv.org/abs/2302.03775
  """
  validate.learning_rate(_DIR_NAME, learning_rate)
  validate.positive(_DIR_NAME, radius=radius)
  if period is not None:
    validate.integer_at_least(_DIR_NAME, 1, period=period)
  validate.callable_or_none(_DIR_NAME, sample_fn=sample_fn)
  draw = _uniform if sample_fn is None else sample_fn

  def init_fn(params):
    f32 = lambda p: jnp.array(p, dtype=numerics.stat_dtype(p), copy=True)
    zeros = lambda p: jnp.zeros(jnp.shape(p), numerics.stat_dtype(p))
    averaging = period is not None
    return ScaleByO2ncState(
        count=jnp.zeros([], jnp.int32),
        key=jax.random.key_data(jax.random.key(seed)),
        scale=jnp.zeros([], jnp.float32),   # Delta_1 = 0: any s gives w_1 = x_0
        anchor=jax.tree.map(f32, params),
        delta=jax.tree.map(zeros, params),
        period_sum=jax.tree.map(zeros, params) if averaging else None,
        period_mean=jax.tree.map(f32, params) if averaging else None)

  def update_fn(updates, state, params=None):
    tree_lib.check_same_structure(_DIR_NAME, updates, state.delta)
    params = extra_args_lib.require_params(
        _DIR_NAME, params, "the update moves the visible params to the next point")
    eta = learning_rate(state.count) if callable(learning_rate) else learning_rate
    g = optax.tree.cast_like(updates, state.delta)
    # w_n = x_{n-1} + s_n Delta_n: where g_n was taken.
    w = jax.tree.map(lambda x, d: x + state.scale * d, state.anchor, state.delta)
    delta = _project_to_ball(
        jax.tree.map(lambda d, gi: d - eta * gi, state.delta, g), radius)
    anchor = jax.tree.map(lambda x, d: x + d, state.anchor, state.delta)  # x_n
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    s = jnp.asarray(draw(sub), jnp.float32).reshape(())
    w_next = jax.tree.map(lambda x, d: x + s * d, anchor, delta)
    out = jax.tree.map(lambda wn, p: wn - p.astype(wn.dtype), w_next, params)
    count = optax.safe_increment(state.count)
    period_sum, period_mean = state.period_sum, state.period_mean
    if period is not None:
      period_sum = jax.tree.map(lambda a, b: a + b, period_sum, w)
      done = (count % period) == 0
      period_mean = jax.tree.map(lambda m, a: jnp.where(done, a / period, m),
                                 period_mean, period_sum)
      period_sum = jax.tree.map(lambda a: jnp.where(done, jnp.zeros_like(a), a),
                                period_sum)
    new_state = ScaleByO2ncState(
        count=count, key=jax.random.key_data(key), scale=s, anchor=anchor,
        delta=delta, period_sum=period_sum, period_mean=period_mean)
    return optax.tree.cast_like(out, updates), new_state

  return optax.GradientTransformation(init_fn, update_fn)


def o2nc(
    learning_rate: optax.ScalarOrSchedule,
    radius: float,
    period: Optional[int] = None,
    weight_decay: float = 0.0,
    *,
    mask: Any = None,
    seed: int = 0,
    sample_fn: Optional[SampleFn] = None,
) -> optax.GradientTransformation:
  r"""O2NC optimizer: ``scale_by_o2nc`` after an optional L2 term on the gradient.

  Args:
    learning_rate: eta of the online learner (number or schedule).
    radius: D, the ball radius of Delta (global norm).
    period: T, the averaging period of ``o2nc_eval_params`` (static); None
      keeps no average.
    weight_decay: lambda; adds lambda w to the gradient (L2 on F), default 0.
    mask: weight-decay mask, as in ``optax.add_decayed_weights``.
    seed: seed of the PRNG key for s_n.
    sample_fn: test hook for s_n (see ``scale_by_o2nc``).

  Returns:
    An ``optax.GradientTransformation`` whose update moves the visible params to
    the next evaluation point; ``update`` requires ``params``.

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> opt = optkit.o2nc(0.1, radius=0.05, sample_fn=lambda key: 1.0)
    >>> w = jnp.array([3.0, 4.0])
    >>> u, state = opt.update(w, opt.init(w), w)  # ||-0.1 g|| = 0.5 > D
    >>> u
    Array([-0.03, -0.04], dtype=float32)

  References:
    Cutkosky, Mehta, Orabona, Optimal Stochastic Non-smooth Non-convex
    Optimization through Online-to-Non-convex Conversion,
    https://arxiv.org/abs/2302.03775
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.positive(_NAME, radius=radius)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      optax.add_decayed_weights(weight_decay, mask),
      scale_by_o2nc(learning_rate, radius, period, seed=seed, sample_fn=sample_fn),
  )


def _find_state(algo, state, cls):
  found = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, cls))
           if isinstance(s, cls)]
  if len(found) != 1:
    raise ValueError(f"{algo}: expected exactly one {cls.__name__} in `state`, "
                     f"found {len(found)}.")
  return found[0]


def o2nc_eval_params(state: Any) -> optax.Params:
  """The point to evaluate an O2NC run at (float32 tree).

  The mean of the evaluation points w over the last completed period when the
  transformation was built with ``period``, else the anchor x_n. ``state`` may
  be the state of ``o2nc``/``scale_by_o2nc`` or of any chain holding exactly one.

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> opt = optkit.o2nc(0.1, radius=0.5)
    >>> p = jnp.array([1.0, -2.0])
    >>> state = opt.init(p)
    >>> u, state = opt.update(2 * p, state, p)
    >>> optkit.o2nc_eval_params(state).shape
    (2,)
  """
  s = _find_state("o2nc_eval_params", state, ScaleByO2ncState)
  return s.anchor if s.period_mean is None else s.period_mean
