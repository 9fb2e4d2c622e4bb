"""AdaHessian: Adam-style steps preconditioned by a Hutchinson Hessian diagonal.

Yao, Gholami, Shen, Mustafa, Keutzer, Mahoney, "ADAHESSIAN: An Adaptive Second
Order Optimizer for Machine Learning", arXiv:2006.00719 (Sec. 3: Hutchinson
diagonal, spatial averaging, Hessian momentum; Algorithm 1). The rule below is
the authors' code (amirgholami/adahessian,
``image_classification/optim_adahessian.py``), restated, not copied.

One step (gradient g, params x, Rademacher probes z_s, t = count + 1)::

  D     = | mean_s z_s * (H z_s) |        # Hutchinson diagonal (official: |H z|)
  D     = mean_{spatial axes} D           # 4-D conv kernels only, broadcast back
  m     = b1 m + (1 - b1) g
  v     = b2 v + (1 - b2) D^2
  denom = (sqrt(v) / sqrt(1 - b2^t))^k + eps           # eps AFTER the power
  x    <- x - lr * ( (m / (1 - b1^t)) / denom + wd * x )

Paper -> code: beta_1 -> ``b1``, beta_2 -> ``b2``, k (Hessian power) ->
``hessian_power``, epsilon -> ``eps``, eta -> ``learning_rate``, weight decay ->
``weight_decay``, m_t -> ``state.mu``, v_t -> ``state.nu`` (un-bias-corrected
EMA of D^2), D^(s) -> ``state.hessian_diag`` (last spatially averaged |D|),
probe key -> ``state.key``. The Hessian-vector product is
``jax.jvp(jax.grad(value_fn), (x,), (z,))`` (``optkit.core.hessian``).

Defaults (official optimizer): lr 0.15, betas (0.9, 0.999), eps 1e-4,
weight_decay 0, hessian_power 1, one Rademacher probe per step, spatial
averaging of 4-D kernels.

Decisions on the points the catalog entry leaves to the implementation:

* Weight decay: the official code puts ``wd * x`` INSIDE the lr-scaled step,
  which is exactly ``chain(scale_by_adahessian, add_decayed_weights(wd),
  scale_by_learning_rate(lr))``; ``adahessian`` is built that way.
* Spatial axes: the official code averages dims (2, 3) of PyTorch's
  (out, in, kh, kw) kernels. Flax kernels are (kh, kw, in, out), so
  ``spatial_axes`` defaults to (0, 1); pass (2, 3) for PyTorch-layout
  kernels. Only 4-D leaves are averaged; 0/1/2/3-D leaves are left alone (the
  official optimizer has no branch for 3-D Conv1D kernels; its later
  ``instruction/`` variant also averages rows of 2-D matrices, which is not
  the variant the catalog follows).
* Several probes: ``num_samples > 1`` averages ``z * Hz`` over the probes
  BEFORE the absolute value (the official code has one probe, where
  ``|Hz| = |z * Hz|``).
* Delayed Hessian (``update_interval = k``): the HVP is computed under
  ``lax.cond`` only when ``count % k == 0`` (steps 0, k, 2k, ...); between
  refreshes the last D (in ``state.hessian_diag``) is reused. By default the
  EMA ``v`` still takes ``D^2`` every step, so ``v`` stays a t-term EMA that
  matches its bias correction ``1 - b2^t``. ``freeze_nu_between_refreshes=True``
  instead leaves ``v`` untouched between refreshes while the bias correction
  still uses t: this is pytorch_optimizer's ``update_period`` behaviour.
* Probe key: ``state.key`` (uint32 key data) is split every step, refresh or
  not: ``key, probe_key = split(key)``.
* ``eps = 0`` with ``v = 0`` would divide 0 by 0: where ``denom == 0`` the
  direction is 0 (finite in, finite out).

Conventions of pytorch_optimizer 4.1.0's ``AdaHessian`` (checked by the
fixture test) and how to reproduce them here: eps 1e-16 (``eps=1e-16``); lr
0.1; no spatial averaging (``spatial_average=False``); D = z * Hz without the
absolute value (irrelevant: only D^2 enters v); denominator computed as
``(v / (1 - b2^t))^(k/2) + eps`` (the same number up to rounding);
``update_period`` freezes ``v`` between refreshes
(``freeze_nu_between_refreshes=True``); decoupled decay
``x <- x (1 - lr wd)`` applied before the step with the pre-step x, which is
the same as ``add_decayed_weights`` before ``scale_by_learning_rate``; its
default Hutchinson distribution for ``compute_hutchinson_hessian`` is
Gaussian, but ``AdaHessian`` passes Rademacher.

Notes: the HVP costs about one extra backward pass; ``value_fn`` must use the
same batch as the gradient. Under data parallelism compute ``value_fn`` on the
global batch (or average D across devices). Inside ``optax.masked`` the
``params`` given to ``update`` (hence to ``value_fn``) is the masked tree
(``optax.MaskedNode`` at masked-out leaves), so ``value_fn`` must accept it:
build it with ``optkit.core.extra_args.masked_value_fn(loss, params, mask)``.
Under ``optax.inject_hyperparams`` with bf16 params pass
``hyperparam_dtype=jnp.float32``: a b2 of 0.999 rounds to 1.0 in bf16.

Test hook: the private argument ``_probe_fn(key, params) -> probes`` replaces
the random probes (one call per sample; a single sample gets the step's probe
key itself, several get ``split(probe_key, num_samples)``), so tests can
compare with a reference that uses the same z. It is not part of the API.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import extra_args as extra_args_lib
from optkit.core import hessian as hessian_lib
from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "adahessian"
_EST_NAME = "hutchinson_diag_hessian"

ProbeFn = Callable[[jax.Array, Any], Any]


class HutchinsonDiagHessianState(NamedTuple):
  key: jax.Array  # uint32 key data, shape (2,) for threefry; split every step


class ScaleByAdaHessianState(NamedTuple):
  count: jax.Array            # int32, shape (): t - 1
  mu: optax.Updates           # m_t, EMA of gradients; float32 (float64 for f64 params)
  nu: optax.Updates           # v_t, EMA of D^2 (not bias-corrected); same dtype as mu
  hessian_diag: optax.Updates  # last D (|Hutchinson| after spatial averaging)
  key: jax.Array              # uint32 key data; split every step


# --------------------------------------------------------------------------
# Private helpers.


def _init_key(seed) -> jax.Array:
  return jax.random.key_data(jax.random.key(seed))


def _split_key(key_data: jax.Array):
  """``(new_key_data, probe_key)``: the key schedule of both transformations."""
  new_key, probe_key = jax.random.split(jax.random.wrap_key_data(key_data))
  return jax.random.key_data(new_key), probe_key


def _hutchinson(value_fn, params, key, num_samples: int, distribution: str,
                probe_fn: Optional[ProbeFn]):
  """``mean_s z_s * (H z_s)``; the probes come from ``probe_fn`` when given."""
  if probe_fn is None:
    return hessian_lib.hutchinson_diag(value_fn, params, key, num_samples, distribution)
  keys = [key] if num_samples == 1 else list(jax.random.split(key, num_samples))
  total = None
  for k in keys:
    z = jax.tree.map(lambda zz, p: jnp.asarray(zz, jnp.result_type(p)),
                     probe_fn(k, params), params)
    est = jax.tree.map(jnp.multiply, z, hessian_lib.hvp(value_fn, params, z))
    total = est if total is None else jax.tree.map(jnp.add, total, est)
  return jax.tree.map(lambda t: t / num_samples, total)


def _spatial_mean(d: jax.Array, axes: tuple[int, ...]) -> jax.Array:
  """Mean of a 4-D leaf over ``axes``, broadcast back; other ranks unchanged."""
  if d.ndim != 4:
    return d
  return jnp.broadcast_to(jnp.mean(d, axis=axes, keepdims=True), d.shape)


def _check_interval(algo: str, update_interval: Any):
  validate.positive(algo, update_interval=update_interval)
  if isinstance(update_interval, (bool, jax.core.Tracer)) or callable(update_interval):
    return
  try:
    v = np.asarray(update_interval)
  except Exception:  # pylint: disable=broad-except
    return
  if v.size == 1 and float(v.reshape(())) != int(v.reshape(())):
    raise ValueError(f"{algo}: `update_interval` must be an integer >= 1, "
                     f"got {update_interval!r}.")


def _check_axes(algo: str, spatial_axes: Any) -> tuple[int, ...]:
  try:
    axes = tuple(int(a) for a in spatial_axes)
    ok = all(float(a) == int(a) for a in spatial_axes)
  except (TypeError, ValueError):
    ok = False
  if not ok or not axes or any(not -4 <= a < 4 for a in axes) or (
      len({a % 4 for a in axes}) != len(axes)) or len(axes) > 3:
    raise ValueError(
        f"{algo}: `spatial_axes` must be 1 to 3 distinct axes of a 4-D kernel "
        f"(in [-4, 3]), got {spatial_axes!r}.")
  return tuple(a % 4 for a in axes)


def _check_estimator_args(algo: str, num_samples, distribution, seed, probe_fn):
  validate.integer_at_least(algo, 1, num_samples=num_samples)
  validate.one_of(algo, "distribution", distribution, hessian_lib.DISTRIBUTIONS)
  validate.seed(algo, seed)
  validate.callable_or_none(algo, _probe_fn=probe_fn)


# --------------------------------------------------------------------------
# Public transformations.


def hutchinson_diag_hessian(
    num_samples: int = 1,
    distribution: str = "rademacher",
    seed: int = 0,
    *,
    _probe_fn: Optional[ProbeFn] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Hutchinson's estimate of the Hessian diagonal, as a transformation.

  .. math::
    \widehat{\mathrm{diag}(H)} = \frac{1}{S}\sum_{s=1}^S z_s \odot (H z_s),
    \qquad \mathbb{E}[z z^\top] = I,

  an unbiased estimate (exact for Rademacher probes when H is diagonal). The
  incoming ``updates`` are ignored; the output has their shapes and dtypes.
  It needs ``params`` and the extra argument ``value_fn`` (``params -> loss``
  on the current batch). The key in the state is split every step. With one
  Rademacher sample this is ``optax.contrib.hutchinson_estimator_diag_hessian``
  (which calls the loss ``obj_fn``) up to the probe draw.

  Args:
    num_samples: probes averaged per call (static).
    distribution: ``'rademacher'`` (the paper's) or ``'gaussian'`` (static).
    seed: seeds the PRNG key kept in the state.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([2.0, -3.0]) * p ** 2)
    >>> est = optkit.hutchinson_diag_hessian()
    >>> p = jnp.array([1.0, 1.0])
    >>> est.update(p, est.init(p), p, value_fn=loss)[0]
    Array([ 2., -3.], dtype=float32)

  References:
    Yao et al., ADAHESSIAN: An Adaptive Second Order Optimizer for Machine
    Learning, https://arxiv.org/abs/2006.00719
  """
  _check_estimator_args(_EST_NAME, num_samples, distribution, seed, _probe_fn)
  num_samples = int(num_samples)

  def init_fn(params):
    del params
    return HutchinsonDiagHessianState(key=_init_key(seed))

  def update_fn(updates, state, params=None, **extra_args):
    params = extra_args_lib.require_params(
        _EST_NAME, params, "the Hessian is taken at params")
    tree_lib.check_same_structure(_EST_NAME, updates, params, what="the params")
    value_fn = extra_args_lib.require(_EST_NAME, extra_args, "value_fn")
    new_key, probe_key = _split_key(state.key)
    est = _hutchinson(value_fn, params, probe_key, num_samples, distribution, _probe_fn)
    return optax.tree.cast_like(est, updates), HutchinsonDiagHessianState(key=new_key)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_adahessian(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-4,
    hessian_power: float = 1.0,
    update_interval: int = 1,
    *,
    spatial_average: bool = True,
    spatial_axes: Sequence[int] = (0, 1),
    num_samples: int = 1,
    distribution: str = "rademacher",
    seed: int = 0,
    freeze_nu_between_refreshes: bool = False,
    _probe_fn: Optional[ProbeFn] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""AdaHessian's direction (no learning rate, no weight decay).

  .. math::
    D_t = \big|\tfrac1S\textstyle\sum_s z_s\odot H z_s\big|\ \text{(spatially
    averaged)},\quad m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) D_t^2,

  .. math::
    u_t = \frac{m_t / (1-\beta_1^t)}
               {\big(\sqrt{v_t}/\sqrt{1-\beta_2^t}\big)^k + \epsilon}.

  ``update`` needs ``params`` and ``value_fn`` (``params -> loss`` on the
  current batch). D is recomputed every ``update_interval`` steps (under
  ``lax.cond``) and reused in between; see the module docstring for ``v``.

  Args:
    b1: beta_1, gradient EMA decay (official: 0.9).
    b2: beta_2, EMA decay of D^2 (official: 0.999).
    eps: added to the denominator after the Hessian power (official: 1e-4;
      pytorch_optimizer: 1e-16).
    hessian_power: k in [0, 1] (official: 1); k = 0 gives bias-corrected
      momentum SGD scaled by 1 / (1 + eps).
    update_interval: refresh D every this many steps (1: every step).
    spatial_average: average D over ``spatial_axes`` of 4-D leaves (official:
      yes for conv kernels).
    spatial_axes: the kernel's spatial axes; (0, 1) for Flax's
      (kh, kw, in, out), (2, 3) for PyTorch's (out, in, kh, kw) (static).
    num_samples: Hutchinson probes per refresh (official: 1; static).
    distribution: ``'rademacher'`` (official) or ``'gaussian'`` (static).
    seed: seeds the PRNG key kept in the state.
    freeze_nu_between_refreshes: leave v unchanged on steps that do not
      refresh D (pytorch_optimizer's ``update_period``); default False: v takes
      the reused D every step.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 100.0]) * p ** 2)
    >>> tx = optkit.scale_by_adahessian(eps=0.0)
    >>> p = jnp.array([1.0, 1.0])
    >>> g = jnp.array([1.0, 100.0])  # the gradient at p
    >>> tx.update(g, tx.init(p), p, value_fn=loss)[0]  # Newton-like: g / |diag H|
    Array([1., 1.], dtype=float32)

  References:
    Yao et al., ADAHESSIAN: An Adaptive Second Order Optimizer for Machine
    Learning, https://arxiv.org/abs/2006.00719
  """
  validate.unit_interval(_NAME, b1=b1, b2=b2)
  validate.non_negative(_NAME, eps=eps)
  validate.closed_unit_interval(_NAME, hessian_power=hessian_power)
  _check_interval(_NAME, update_interval)
  _check_estimator_args(_NAME, num_samples, distribution, seed, _probe_fn)
  axes = _check_axes(_NAME, spatial_axes)
  num_samples = int(num_samples)

  def init_fn(params):
    zeros = lambda p: jnp.zeros(jnp.shape(p), numerics.stat_dtype(p))
    return ScaleByAdaHessianState(
        count=jnp.zeros([], jnp.int32),
        mu=jax.tree.map(zeros, params),
        nu=jax.tree.map(zeros, params),
        hessian_diag=jax.tree.map(zeros, params),
        key=_init_key(seed))

  def update_fn(updates, state, params=None, **extra_args):
    tree_lib.check_same_structure(_NAME, updates, state.mu)
    params = extra_args_lib.require_params(
        _NAME, params, "the Hessian-vector product is taken at params")
    value_fn = extra_args_lib.require(_NAME, extra_args, "value_fn")
    new_key, probe_key = _split_key(state.key)
    refresh = state.count % update_interval == 0

    def fresh_diag():
      est = _hutchinson(value_fn, params, probe_key, num_samples, distribution, _probe_fn)
      d = jax.tree.map(lambda e, old: jnp.abs(e).astype(old.dtype), est, state.hessian_diag)
      if spatial_average:
        d = jax.tree.map(lambda x: _spatial_mean(x, axes), d)
      return d

    d = jax.lax.cond(refresh, fresh_diag, lambda: state.hessian_diag)

    leaves = jax.tree.leaves(state.mu)
    cdtype = jnp.result_type(*leaves) if leaves else jnp.float32
    as_c = lambda h: jnp.asarray(h, dtype=cdtype)
    b1_, b2_, eps_, k_ = as_c(b1), as_c(b2), as_c(eps), as_c(hessian_power)
    t = (state.count + 1).astype(cdtype)
    tiny = jnp.finfo(cdtype).tiny
    bc1 = jnp.maximum(1 - b1_ ** t, tiny)
    sqrt_bc2 = jnp.sqrt(jnp.maximum(1 - b2_ ** t, tiny))

    mu = jax.tree.map(lambda g, m: b1_ * m + (1 - b1_) * g.astype(m.dtype), updates, state.mu)
    nu = jax.tree.map(lambda v, dd: b2_ * v + (1 - b2_) * dd * dd, state.nu, d)
    if freeze_nu_between_refreshes:
      nu = jax.tree.map(lambda new, old: jnp.where(refresh, new, old), nu, state.nu)

    def direction(m, v):
      denom = jnp.power(jnp.sqrt(v) / sqrt_bc2, k_) + eps_
      safe = jnp.where(denom > 0, denom, 1)
      return jnp.where(denom > 0, (m / bc1) / safe, 0)

    out = jax.tree.map(direction, mu, nu)
    new_state = ScaleByAdaHessianState(
        count=optax.safe_increment(state.count), mu=mu, nu=nu, hessian_diag=d,
        key=new_key)
    return optax.tree.cast_like(out, updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adahessian(
    learning_rate: optax.ScalarOrSchedule = 0.15,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-4,
    weight_decay: float = 0.0,
    hessian_power: float = 1.0,
    update_interval: int = 1,
    *,
    spatial_average: bool = True,
    spatial_axes: Sequence[int] = (0, 1),
    num_samples: int = 1,
    distribution: str = "rademacher",
    seed: int = 0,
    freeze_nu_between_refreshes: bool = False,
    mask: Optional[Any] = None,
    _probe_fn: Optional[ProbeFn] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""The AdaHessian optimizer (official rule, decay inside the lr-scaled step).

  .. math::
    x_{t} = x_{t-1} - \eta\Big(\frac{m_t/(1-\beta_1^t)}
      {(\sqrt{v_t}/\sqrt{1-\beta_2^t})^k + \epsilon} + \lambda x_{t-1}\Big),

  with m, v, D as in ``scale_by_adahessian``. Built as
  ``chain(scale_by_adahessian, add_decayed_weights(weight_decay, mask),
  scale_by_learning_rate(learning_rate))``. ``update`` needs ``params`` and
  ``value_fn=lambda p: loss(p, batch)`` (same batch as the gradient).

  Args:
    learning_rate: eta, a number or schedule (official: 0.15).
    b1: beta_1 (official: 0.9).
    b2: beta_2 (official: 0.999).
    eps: added after the Hessian power (official: 1e-4).
    weight_decay: lambda, added to the direction before the lr (official: 0).
    hessian_power: k in [0, 1] (official: 1).
    update_interval: refresh the Hessian diagonal every this many steps.
    spatial_average: average D over the spatial axes of 4-D kernels.
    spatial_axes: spatial axes of 4-D kernels ((0, 1): Flax layout).
    num_samples: Hutchinson probes per refresh (static).
    distribution: ``'rademacher'`` or ``'gaussian'`` (static).
    seed: seeds the PRNG key kept in the state.
    freeze_nu_between_refreshes: pytorch_optimizer's ``update_period``
      behaviour (v only updated when D is refreshed).
    mask: optional tree or callable selecting the decayed params.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optax
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 100.0]) * p ** 2)
    >>> params = jnp.array([1.0, 1.0])
    >>> opt = optkit.adahessian(learning_rate=0.1)
    >>> state = opt.init(params)
    >>> for _ in range(3):
    ...   grads = jax.grad(loss)(params)
    ...   updates, state = opt.update(grads, state, params, value_fn=loss)
    ...   params = optax.apply_updates(params, updates)
    >>> params  # both coordinates move alike despite 100x curvature
    Array([0.7..., 0.7...], dtype=float32)

  References:
    Yao et al., ADAHESSIAN: An Adaptive Second Order Optimizer for Machine
    Learning, https://arxiv.org/abs/2006.00719
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_adahessian(
          b1=b1, b2=b2, eps=eps, hessian_power=hessian_power,
          update_interval=update_interval, spatial_average=spatial_average,
          spatial_axes=spatial_axes, num_samples=num_samples,
          distribution=distribution, seed=seed,
          freeze_nu_between_refreshes=freeze_nu_between_refreshes,
          _probe_fn=_probe_fn),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
