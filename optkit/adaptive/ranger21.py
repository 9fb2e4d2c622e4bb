"""Ranger21: AdamW-type steps with AGC, GC, PNM, stable decay and lookahead.

Wright & Demeure, "Ranger21: a synergistic deep learning optimizer",
arXiv:2106.13731. The paper describes the composition; the exact formulas
(order, constants, schedule) follow pytorch_optimizer 4.1.0 ``Ranger21`` (read,
and matched to 1e-5 by a fixture, tests/fixtures/reference/adaptive_ranger21.npz).
One step, t = count + 1, for every leaf w (g its gradient)::

  1. AGC: per unit r, g_r <- g_r * min(1, agc_clip max(||w_r||, agc_eps) / ||g_r||)
  2. gradient centralization (ndim > 1): g <- g - mean over all axes but 0
  3. gradient normalization (size > 2):   g <- g / (std(g, unbiased) + 1e-8)
  4. v <- b2 v + (1 - b2) g^2,   v_max <- max(v_max, v)
  5. stable weight decay: w <- w (1 - eta_t wd / s),
       s = sqrt((1 + sum over ALL leaves of sum(v / (1 - b2^t))) / total_size)
  6. norm loss: w <- w (1 - eta_t 2 nl (1 - 1 / (||w_r|| + eps)))     (unit norms)
  7. positive-negative momentum (g re-centralized and re-normalized first):
       odd t:  m_odd  <- b1^2 m_odd  + (1 - b1^2) g,  (cur, other) = (m_odd, m_even)
       even t: m_even <- b1^2 m_even + (1 - b1^2) g,  (cur, other) = (m_even, m_odd)
       n = ((1 + beta0) cur - beta0 other) / sqrt((1 + beta0)^2 + beta0^2)
  8. d = softplus_beta(sqrt(v_max) / sqrt(1 - b2^t) + eps)   (torch softplus, threshold 20)
  9. w <- w - (eta_t / (1 - b1^t)) n / d                    (b1, not b1^2, in the correction)
  10. lookahead, every k steps: w <- alpha w + (1 - alpha) w_slow;  w_slow <- w

Units (``unit_norm``): the whole tensor for ndim <= 1, axis 1 for 2-D and 3-D
leaves, all axes but 0 for ndim >= 4 -- the reference's convention on torch's
(out, in, ...) layout, applied to the array as stored (for a JAX (in, out)
Dense kernel the "units" are then the input rows).

eta_t (t from 1): W = ceil(2 / (1 - b2)), replaced by floor(0.22 T) when
W > 0.45 T;  eta_t = eta min(1, t / W) for t <= W; from t >= floor(0.72 T) on,
eta_t = max(eta - (eta - min_lr) min((t + 1 - floor(0.72 T)) / (N_d + 1), 1), min_lr)
with N_d = T - floor(0.72 T) (warm-down starts from eta, not the warm-up value).
With a schedule as ``learning_rate``, eta = schedule(count).

Paper/reference -> code: lr -> ``learning_rate``, num_iterations -> ``num_iterations``
(T), betas -> ``b1, b2``, beta0 -> ``beta0``, agc_clipping_value -> ``agc_clip``,
agc_eps -> ``agc_eps``, beta_softplus -> ``softplus_beta``, norm_loss_factor ->
``norm_loss_factor``, lookahead_merge_time -> ``lookahead_k``,
lookahead_blending_alpha -> ``lookahead_alpha``, warm_down_min_lr ->
``warmdown_min_lr``; grad_ma / neg_grad_ma -> ``mu_odd`` / ``mu_even``,
variance_ma -> ``nu``, max_variance_ma -> ``nu_max``, lookahead_params -> ``slow``.
Defaults: the reference's (lr 1e-3, b1 0.9, b2 0.999, beta0 0.9, eps 1e-8,
wd 1e-4, norm loss 1e-4, AGC 1e-2 / 1e-3, softplus beta 50, lookahead 5 / 0.5,
min lr 3e-5).

Composition: ``ranger21`` is ``optax.chain(AGC, optax.centralize(),
normalize_by_std(), <Ranger21 core>)``. AGC calls ``optax.adaptive_grad_clip``
leaf by leaf with the reference's unit axes (optax's default axes differ: axis 0
for 2-D). ``optax.lookahead`` is NOT used: it needs ``LookaheadParams``
(fast, slow) pairs as params, while optkit keeps plain params; the slow
weights live in the core's state (``Ranger21State.slow``; read them with
``optax.tree.get(state, "slow")``) and the visible params are the fast
weights, as in the reference and in optax. A test checks equality with
``optax.lookahead`` on the fast weights.

Pieces exported for reuse: ``normalize_by_std`` (step 3), ``scale_by_pnm``
(step 7, without bias correction), ``add_stable_weight_decay`` (step 5 as an
additive, chainable term; see its docstring for the normalizer it can see).
``add_norm_loss`` belongs to the constraints family and is not defined here.

UNSURE (catalog), decided:
- The original lessw2020/Ranger21 code was not read; pytorch_optimizer 4.1.0 is
  the reference, including its double centralization/normalization (step 7).
- W from a concrete ``b2`` is computed in float64 exactly as the reference
  (including its rounding: b2 = 0.9 gives ceil(20.000000000000004) = 21). A
  traced ``b2`` (inject_hyperparams under jit) uses float32: 2/(1 - b2) is
  rounded to the nearest integer when within 1e-4 relative (b2 = 0.999, 0.99,
  0.95 give the reference's 2000, 200, 40; b2 = 0.9 gives 20, not 21). Pass
  ``num_warmup_iterations`` to fix W.
- W = 0 (T <= 4) is raised to 1 (the reference divides by zero there).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import extra_args
from optkit.core import tree as tree_lib
from optkit.core import validate

_NORMALIZE_EPS = 1e-8     # reference: normalize_gradient's epsilon
_SOFTPLUS_THRESHOLD = 20.0  # torch.nn.functional.softplus default threshold
_WARMUP_PCT = 0.22        # reference: build_warm_up_iterations
_WARMUP_MAX_FRACTION = 0.45
_WARMDOWN_START_PCT = 0.72  # reference: build_warm_down_iterations


# ------------------------------------------------------------------ kernels


def _f32(x):
  return jnp.asarray(x).astype(jnp.promote_types(jnp.result_type(x), jnp.float32))


def _unit_axes(ndim: int):
  """Reduction axes of the reference's ``unit_norm`` (None: the whole tensor)."""
  if ndim <= 1:
    return None
  if ndim in (2, 3):
    return 1
  return tuple(range(1, ndim))


def _unit_norm(x):
  axes = _unit_axes(jnp.ndim(x))
  if axes is None:
    return jnp.sqrt(jnp.sum(jnp.square(x)))
  return jnp.sqrt(jnp.sum(jnp.square(x), axis=axes, keepdims=True))


def _normalize_by_std(g, eps):
  if np.prod(jnp.shape(g), dtype=np.int64) <= 2:
    return g
  return g / (jnp.std(g, ddof=1) + eps)


def _centralize(g):
  return optax.centralize().update(g, optax.EmptyState())[0]


def _softplus(x, beta):
  """torch.nn.functional.softplus(x, beta, threshold=20)."""
  bx = beta * x
  soft = jnp.log1p(jnp.exp(jnp.minimum(bx, _SOFTPLUS_THRESHOLD))) / beta
  return jnp.where(bx > _SOFTPLUS_THRESHOLD, x, soft)


def _pnm(g, mu_odd, mu_even, t, b1, beta0):
  """One positive-negative momentum step; returns (n, mu_odd, mu_even)."""
  odd = (t % 2) == 1
  cur = jnp.where(odd, mu_odd, mu_even)
  other = jnp.where(odd, mu_even, mu_odd)
  b1sq = b1 * b1
  cur = cur + (1.0 - b1sq) * (g - cur)   # b1^2 cur + (1 - b1^2) g (torch lerp form)
  noise_norm = jnp.sqrt((1.0 + beta0) ** 2 + beta0 ** 2)
  n = ((1.0 + beta0) * cur - beta0 * other) / noise_norm
  return n, jnp.where(odd, cur, mu_odd), jnp.where(odd, mu_even, cur)


def _split3(like, tree_of_triples):
  """Turns a tree (shaped like ``like``) of 3-tuples into three trees."""
  return jax.tree.transpose(jax.tree.structure(like), jax.tree.structure((0, 0, 0)),
                            tree_of_triples)


def _stable_decay_normalizer(nu, bc2, total_size):
  """s = sqrt((1 + sum_leaves sum(v / (1 - b2^t))) / total_size)."""
  total = 1.0 + sum(jnp.sum(v / bc2) for v in jax.tree.leaves(nu))
  return jnp.sqrt(total / total_size)


def _concrete_float(x) -> Optional[float]:
  if isinstance(x, jax.core.Tracer):
    return None
  try:
    return float(np.asarray(x))
  except Exception:  # pylint: disable=broad-except
    return None


def _one_minus_pow(b, tf):
  """1 - b^t as float32. For a concrete b, log(b) is taken in float64 so that
  the bias corrections match the reference's double-precision ones (a float32
  b = 0.999 alone is off by 1.3e-5 relative in 1 - b); a traced b (injected
  hyperparameter) uses float32 throughout, consistently with its (1 - b)."""
  value = _concrete_float(b)
  if value is not None:
    if value == 0.0:
      return jnp.ones_like(tf)
    return -jnp.expm1(tf * jnp.float32(math.log(value)))
  return -jnp.expm1(tf * jnp.log(jnp.asarray(b, jnp.float32)))


def _warmup_length(b2, num_iterations: int, num_warmup_iterations: Optional[int]):
  """W of the reference (see the module docstring) as an int32 scalar."""
  if num_warmup_iterations is not None:
    return jnp.asarray(max(num_warmup_iterations, 1), jnp.int32)
  fallback = max(int(_WARMUP_PCT * num_iterations), 1)
  b2_value = _concrete_float(b2)
  if b2_value is not None:   # exact, as the reference computes it
    w = math.ceil(2.0 / (1.0 - b2_value))
    return jnp.asarray(fallback if w / num_iterations > _WARMUP_MAX_FRACTION else max(w, 1),
                       jnp.int32)
  x = 2.0 / (1.0 - jnp.asarray(b2, jnp.float32))
  nearest = jnp.round(x)
  w = jnp.where(jnp.abs(x - nearest) <= 1e-4 * x, nearest, jnp.ceil(x))
  return jnp.where(w / num_iterations > _WARMUP_MAX_FRACTION, fallback,
                   jnp.maximum(w, 1.0)).astype(jnp.int32)


def ranger21_learning_rate(learning_rate, t, b2, num_iterations: int, warmdown_min_lr,
                           num_warmup_iterations: Optional[int] = None,
                           num_warmdown_iterations: Optional[int] = None):
  """eta_t of Ranger21's built-in warm-up / warm-down for step t (from 1).

  Example:
    >>> import optkit
    >>> [round(float(optkit.adaptive.ranger21_learning_rate(1.0, t, 0.999, 10, 0.1)), 3)
    ...  for t in range(1, 11)]
    [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.775, 0.55, 0.325, 0.1]
  """
  t = jnp.asarray(t, jnp.int32)
  w = _warmup_length(b2, num_iterations, num_warmup_iterations)
  n_down = (num_iterations - int(_WARMDOWN_START_PCT * num_iterations)
            if num_warmdown_iterations is None else num_warmdown_iterations)
  start_down = num_iterations - n_down
  tf = t.astype(jnp.float32)
  warm = jnp.where(t > w, learning_rate,
                   learning_rate * jnp.minimum(1.0, tf / w.astype(jnp.float32)))
  pct = jnp.minimum(jnp.maximum(tf + 1.0 - start_down, 1.0) / (n_down + 1), 1.0)
  down = jnp.maximum(learning_rate - (learning_rate - warmdown_min_lr) * pct, warmdown_min_lr)
  return jnp.where(t >= start_down, down, warm)


# ------------------------------------------------------------------ pieces


def normalize_by_std(eps: float = _NORMALIZE_EPS) -> optax.GradientTransformation:
  r"""Gradient normalization of Ranger21: g / (std(g) + eps) per leaf.

  The standard deviation is the unbiased one over the whole leaf; leaves with
  at most 2 entries pass unchanged (as in the reference). Stateless.

  Args:
    eps: added to the standard deviation (1e-8, the reference's).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.adaptive.normalize_by_std(eps=0.0)
    >>> tx.update(jnp.array([1.0, 2.0, 3.0]), tx.init(None))[0]
    Array([1., 2., 3.], dtype=float32)

  References:
    Wright & Demeure, Ranger21: a synergistic deep learning optimizer,
    https://arxiv.org/abs/2106.13731
  """
  validate.non_negative("normalize_by_std", eps=eps)

  def update_fn(updates, state, params=None):
    del params
    out = jax.tree.map(lambda g: _normalize_by_std(_f32(g), eps).astype(jnp.result_type(g)),
                       updates)
    return out, state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


class ScaleByPnmState(NamedTuple):
  """State of positive-negative momentum."""
  count: jax.Array      # int32, shape (): t - 1
  mu_odd: optax.Updates   # m updated at odd t; params-shaped, float32+
  mu_even: optax.Updates  # m updated at even t; params-shaped, float32+


def _stat_zeros(params):
  return jax.tree.map(
      lambda p: jnp.zeros(jnp.shape(p), jnp.promote_types(jnp.result_type(p), jnp.float32)),
      params)


def scale_by_pnm(b1: float = 0.9, beta0: float = 0.9) -> optax.GradientTransformation:
  r"""Positive-negative momentum (Ranger21 step 7), without bias correction.

  .. math::
    m^{(t \bmod 2)} \leftarrow \beta_1^2 m^{(t \bmod 2)} + (1-\beta_1^2) g_t,\quad
    n_t = \frac{(1+\beta_0) m^{(t \bmod 2)} - \beta_0 m^{(t+1 \bmod 2)}}
               {\sqrt{(1+\beta_0)^2 + \beta_0^2}}.

  Args:
    b1: beta_1; each buffer decays by b1^2 per update (0.9).
    beta0: the negative-momentum weight (0.9).

  Returns:
    An ``optax.GradientTransformation`` with state ``ScaleByPnmState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.adaptive.scale_by_pnm(b1=0.0, beta0=0.0)   # plain gradient
    >>> g = jnp.array([1.0, -2.0])
    >>> tx.update(g, tx.init(g))[0]
    Array([ 1., -2.], dtype=float32)

  References:
    Wright & Demeure, Ranger21: a synergistic deep learning optimizer,
    https://arxiv.org/abs/2106.13731
  """
  validate.unit_interval("pnm", b1=b1, beta0=beta0)

  def init_fn(params):
    return ScaleByPnmState(jnp.zeros([], jnp.int32), _stat_zeros(params), _stat_zeros(params))

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure("pnm", updates, state.mu_odd)
    t = optax.safe_increment(state.count)
    out = jax.tree.map(lambda g, a, b: _pnm(g.astype(a.dtype), a, b, t, b1, beta0),
                       updates, state.mu_odd, state.mu_even)
    n, mu_odd, mu_even = _split3(updates, out)
    return optax.tree.cast_like(n, updates), ScaleByPnmState(t, mu_odd, mu_even)

  return optax.GradientTransformation(init_fn, update_fn)


class AddStableWeightDecayState(NamedTuple):
  """State of stable weight decay."""
  count: jax.Array     # int32, shape (): t - 1
  nu: optax.Updates    # v_t of the updates this transformation receives; float32+


def add_stable_weight_decay(weight_decay: float = 1e-4,
                            b2: float = 0.999) -> optax.GradientTransformation:
  r"""Stable weight decay (Ranger21 step 5) as an additive, chainable term.

  .. math::
    v_t = \beta_2 v_{t-1} + (1-\beta_2) u_t^2,\quad
    s_t = \sqrt{\frac{1 + \sum_{\text{all leaves}} \sum v_t/(1-\beta_2^t)}{N}},\quad
    u_t \leftarrow u_t + \frac{\lambda}{s_t} w_{t-1}.

  A chain stage only sees the updates that reach it, so ``v`` is the second
  moment of the updates this transformation receives: put it first (on the
  raw gradients) to get the normalizer of Ranger21 -- the decay term then
  passes through the later stages; followed by
  ``optax.scale_by_learning_rate`` the step is
  ``-eta (u + wd w / s)``. ``ranger21`` itself applies the decay decoupled
  (multiplicatively, before its step) with s from its own second moment.

  Args:
    weight_decay: lambda (1e-4, the reference's).
    b2: decay rate of the second moment (0.999).

  Returns:
    An ``optax.GradientTransformation``; ``update`` needs ``params``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.adaptive.add_stable_weight_decay(0.1, b2=0.0)
    >>> p, g = jnp.array([1.0, 2.0]), jnp.array([1.0, 1.0])
    >>> tx.update(g, tx.init(p), p)[0]   # s = sqrt((1 + 2) / 2)
    Array([1.0816..., 1.1632...], dtype=float32)

  References:
    Wright & Demeure, Ranger21: a synergistic deep learning optimizer,
    https://arxiv.org/abs/2106.13731
  """
  validate.non_negative("add_stable_weight_decay", weight_decay=weight_decay)
  validate.unit_interval("add_stable_weight_decay", b2=b2)

  def init_fn(params):
    return AddStableWeightDecayState(jnp.zeros([], jnp.int32), _stat_zeros(params))

  def update_fn(updates, state, params=None):
    extra_args.require_params("add_stable_weight_decay", params)
    tree_lib.check_same_structure("add_stable_weight_decay", updates, state.nu)
    t = optax.safe_increment(state.count)
    nu = optax.tree.update_moment_per_elem_norm(
        jax.tree.map(lambda g, v: g.astype(v.dtype), updates, state.nu), state.nu, b2, 2)
    bc2 = _one_minus_pow(b2, t.astype(jnp.float32))
    total_size = sum(int(np.prod(jnp.shape(v), dtype=np.int64)) for v in jax.tree.leaves(nu))
    s = _stable_decay_normalizer(nu, bc2, max(total_size, 1))
    out = jax.tree.map(lambda u, w: (_f32(u) + weight_decay * _f32(w) / s).astype(
        jnp.result_type(u)), updates, params)
    return out, AddStableWeightDecayState(t, optax.tree.cast_like(nu, state.nu))

  return optax.GradientTransformation(init_fn, update_fn)


# ------------------------------------------------------------------ the preset


class Ranger21State(NamedTuple):
  """State of Ranger21's core (after AGC, centralization, normalization)."""
  count: jax.Array        # int32, shape (): t - 1
  mu_odd: optax.Updates   # PNM buffer updated at odd t (grad_ma); float32+
  mu_even: optax.Updates  # PNM buffer updated at even t (neg_grad_ma); float32+
  nu: optax.Updates       # v_t (variance_ma); float32+
  nu_max: optax.Updates   # max_s v_s (max_variance_ma); float32+
  slow: optax.Params      # lookahead slow weights (lookahead_params); float32+


def _agc_rows(agc_clip, agc_eps) -> optax.GradientTransformation:
  """optax.adaptive_grad_clip leaf by leaf, with the reference's unit axes.

  Returns float32 (or wider) gradients: the preprocessing stages and the core
  compute in float32 and the core casts the final update to the params' dtype.
  """

  def update_fn(updates, state, params=None):
    extra_args.require_params("ranger21", params, "adaptive gradient clipping")
    tree_lib.check_same_structure("ranger21", updates, params, "the params")

    def clip(g, w):
      tx = optax.adaptive_grad_clip(agc_clip, agc_eps, axis=_unit_axes(jnp.ndim(g)))
      return tx.update(_f32(g), optax.EmptyState(), _f32(w))[0]   # float32 onwards

    return jax.tree.map(clip, updates, params), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


def _ranger21_core(learning_rate, num_iterations, b1, b2, beta0, eps, weight_decay,
                   norm_loss_factor, softplus_beta, lookahead_k, lookahead_alpha,
                   warmdown_min_lr, softplus, warmup_warmdown, num_warmup_iterations,
                   num_warmdown_iterations, centralize_gradients, normalize_gradients):

  def init_fn(params):
    z = _stat_zeros(params)
    return Ranger21State(count=jnp.zeros([], jnp.int32), mu_odd=z, mu_even=_stat_zeros(params),
                         nu=_stat_zeros(params), nu_max=_stat_zeros(params),
                         slow=jax.tree.map(lambda p: jnp.array(_f32(p), copy=True), params))

  def update_fn(updates, state, params=None):
    extra_args.require_params("ranger21", params)
    tree_lib.check_same_structure("ranger21", updates, state.nu)
    t = optax.safe_increment(state.count)
    tf = t.astype(jnp.float32)
    g = jax.tree.map(_f32, updates)
    w = jax.tree.map(_f32, params)
    nu = optax.tree.update_moment_per_elem_norm(g, state.nu, b2, 2)          # step 4
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
    bc1 = _one_minus_pow(b1, tf)
    bc2 = _one_minus_pow(b2, tf)
    eta = learning_rate(state.count) if callable(learning_rate) else learning_rate
    if warmup_warmdown:
      eta = ranger21_learning_rate(eta, t, b2, num_iterations, warmdown_min_lr,
                                   num_warmup_iterations, num_warmdown_iterations)
    total_size = sum(int(np.prod(jnp.shape(v), dtype=np.int64)) for v in jax.tree.leaves(nu))
    s = _stable_decay_normalizer(nu, bc2, max(total_size, 1))               # step 5
    w = jax.tree.map(lambda x: x * (1.0 - eta * weight_decay / s), w)
    w = jax.tree.map(                                                       # step 6
        lambda x: x * (1.0 - eta * 2.0 * norm_loss_factor * (1.0 - 1.0 / (_unit_norm(x) + eps))),
        w)
    if centralize_gradients:   # the reference preprocesses g a second time here
      g = jax.tree.map(_centralize, g)
    if normalize_gradients:
      g = jax.tree.map(lambda x: _normalize_by_std(x, _NORMALIZE_EPS), g)
    out = jax.tree.map(lambda x, a, b: _pnm(x, a, b, t, b1, beta0),          # step 7
                       g, state.mu_odd, state.mu_even)
    n, mu_odd, mu_even = _split3(g, out)

    def denom(vm):                                                          # step 8
      d = jnp.sqrt(vm) / jnp.sqrt(bc2) + eps
      return _softplus(d, softplus_beta) if softplus else d

    step_size = eta / bc1
    def step(x, m, vm):                                                     # step 9
      d = denom(vm)
      return x - step_size * jnp.where(d > 0, m / jnp.where(d > 0, d, 1.0), 0.0)

    w = jax.tree.map(step, w, n, nu_max)
    sync = (t % lookahead_k) == 0                                           # step 10
    w = jax.tree.map(lambda x, sl: jnp.where(
        sync, lookahead_alpha * x + (1.0 - lookahead_alpha) * sl, x), w, state.slow)
    slow = jax.tree.map(lambda x, sl: jnp.where(sync, x, sl), w, state.slow)
    new_updates = jax.tree.map(lambda x, p: (x - _f32(p)).astype(jnp.result_type(p)),
                               w, params)
    return new_updates, Ranger21State(count=t, mu_odd=mu_odd, mu_even=mu_even, nu=nu,
                                      nu_max=nu_max, slow=slow)

  return optax.GradientTransformation(init_fn, update_fn)


def ranger21(learning_rate: optax.ScalarOrSchedule,
             num_iterations: int,
             b1: float = 0.9,
             b2: float = 0.999,
             beta0: float = 0.9,
             eps: float = 1e-8,
             weight_decay: float = 1e-4,
             norm_loss_factor: float = 1e-4,
             agc_clip: float = 1e-2,
             agc_eps: float = 1e-3,
             softplus_beta: float = 50.0,
             lookahead_k: int = 5,
             lookahead_alpha: float = 0.5,
             warmdown_min_lr: float = 3e-5,
             *,
             softplus: bool = True,
             warmup_warmdown: bool = True,
             centralize_gradients: bool = True,
             normalize_gradients: bool = True,
             num_warmup_iterations: Optional[int] = None,
             num_warmdown_iterations: Optional[int] = None) -> optax.GradientTransformation:
  r"""Ranger21 (pytorch_optimizer 4.1.0 semantics; steps in the module docstring).

  .. math::
    w \leftarrow \mathrm{LA}_k\Big(w\,(1-\tfrac{\eta_t\lambda}{s_t})
      (1-\eta_t c(w)) - \frac{\eta_t}{1-\beta_1^t}\,
      \frac{n_t}{\mathrm{softplus}_{50}(\sqrt{\hat v^{\max}_t}+\epsilon)}\Big)

  with AGC + centralized + std-normalized gradients, positive-negative momentum
  n_t, stable decay normalizer s_t, norm-loss correction c(w) and lookahead
  LA_k. The learning rate (and the schedule) live inside: do not chain another
  ``scale_by_learning_rate``. ``update`` needs ``params``; the returned
  update moves the params to the new (fast) weights.

  Args:
    learning_rate: eta, a number or an optax schedule (1e-3 in the reference).
    num_iterations: T, total steps, for the built-in warm-up / warm-down (static).
    b1: beta_1 (0.9); PNM buffers decay by b1^2, the bias correction uses b1.
    b2: beta_2 (0.999).
    beta0: PNM's negative-momentum weight (0.9).
    eps: added to the denominator before softplus and to unit norms (1e-8).
    weight_decay: stable (decoupled) weight decay (1e-4).
    norm_loss_factor: norm-loss factor (1e-4).
    agc_clip: AGC's maximum gradient/param unit-norm ratio (1e-2).
    agc_eps: AGC's floor on param unit norms (1e-3).
    softplus_beta: softplus sharpness (50).
    lookahead_k: lookahead sync period (5, static).
    lookahead_alpha: lookahead blending (0.5): w <- alpha w + (1 - alpha) w_slow.
    warmdown_min_lr: the learning rate at the end of warm-down (3e-5).
    softplus: smooth the denominator with softplus (True, the reference's).
    warmup_warmdown: apply the built-in schedule (True); False uses eta as given.
    centralize_gradients: gradient centralization, steps 2 and 7 (True). GC
      removes the per-unit mean of the gradient of every leaf with ndim > 1, so
      those leaves keep their per-unit means: turn it off where they must move.
    normalize_gradients: std normalization, steps 3 and 7 (True).
    num_warmup_iterations: override W (static; None: the reference's rule).
    num_warmdown_iterations: override N_d (static; None: T - floor(0.72 T)).

  Returns:
    An ``optax.GradientTransformation`` (a chain; the core's state is
    ``Ranger21State``).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.adaptive.ranger21(learning_rate=1e-2, num_iterations=100)
    >>> p = {"w": jnp.ones((2, 3))}
    >>> s = opt.init(p)
    >>> u, s = opt.update({"w": jnp.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])}, s, p)
    >>> u["w"].shape
    (2, 3)

  References:
    Wright & Demeure, Ranger21: a synergistic deep learning optimizer,
    https://arxiv.org/abs/2106.13731
  """
  name = "ranger21"
  validate.learning_rate(name, learning_rate)
  validate.integer_at_least(name, 1, num_iterations=num_iterations, lookahead_k=lookahead_k)
  if num_warmup_iterations is not None:
    validate.integer_at_least(name, 0, num_warmup_iterations=num_warmup_iterations)
  if num_warmdown_iterations is not None:
    validate.integer_at_least(name, 0, num_warmdown_iterations=num_warmdown_iterations)
  validate.unit_interval(name, b1=b1, b2=b2, beta0=beta0)
  validate.non_negative(name, eps=eps, weight_decay=weight_decay,
                        norm_loss_factor=norm_loss_factor, agc_clip=agc_clip,
                        agc_eps=agc_eps, warmdown_min_lr=warmdown_min_lr)
  validate.positive(name, softplus_beta=softplus_beta)
  validate.closed_unit_interval(name, lookahead_alpha=lookahead_alpha)
  return optax.chain(
      _agc_rows(agc_clip, agc_eps),                                          # step 1
      optax.centralize() if centralize_gradients else optax.identity(),      # step 2
      normalize_by_std(_NORMALIZE_EPS) if normalize_gradients else optax.identity(),  # 3
      _ranger21_core(learning_rate, num_iterations, b1, b2, beta0, eps, weight_decay,
                     norm_loss_factor, softplus_beta, lookahead_k, lookahead_alpha,
                     warmdown_min_lr, softplus, warmup_warmdown, num_warmup_iterations,
                     num_warmdown_iterations, centralize_gradients, normalize_gradients),
  )
