"""Helpers for using optkit with Flax.

Transformations that read ``value_fn`` (AdaHessian, Sophia, AMP, ...) need a
function ``params -> scalar loss`` over exactly the params the optimizer sees.
With ``flax.nnx`` those params are the model's ``nnx.State`` filtered by the
optimizer's ``wrt``; ``nnx_value_fn`` builds the matching function.

Example (inside a jitted nnx train step)::

    optimizer = nnx.Optimizer(model, optkit.adahessian(0.1), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
      loss_fn = lambda m: jnp.mean((m(x) - y) ** 2)
      loss, grads = nnx.value_and_grad(loss_fn)(model)
      optimizer.update(model, grads, value_fn=optkit.flax.nnx_value_fn(model, loss_fn))
      return loss

With ``flax.training.train_state.TrainState`` (linen), params are a plain
pytree, so ``value_fn = lambda p: loss_fn(p, batch)`` is all that is needed.
``TrainState.apply_gradients`` does not forward extra arguments to
``tx.update`` (its keyword arguments replace dataclass fields), so use
``optkit.flax.apply_gradients(state, grads, value_fn=value_fn)`` instead.
"""

from __future__ import annotations

from typing import Any, Callable

import jax


def nnx_value_fn(model: Any, loss_fn: Callable[[Any], jax.Array],
                 wrt: Any = None) -> Callable[[Any], jax.Array]:
  """Builds ``value_fn(params) -> loss`` for an ``nnx.Module``.

  Args:
    model: the ``nnx.Module`` being trained.
    loss_fn: ``model -> scalar loss`` on the current batch (the same function
      whose gradient is passed to the optimizer).
    wrt: the filter the ``nnx.Optimizer`` uses (default ``nnx.Param``).

  Returns:
    A pure function of the filtered params (an ``nnx.State`` of arrays, as
    ``nnx.Optimizer.update`` passes them to ``tx.update``) that merges them
    with the rest of the model's state and evaluates ``loss_fn``. The model
    itself is not modified.
  """
  from flax import nnx  # imported here: optkit's core does not depend on flax

  if wrt is None:
    wrt = nnx.Param
  graphdef, _, rest = nnx.split(model, wrt, ...)

  def value_fn(params):
    return loss_fn(nnx.merge(graphdef, params, rest))

  return value_fn


def linen_value_fn(apply_fn: Callable[..., Any], loss_fn: Callable[[Any], jax.Array],
                   *batch_args: Any, **apply_kwargs: Any) -> Callable[[Any], jax.Array]:
  """Builds ``value_fn(params) -> loss_fn(apply_fn({'params': params}, *batch_args))``.

  For ``flax.linen`` models trained with ``TrainState``: pass the result as
  ``state.apply_gradients(grads=grads, value_fn=...)``.
  """

  def value_fn(params):
    return loss_fn(apply_fn({"params": params}, *batch_args, **apply_kwargs))

  return value_fn


def apply_gradients(state: Any, grads: Any, **extra_args: Any) -> Any:
  """``TrainState.apply_gradients`` that forwards ``extra_args`` to ``tx.update``.

  Args:
    state: a ``flax.training.train_state.TrainState`` (or a subclass).
    grads: gradients shaped like ``state.params``.
    **extra_args: the extra-args protocol's ``value``, ``value_fn``, ``values``.

  Returns:
    The new state with ``step`` incremented and params and opt_state updated.
  """
  import optax

  tx = optax.with_extra_args_support(state.tx)
  updates, opt_state = tx.update(grads, state.opt_state, state.params, **extra_args)
  return state.replace(step=state.step + 1,
                       params=optax.apply_updates(state.params, updates),
                       opt_state=opt_state)
