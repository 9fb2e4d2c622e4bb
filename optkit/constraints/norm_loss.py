"""Norm loss: pull every output unit's weight vector to unit L2 norm.

Georgiou, Schmitt, Bäck & Krajsek, "Preprint: Norm Loss: An efficient yet
effective regularization method for deep neural networks", arXiv:2103.06583
(ICPR 2020), eq. (1)-(2); used as step 4 of Ranger21 (arXiv:2106.13731).

The regularizer and the gradient term this transformation adds::

    L_norm = lambda * sum_i (1 - ||w_i||_2)^2                        # eq. (1)
    g_i   += 2 lambda (1 - 1 / (||w_i|| + eps)) w_i                  # its gradient

Paper -> code: lambda -> ``strength``; w_i (the weights of output unit / filter
i) -> one slice of a params leaf (see ``layout``); eps -> ``eps``.

Defaults and their source: ``strength=1e-4`` and ``eps=1e-8`` are Ranger21's
``norm_loss_factor`` and ``eps`` (pytorch_optimizer 4.1.0; the catalog's
signature).

Which axes form w_i (``layout``):

* ``"torch"`` (default, the reference's ``unit_norm``): 0-D and 1-D leaves use
  the norm of the whole leaf; 2-D and 3-D leaves the norm over axis 1 (one
  norm per row, PyTorch's output-unit axis 0); rank >= 4 leaves the norm over
  every axis but 0.
* ``"flax"``: 0-D and 1-D leaves as above; rank >= 2 leaves the norm over every
  axis but the last (Flax's kernels ``(..., in, out)`` keep output units on the
  last axis).

Ranger21 applies the same quantity as a direct multiplicative step
``w <- w (1 - eta 2 lambda (1 - 1/(||w_i|| + eps)))`` before its Adam step;
that equals adding this term to the gradient and scaling by the learning rate
eta, which is how the term composes here (an ``add_*`` regularizer, placed
before ``optax.scale_by_learning_rate``).

UNSURE (catalog: none). Decided here: a zero row gives 1 - 1/eps times a zero
vector, i.e. exactly 0 (finite: the term is bounded by 2 lambda ||w|| / eps);
the norm is computed in float32 for bf16 params.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args, tree as tree_lib, validate

_NAME = "add_norm_loss"
_LAYOUTS = ("torch", "flax")


class AddNormLossState(NamedTuple):
  """``add_norm_loss`` keeps no statistics."""


def _unit_axes(ndim: int, layout: str):
  """Axes that one output unit's norm is taken over (None: the whole leaf)."""
  if ndim <= 1:
    return None
  if layout == "flax":
    return tuple(range(ndim - 1))
  if ndim in (2, 3):
    return (1,)
  return tuple(range(1, ndim))


def unit_norms(w: jax.Array, layout: str = "torch") -> jax.Array:
  """||w_i||_2 per output unit, kept broadcastable to ``w`` (float32 or wider)."""
  w = w.astype(jnp.promote_types(w.dtype, jnp.float32))
  axes = _unit_axes(w.ndim, layout)
  return jnp.sqrt(jnp.sum(w * w, axis=axes, keepdims=True))


def norm_loss(params: Any, strength: float = 1e-4, layout: str = "torch") -> jax.Array:
  """The regularizer lambda * sum_i (1 - ||w_i||)^2 over every leaf (eq. (1))."""
  return strength * sum(jnp.sum((1.0 - unit_norms(w, layout)) ** 2)
                        for w in jax.tree.leaves(params))


def add_norm_loss(strength: float = 1e-4, eps: float = 1e-8, *,
                  layout: str = "torch") -> optax.GradientTransformation:
  r"""Adds the norm-loss gradient :math:`2\lambda(1 - 1/(\|w_i\| + \epsilon))\,w_i`.

  .. math::
    L_{norm} = \lambda \sum_i (1 - \|w_i\|_2)^2,\qquad
    u \leftarrow u + 2\lambda\left(1 - \frac{1}{\|w_i\| + \epsilon}\right) w_i

  Place it before ``optax.scale_by_learning_rate`` (like
  ``optax.add_decayed_weights``); ``optax.masked`` restricts it to some leaves.

  Args:
    strength: lambda, >= 0 (1e-4, Ranger21's ``norm_loss_factor``).
    eps: added to each unit norm before division, > 0 (1e-8, Ranger21's).
    layout: which axes form one unit, ``"torch"`` (the reference's) or
      ``"flax"`` (norm over all axes but the last); see the module docstring.

  Returns:
    An ``optax.GradientTransformation``; ``update`` needs ``params``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.add_norm_loss(strength=0.5, eps=0.0)
    >>> w = jnp.array([[3.0, 4.0], [0.6, 0.8]])     # row norms 5 and 1
    >>> tx.update(jnp.zeros_like(w), tx.init(w), w)[0]
    Array([[2.4, 3.2],
           [0. , 0. ]], dtype=float32)

  References:
    Georgiou, Schmitt, Bäck & Krajsek, Norm Loss: An efficient yet effective
    regularization method for deep neural networks, 2021.
    https://arxiv.org/abs/2103.06583
  """
  validate.non_negative(_NAME, strength=strength, eps=eps)
  validate.one_of(_NAME, "layout", layout, _LAYOUTS)

  def init_fn(params):
    del params
    return AddNormLossState()

  def update_fn(updates, state, params=None):
    extra_args.require_params(_NAME, params, "the norm loss is a function of the weights")
    tree_lib.check_same_structure(_NAME, updates, params, what="the params")

    def term(u, w):
      w32 = w.astype(jnp.promote_types(w.dtype, jnp.float32))
      coef = 2.0 * strength * (1.0 - 1.0 / (unit_norms(w32, layout) + eps))
      coef = jnp.where(jnp.isfinite(coef), coef, 0.0)  # eps = 0 and a zero row
      return (u.astype(w32.dtype) + coef * w32).astype(jnp.result_type(u))

    return jax.tree.map(term, updates, params), state

  return optax.GradientTransformation(init_fn, update_fn)
