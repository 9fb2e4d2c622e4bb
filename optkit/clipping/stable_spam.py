"""Stable-SPAM and SPAM: spike-aware clipping, norm tracking and moment resets.

Huang, Zhu, Jin, Liu, Wang, Liu, "Stable-SPAM: How to Train in 4-Bit More
Stably than 16-Bit Adam", arXiv:2502.17055, Algorithm 1, as implemented by
pytorch_optimizer 4.1.0 ``StableSPAM`` (per-parameter path, read line by
line; the trajectory fixtures come from it). Per tensor, T the global step
from 1, t_A the Adam step (reset every ``update_proj_gap`` steps)::

  s_T = cosine factor (1 if t_max is None, below);  b1' = b1 s_T;  g1' = gamma1 s_T
  AdaClip  m_max <- theta m_max + (1 - theta) max|g|;  m^_max = m_max / (1 - theta^T)
           g <- g / max|g| * m^_max  where |g| > m^_max                    (elementwise)
  AdaGN    n = ||g||_2   (n = 0: the tensor skips AdaGN and Adam, update 0)
           m_n <- g1' m_n + (1 - g1') n;   v_n <- gamma2 v_n + (1 - gamma2) n^2
           g <- g / n * (m_n / (1 - g1'^T)) / (sqrt(v_n / (1 - gamma2^T)) + eps)
  reset    if T % update_proj_gap == 0: m = v = 0, t_A = 1; else t_A += 1
  Adam     m <- b1' m + (1 - b1') g;   v <- b2 v + (1 - b2) g^2
           u = m / (sqrt(v) / sqrt(1 - b2^t_A) + eps) / (1 - b1'^t_A)
  x <- x (1 - eta lambda) - eta u

Paper -> code: theta -> ``theta`` (AdaClip EMA), gamma_1 / gamma_2 ->
``gamma1`` / ``gamma2`` (AdaGN EMAs of ||g|| and ||g||^2), beta_1 / beta_2 ->
``b1`` / ``b2``, Delta T (momentum reset interval) -> ``update_proj_gap``,
m_max / m_norm / v_norm -> ``state.m_max`` / ``.m_norm`` / ``.v_norm`` (one
float32 scalar per leaf), m / v -> ``state.mu`` / ``.nu``, t_A ->
``state.adam_count``. eps is the PyTorch "efficient" placement: added to
sqrt(v)/sqrt(1 - b2^t_A) (= sqrt(v_hat)), i.e. the optax placement, then
divided by 1 - b1'^t_A.

The cosine factor is pytorch_optimizer's (and the official code's)
``CosineDecay(1, t_max, eta_min)`` called once per step; its chained
``CosineAnnealingLR`` telescopes to (checked against torch)::

  s_T = eta_min + (1 - eta_min) (1 + cos(pi (T + 1) / (t_max + 1))) / (1 + cos(pi / (t_max + 1)))
  for T < t_max, and eta_min for T >= t_max.

The three blocks are public transformations as well: ``clip_by_running_max``
(AdaClip), ``normalize_by_running_norm`` (AdaGN) and
``reset_moments_every(inner, interval)`` (re-initializes any inner state
every ``interval`` steps); ``chain(clip_by_running_max(theta),
normalize_by_running_norm(gamma1, gamma2, eps), reset_moments_every(adam,
gap))`` is ``scale_by_stable_spam`` whenever no leaf gets a zero gradient and
t_max is None (tested). ``scale_by_stable_spam`` is one fused transformation
because the zero-norm skip and the cosine factor couple the blocks.

SPAM (Huang et al., "SPAM: Spike-Aware Adam with Momentum Reset for Stable
LLM Training", arXiv:2501.06842; the predecessor the Stable-SPAM paper
compares against, pytorch_optimizer ``SPAM``), global step T from 1::

  reset    if T % update_proj_gap == 0: m = v = 0                (step counter NOT reset)
  clip     if threshold > 0 and T >= grad_accu_steps and T % update_proj_gap >= grad_accu_steps:
             g <- sign(g) sqrt(threshold v)  where g^2 > threshold v       (v before this step)
  Adam     m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
           u = w_T sqrt(1 - b2^T) / (1 - b1^T) * m / (sqrt(v) + eps)   (efficient form)
  warm-up  w_T = 1 - 0.99 (1 + cos(pi (j + 1) / (W + 1))) / 2 for the first
           W = warmup_steps steps j = T % gap of every cycle after a reset
           (T >= max(gap, 2), j < W), else 1 (``CosineDecay(0.99, W)`` telescoped)
  density < 1: 2-D leaves update only a random subset of entries (mask
           resampled at every reset, each entry kept with probability density)

UNSURE points and decisions:

* The catalog has none for the rule. The official repository may differ in
  reset timing; pytorch_optimizer's timing (reset at T % gap == 0, counting
  T from 1, so the first cycle has gap - 1 steps) is followed exactly.
* ``gamma1 = -1`` (pytorch_optimizer: use b1) is not supported; pass
  ``gamma1=b1``.
* Weight decay: Stable-SPAM decays before its update, as
  ``optax.add_decayed_weights`` does (fixture match with decay on). SPAM's
  reference decays *after* its update, x <- (x - eta u)(1 - eta lambda); optkit
  uses the standard decoupled form x <- x - eta u - eta lambda x (they differ
  by eta^2 lambda u per step) and, for density < 1, decays every entry, while
  the reference decays only the masked entries of 2-D leaves.
* SPAM's first mask (before the first reset) has exactly int(density n)
  entries in the reference (randperm); optkit draws every mask entry
  independently with probability density (as the reference does for every
  later mask). Masks come from the PRNG key in the state (``seed``), split at
  every reset.
* The learning rate is a required argument (optkit convention); the paper
  and pytorch_optimizer default to 1e-3.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_STABLE = "stable_spam"
_SPAM = "spam"
_SPAM_WARMUP_START = 0.99   # pytorch_optimizer SPAM: CosineDecay(0.99, warmup_epoch)


def _f32(x):
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _scalars(params):
  """One zero statistic per leaf: float32, or float64 for float64 params."""
  return jax.tree.map(
      lambda p: jnp.zeros([], jnp.promote_types(jnp.result_type(p), jnp.float32)), params)


def _like(tree, ref):
  return jax.tree.map(lambda x, r: x.astype(jnp.result_type(r)), tree, ref)


def _check(name, updates, reference):
  tree_lib.check_floating_tree(name, updates)
  s_u, s_r = jax.tree.structure(updates), jax.tree.structure(reference)
  if s_u != s_r:
    raise ValueError(
        f"{name}: the gradient tree does not match the optimizer state: got "
        f"structure {s_u}, expected {s_r}. Was the state initialized with other params?")


# ------------------------------------------------------------------ kernels


def _adaclip(g, m_max, theta, bc_theta):
  """AdaClip on one leaf (float32 g): returns (clipped g, new m_max)."""
  mx = jnp.max(jnp.abs(g)) if g.size else jnp.zeros([], g.dtype)
  m_max = theta * m_max + (1 - theta) * mx
  m_hat = m_max / bc_theta
  clipped = jnp.where(jnp.abs(g) > m_hat, numerics.safe_div(g, mx) * m_hat, g)
  return clipped, m_max


def _adagn(g, m_n, v_n, gamma1, gamma2, eps, bc1, bc2):
  """AdaGN on one leaf: returns (normalized g, new m_n, new v_n, active)."""
  n = jnp.sqrt(jnp.sum(jnp.square(g)))
  active = n > 0
  m_new = jnp.where(active, gamma1 * m_n + (1 - gamma1) * n, m_n)
  v_new = jnp.where(active, gamma2 * v_n + (1 - gamma2) * jnp.square(n), v_n)
  c = (m_new / bc1) / (jnp.sqrt(v_new / bc2) + eps)
  out = jnp.where(active, numerics.safe_div(g, n) * c, g)
  return out, m_new, v_new, active


def _cosine_factor(t, t_max, eta_min):
  """pytorch_optimizer's CosineDecay(1, t_max, eta_min) at step t (float)."""
  tm = t_max + 1.0
  s = eta_min + (1 - eta_min) * (1 + jnp.cos(jnp.pi * (t + 1) / tm)) / (1 + math.cos(math.pi / tm))
  return jnp.where(t < t_max, s, eta_min)


# ------------------------------------------------------------------ AdaClip


class ClipByRunningMaxState(NamedTuple):
  count: jax.Array   # int32, shape (): T
  m_max: Any         # float32 () per leaf: EMA of max|g| (m_max_t)


def clip_by_running_max(theta: float = 0.999) -> optax.GradientTransformation:
  r"""AdaClip: clips entries above the bias-corrected EMA of the leaf's max |g|.

  .. math::
    m_{\max} \leftarrow \theta m_{\max} + (1-\theta)\max|g|,\quad
    \hat m_{\max} = m_{\max}/(1-\theta^T),\quad
    g_i \leftarrow g_i\,\hat m_{\max}/\max|g| \ \text{where}\ |g_i| > \hat m_{\max}

  Per leaf. Never increases any |g_i|.

  Args:
    theta: theta in [0, 1), the EMA decay (paper: 0.999).

  Returns:
    An ``optax.GradientTransformation`` with state ``ClipByRunningMaxState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.clip_by_running_max(theta=0.5)
    >>> s = tx.init(jnp.zeros(2))
    >>> _, s = tx.update(jnp.array([1.0, -1.0]), s)   # m_max_hat = 1
    >>> tx.update(jnp.array([4.0, 1.0]), s)[0]   # m_max_hat = (0.25 + 2) / 0.75 = 3
    Array([3., 1.], dtype=float32)

  References:
    Huang et al., Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit
    Adam, https://arxiv.org/abs/2502.17055
  """
  name = "clip_by_running_max"
  validate.unit_interval(name, theta=theta)

  def init_fn(params):
    return ClipByRunningMaxState(jnp.zeros([], jnp.int32), _scalars(params))

  def update_fn(updates, state, params=None):
    del params
    _check(name, updates, state.m_max)
    count = optax.safe_increment(state.count)
    bc = numerics.bias_correction(theta, count)
    pairs = jax.tree.map(lambda g, m: _adaclip(_f32(g), m, theta, bc), updates, state.m_max)
    out = jax.tree.map(lambda g, p: p[0], updates, pairs)
    m_max = _like(jax.tree.map(lambda g, p: p[1], updates, pairs), state.m_max)
    return optax.tree.cast_like(out, updates), ClipByRunningMaxState(count, m_max)

  return optax.GradientTransformation(init_fn, update_fn)


# ------------------------------------------------------------------ AdaGN


class NormalizeByRunningNormState(NamedTuple):
  count: jax.Array   # int32, shape (): T
  m_norm: Any        # float32 () per leaf: EMA of ||g|| (m_norm_t)
  v_norm: Any        # float32 () per leaf: EMA of ||g||^2 (v_norm_t)


def normalize_by_running_norm(gamma1: float = 0.7, gamma2: float = 0.9,
                              eps: float = 1e-8) -> optax.GradientTransformation:
  r"""AdaGN: rescales each leaf to the Adam-style ratio of its norm EMAs.

  .. math::
    m_n \leftarrow \gamma_1 m_n + (1-\gamma_1)\|g\|,\quad
    v_n \leftarrow \gamma_2 v_n + (1-\gamma_2)\|g\|^2,\quad
    g \leftarrow \frac{g}{\|g\|}\cdot
      \frac{m_n/(1-\gamma_1^T)}{\sqrt{v_n/(1-\gamma_2^T)} + \epsilon}

  A leaf with ||g|| = 0 is passed through and its EMAs are not updated.

  Args:
    gamma1: gamma_1 in [0, 1) (paper: 0.7).
    gamma2: gamma_2 in [0, 1) (paper: 0.9).
    eps: epsilon >= 0 (paper: 1e-8).

  Returns:
    An ``optax.GradientTransformation`` with state
    ``NormalizeByRunningNormState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.normalize_by_running_norm()
    >>> g = jnp.array([3.0, 4.0])
    >>> jnp.round(tx.update(g, tx.init(g))[0], 4)    # first step: unit norm
    Array([0.6, 0.8], dtype=float32)

  References:
    Huang et al., Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit
    Adam, https://arxiv.org/abs/2502.17055
  """
  name = "normalize_by_running_norm"
  validate.unit_interval(name, gamma1=gamma1, gamma2=gamma2)
  validate.non_negative(name, eps=eps)

  def init_fn(params):
    return NormalizeByRunningNormState(jnp.zeros([], jnp.int32), _scalars(params),
                                       _scalars(params))

  def update_fn(updates, state, params=None):
    del params
    _check(name, updates, state.m_norm)
    count = optax.safe_increment(state.count)
    bc1 = numerics.bias_correction(gamma1, count)
    bc2 = numerics.bias_correction(gamma2, count)
    res = jax.tree.map(lambda g, m, v: _adagn(_f32(g), m, v, gamma1, gamma2, eps, bc1, bc2),
                       updates, state.m_norm, state.v_norm)
    pick = lambda i: jax.tree.map(lambda g, r: r[i], updates, res)
    new_state = NormalizeByRunningNormState(count, _like(pick(1), state.m_norm),
                                            _like(pick(2), state.v_norm))
    return optax.tree.cast_like(pick(0), updates), new_state

  return optax.GradientTransformation(init_fn, update_fn)


# ------------------------------------------------------------------ reset wrapper


class ResetMomentsEveryState(NamedTuple):
  count: jax.Array   # int32, shape (): T, steps taken (never reset)
  inner_state: Any   # the wrapped transformation's state


def reset_moments_every(inner: optax.GradientTransformation,
                        interval: int = 1000) -> optax.GradientTransformationExtraArgs:
  r"""Re-initializes ``inner``'s state at every step T with T % interval == 0.

  The reset happens *before* ``inner`` processes the step's gradient (as in
  Stable-SPAM): at T = k * interval the inner state is ``inner.init(params)``
  (``params``, or the gradient when ``params`` is None, gives the shapes),
  so e.g. Adam's moments restart from zero and its bias correction from
  t = 1. T counts from 1. PRNG keys inside the inner state restart too.

  Args:
    inner: the transformation whose state is reset (e.g. ``optax.scale_by_adam()``).
    interval: the reset period Delta T >= 1 (Stable-SPAM: 1000).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with state
    ``ResetMomentsEveryState``; extra arguments are forwarded to ``inner``.

  Example:
    >>> import optkit, optax
    >>> import jax.numpy as jnp
    >>> tx = optkit.reset_moments_every(optax.ema(0.5, debias=False), interval=2)
    >>> s = tx.init(jnp.zeros(1))
    >>> u1, s = tx.update(jnp.array([2.0]), s)   # T = 1: ema = 1
    >>> u2, s = tx.update(jnp.array([2.0]), s)   # T = 2: reset, ema = 1 again
    >>> u1, u2
    (Array([1.], dtype=float32), Array([1.], dtype=float32))

  References:
    Huang et al., Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit
    Adam, https://arxiv.org/abs/2502.17055
  """
  name = "reset_moments_every"
  validate.transformation(name, inner=inner)
  validate.at_least(name, 1, interval=interval)
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    return ResetMomentsEveryState(jnp.zeros([], jnp.int32), inner.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    tree_lib.check_floating_tree(name, updates)
    count = optax.safe_increment(state.count)
    reset = jnp.remainder(count, interval) == 0
    fresh = inner.init(params if params is not None else updates)
    inner_state = jax.tree.map(
        lambda f, c: jnp.where(reset, jnp.asarray(f).astype(jnp.result_type(c)), c),
        fresh, state.inner_state)
    out, inner_state = inner.update(updates, inner_state, params, **extra_args)
    return out, ResetMomentsEveryState(count, inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# ------------------------------------------------------------------ Stable-SPAM


class ScaleByStableSpamState(NamedTuple):
  count: jax.Array       # int32, shape (): T, the global step
  adam_count: jax.Array  # int32, shape (): t_A, Adam's step, reset every update_proj_gap
  m_max: Any             # float32 () per leaf: AdaClip EMA of max|g|
  m_norm: Any            # float32 () per leaf: AdaGN EMA of ||g||
  v_norm: Any            # float32 () per leaf: AdaGN EMA of ||g||^2
  mu: Any                # m, first moment, float32 (or wider) like params
  nu: Any                # v, second moment, float32 (or wider) like params


def scale_by_stable_spam(b1: float = 0.9, b2: float = 0.999, gamma1: float = 0.7,
                         gamma2: float = 0.9, theta: float = 0.999,
                         update_proj_gap: int = 1000, t_max: Optional[int] = None,
                         eta_min: float = 0.5,
                         eps: float = 1e-8) -> optax.GradientTransformation:
  r"""Stable-SPAM direction: AdaClip, AdaGN, then Adam with periodic resets.

  See the module docstring for the full rule (pytorch_optimizer
  ``StableSPAM``, Algorithm 1 of the paper).

  Args:
    b1: beta_1 in [0, 1) (0.9).
    b2: beta_2 in [0, 1) (0.999).
    gamma1: AdaGN's gamma_1 in [0, 1) (0.7).
    gamma2: AdaGN's gamma_2 in [0, 1) (0.9).
    theta: AdaClip's theta in [0, 1) (0.999).
    update_proj_gap: Delta T >= 1, the Adam moment reset period (1000).
    t_max: steps of the cosine decay of b1 and gamma1 to ``eta_min`` times
      their value; None (default) disables it. Static.
    eta_min: the final factor of that decay (0.5).
    eps: epsilon >= 0 of AdaGN and Adam (1e-8).

  Returns:
    An ``optax.GradientTransformation`` with state ``ScaleByStableSpamState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_stable_spam()
    >>> g = jnp.array([3.0, -4.0])
    >>> tx.update(g, tx.init(g))[0]    # first step: Adam's sign-like step
    Array([ 1., -1.], dtype=float32)

  References:
    Huang et al., Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit
    Adam, https://arxiv.org/abs/2502.17055
  """
  validate.unit_interval(_STABLE, b1=b1, b2=b2, gamma1=gamma1, gamma2=gamma2, theta=theta)
  validate.at_least(_STABLE, 1, update_proj_gap=update_proj_gap)
  validate.closed_unit_interval(_STABLE, eta_min=eta_min)
  validate.non_negative(_STABLE, eps=eps)
  if t_max is not None:
    validate.integer_at_least(_STABLE, 1, t_max=t_max)

  def init_fn(params):
    return ScaleByStableSpamState(
        count=jnp.zeros([], jnp.int32), adam_count=jnp.zeros([], jnp.int32),
        m_max=_scalars(params), m_norm=_scalars(params), v_norm=_scalars(params),
        mu=numerics.stat_zeros(params), nu=numerics.stat_zeros(params))

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure(_STABLE, updates, state.mu)
    count = optax.safe_increment(state.count)
    t = count.astype(jnp.result_type(float))   # float32 (float64 under x64)
    if t_max is None:   # static: no decay, keep Python-number betas exact
      b1_t, g1_t = b1, gamma1
    else:
      scale = _cosine_factor(t, t_max, eta_min)
      b1_t, g1_t = b1 * scale, gamma1 * scale
    reset = jnp.remainder(count, update_proj_gap) == 0
    adam_count = jnp.where(reset, 1, optax.safe_increment(state.adam_count))
    bc_theta = numerics.bias_correction(theta, t)
    bc_g1 = numerics.bias_correction(g1_t, t)
    bc_g2 = numerics.bias_correction(gamma2, t)
    t_a = adam_count.astype(t.dtype)
    bc1 = numerics.bias_correction(b1_t, t_a)
    bc2 = numerics.bias_correction(b2, t_a)

    def leaf(g, m_max, m_n, v_n, mu, nu):
      g = _f32(g)
      g, m_max = _adaclip(g, m_max, theta, bc_theta)                         # AdaClip
      g, m_n, v_n, active = _adagn(g, m_n, v_n, g1_t, gamma2, eps, bc_g1, bc_g2)  # AdaGN
      mu = jnp.where(reset, 0, mu)                                           # reset
      nu = jnp.where(reset, 0, nu)
      g = g.astype(mu.dtype)
      mu_new = jnp.where(active, b1_t * mu + (1 - b1_t) * g, mu)             # Adam
      nu_new = jnp.where(active, b2 * nu + (1 - b2) * jnp.square(g), nu)
      den = jnp.sqrt(nu_new) / jnp.sqrt(bc2) + eps
      u = jnp.where(active, numerics.safe_div(mu_new, den) / bc1, 0)
      return u, m_max, m_n, v_n, mu_new.astype(mu.dtype), nu_new.astype(nu.dtype)

    res = jax.tree.map(leaf, updates, state.m_max, state.m_norm, state.v_norm,
                       state.mu, state.nu)
    pick = lambda i: jax.tree.map(lambda g, r: r[i], updates, res)
    u = optax.tree.cast_like(pick(0), updates)
    new_state = ScaleByStableSpamState(
        count=count, adam_count=adam_count.astype(jnp.int32),
        m_max=_like(pick(1), state.m_max), m_norm=_like(pick(2), state.m_norm),
        v_norm=_like(pick(3), state.v_norm), mu=_like(pick(4), state.mu),
        nu=_like(pick(5), state.nu))
    return u, new_state

  return optax.GradientTransformation(init_fn, update_fn)


def stable_spam(learning_rate: optax.ScalarOrSchedule, b1: float = 0.9,
                b2: float = 0.999, gamma1: float = 0.7, gamma2: float = 0.9,
                theta: float = 0.999, update_proj_gap: int = 1000,
                t_max: Optional[int] = None, eta_min: float = 0.5, eps: float = 1e-8,
                weight_decay: optax.ScalarOrSchedule = 0.0,
                mask: Optional[Any] = None) -> optax.GradientTransformation:
  r"""Stable-SPAM optimizer: ``scale_by_stable_spam`` + decoupled decay + lr.

  .. math::
    x \leftarrow x - \eta\,(u_{\text{Stable-SPAM}} + \lambda x)

  Args:
    learning_rate: eta, a number or an optax schedule (paper 1e-3).
    b1, b2, gamma1, gamma2, theta, update_proj_gap, t_max, eta_min, eps: see
      ``scale_by_stable_spam`` (defaults of the paper / pytorch_optimizer).
    weight_decay: lambda, decoupled, applied to the pre-step params as in the
      reference (default 0).
    mask: optional tree or callable selecting the decayed params.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.stable_spam(learning_rate=0.1)
    >>> p = jnp.array([1.0, -2.0])
    >>> opt.update(p, opt.init(p), p)[0]
    Array([-0.1,  0.1], dtype=float32)

  References:
    Huang et al., Stable-SPAM: How to Train in 4-Bit More Stably than 16-Bit
    Adam, https://arxiv.org/abs/2502.17055
  """
  validate.learning_rate(_STABLE, learning_rate)
  validate.non_negative(_STABLE, weight_decay=weight_decay)
  return optax.chain(
      scale_by_stable_spam(b1, b2, gamma1, gamma2, theta, update_proj_gap, t_max,
                           eta_min, eps),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate))


# ------------------------------------------------------------------ SPAM


class ScaleBySpamState(NamedTuple):
  count: jax.Array   # int32, shape (): T, the global step (never reset)
  key: jax.Array     # uint32 key data: the current cycle's mask key (split at resets)
  mu: Any            # m, first moment, float32 (or wider) like params
  nu: Any            # v, second moment, float32 (or wider) like params


def scale_by_spam(b1: float = 0.9, b2: float = 0.999, threshold: float = 5000.0,
                  grad_accu_steps: int = 20, update_proj_gap: int = 500,
                  warmup_steps: int = 50, density: float = 1.0, eps: float = 1e-6,
                  seed: int = 0) -> optax.GradientTransformation:
  r"""SPAM direction: spike clipping, moment resets, post-reset cosine warm-up.

  See the module docstring for the rule (pytorch_optimizer ``SPAM``).

  Args:
    b1: beta_1 in [0, 1) (0.9).
    b2: beta_2 in [0, 1) (0.999).
    threshold: spike threshold theta >= 0 on g^2 / v (5000; 0 disables).
    grad_accu_steps: steps after each reset before spike clipping (20).
    update_proj_gap: moment reset (and mask resampling) period >= 1 (500).
    warmup_steps: length of the cosine warm-up after each reset (50).
    density: fraction of the entries of 2-D leaves updated per cycle, in
      (0, 1] (1: all).
    eps: epsilon >= 0 added to sqrt(v) (PyTorch efficient form; 1e-6).
    seed: seeds the mask key kept in the state.

  Returns:
    An ``optax.GradientTransformation`` with state ``ScaleBySpamState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_spam(eps=1e-8)
    >>> g = jnp.array([3.0, -4.0])
    >>> jnp.round(tx.update(g, tx.init(g))[0], 4)
    Array([ 1., -1.], dtype=float32)

  References:
    Huang et al., SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM
    Training, https://arxiv.org/abs/2501.06842 (predecessor of Stable-SPAM,
    https://arxiv.org/abs/2502.17055)
  """
  validate.unit_interval(_SPAM, b1=b1, b2=b2)
  validate.non_negative(_SPAM, threshold=threshold, grad_accu_steps=grad_accu_steps,
                        warmup_steps=warmup_steps, eps=eps)
  validate.at_least(_SPAM, 1, update_proj_gap=update_proj_gap)
  validate.positive(_SPAM, density=density)
  validate.closed_unit_interval(_SPAM, density=density)
  validate.integer_at_least(_SPAM, 0, seed=seed)

  def init_fn(params):
    return ScaleBySpamState(
        count=jnp.zeros([], jnp.int32),
        key=jax.random.key_data(jax.random.key(seed)),
        mu=numerics.stat_zeros(params), nu=numerics.stat_zeros(params))

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure(_SPAM, updates, state.mu)
    count = optax.safe_increment(state.count)
    t = count.astype(jnp.result_type(float))   # float32 (float64 under x64)
    phase = jnp.remainder(count, update_proj_gap)
    reset = phase == 0
    clip_on = ((threshold > 0) & (count >= grad_accu_steps) & (phase >= grad_accu_steps))
    # Post-reset warm-up: CosineDecay(0.99, W) restarted at every reset, telescoped.
    w = jnp.asarray(warmup_steps, t.dtype)
    in_warmup = (count >= jnp.maximum(update_proj_gap, 2)) & (phase < warmup_steps)
    death = _SPAM_WARMUP_START * (1 + jnp.cos(jnp.pi * (phase.astype(t.dtype) + 1)
                                              / (w + 1))) / 2
    factor = jnp.where(in_warmup, 1 - death, 1.0)
    step = factor * jnp.sqrt(numerics.bias_correction(b2, t)) / numerics.bias_correction(b1, t)
    # Masks of 2-D leaves: a new key at the first step and at every reset.
    old_key = jax.random.wrap_key_data(state.key)
    key = jax.lax.cond(reset | (count == 1), lambda k: jax.random.split(k)[0],
                       lambda k: k, old_key)
    leaves, treedef = jax.tree.flatten(updates)
    leaf_keys = jax.random.split(key, max(len(leaves), 1))
    dense = isinstance(density, (int, float)) and density >= 1   # all-True masks

    def leaf(g, mu, nu, k):
      g = _f32(g).astype(mu.dtype)
      if g.ndim == 2 and not dense:
        keep = jax.random.uniform(k, g.shape) < density
      else:
        keep = jnp.ones(g.shape, bool)
      mu = jnp.where(reset, 0, mu)                                          # reset
      nu = jnp.where(reset, 0, nu)
      limit = threshold * nu                                                # spike clip
      g = jnp.where(clip_on & (jnp.square(g) > limit), jnp.sign(g) * jnp.sqrt(limit), g)
      mu_new = jnp.where(keep, b1 * mu + (1 - b1) * g, mu)
      nu_new = jnp.where(keep, b2 * nu + (1 - b2) * jnp.square(g), nu)
      u = jnp.where(keep, step * mu_new / (jnp.sqrt(nu_new) + eps), 0)
      return u, mu_new, nu_new

    res = [leaf(g, m, v, leaf_keys[i]) for i, (g, m, v) in enumerate(
        zip(leaves, jax.tree.leaves(state.mu), jax.tree.leaves(state.nu)))]
    unflat = lambda i: jax.tree.unflatten(treedef, [r[i] for r in res])
    u = optax.tree.cast_like(unflat(0), updates)
    return u, ScaleBySpamState(count, jax.random.key_data(key), _like(unflat(1), state.mu),
                               _like(unflat(2), state.nu))

  return optax.GradientTransformation(init_fn, update_fn)


def spam(learning_rate: optax.ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
         threshold: float = 5000.0, grad_accu_steps: int = 20, update_proj_gap: int = 500,
         warmup_steps: int = 50, density: float = 1.0, eps: float = 1e-6,
         weight_decay: optax.ScalarOrSchedule = 0.0, mask: Optional[Any] = None,
         seed: int = 0) -> optax.GradientTransformation:
  r"""SPAM optimizer: ``scale_by_spam`` + decoupled decay + learning rate.

  Args:
    learning_rate: eta, a number or an optax schedule (paper 1e-3).
    b1, b2, threshold, grad_accu_steps, update_proj_gap, warmup_steps,
      density, eps, seed: see ``scale_by_spam`` (pytorch_optimizer defaults).
    weight_decay: lambda, decoupled (standard form; see the module docstring
      for the reference's post-update decay), default 0.
    mask: optional tree or callable selecting the decayed params.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.spam(learning_rate=0.1, eps=1e-8)
    >>> p = jnp.array([1.0, -2.0])
    >>> opt.update(p, opt.init(p), p)[0]
    Array([-0.1,  0.1], dtype=float32)

  References:
    Huang et al., SPAM: Spike-Aware Adam with Momentum Reset for Stable LLM
    Training, https://arxiv.org/abs/2501.06842
  """
  validate.learning_rate(_SPAM, learning_rate)
  validate.non_negative(_SPAM, weight_decay=weight_decay)
  return optax.chain(
      scale_by_spam(b1, b2, threshold, grad_accu_steps, update_proj_gap, warmup_steps,
                    density, eps, seed),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate))
