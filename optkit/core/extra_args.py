"""The extra-args protocol.

Extra inputs reach ``update`` as keyword arguments with these names only:

* ``value``: the loss at ``params`` on the current batch (a scalar);
* ``value_fn``: ``params -> scalar loss`` on the current batch, used for
  Hessian-vector products, perturbed gradients and finite differences;
* ``values``: the per-example or per-objective loss vector.

Transformations ignore extra arguments they do not use, so a chain can forward
them. A required argument that is missing raises ``ValueError`` naming the
algorithm and the argument.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import optax

_HOW = {
    "value": "the scalar loss at `params` on the current batch",
    "value_fn": ("a function `params -> scalar loss` on the current batch, e.g. "
                 "`value_fn=lambda p: loss(p, batch)`"),
    "values": "the per-example or per-objective loss vector",
}


def require(algo: str, extra: Mapping[str, Any], name: str) -> Any:
  """Returns ``extra[name]`` or raises a ValueError saying how to pass it."""
  value = extra.get(name)
  if value is None:
    raise ValueError(
        f"{algo}: update() requires the extra argument `{name}` "
        f"({_HOW.get(name, name)}); call "
        f"`tx.update(updates, state, params, {name}=...)`.")
  if name == "value_fn" and not callable(value):
    raise TypeError(f"{algo}: `value_fn` must be callable, got {type(value).__name__}.")
  return value


def require_params(algo: str, params: Any, why: str = "") -> Any:
  """Raises a ValueError when a transformation that needs ``params`` gets None."""
  if params is None:
    raise ValueError(
        f"{algo}: update() requires `params`{' (' + why + ')' if why else ''}; "
        "call `tx.update(updates, state, params, ...)`.")
  return params


def value_fn_of(algo: str, extra: Mapping[str, Any]) -> Callable[[Any], Any]:
  """Shorthand for ``require(algo, extra, 'value_fn')``."""
  return require(algo, extra, "value_fn")


def masked_value_fn(value_fn: Callable[[Any], Any], params: Any,
                    mask: Any) -> Callable[[Any], Any]:
  """A ``value_fn`` for a transformation used inside ``optax.masked``.

  ``optax.masked(inner, mask)`` hands ``inner`` only the masked-in leaves (the
  others are ``optax.MaskedNode``), so a ``value_fn`` of the full params cannot
  be called on what ``inner`` sees. This returns one that can: it fills the
  masked-out leaves from ``params`` (held fixed) and calls ``value_fn``.
  Hessian-vector products, perturbations and finite differences then act on
  the masked-in leaves only.

  Example::

    tx = optax.masked(optkit.adahessian(0.1), mask)
    updates, state = tx.update(grads, state, params,
                               value_fn=masked_value_fn(loss_fn, params, mask))
  """
  mask_tree = mask(params) if callable(mask) else mask
  is_masked_node = lambda x: isinstance(x, optax.MaskedNode)

  def sub_value_fn(sub_params, **kwargs):  # kwargs: e.g. Sophia-G's ``key``
    full = jax.tree.map(lambda m, p, s: s if m else p, mask_tree, params, sub_params,
                        is_leaf=is_masked_node)
    return value_fn(full, **kwargs)

  return sub_value_fn
