"""Gradient-Guided Perturbation Optimization (GGPO) and random weight perturbation.

Chang et al., "LoRA-GGPO: Mitigating Double Descent in LoRA Fine-Tuning via
Gradient-Guided Perturbation Optimization", arXiv:2502.14538 (v1).

GGPO trains on the gradient at a randomly perturbed weight whose per-row noise
scale is set by the row's weight norm and the row's gradient norm::

    for each row i of the (merged) weight W' (n entries per row):
        sigma_i^2 = (sigma^2 / n) * (alpha ||W'_i||^2 + beta ||grad_{W'_i} L||^2_prev)
        eps_i ~ N(0, sigma_i^2 I_n)
    g = grad L(theta + eps)        (value_fn; the perturbation is not kept)
    update, inner_state = inner.update(g, inner_state, theta)

The gradient-norm term uses the previous step's gradient (kept in the state as
per-row norms), so the step costs one gradient evaluation (the one at
the perturbed point); the incoming ``updates`` are not used for the step.

Paper -> code: sigma (noise scale) -> ``sigma``; alpha (weight-norm
coefficient) -> ``alpha``; beta (gradient-norm coefficient) -> ``beta``;
W' = W + s B A (merged LoRA weight) -> ``merged_weight_fn``; the optimizer
(AdamW in the paper) -> ``inner``; L on the current batch -> ``value_fn``.

Rows. A "row" of a PyTorch ``Linear`` weight ``(out, in)`` is one output
unit, with ``n = in``. optkit leaves follow the JAX/Flax layout (kernels
``(in, out)``, conv kernels ``(h, w, in, out)``), so a row is one index of the
LAST axis (one output unit) and its norm runs over all the other axes;
``n = leaf.size / leaf.shape[-1]``. A 1-D leaf (a bias) has one row per entry
(``n = 1``); a 0-D leaf is one row.

Decisions on the catalog's UNSURE points:

* Combination of the two terms: the catalog's sum of squared norms, weighted
  by ``alpha`` and ``beta``, scaled by ``sigma^2 / n``. No EMA smoothing of the
  gradient norm: the previous step's squared row norms are used as they are
  (zeros before the first step, so step 1 uses the weight term only). Norms
  are kept (not squares) and combined with ``hypot``, so huge weights or
  gradients do not overflow float32.
* The gradient stored for the next step is the gradient the update used (at
  the perturbed point), the only one GGPO computes.
* Defaults: ``sigma=0.05, alpha=1.0, beta=1.0`` are not from the paper (it
  gives none we could check; llm172/LoRA-GGPO was not available). ``sigma`` is
  the perturbation radius and must be > 0 (``sigma <= 0`` raises ValueError:
  with no noise GGPO is just ``inner``); ``alpha, beta >= 0``.
* The LoRA-MGPO revision (v2, momentum-guided) is not implemented.
* ``merged_weight_fn(params)`` returns a tree shaped like ``params`` whose
  leaves give the weights ``W'`` used for the weight-norm term (default: the
  params themselves). For LoRA, keep the frozen base ``W`` in ``params``,
  return ``W + s B A`` for it, and perturb only that leaf with ``mask``: noise
  on ``W`` is noise on ``W'``, and the gradient of ``W`` equals the gradient
  with respect to ``W'``. ``mask`` (a tree of bools or a callable, as in
  ``optax.masked``) selects the leaves that get noise; the others are not
  perturbed.
* The noise is drawn in float32 with a key kept in the state (split every
  step); the perturbed point is cast to the params' dtype.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as _extra
from optkit.core import tree as _tree
from optkit.core import validate

_NAME = "ggpo_perturbation"
_RWP_NAME = "random_weight_perturbation"


class GGPOState(NamedTuple):
  """State of :func:`ggpo_perturbation`."""
  key: jax.Array  # uint32 key data, shape (2,) (threefry): split every step
  grad_row_norm: optax.Updates  # ||G_i|| per leaf, shape (leaf.shape[-1],) or (); float32
  inner_state: optax.OptState  # state of the inner optimizer


class RandomWeightPerturbationState(NamedTuple):
  """State of :func:`random_weight_perturbation`."""
  key: jax.Array  # uint32 key data, shape (2,): split every step
  inner_state: optax.OptState  # state of the inner optimizer


def _row_shape(x) -> tuple[int, ...]:
  """Shape of the per-row statistics of a leaf: its last axis (or ())."""
  return tuple(jnp.shape(x)[-1:])


def _row_norm(x) -> jax.Array:
  """Norm of every row (all axes but the last), float32, overflow-safe.

  Scaled by the row's largest magnitude first, so that squares of huge
  entries do not overflow.
  """
  x = x.astype(jnp.promote_types(jnp.result_type(x), jnp.float32))
  if jnp.ndim(x) <= 1:
    return jnp.abs(x)
  axes = tuple(range(jnp.ndim(x) - 1))
  m = jnp.max(jnp.abs(x), axis=axes, initial=0.0)
  safe = jnp.where(m > 0, m, 1.0)
  return m * jnp.sqrt(jnp.sum(jnp.square(x / safe), axis=axes))


def _row_size(x) -> int:
  """``n``: entries per row (at least 1, also for size-zero leaves)."""
  shape = jnp.shape(x)
  if len(shape) <= 1:
    return 1
  return max(int(math.prod(shape[:-1])), 1)


def _mask_tree(mask, params):
  if mask is None:
    return jax.tree.map(lambda _: True, params)
  return mask(params) if callable(mask) else mask


def ggpo_row_std(params: optax.Params, grad_row_norm: optax.Updates, sigma,
                 alpha, beta, merged_weight_fn: Optional[Callable] = None):
  """Per-row standard deviations ``sigma_i`` of GGPO's noise.

  ``sigma_i = sqrt((sigma^2 / n) (alpha ||W'_i||^2 + beta ||G_i||^2))`` with
  ``W' = merged_weight_fn(params)`` (default ``params``) and ``||G_i||`` the
  stored row norms of the previous gradient; computed as
  ``sigma / sqrt(n) * hypot(sqrt(alpha) ||W'_i||, sqrt(beta) ||G_i||)``, which
  does not overflow.

  Returns:
    A tree shaped like ``grad_row_norm`` (per leaf: ``(leaf.shape[-1],)`` or
    ``()``), float32.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.perturbation.ggpo import ggpo_row_std
    >>> w = jnp.array([[3.0, 0.0], [4.0, 1.0]])  # rows: columns (out units)
    >>> ggpo_row_std(w, jnp.zeros(2), sigma=1.0, alpha=1.0, beta=1.0)
    Array([3.535534 , 0.7071068], dtype=float32)
  """
  merged = params if merged_weight_fn is None else merged_weight_fn(params)

  def leaf(w, gnorm):
    n = _row_size(w)
    r = jnp.hypot(jnp.sqrt(alpha) * _row_norm(w), jnp.sqrt(beta) * gnorm)
    return (sigma / math.sqrt(n) * r).astype(jnp.float32)

  return jax.tree.map(leaf, merged, grad_row_norm)


def row_gaussian_noise(key: jax.Array, params: optax.Params,
                       row_std: Any, mask: Any = None) -> Any:
  """Noise ``eps`` shaped like ``params``: ``eps[..., i] ~ N(0, row_std[i]^2)``.

  ``row_std`` leaves broadcast against the last axis of each leaf (a scalar
  gives one standard deviation for the whole leaf); masked-out leaves get
  zeros. float32 (float64 for float64 params).

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> params = {'w': jnp.zeros((1000, 2))}
    >>> eps = optkit.row_gaussian_noise(jax.random.key(0), params, {'w': jnp.array([0.0, 1.0])})
    >>> eps['w'].std(axis=0).round(1)                # std 0 for column 0, 1 for column 1
    Array([0., 1.], dtype=float32)
  """
  mask_tree = _mask_tree(mask, params)
  leaves, treedef = jax.tree.flatten(params)
  stds = treedef.flatten_up_to(row_std)
  masks = treedef.flatten_up_to(mask_tree)
  keys = jax.random.split(key, max(len(leaves), 1))
  out = []
  for k, p, s, m in zip(keys, leaves, stds, masks):
    dt = jnp.promote_types(jnp.result_type(p), jnp.float32)
    if not m:
      out.append(jnp.zeros(jnp.shape(p), dt))
      continue
    z = jax.random.normal(k, jnp.shape(p), jnp.float32).astype(dt)
    out.append(z * jnp.asarray(s, dt))
  return jax.tree.unflatten(treedef, out)


def _perturbed_grad(value_fn, params, eps, updates):
  point = jax.tree.map(lambda p, e: (p + e).astype(jnp.result_type(p)),
                       params, eps)
  return optax.tree.cast_like(jax.grad(value_fn)(point), updates)


def _key_data(seed):
  return jax.random.key_data(jax.random.key(seed))


def _split(key_data):
  key, sub = jax.random.split(jax.random.wrap_key_data(key_data))
  return jax.random.key_data(key), sub


def ggpo_perturbation(
    inner: optax.GradientTransformation,
    sigma=0.05,
    alpha=1.0,
    beta=1.0,
    merged_weight_fn: Optional[Callable[[optax.Params], optax.Params]] = None,
    seed: int = 0,
    *,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""GGPO: the gradient at a gradient-guided random perturbation.

  Each step draws ``eps`` row by row (rows = last axis, see the module
  docstring) with
  ``sigma_i^2 = (sigma^2/n)(alpha ||W'_i||^2 + beta ||grad_{W'_i} L||^2_prev)``
  (:func:`ggpo_row_std`), evaluates ``g = grad L(theta + eps)`` with
  ``value_fn`` and lets ``inner`` step from ``theta`` with ``g``. The squared
  row norms of ``g`` are kept for the next step.

  Args:
    inner: the optimizer (an optax transformation with its learning rate;
      AdamW in the paper).
    sigma: perturbation radius ``sigma`` (> 0).
    alpha: weight-norm coefficient ``alpha`` (>= 0).
    beta: gradient-norm coefficient ``beta`` (>= 0).
    merged_weight_fn: ``params -> tree like params`` giving the weights whose
      row norms set the weight term (LoRA: ``W + s B A``); None uses params.
    seed: seeds the PRNG key kept in the state.
    mask: which leaves get noise (tree of bools or callable); None: all.

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``update`` requires
    ``value_fn`` and ``params``.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optax
    >>> loss = lambda p: jnp.sum(p ** 2)
    >>> tx = optkit.ggpo_perturbation(optax.sgd(0.1), sigma=1e-3)
    >>> p = jnp.array([3.0, 4.0])
    >>> u, _ = tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)
    >>> u  # about -0.1 * grad L(p)
    Array([-0.6..., -0.8...], dtype=float32)

  References:
    Chang et al., "LoRA-GGPO: Mitigating Double Descent in LoRA Fine-Tuning
    via Gradient-Guided Perturbation Optimization", 2025.
    https://arxiv.org/abs/2502.14538
  """
  validate.transformation(_NAME, inner=inner)
  validate.positive(_NAME, sigma=sigma)
  validate.non_negative(_NAME, alpha=alpha, beta=beta)
  validate.callable_or_none(_NAME, merged_weight_fn=merged_weight_fn)
  validate.integer_at_least(_NAME, 0, seed=seed)
  inner_tx = optax.with_extra_args_support(inner)

  def init_fn(params):
    gnorm = jax.tree.map(lambda p: jnp.zeros(_row_shape(p), jnp.float32),
                         params)
    return GGPOState(_key_data(seed), gnorm, inner_tx.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    value_fn = _extra.require(_NAME, extra_args, "value_fn")
    _extra.require_params(_NAME, params, "GGPO evaluates the loss at params + eps")
    _tree.check_same_structure(_NAME, updates, params, what="params")
    key, sub = _split(state.key)
    std = ggpo_row_std(params, state.grad_row_norm, sigma, alpha, beta,
                       merged_weight_fn)
    eps = row_gaussian_noise(sub, params, std, mask)
    g = _perturbed_grad(value_fn, params, eps, updates)
    gnorm = jax.tree.map(lambda gi, old: _row_norm(gi).astype(old.dtype)
                         .reshape(old.shape), g, state.grad_row_norm)
    new_updates, inner_state = inner_tx.update(g, state.inner_state, params,
                                               **extra_args)
    return new_updates, GGPOState(key, gnorm, inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def random_weight_perturbation(
    inner: optax.GradientTransformation,
    sigma_fn: Callable[[optax.Params], Any],
    seed: int = 0,
    *,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Random weight perturbation: the gradient at ``theta + eps`` (Gaussian).

  ``eps[..., i] ~ N(0, s_i^2)`` with ``s = sigma_fn(params)`` (a tree whose
  leaves broadcast against each leaf's last axis: a scalar or a per-row
  vector); ``g = grad L(theta + eps)``; ``inner`` steps from ``theta``. GGPO
  is the case ``s_i = sigma_i`` of :func:`ggpo_row_std`.

  Args:
    inner: the optimizer (with its learning rate).
    sigma_fn: ``params -> tree of per-row standard deviations``.
    seed: seeds the PRNG key kept in the state.
    mask: which leaves get noise (tree of bools or callable); None: all.

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``update`` requires
    ``value_fn`` and ``params``.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optax
    >>> loss = lambda p: jnp.sum(p ** 2)
    >>> tx = optkit.random_weight_perturbation(optax.sgd(0.1), lambda p: 1e-4)
    >>> p = jnp.array([3.0, 4.0])
    >>> u, _ = tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)
    >>> u
    Array([-0.6..., -0.8...], dtype=float32)

  References:
    Chang et al., "LoRA-GGPO: Mitigating Double Descent in LoRA Fine-Tuning
    via Gradient-Guided Perturbation Optimization", 2025.
    https://arxiv.org/abs/2502.14538
  """
  validate.transformation(_RWP_NAME, inner=inner)
  if not callable(sigma_fn):
    raise ValueError(f"{_RWP_NAME}: `sigma_fn` must be callable, got {sigma_fn!r}.")
  validate.integer_at_least(_RWP_NAME, 0, seed=seed)
  inner_tx = optax.with_extra_args_support(inner)

  def init_fn(params):
    return RandomWeightPerturbationState(_key_data(seed), inner_tx.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    value_fn = _extra.require(_RWP_NAME, extra_args, "value_fn")
    _extra.require_params(_RWP_NAME, params,
                          "the perturbation evaluates the loss at params + eps")
    _tree.check_same_structure(_RWP_NAME, updates, params, what="params")
    key, sub = _split(state.key)
    std = sigma_fn(params)
    if not jax.tree.structure(std) == jax.tree.structure(params):
      std = jax.tree.map(lambda _: std, params)
    eps = row_gaussian_noise(sub, params, std, mask)
    g = _perturbed_grad(value_fn, params, eps, updates)
    new_updates, inner_state = inner_tx.update(g, state.inner_state, params,
                                               **extra_args)
    return new_updates, RandomWeightPerturbationState(key, inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
