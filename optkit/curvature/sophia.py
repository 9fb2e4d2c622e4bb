"""Sophia: clipped, diagonally preconditioned momentum (Sophia-H and Sophia-G).

Liu, Li, Hall, Liang, Ma, "Sophia: A Scalable Stochastic Second-order Optimizer
for Language Model Pre-training", arXiv:2305.14342 (Alg. 1 Sophia, Alg. 2
Hutchinson, Alg. 3 Gauss-Newton-Bartlett). The rules below are restated from
the paper, the authors' code (Liuhong99/Sophia ``sophia.py``, latest revision,
and ``train_sophiag.py``) and ``optax.contrib.sophia`` (0.2.8); nothing is
copied.

One step (gradient g, params x, t = count + 1, refresh period k)::

  m      = b1 m + (1 - b1) g                               # Alg. 1, line 4
  every k steps:  h = b2 h + (1 - b2) h_hat                # Alg. 1, lines 5-8
      Sophia-H: h_hat = u * (H u), u Rademacher            # Alg. 2 (paper: Gaussian)
      Sophia-G: h_hat = B * g_hat * g_hat,                 # Alg. 3
                g_hat = grad of mean_b CE(logits_b, y_hat_b), y_hat_b ~ softmax(logits_b)
  m_eff  = m / (1 - b1^t)   if bias_correction else m
  u      = clip(m_eff / max(gamma h, eps), -c, c)          # Alg. 1, line 10
  x     <- x - lr (u + wd x)                               # decoupled decay

Paper -> code: beta_1 -> ``b1``, beta_2 -> ``b2``, gamma (optax) / rho
(official SophiaG) -> ``gamma`` / ``rho``, epsilon -> ``eps``, clip level
(1 in the paper) -> ``clip_threshold``, k -> ``update_interval``, eta ->
``learning_rate``, lambda -> ``weight_decay``, B -> ``batch_size`` (number
of sampled labels the mean cross-entropy averages over), m_t -> ``state.mu``,
h_t -> ``state.nu`` (not bias-corrected), estimator state (its PRNG key) ->
``state.hessian_fn_state``.

Defaults: ``scale_by_sophia`` / ``sophia`` follow ``optax.contrib.sophia``
(b1 0.965, b2 0.99, eps 1e-8, gamma 0.01, clip 1, k 10, weight decay 1e-4,
Hutchinson with Rademacher probes, bias-corrected m, h refreshed at steps
0, k, 2k, ... after the direction is taken from the previous h), so that
``sophia(lr)`` is ``optax.contrib.sophia(lr)`` up to the probe draw.
``sophia_g`` follows the official SophiaG (lr 1e-4, betas (0.965, 0.99),
rho 0.04, weight decay 0.1, no bias correction, first refresh after k steps).

Official SophiaG step and how it maps here::

  x <- x (1 - lr wd);  x <- x - lr sign(m) min(|m| / (rho bs h_off + 1e-15), 1)

with ``h_off`` the EMA of ``g_hat * g_hat`` (no factor B) and ``bs`` the
number of tokens. Here ``h`` is the EMA of ``B g_hat * g_hat``, so
``rho bs h_off = gamma h`` with ``gamma = rho`` and ``B = bs``; the sign/min
form equals ``clip(m / (gamma h), -1, 1)``; the decay is applied with the
pre-step x, i.e. ``add_decayed_weights`` before ``scale_by_learning_rate``.
The only numerical difference is the guard: ``max(gamma h, eps)`` here, ``+
1e-15`` there (relative difference 1e-15 / (gamma h)).

Decisions on the entry's UNSURE points and on what it leaves open:

* Bias correction of m: a flag. ``bias_correction=True`` (optax, and the
  official SophiaH of an earlier ``sophia.py`` revision) is the default of
  ``scale_by_sophia``/``sophia``; ``sophia_g`` sets it False (official
  SophiaG). The paper's Alg. 1 has no bias correction.
* gamma vs rho: ``sophia`` keeps optax's gamma = 0.01; ``sophia_g`` takes the
  official rho = 0.04 (catalogs quote 0.01-0.05; we follow the code).
* When h is refreshed (``hessian_refresh``, keyword-only):

  - ``"lagged"`` (default; optax): estimate at steps 0, k, 2k, ... AFTER the
    direction was computed from the previous h; the new h is used from the
    next step on.
  - ``"fresh"`` (pytorch_optimizer ``SophiaH``): estimate at steps 0, k, 2k,
    ... BEFORE the direction, which uses it at once.
  - ``"delayed"`` (official ``train_sophiag.py``, used by ``sophia_g``): the
    official loop updates h after the parameter step of iterations
    k-1, 2k-1, ..., i.e. at the params the NEXT step starts from; here the
    estimate is taken at steps k, 2k, ... (never at step 0) before the
    direction, at the same params. The only difference is the batch: the
    official loop draws a fresh batch for the estimate, here ``value_fn`` is
    on the current batch (as every optkit ``value_fn``).

  In all modes the first steps use h = 0, so the update is clip(m / eps) =
  sign-like (+-clip after clipping). The estimator runs under ``lax.cond``
  only on refresh steps; the effective b2 per step is 1 - (1 - b2) / k.
* The Hessian estimator is a transformation (``hessian_diag_fn``) whose state
  sits in ``state.hessian_fn_state`` and holds its PRNG key (split each time it
  runs). ``None`` (default) builds ``hutchinson_diag_hessian(seed=seed)``
  (``optkit.core.hessian`` through ``optkit.curvature.adahessian``), as the
  style guide forbids defaults built at import. For several probes pass
  ``hessian_diag_fn=optkit.hutchinson_diag_hessian(num_samples=n)``.
  ``seed`` only seeds that default estimator.
* Negative Hutchinson estimates: ``max(gamma h, eps)`` turns them into eps,
  so such coordinates take the clipped (sign) step, as in optax (the official
  SophiaH applies ``relu`` to h, which gives the same clipped step).
* Sophia-G's extra input: ``value_fn(params, key=k)`` (the one exception to
  the ``value_fn(params)`` signature) returns the mean cross-entropy of the
  model's logits against labels sampled from its own softmax with key ``k``
  (a typed JAX key) with stop-gradient on the samples; ``gnb_value_fn``
  builds it from ``logits_fn: params -> logits``. The estimator cannot see B,
  so ``batch_size`` is an argument of ``gnb_diag_hessian``/``sophia_g``
  (the official step's ``bs``).
* ``eps`` must be > 0 (finite in, finite out: h = 0 at the start).
* Statistics (m, h) are float32 for bf16/f32 params (``mu_dtype`` overrides
  m's); updates come back in the gradients' dtype.

Notes: the HVP or the extra backward pass runs every k steps only. Under data
parallelism average the estimate across devices (compute ``value_fn`` on the
global batch). Under ``optax.inject_hyperparams`` with bf16 params pass
``hyperparam_dtype=jnp.float32``. Diagnostics: the "win rate" (fraction of
coordinates with ``|m_eff| < clip gamma h``) should stay in 0.1-0.5; raise
gamma if it is too low.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import extra_args as extra_args_lib
from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate
from optkit.curvature.adahessian import hutchinson_diag_hessian

_NAME = "sophia"
_G_NAME = "sophia_g"
_GNB_NAME = "gnb_diag_hessian"
HESSIAN_REFRESH = ("lagged", "fresh", "delayed")


class GNBDiagHessianState(NamedTuple):
  key: jax.Array  # uint32 key data, shape (2,) for threefry; split at every call


class ScaleBySophiaState(NamedTuple):
  count: jax.Array          # int32, shape (): t - 1
  mu: optax.Updates         # m_t, EMA of gradients; float32 (or mu_dtype)
  nu: optax.Updates         # h_t, EMA of the diagonal estimate (not bias-corrected); float32
  hessian_fn_state: Any     # the estimator's state (its PRNG key)


# --------------------------------------------------------------------------
# Private helpers.


def _check_int(algo: str, minimum: int, **kwargs):
  """An integer >= minimum; tracers (inject_hyperparams) and schedules skip."""
  for arg, value in kwargs.items():
    if isinstance(value, jax.core.Tracer) or callable(value):
      continue
    v = np.asarray(value)
    if isinstance(value, bool) or v.size != 1 or v.dtype.kind not in "iuf" or (
        not np.isfinite(float(v.reshape(())))) or (
            float(v.reshape(())) != int(v.reshape(()))) or int(v.reshape(())) < minimum:
      raise ValueError(f"{algo}: `{arg}` must be an integer >= {minimum}, got {value!r}.")


def _accepts_key(fn: Callable[..., Any]) -> bool:
  """Whether ``fn`` can be called as ``fn(params, key=k)`` (True if unknown)."""
  try:
    params = inspect.signature(fn).parameters.values()
  except (TypeError, ValueError):
    return True
  return any(p.kind == p.VAR_KEYWORD or (
      p.name == "key" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
             for p in params)


# --------------------------------------------------------------------------
# Sophia-G: the Gauss-Newton-Bartlett estimator.


def gnb_value_fn(logits_fn: Callable[[Any], jax.Array]) -> Callable[..., jax.Array]:
  r"""Builds Sophia-G's ``value_fn(params, key)`` from ``logits_fn``.

  .. math::
    \ell(x; k) = \frac1B\sum_{b=1}^B \mathrm{CE}\big(f_b(x), \hat y_b\big),
    \qquad \hat y_b \sim \mathrm{softmax}\big(\mathrm{sg}(f_b(x))\big),

  with labels drawn with the key ``k`` and no gradient through the sampling.
  ``logits_fn(params)`` returns logits of shape ``(..., num_classes)`` on the
  current batch; every leading position (example or token) is one of the B
  sampled labels.

  Args:
    logits_fn: ``params -> logits`` on the current batch.

  Returns:
    ``value_fn(params, key)`` for ``gnb_diag_hessian`` / ``sophia_g``.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> logits_fn = lambda w: jnp.ones((4, 1)) @ w  # 4 examples, 3 classes
    >>> value_fn = optkit.gnb_value_fn(logits_fn)
    >>> value_fn(jnp.zeros((1, 3)), key=jax.random.key(0))  # log 3
    Array(1.0986..., dtype=float32)

  References:
    Liu et al., Sophia: A Scalable Stochastic Second-order Optimizer for
    Language Model Pre-training, https://arxiv.org/abs/2305.14342 (Alg. 3)
  """
  validate.callable_or_none("gnb_value_fn", logits_fn=logits_fn)

  def value_fn(params, key):
    logits = logits_fn(params)
    labels = jax.random.categorical(key, jax.lax.stop_gradient(logits), axis=-1)
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    return jnp.mean(nll)

  return value_fn


def gnb_diag_hessian(
    batch_size: float,
    seed: int = 0,
) -> optax.GradientTransformationExtraArgs:
  r"""Gauss-Newton-Bartlett estimate of the Gauss-Newton diagonal (Sophia-G).

  .. math::
    \hat g = \nabla_x \tfrac1B\textstyle\sum_b \mathrm{CE}(f_b(x), \hat y_b),
    \quad \hat y_b \sim \mathrm{softmax}(f_b(x)),\qquad
    \hat h = B\,\hat g\odot\hat g,

  whose expectation over the sampled labels is the diagonal of the
  Gauss-Newton matrix of the mean cross-entropy (Bartlett's identity). The
  incoming ``updates`` are ignored; the output has their shapes and dtypes.
  ``update`` needs ``params`` and ``value_fn`` called as
  ``value_fn(params, key=k)`` (build it with ``gnb_value_fn(logits_fn)``);
  ``k`` comes from the key in the state, split at every call.

  Args:
    batch_size: B, the number of sampled labels (examples or tokens) the mean
      in ``value_fn`` averages over (official SophiaG's ``bs``).
    seed: seeds the PRNG key kept in the state.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> logits_fn = lambda w: jnp.ones((1, 1)) @ w   # one example
    >>> est = optkit.gnb_diag_hessian(batch_size=1)
    >>> w = jnp.zeros((1, 2))                         # p = (1/2, 1/2)
    >>> est.update(w, est.init(w), w, value_fn=optkit.gnb_value_fn(logits_fn))[0]
    Array([[0.25, 0.25]], dtype=float32)

  References:
    Liu et al., Sophia: A Scalable Stochastic Second-order Optimizer for
    Language Model Pre-training, https://arxiv.org/abs/2305.14342 (Alg. 3)
  """
  validate.positive(_GNB_NAME, batch_size=batch_size)
  _check_int(_GNB_NAME, -(2 ** 62), seed=seed)

  def init_fn(params):
    del params
    return GNBDiagHessianState(key=jax.random.key_data(jax.random.key(seed)))

  def update_fn(updates, state, params=None, **extra_args):
    params = extra_args_lib.require_params(
        _GNB_NAME, params, "the gradient is taken at params")
    tree_lib.check_same_structure(_GNB_NAME, updates, params, what="the params")
    value_fn = extra_args_lib.require(_GNB_NAME, extra_args, "value_fn")
    if not _accepts_key(value_fn):
      raise ValueError(
          f"{_GNB_NAME}: `value_fn` must accept a `key` keyword and return the mean "
          "cross-entropy against labels sampled from the model's softmax with that "
          "key; build it with `optkit.gnb_value_fn(logits_fn)`.")
    new_key, label_key = jax.random.split(jax.random.wrap_key_data(state.key))
    g_hat = jax.grad(lambda p: value_fn(p, key=label_key))(params)
    est = jax.tree.map(
        lambda g: jnp.asarray(batch_size, numerics.stat_dtype(g)) * jnp.square(
            g.astype(numerics.stat_dtype(g))), g_hat)
    return (optax.tree.cast_like(est, updates),
            GNBDiagHessianState(key=jax.random.key_data(new_key)))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# --------------------------------------------------------------------------
# Sophia.


def scale_by_sophia(
    b1: float = 0.965,
    b2: float = 0.99,
    gamma: float = 0.01,
    eps: float = 1e-8,
    clip_threshold: Optional[float] = 1.0,
    update_interval: int = 10,
    *,
    hessian_diag_fn: Optional[optax.GradientTransformation] = None,
    bias_correction: bool = True,
    hessian_refresh: str = "lagged",
    seed: int = 0,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Sophia's direction (no learning rate, no weight decay), Alg. 1.

  .. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\qquad
    h_t = \beta_2 h_{t-k} + (1-\beta_2)\hat h_t\ \ \text{every } k \text{ steps},

  .. math::
    u_t = \mathrm{clip}\Big(\frac{\tilde m_t}{\max(\gamma h_t, \epsilon)},
      -c, c\Big),\qquad \tilde m_t = m_t/(1-\beta_1^t)\ \text{or}\ m_t.

  ``update`` needs ``params`` and ``value_fn`` (``params -> loss`` on the
  current batch for Sophia-H; ``value_fn(params, key=k)`` for the Sophia-G
  estimator). The estimator runs under ``lax.cond`` only on refresh steps
  (see ``hessian_refresh`` and the module docstring).

  Args:
    b1: beta_1, gradient EMA decay (optax/official: 0.965).
    b2: beta_2, EMA decay of the diagonal estimate (optax/official: 0.99).
    gamma: scale of h in the denominator (optax: 0.01; official SophiaG rho
      0.04 with the factor B inside the estimate).
    eps: floor of ``gamma * h`` (optax: 1e-8); must be > 0.
    clip_threshold: c, the box the update is clipped to (paper: 1); None for
      no clipping.
    update_interval: k, refresh h every k steps (optax/official: 10).
    hessian_diag_fn: the diagonal estimator (a transformation taking
      ``value_fn``); None: ``hutchinson_diag_hessian(seed=seed)`` (Sophia-H).
    bias_correction: divide m by 1 - b1^t (optax: yes; official SophiaG: no).
    hessian_refresh: ``'lagged'`` (optax), ``'fresh'`` (pytorch_optimizer
      SophiaH) or ``'delayed'`` (official SophiaG loop); see module docstring.
    seed: seeds the default estimator's PRNG key.
    mu_dtype: dtype of m (default float32).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 100.0]) * p ** 2)
    >>> tx = optkit.scale_by_sophia(gamma=1.0, hessian_refresh="fresh")
    >>> p = jnp.array([0.01, 0.0001])
    >>> g = jnp.array([0.01, 0.01])  # the gradient at p
    >>> tx.update(g, tx.init(p), p, value_fn=loss)[0]  # g / (gamma h): h = 0.01 diag H
    Array([1. , 0.01], dtype=float32)

  References:
    Liu et al., Sophia: A Scalable Stochastic Second-order Optimizer for
    Language Model Pre-training, https://arxiv.org/abs/2305.14342
  """
  validate.unit_interval(_NAME, b1=b1, b2=b2)
  validate.non_negative(_NAME, gamma=gamma)
  validate.positive(_NAME, eps=eps)
  if clip_threshold is not None:
    validate.positive(_NAME, clip_threshold=clip_threshold)
  validate.positive(_NAME, update_interval=update_interval)
  _check_int(_NAME, 1, update_interval=update_interval)
  validate.one_of(_NAME, "hessian_refresh", hessian_refresh, HESSIAN_REFRESH)
  if hessian_diag_fn is None:
    _check_int(_NAME, -(2 ** 62), seed=seed)
    hessian_diag_fn = hutchinson_diag_hessian(seed=seed)
  else:
    validate.transformation(_NAME, hessian_diag_fn=hessian_diag_fn)
  hess_fn = optax.with_extra_args_support(hessian_diag_fn)

  def init_fn(params):
    mu = jax.tree.map(
        lambda p: jnp.zeros(jnp.shape(p), mu_dtype or numerics.stat_dtype(p)), params)
    nu = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), numerics.stat_dtype(p)), params)
    return ScaleBySophiaState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu,
                              hessian_fn_state=hess_fn.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    tree_lib.check_same_structure(_NAME, updates, state.mu)
    params = extra_args_lib.require_params(
        _NAME, params, "the Hessian diagonal is estimated at params")
    extra_args_lib.require(_NAME, extra_args, "value_fn")

    leaves = jax.tree.leaves(state.nu)
    cdtype = jnp.result_type(*leaves) if leaves else jnp.float32
    as_c = lambda v: jnp.asarray(v, cdtype)
    b1_, b2_, gamma_, eps_ = as_c(b1), as_c(b2), as_c(gamma), as_c(eps)

    refresh = state.count % update_interval == 0                     # Alg. 1, line 5
    if hessian_refresh == "delayed":
      refresh = jnp.logical_and(refresh, state.count > 0)

    def estimate(hs, nu):                                            # Alg. 1, lines 6-7
      h_hat, hs = hess_fn.update(updates, hs, params, **extra_args)
      nu = jax.tree.map(lambda n, e: b2_ * n + (1 - b2_) * e.astype(n.dtype), nu, h_hat)
      return hs, nu

    def keep(hs, nu):
      return hs, nu

    if hessian_refresh == "lagged":   # direction from the previous h (optax)
      h_for_step = state.nu
    hs, nu = jax.lax.cond(refresh, estimate, keep, state.hessian_fn_state, state.nu)
    if hessian_refresh != "lagged":   # direction from the refreshed h
      h_for_step = nu

    mu = jax.tree.map(                                               # Alg. 1, line 4
        lambda g, m: (b1_ * m.astype(cdtype) + (1 - b1_) * g.astype(cdtype)),
        updates, state.mu)
    if bias_correction:
      t = (state.count + 1).astype(cdtype)
      bc = jnp.maximum(1 - b1_ ** t, jnp.finfo(cdtype).tiny)
      m_eff = jax.tree.map(lambda m: m / bc, mu)
    else:
      m_eff = mu

    def direction(m, h):                                             # Alg. 1, line 10
      u = m / jnp.maximum(gamma_ * h, eps_)
      if clip_threshold is not None:
        c = as_c(clip_threshold)
        u = jnp.clip(u, -c, c)
      return u

    out = jax.tree.map(direction, m_eff, h_for_step)
    new_state = ScaleBySophiaState(
        count=optax.safe_increment(state.count),
        mu=jax.tree.map(lambda m, old: m.astype(old.dtype), mu, state.mu),
        nu=nu, hessian_fn_state=hs)
    return optax.tree.cast_like(out, updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def sophia(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.965,
    b2: float = 0.99,
    gamma: float = 0.01,
    eps: float = 1e-8,
    clip_threshold: Optional[float] = 1.0,
    update_interval: int = 10,
    weight_decay: float = 1e-4,
    *,
    hessian_diag_fn: Optional[optax.GradientTransformation] = None,
    bias_correction: bool = True,
    hessian_refresh: str = "lagged",
    seed: int = 0,
    mask: Optional[Any] = None,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""The Sophia optimizer (Sophia-H by default; optax's conventions).

  .. math::
    x_t = x_{t-1} - \eta\Big(\mathrm{clip}\Big(\frac{\tilde m_t}
      {\max(\gamma h_t,\epsilon)}, -c, c\Big) + \lambda x_{t-1}\Big),

  with m, h as in ``scale_by_sophia``. Built as ``chain(scale_by_sophia,
  add_decayed_weights(weight_decay, mask), scale_by_learning_rate(lr))``,
  which is ``optax.contrib.sophia`` with ``obj_fn`` spelled ``value_fn``.
  ``update`` needs ``params`` and ``value_fn=lambda p: loss(p, batch)``.
  For the official Sophia-G use ``sophia_g``.

  Args:
    learning_rate: eta, a number or schedule.
    b1: beta_1 (0.965).
    b2: beta_2 (0.99).
    gamma: scale of h (optax: 0.01).
    eps: floor of ``gamma * h`` (1e-8).
    clip_threshold: c (1); None: no clipping.
    update_interval: k, Hessian refresh period (10).
    weight_decay: lambda, decoupled (optax: 1e-4).
    hessian_diag_fn: diagonal estimator; None: Hutchinson (Sophia-H).
    bias_correction: bias-correct m (optax: yes).
    hessian_refresh: ``'lagged'``, ``'fresh'`` or ``'delayed'``.
    seed: seeds the default estimator's key.
    mask: optional tree or callable selecting the decayed params.
    mu_dtype: dtype of m.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optax
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 100.0]) * p ** 2)
    >>> params = jnp.array([1.0, 1.0])
    >>> opt = optkit.sophia(learning_rate=0.1, weight_decay=0.0)
    >>> state = opt.init(params)
    >>> for _ in range(3):
    ...   grads = jax.grad(loss)(params)
    ...   updates, state = opt.update(grads, state, params, value_fn=loss)
    ...   params = optax.apply_updates(params, updates)
    >>> params  # clipped steps: every coordinate moves by lr per step
    Array([0.7..., 0.7...], dtype=float32)

  References:
    Liu et al., Sophia: A Scalable Stochastic Second-order Optimizer for
    Language Model Pre-training, https://arxiv.org/abs/2305.14342
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_sophia(
          b1=b1, b2=b2, gamma=gamma, eps=eps, clip_threshold=clip_threshold,
          update_interval=update_interval, hessian_diag_fn=hessian_diag_fn,
          bias_correction=bias_correction, hessian_refresh=hessian_refresh,
          seed=seed, mu_dtype=mu_dtype),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )


def sophia_g(
    learning_rate: optax.ScalarOrSchedule = 1e-4,
    b1: float = 0.965,
    b2: float = 0.99,
    rho: float = 0.04,
    weight_decay: float = 0.1,
    *,
    batch_size: float,
    update_interval: int = 10,
    eps: float = 1e-15,
    seed: int = 0,
    mask: Optional[Any] = None,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Sophia-G as in the authors' code (Liuhong99/Sophia ``SophiaG``).

  .. math::
    x_t = x_{t-1}(1-\eta\lambda) - \eta\,\mathrm{sign}(m_t)
      \min\Big(\frac{|m_t|}{\rho\,h_t}, 1\Big),\qquad
    h \leftarrow \beta_2 h + (1-\beta_2) B\,\hat g\odot\hat g
    \ \text{every } k \text{ steps},

  i.e. ``sophia`` with ``gnb_diag_hessian(batch_size, seed)``,
  ``gamma=rho``, ``bias_correction=False``, ``hessian_refresh='delayed'``.
  ``update`` needs ``params`` and ``value_fn(params, key=k)`` (mean
  cross-entropy against labels sampled with key k; build it with
  ``gnb_value_fn(logits_fn)``).

  Args:
    learning_rate: eta (official: 1e-4).
    b1: beta_1 (official: 0.965).
    b2: beta_2 (official: 0.99).
    rho: official rho (0.04), the scale of h.
    weight_decay: lambda, decoupled (official: 0.1).
    batch_size: B, the number of sampled labels (tokens) per estimate
      (official ``bs`` = batch size x block length).
    update_interval: k (official: 10).
    eps: floor of ``rho * h`` (official adds 1e-15).
    seed: seeds the estimator's PRNG key.
    mask: optional tree or callable selecting the decayed params.
    mu_dtype: dtype of m.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optax
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> y = jnp.array([0, 1, 2])
    >>> logits = lambda w, x=x: x @ w
    >>> def loss(w):
    ...   return -jnp.mean(jnp.take_along_axis(
    ...       jax.nn.log_softmax(logits(w)), y[:, None], axis=1))
    >>> w = jnp.zeros((2, 3))
    >>> opt = optkit.sophia_g(0.1, batch_size=3, update_interval=2)
    >>> @jax.jit
    ... def step(w, state):
    ...   updates, state = opt.update(jax.grad(loss)(w), state, w,
    ...                               value_fn=optkit.gnb_value_fn(logits))
    ...   return optax.apply_updates(w, updates), state
    >>> state = opt.init(w)
    >>> for _ in range(20):
    ...   w, state = step(w, state)
    >>> bool(loss(w) < 0.8 * loss(jnp.zeros((2, 3))))
    True

  References:
    Liu et al., Sophia: A Scalable Stochastic Second-order Optimizer for
    Language Model Pre-training, https://arxiv.org/abs/2305.14342
  """
  validate.learning_rate(_G_NAME, learning_rate)
  validate.non_negative(_G_NAME, weight_decay=weight_decay, rho=rho)
  validate.unit_interval(_G_NAME, b1=b1, b2=b2)
  validate.positive(_G_NAME, eps=eps, batch_size=batch_size)
  return sophia(
      learning_rate, b1=b1, b2=b2, gamma=rho, eps=eps, clip_threshold=1.0,
      update_interval=update_interval, weight_decay=weight_decay,
      hessian_diag_fn=gnb_diag_hessian(batch_size, seed=seed),
      bias_correction=False, hessian_refresh="delayed", mask=mask, mu_dtype=mu_dtype)
