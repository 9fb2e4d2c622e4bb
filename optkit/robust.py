"""Skipping non-finite steps for every optkit transformation, aggregators included.

``optax.apply_if_finite(inner, max_consecutive_errors)`` is the tool for
per-gradient transformations and optkit re-uses it unchanged. Its rejected
step returns zeros shaped like the *incoming* updates, which is wrong for the
multi-objective aggregators (their input has a leading objective axis that
their output does not): ``apply_if_finite`` here returns zeros shaped like the
inner transformation's *output* and is otherwise the same rule, with optax's
``ApplyIfFiniteState``:

- a step whose incoming updates contain a NaN or an infinity is skipped: the
  update is zero and the inner state (moments, PRNG keys, step counts) is left
  as it was;
- after more than ``max_consecutive_errors`` consecutive bad steps the update is
  applied anyway, as in optax.

Non-finite gradients, per family (without a wrapper): elementwise methods
(Adam-type, Lion-type, momentum) propagate a NaN into the moments of the
affected leaves and from there into the params; sign methods turn an infinity
into a finite step of size lr but a NaN into NaN; matrix methods
(Newton-Schulz, Shampoo, SVD projections) and aggregators mix every entry of a
leaf (or of the whole tree), so one NaN poisons the leaf (or the tree). In all
cases wrap the optimizer in ``apply_if_finite``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from optkit.core import validate

_NAME = "apply_if_finite"


def apply_if_finite(inner: optax.GradientTransformation,
                    max_consecutive_errors: int) -> optax.GradientTransformationExtraArgs:
  """Skips steps whose updates are not finite (optax's rule, any output shape).

  Args:
    inner: the transformation to protect (an optkit optimizer or aggregator).
    max_consecutive_errors: after this many consecutive skipped steps, the next
      bad step is applied (optax's convention).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with ``optax.ApplyIfFiniteState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.apply_if_finite(optkit.upgrad(), 3)
    >>> params = {'w': jnp.ones(2)}
    >>> jac = {'w': jnp.array([[1.0, jnp.nan], [0.0, 1.0]])}
    >>> update, state = tx.update(jac, tx.init(params), params)
    >>> update['w'], int(state.total_notfinite)
    (Array([0., 0.], dtype=float32), 1)
  """
  validate.transformation(_NAME, inner=inner)
  validate.integer_at_least(_NAME, 0, max_consecutive_errors=max_consecutive_errors)
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    return optax.ApplyIfFiniteState(
        notfinite_count=jnp.zeros([], jnp.int32),
        last_finite=jnp.array(True, jnp.bool_),
        total_notfinite=jnp.zeros([], jnp.int32),
        inner_state=inner.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(updates)]
                               or [jnp.array(True)]))
    bad_run = jnp.where(finite, 0, optax.safe_increment(state.notfinite_count))

    def apply(_):
      return inner.update(updates, state.inner_state, params, **extra_args)

    def skip(_):
      out_shape, _ = jax.eval_shape(apply, None)
      zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out_shape)
      return zeros, state.inner_state

    new_updates, inner_state = jax.lax.cond(
        jnp.logical_or(finite, bad_run > max_consecutive_errors), apply, skip, None)
    return new_updates, optax.ApplyIfFiniteState(
        notfinite_count=bad_run,
        last_finite=finite,
        total_notfinite=jnp.where(finite, state.total_notfinite,
                                  optax.safe_increment(state.total_notfinite)),
        inner_state=inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
