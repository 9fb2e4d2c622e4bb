"""Adversarial Model Perturbation (AMP).

Zheng, Zhang & Mao, "Regularizing Neural Networks via Adversarial Model
Perturbation", CVPR 2021, arXiv:2010.04925, Algorithm 1 and the authors' code
(hiyouga/AMP-Regularizer ``amp.py``).

AMP minimizes the "AMP loss" ``min_theta E_batch max_{||delta|| <= epsilon}
L(theta + delta)``. Each step approximates the inner maximization by ``K``
steps of gradient ascent on the perturbation, projected onto the epsilon-ball,
and hands the gradient at the perturbed point to a base optimizer that steps
from ``theta`` (not from ``theta + delta``)::

    delta_0 = 0;  g_0 = incoming gradient  (grad L(theta), the `updates`)
    for k = 1..K:
        delta_k = delta_{k-1} + zeta * g_{k-1}                      # ascent
        delta_k = delta_k * min(1, epsilon / (||delta_k|| + 1e-12))  # project
        g_k = grad L(theta + delta_k)                               # value_fn
    update = inner.update(g_K, inner_state, theta)

Paper -> code: epsilon (ball radius) -> ``epsilon``; zeta (inner learning
rate) -> ``inner_lr``; N / ``inner_iter`` (inner iterations) -> ``inner_iters``;
the outer optimizer (SGD with momentum in the paper) -> ``inner``; delta ->
``delta``; L on the current batch -> the ``value_fn`` extra argument.

Defaults and their source: ``inner_lr=1`` and ``inner_iters=1`` are the
defaults of the official ``AMP`` class; ``epsilon=0.5`` is the README example.
The projection constant 1e-12 is the official code's.

Decisions on points the catalog leaves open:

* The ball is per tensor by default (``norm='per_tensor'``), as in the
  official code (it clips ``dev.norm()`` parameter by parameter);
  ``norm='global'`` projects the whole perturbation tree onto one ball.
* ``epsilon = 0`` is allowed and gives exactly the inner optimizer applied to
  ``grad L(theta)`` (delta is projected to 0); negative ``epsilon`` or
  ``inner_lr`` raise ``ValueError``, as in the official constructor
  (``epsilon < 0`` / ``inner_lr < 0`` are rejected there, 0 is accepted).
  Later perturbation methods of the family may reject a radius of 0; AMP keeps
  the reference's convention because its tests need the epsilon = 0 reduction.
* ``inner_iters = 0`` is accepted (the official code accepts ``inner_iter=0``):
  no ascent, the inner optimizer receives the incoming gradient. ``value_fn``
  is still required, so the extra-args contract does not depend on a value.
* The first ascent step uses the incoming ``updates`` as ``g_0`` (no extra
  gradient call), so ``value_fn`` is evaluated ``K`` times per step. ``updates``
  should be ``grad(value_fn)(params)`` on the same batch; if they are something
  else (clipped, say), that is what the first ascent uses.
* ``delta`` is accumulated and normed in float32 (float64 for float64 params);
  the perturbed point ``theta + delta`` is cast to the params' dtype before
  ``value_fn`` sees it, and ``g_K`` is cast back to the dtype of ``updates``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as _extra
from optkit.core import numerics
from optkit.core import tree as _tree
from optkit.core import validate

_NAME = "adversarial_model_perturbation"
_NORMS = ("per_tensor", "global")
# Added to ||delta|| before dividing, as in the official amp.py; it also keeps
# the projection finite when delta == 0.
_PROJECTION_EPS = 1e-12


class AdversarialModelPerturbationState(NamedTuple):
  """State of :func:`adversarial_model_perturbation`: only the inner state."""
  inner_state: optax.OptState  # state of the base optimizer, unchanged shape


def _project(delta: Any, epsilon, norm: str) -> Any:
  """Projects ``delta`` onto the epsilon-ball, per tensor or globally.

  ``delta * min(1, epsilon / (||delta|| + 1e-12))``: the official rescaling,
  which leaves ``delta`` unchanged inside the ball and puts it on the sphere
  (up to the 1e-12) outside.
  """
  if norm == "global":
    n = optax.tree.norm(delta)
    scale = jnp.minimum(1.0, epsilon / (n + _PROJECTION_EPS))
    return jax.tree.map(lambda d: d * scale.astype(d.dtype), delta)

  def leaf(d):
    n = jnp.sqrt(jnp.sum(jnp.square(d)))
    scale = jnp.minimum(1.0, epsilon / (n + _PROJECTION_EPS))
    return d * scale.astype(d.dtype)

  return jax.tree.map(leaf, delta)


def amp_perturbation(updates: optax.Updates, params: optax.Params,
                     value_fn: Callable[[optax.Params], jax.Array],
                     epsilon=0.5, inner_lr=1.0, inner_iters: int = 1, *,
                     norm: str = "per_tensor") -> tuple[Any, optax.Updates]:
  """AMP's inner maximization: the perturbation and the gradient there.

  Runs ``K = inner_iters`` projected ascent steps from ``delta_0 = 0`` with
  ``g_0 = updates``::

      delta_k = Proj_{||.|| <= epsilon}(delta_{k-1} + zeta * g_{k-1})
      g_k = grad L(theta + delta_k)

  and returns ``(delta_K, g_K)``. Pure and jittable; ``inner_iters`` and
  ``norm`` must be static. :func:`adversarial_model_perturbation` calls it in
  its ``update``; it is public so that ``delta`` can be inspected.

  Args:
    updates: the gradient ``g_0 = grad L(theta)`` on the current batch.
    params: ``theta``.
    value_fn: ``params -> scalar loss`` on the same batch.
    epsilon: the ball radius (>= 0).
    inner_lr: the ascent step ``zeta`` (>= 0).
    inner_iters: ``K`` (a Python int >= 0); ``K = 0`` returns
      ``(zeros, updates)``.
    norm: ``'per_tensor'`` (one ball per leaf, the official code) or
      ``'global'`` (one ball for the whole tree).

  Returns:
    ``(delta_K, g_K)``: ``delta_K`` in float32 (float64 for float64 params),
    shaped like ``params``; ``g_K`` with the dtypes of ``updates``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> from optkit.perturbation.amp import amp_perturbation
    >>> loss = lambda p: jnp.sum(p ** 2)
    >>> p = jnp.array([3.0, 4.0])
    >>> delta, g = amp_perturbation(2 * p, p, loss, epsilon=1.0)
    >>> delta  # 2 * p = [6, 8] projected onto the unit ball
    Array([0.6, 0.8], dtype=float32)
    >>> g      # grad at p + delta
    Array([7.2, 9.6], dtype=float32)
  """
  grad_fn = jax.grad(value_fn)

  def perturbed_grad(delta):
    point = jax.tree.map(lambda p, d: (p + d).astype(jnp.result_type(p)),
                         params, delta)
    return optax.tree.cast_like(grad_fn(point), updates)

  def ascent(delta, g):
    delta = jax.tree.map(  # delta_{k-1} + zeta * g_{k-1}
        lambda d, gi: (d + inner_lr * gi.astype(d.dtype)).astype(d.dtype),
        delta, g)
    delta = _project(delta, epsilon, norm)  # onto the epsilon-ball
    return delta, perturbed_grad(delta)  # g_k = grad L(theta + delta_k)

  delta = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), numerics.stat_dtype(p)),
                       params)
  g = updates
  if inner_iters == 1:
    return ascent(delta, g)
  if inner_iters > 1:
    return jax.lax.fori_loop(0, inner_iters, lambda _, c: ascent(*c),
                             (delta, g))
  return delta, g


def adversarial_model_perturbation(
    inner: optax.GradientTransformation,
    epsilon=0.5,
    inner_lr=1.0,
    inner_iters: int = 1,
    *,
    norm: str = "per_tensor",
) -> optax.GradientTransformationExtraArgs:
  r"""Adversarial Model Perturbation around an inner optimizer.

  Replaces the incoming gradient by the gradient at the adversarially
  perturbed point ``theta + delta_K`` (see :func:`amp_perturbation`) and lets
  ``inner`` step from ``theta``::

      g_K = grad L(theta + delta_K),  ||delta_K|| <= epsilon (per tensor)
      update, inner_state = inner.update(g_K, inner_state, theta, **extra)

  ``update`` requires the extra argument ``value_fn`` (``params -> loss`` on
  the batch that produced ``updates``) and ``params``; it evaluates
  ``value_fn``'s gradient ``inner_iters`` times. Extra arguments are forwarded
  to ``inner``.

  Args:
    inner: the base optimizer (an optax transformation that includes its
      learning rate, e.g. ``optax.sgd(0.1, momentum=0.9)`` as in the paper).
    epsilon: radius ``epsilon`` of the perturbation ball (>= 0; 0 gives
      ``inner``). Default 0.5 (official README).
    inner_lr: ascent step ``zeta`` (>= 0). Default 1 (official code).
    inner_iters: number ``K`` of ascent steps, a static Python int >= 0.
      Default 1 (official code).
    norm: ``'per_tensor'`` (official) or ``'global'``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state wraps
    ``inner``'s state.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optax
    >>> loss = lambda p: jnp.sum(p ** 2)
    >>> tx = optkit.amp(optax.sgd(0.1), epsilon=1.0)
    >>> p = jnp.array([3.0, 4.0])
    >>> u, _ = tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)
    >>> u  # -0.1 * grad L(p + [0.6, 0.8])
    Array([-0.72, -0.96], dtype=float32)

  References:
    Zheng, Zhang & Mao, "Regularizing Neural Networks via Adversarial Model
    Perturbation", CVPR 2021. https://arxiv.org/abs/2010.04925
  """
  validate.transformation(_NAME, inner=inner)
  validate.non_negative(_NAME, epsilon=epsilon, inner_lr=inner_lr)
  validate.integer_at_least(_NAME, 0, inner_iters=inner_iters)
  validate.one_of(_NAME, "norm", norm, _NORMS)
  inner_iters = int(inner_iters)
  inner_tx = optax.with_extra_args_support(inner)

  def init_fn(params):
    return AdversarialModelPerturbationState(inner_tx.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    value_fn = _extra.require(_NAME, extra_args, "value_fn")
    _extra.require_params(_NAME, params, "AMP evaluates the loss at params + delta")
    _tree.check_same_structure(_NAME, updates, params, what="params")
    _, g = amp_perturbation(updates, params, value_fn, epsilon, inner_lr,
                            inner_iters, norm=norm)
    new_updates, inner_state = inner_tx.update(g, state.inner_state, params,
                                               **extra_args)
    return new_updates, AdversarialModelPerturbationState(inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


amp = adversarial_model_perturbation
