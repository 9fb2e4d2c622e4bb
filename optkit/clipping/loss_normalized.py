"""Normalized LR+GD: gradient descent with the step divided by the current loss.

Tyurin, "From Logistic Regression to the Perceptron Algorithm: Exploring
Gradient Descent with Large Step Sizes", arXiv:2412.08424.

LR+GD (logistic regression with gradient descent) with step γ → ∞ becomes the
batch perceptron; its loss-based iteration complexity is then suboptimal. The
paper's fix, Normalized LR+GD, divides the step by the current loss:

    x_{t+1} = x_t − (γ / f(x_t)) · ∇f(x_t)

On separable data f → 0 while ∇f/f stays of order one (it is a soft-max
weighted average of the misclassified/low-margin examples' directions), so the
effective step grows as the loss vanishes: the perceptron-like behaviour the
paper exploits.

Paper -> code: γ -> ``learning_rate``; f(x_t) -> the extra argument ``value``
(the loss at ``params`` on the current batch); ∇f(x_t) -> ``updates``.

Decisions:

* UNSURE "normalize by f(x_t) or by ||∇f(x_t)||": by f(x_t). The paper's
  method is derived from the LR+GD ↔ perceptron connection, in which the step
  that keeps pace with the vanishing loss is γ/f; normalizing by the gradient
  norm would be plain normalized GD, which the paper does not propose. The
  direction is −∇f in both readings (tested).
* Guard: the divisor is max(f, eps), eps = 1e-12. The blow-up of 1/f as f → 0
  is by design; eps only keeps a zero (or underflowed) loss finite. The method
  assumes a positive loss (logistic, cross-entropy): a loss ≤ eps is treated as
  eps. Compute the logistic loss as ``softplus(-y·z)`` (= log1p(exp(−y·z)))
  so that it does not underflow to 0 in float32 before the margins are large.
* Weight decay: the paper has none; ``weight_decay`` (default 0) is the usual
  decoupled decay, applied after the normalization.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as extra_args_lib
from optkit.core import tree as tree_lib
from optkit.core import validate

__all__ = [
    "ScaleByInverseLossState",
    "loss_normalized_sgd",
    "scale_by_inverse_loss",
]


class ScaleByInverseLossState(NamedTuple):
  count: jax.Array  # int32, shape (): number of steps


def scale_by_inverse_loss(eps=1e-12) -> optax.GradientTransformationExtraArgs:
  r"""Divides the gradient by the current loss: g / max(f(x_t), eps).

  Requires the extra argument ``value`` (the loss at ``params`` on the batch
  that produced ``updates``).

  Args:
    eps: lower bound of the divisor (guards f = 0; default 1e-12).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_inverse_loss()
    >>> g = jnp.array([0.5, -1.0])
    >>> tx.update(g, tx.init(g), value=jnp.asarray(0.25))[0]
    Array([ 2., -4.], dtype=float32)

  References:
    Tyurin, From Logistic Regression to the Perceptron Algorithm: Exploring
    Gradient Descent with Large Step Sizes, https://arxiv.org/abs/2412.08424
  """
  name = "scale_by_inverse_loss"
  validate.positive(name, eps=eps)

  def init_fn(params):
    del params
    return ScaleByInverseLossState(jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, **extra_args):
    if params is not None:
      tree_lib.check_same_structure(name, updates, params, "the params")
    else:
      tree_lib.check_floating_tree(name, updates)
    value = extra_args_lib.require("loss_normalized_sgd (scale_by_inverse_loss)",
                                   extra_args, "value")
    f = jnp.asarray(value, jnp.float32)
    if f.size != 1:
      raise ValueError(
          f"{name}: `value` must be the scalar loss, got shape {jnp.shape(value)}.")
    f = jnp.reshape(f, ())
    inv = 1.0 / jnp.maximum(f, jnp.asarray(eps, jnp.float32))
    out = jax.tree.map(lambda g: (inv * g.astype(jnp.float32)).astype(g.dtype), updates)
    return out, ScaleByInverseLossState(optax.safe_increment(state.count))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def loss_normalized_sgd(learning_rate: optax.ScalarOrSchedule, eps=1e-12,
                        weight_decay=0.0, *, mask: Optional[Any] = None
                        ) -> optax.GradientTransformationExtraArgs:
  r"""Normalized LR+GD: x_{t+1} = x_t − (γ / f(x_t)) ∇f(x_t).

  Pass the current loss as ``value``:
  ``updates, state = opt.update(grads, state, params, value=loss)``.

  Args:
    learning_rate: γ, a number or an optax schedule.
    eps: lower bound of the divisor f (default 1e-12).
    weight_decay: decoupled weight decay (not in the paper; default 0).
    mask: weight-decay mask (as in ``optax.add_decayed_weights``).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[1.0, 2.0], [-1.0, -1.5]]); y = jnp.array([1.0, -1.0])
    >>> loss = lambda w: jnp.mean(jax.nn.softplus(-y * (x @ w)))
    >>> opt = optkit.loss_normalized_sgd(learning_rate=1.0)
    >>> w = jnp.zeros(2)
    >>> state = opt.init(w)
    >>> for _ in range(3):
    ...   u, state = opt.update(jax.grad(loss)(w), state, w, value=loss(w))
    ...   w = w + u
    >>> bool(jnp.all(jnp.sign(x @ w) == y))
    True

  References:
    Tyurin, From Logistic Regression to the Perceptron Algorithm: Exploring
    Gradient Descent with Large Step Sizes, https://arxiv.org/abs/2412.08424
  """
  name = "loss_normalized_sgd"
  validate.learning_rate(name, learning_rate)
  validate.positive(name, eps=eps)
  validate.non_negative(name, weight_decay=weight_decay)
  return optax.chain(
      scale_by_inverse_loss(eps),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
