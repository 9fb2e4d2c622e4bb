"""AutoSparse gradient annealing: scale the gradients of masked weights by alpha_t.

Kundu, Mellempudi, Vooturi, Kaul & Dubey, "AUTOSPARSE: Towards Automated
Sparse Training of Deep Neural Networks", arXiv:2304.06941. The model uses a
learnable-threshold sparse weight (model side)::

    W_s = sign(W) * ReLU(|W| - tau)                                # forward

and Gradient Annealing (GA) replaces the zero derivative of the ReLU on the
masked weights by a decaying factor alpha_t::

    dL/dW = dL/dW_s * (1[|W| > tau] + alpha_t * 1[|W| <= tau])     # backward

so pruned weights can still recover early in training and stop moving once
alpha_t reaches 0. With :func:`sparsify_straight_through` in the forward pass
(identity derivative), ``anneal_masked_gradients`` applies that factor on the
optimizer side.

Paper -> code: tau -> ``threshold_fn(params)`` (a tree of thresholds, scalars
or arrays broadcastable to each leaf, read from the params so a learnable
threshold is the one the forward pass uses); alpha_t -> ``alpha_schedule``
(a number or a schedule evaluated at ``count``); alpha_0 -> the schedule's
initial value.

UNSURE points of the catalog, decided here:

* The alpha_t schedule shape and alpha_0: the paper decays alpha non-linearly
  from alpha_0 to 0; the exact curve is not restated in the catalog, so
  :func:`gradient_annealing_schedule` gives a cosine decay (a non-linear,
  monotone curve that reaches exactly 0 at ``decay_steps`` and stays there:
  optax's ``cosine_decay_schedule`` with final value 0) from ``alpha0=0.75``.
  Any schedule can be passed instead.
* The mask is |W| <= tau (masked, annealed) vs |W| > tau (kept, gradient
  unchanged), computed from the params this step receives; leaves whose
  threshold is ``None`` in ``threshold_fn``'s output are not annealed.

Reference: none found. tests/constraints/test_autosparse.py checks that kept
weights receive their gradient exactly, masked gradients are multiplied by
alpha_t, alpha_t is monotone and reaches 0, and that with alpha = 0 masked
weights stop moving while a plain optimizer (negative control) moves them.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args, tree as tree_lib, validate

_NAME = "anneal_masked_gradients"


class AnnealMaskedGradientsState(NamedTuple):
  count: jax.Array  # int32, shape (): steps taken, t (alpha_t is read at t)


def gradient_annealing_schedule(alpha0: float = 0.75,
                                decay_steps: int = 10_000) -> optax.Schedule:
  """alpha_t: cosine decay from ``alpha0`` to exactly 0 at ``decay_steps``.

  Example:
    >>> import optkit
    >>> s = optkit.gradient_annealing_schedule(0.8, 100)
    >>> float(s(0)), float(s(100)), float(s(500))
    (0.8..., 0.0, 0.0)
  """
  validate.closed_unit_interval("gradient_annealing_schedule", alpha0=alpha0)
  validate.integer_at_least("gradient_annealing_schedule", 1, decay_steps=decay_steps)
  base = optax.cosine_decay_schedule(alpha0, decay_steps, alpha=0.0)

  def schedule(count):
    # exactly 0 from decay_steps on (cos(pi) rounds to -1 + 0 in float32 anyway)
    return jnp.where(jnp.asarray(count) >= decay_steps, 0.0, base(count))

  return schedule


@jax.custom_vjp
def _straight_through(w, tau):
  return jnp.sign(w) * jax.nn.relu(jnp.abs(w) - tau)


def _st_fwd(w, tau):
  return _straight_through(w, tau), (w, tau)


def _sum_to_shape(x, shape):
  """Sums ``x`` over the axes that broadcasting ``shape`` to ``x.shape`` added."""
  lead = x.ndim - len(shape)
  x = jnp.sum(x, axis=tuple(range(lead))) if lead > 0 else x
  axes = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
  return jnp.sum(x, axis=axes, keepdims=True) if axes else x


def _st_bwd(res, g):
  w, tau = res
  # Identity to W (GA is applied by the optimizer); the threshold gets the
  # derivative of the soft-threshold, -sign(W) on the kept entries.
  d_tau = -jnp.sign(w) * (jnp.abs(w) > tau) * g
  return g, _sum_to_shape(d_tau, jnp.shape(tau)).astype(jnp.result_type(tau))


_straight_through.defvjp(_st_fwd, _st_bwd)


def sparsify_straight_through(w: jax.Array, tau: Any) -> jax.Array:
  """Model-side sparse weight ``sign(W) ReLU(|W| - tau)`` with identity
  derivative in W (straight-through), for use with ``anneal_masked_gradients``.

  Example:
    >>> import optkit
    >>> import jax, jax.numpy as jnp
    >>> w = jnp.array([0.05, -1.0])
    >>> optkit.sparsify_straight_through(w, 0.1)
    Array([ 0. , -0.9], dtype=float32)
    >>> jax.grad(lambda w: optkit.sparsify_straight_through(w, 0.1).sum())(w)
    Array([1., 1.], dtype=float32)
  """
  return _straight_through(w, jnp.asarray(tau, jnp.result_type(w)))


def anneal_masked_gradients(
    alpha_schedule: Union[float, Callable[[jax.Array], Any]] = 0.75,
    threshold_fn: Callable[[Any], Any] = None,
) -> optax.GradientTransformation:
  r"""Gradient annealing: masked weights' gradients times :math:`\alpha_t`.

  .. math::
    g \leftarrow g \odot \left(\mathbb{1}[|W| > \tau]
        + \alpha_t\, \mathbb{1}[|W| \le \tau]\right)

  Place it first in the chain (it acts on the gradient); pair it with
  :func:`sparsify_straight_through` in the model's forward pass.

  Args:
    alpha_schedule: alpha_t in [0, 1]: a number or a schedule ``count ->
      alpha`` (e.g. :func:`gradient_annealing_schedule`); 0.75 is the default
      alpha_0 chosen here (see the module docstring).
    threshold_fn: ``params -> tree`` of thresholds tau (one per leaf, a scalar
      or an array broadcastable to the leaf; ``None`` for a leaf that is not
      sparsified). Required.

  Returns:
    An ``optax.GradientTransformation``; ``update`` needs ``params``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.anneal_masked_gradients(0.5, lambda p: 0.1)
    >>> w = jnp.array([0.05, -1.0])                 # first entry is masked
    >>> tx.update(jnp.array([2.0, 2.0]), tx.init(w), w)[0]
    Array([1., 2.], dtype=float32)

  References:
    Kundu, Mellempudi, Vooturi, Kaul & Dubey, AUTOSPARSE: Towards Automated
    Sparse Training of Deep Neural Networks, 2023. https://arxiv.org/abs/2304.06941
  """
  if threshold_fn is None:
    raise ValueError(f"{_NAME}: `threshold_fn` is required (params -> tree of "
                     "thresholds tau), got None.")
  validate.callable_or_none(_NAME, threshold_fn=threshold_fn)
  if not callable(alpha_schedule):
    validate.closed_unit_interval(_NAME, alpha_schedule=alpha_schedule)

  def init_fn(params):
    del params
    return AnnealMaskedGradientsState(jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    extra_args.require_params(_NAME, params, "the mask is |W| <= tau")
    tree_lib.check_same_structure(_NAME, updates, params, what="the params")
    alpha = alpha_schedule(state.count) if callable(alpha_schedule) else alpha_schedule
    alpha = jnp.asarray(alpha, jnp.float32)
    is_none = lambda x: x is None
    taus, tau_def = jax.tree.flatten(threshold_fn(params), is_leaf=is_none)
    w_leaves, treedef = jax.tree.flatten(params)
    if tau_def != treedef:
      if len(taus) != 1:
        raise ValueError(
            f"{_NAME}: `threshold_fn(params)` must return one threshold or a tree "
            f"shaped like the params, got structure {tau_def}.")
      taus = taus * len(w_leaves)          # one threshold for every leaf

    def anneal(g, w, tau):
      if tau is None:
        return g
      w32 = w.astype(jnp.promote_types(w.dtype, jnp.float32))
      masked = jnp.abs(w32) <= jnp.asarray(tau, w32.dtype)          # |W| <= tau
      factor = jnp.where(masked, alpha, 1.0)
      return (g.astype(w32.dtype) * factor).astype(jnp.result_type(g))

    out = jax.tree.unflatten(treedef, [
        anneal(g, w, tau) for g, w, tau in zip(treedef.flatten_up_to(updates),
                                                 w_leaves, taus)])
    return out, AnnealMaskedGradientsState(optax.safe_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)
