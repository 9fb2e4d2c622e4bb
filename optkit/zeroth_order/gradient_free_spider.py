"""GFM+: gradient-free method with SPIDER variance reduction (alias ZO-SPIDER).

Chen, Xu & Luo, "Faster Gradient-Free Algorithms for Nonsmooth Nonconvex
Stochastic Optimization", ICML 2023, arXiv:2301.06428, Algorithm GFM+::

    g(x; w, xi) = d / (2 delta) (F(x + delta w; xi) - F(x - delta w; xi)) w,   w ~ Unif(unit sphere of R^d)
    t mod q == 0:  v_t = (1/b') sum_{j <= b'} g(x_t; w_j, xi_j)                        (large batch)
    otherwise:     v_t = v_{t-1} + (1/b) sum_{j <= b} [g(x_t; w_j, xi_j) - g(x_{t-1}; w_j, xi_j)]
    x_{t+1} = x_t - eta v_t

g is an unbiased estimate of the gradient of the delta-smoothed function
f_delta(x) = E_{u ~ Unif(ball)} f(x + delta u) (for a quadratic, of f itself).

Paper -> code: delta -> ``delta``; b -> ``batch_size``; b' ->
``large_batch_size``; q -> ``refresh_every``; eta -> ``learning_rate``; d -> the
total number of parameters; F(.; xi) -> ``value_fn`` (the current batch); v_t ->
``ScaleByGFMPlusState.v``; x_{t-1} -> ``ScaleByGFMPlusState.x_prev``; t ->
``count`` (starting at 0, so the first step is a large-batch step).

The same w_j (and the same batch xi: the caller's ``value_fn``) are used at
x_t and x_{t-1}, as the SPIDER difference requires. One ``value_fn`` serves a
whole step, so the b (or b') directions share the caller's minibatch xi rather
than drawing b independent samples: pass a larger batch in ``value_fn`` for the
paper's b' samples of xi. Evaluations are at float32 copies of the params.

UNSURE points, decided:

* The step is NOT normalized: x_{t+1} = x_t - eta v_t (Algorithm GFM+ as the
  catalog states it; GFM of Lin et al. 2022, which GFM+ accelerates, is plain
  too). Chain ``optax.normalize_by_update_norm`` before the learning rate for a
  normalized variant.
* Constants: delta = 0.01, b' = 16, b = q = 4 (= sqrt(b'), the usual SPIDER
  coupling b = q = sqrt(b') that the analysis uses up to constants); eta has
  no default (``learning_rate`` is required). The paper's theoretical values
  depend on unknown Lipschitz constants and target accuracy.
* x_{t-1} is stored as a float32 copy; before the first step it is zeros and
  unused (step 0 refreshes).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as _extra
from optkit.core import tree as _tree
from optkit.core import validate
from optkit.zeroth_order import _common as C

_NAME = "gfm_plus"


class ScaleByGFMPlusState(NamedTuple):
  """State of :func:`scale_by_gfm_plus`."""
  count: jax.Array      # int32, shape (): t
  key: jax.Array        # uint32 key data, shape (2,)
  v: optax.Updates      # v_{t-1}, SPIDER estimate; params' shapes, float32
  x_prev: optax.Params  # x_{t-1}; params' shapes, float32 (zeros before step 0)


def _difference(value_fn, x, w, delta):
  """F(x + delta w) - F(x - delta w)."""
  return (C.evaluate(value_fn, C.axpy(delta, w, x))
          - C.evaluate(value_fn, C.axpy(-delta, w, x)))


def scale_by_gfm_plus(delta: float = 0.01,
                      batch_size: int = 4,
                      large_batch_size: int = 16,
                      refresh_every: int = 4,
                      seed: int = 0) -> optax.GradientTransformationExtraArgs:
  """GFM+ direction: the SPIDER-corrected two-point estimate v_t (no learning rate).

  Args:
    delta: smoothing radius delta > 0 (0.01; see the module docstring).
    batch_size: b, sphere directions per SPIDER correction step (static, 4).
    large_batch_size: b', directions at a refresh step (static, 16).
    refresh_every: q, refresh period in steps (static, 4).
    seed: seed of the PRNG key kept in the state.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (needs ``params`` and
    ``value_fn``); the incoming updates are ignored (structure checked).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_gfm_plus(large_batch_size=4000)
    >>> p = jnp.array([1.0, -2.0])
    >>> v, _ = tx.update(jnp.zeros(2), tx.init(p), p, value_fn=lambda q: q @ q)
    >>> bool(jnp.allclose(v, 2 * p, atol=0.3))
    True

  References:
    Chen, Xu & Luo, `Faster Gradient-Free Algorithms for Nonsmooth Nonconvex
    Stochastic Optimization <https://arxiv.org/abs/2301.06428>`_, ICML 2023.
  """
  validate.positive(_NAME, delta=delta)
  validate.integer_at_least(_NAME, 1, batch_size=batch_size,
                            large_batch_size=large_batch_size, refresh_every=refresh_every)
  b, b_large, q = int(batch_size), int(large_batch_size), int(refresh_every)

  # Compiled as one program, eagerly or inside the caller's jit: the estimate
  # divides rounding by delta, so eager op-by-op rounding would differ.
  def _core(value_fn, x, sub, count, v_prev, x_prev, delta):
    scale = C.num_params(x) / (2.0 * delta)          # d / (2 delta)

    def refresh():                                   # large batch
      def one(acc, k):
        w = C.sphere_like(k, x)
        return C.axpy(scale * _difference(value_fn, x, w, delta), w, acc), None
      total, _ = jax.lax.scan(one, C.zeros_work(x), C.split(sub, b_large))
      return jax.tree.map(lambda s: s / b_large, total)

    def correct():                                   # same w at x_t and x_{t-1}
      def one(acc, k):
        w = C.sphere_like(k, x)
        c = scale * (_difference(value_fn, x, w, delta)
                     - _difference(value_fn, x_prev, w, delta))
        return C.axpy(c, w, acc), None
      total, _ = jax.lax.scan(one, C.zeros_work(x), C.split(sub, b))
      return jax.tree.map(lambda v, s: v + s / b, v_prev, total)

    return jax.lax.cond(count % q == 0, refresh, correct)

  _estimate = jax.jit(_core, static_argnums=0)

  def init_fn(params):
    return ScaleByGFMPlusState(jnp.zeros([], jnp.int32), C.init_key(seed),
                               C.zeros_work(params), C.zeros_work(params))

  def update_fn(updates, state, params=None, **extra):
    value_fn = _extra.require(_NAME, extra, "value_fn")
    _extra.require_params(_NAME, params, "the loss is queried around params")
    _tree.check_same_structure(_NAME, updates, state.v)
    x = C.to_work(params)
    key, sub = C.split(state.key)
    v = _estimate(value_fn, x, sub, state.count, state.v, state.x_prev, delta)
    v = optax.tree.cast_like(v, state.v)
    new_state = ScaleByGFMPlusState(optax.safe_increment(state.count), key, v,
                                    optax.tree.cast_like(x, state.x_prev))
    return C.cast_like(v, updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def gfm_plus(learning_rate: optax.ScalarOrSchedule,
             delta: float = 0.01,
             batch_size: int = 4,
             large_batch_size: int = 16,
             refresh_every: int = 4,
             seed: int = 0,
             weight_decay: float = 0.0,
             *,
             mask: Optional[Any] = None) -> optax.GradientTransformationExtraArgs:
  """GFM+ (ZO-SPIDER): ``x_{t+1} = x_t - eta v_t`` with the SPIDER estimate v_t.

  ``chain(scale_by_gfm_plus(...), add_decayed_weights(weight_decay, mask),
  scale_by_learning_rate(learning_rate))``.

  Args:
    learning_rate: eta, a float or an optax schedule.
    delta, batch_size, large_batch_size, refresh_every, seed: see
      :func:`scale_by_gfm_plus`.
    weight_decay: decoupled weight decay (0).
    mask: weight-decay mask.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.gfm_plus(0.1, large_batch_size=4000)
    >>> p = jnp.array([1.0, -2.0])
    >>> u, _ = opt.update(jnp.zeros(2), opt.init(p), p, value_fn=lambda q: q @ q)
    >>> bool(jnp.allclose(u, -0.2 * p, atol=0.03))
    True

  References:
    Chen, Xu & Luo, `Faster Gradient-Free Algorithms for Nonsmooth Nonconvex
    Stochastic Optimization <https://arxiv.org/abs/2301.06428>`_, ICML 2023.
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_gfm_plus(delta, batch_size, large_batch_size, refresh_every, seed),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate))


zo_spider = gfm_plus
