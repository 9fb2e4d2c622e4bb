"""Tree helpers that ``optax.tree`` lacks."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax


def check_same_structure(algo: str, updates: Any, reference: Any,
                         what: str = "the optimizer state") -> None:
  """Raises a ValueError when ``updates`` is not shaped like ``reference``.

  Also raises a TypeError for a gradient leaf that is not floating point:
  integer or boolean params (a step counter or a mask inside a model's
  variables) have no gradient (``jax.grad(..., allow_int=True)`` gives float0)
  and no optkit transformation updates them. The policy, the same for every
  transformation: they are rejected with this error, which says how to keep
  them out of the optimizer (``optax.masked`` for the float leaves only, or
  ``nnx.Optimizer(..., wrt=nnx.Param)`` in Flax).

  The check is static (tree structure, leaf shapes and dtypes), so it costs
  nothing under ``jax.jit``.
  """
  s_u = jax.tree.structure(updates)
  s_r = jax.tree.structure(reference)
  if s_u != s_r:
    raise ValueError(
        f"{algo}: the gradient tree does not match {what}: got structure "
        f"{s_u}, expected {s_r}. Was the state initialized with other params?")
  for (path, u), r in zip(jax.tree_util.tree_leaves_with_path(updates),
                          jax.tree.leaves(reference)):
    check_floating(algo, path, u)
    if jnp.shape(u) != jnp.shape(r):
      raise ValueError(
          f"{algo}: the gradient leaf at {jax.tree_util.keystr(path)} has shape "
          f"{jnp.shape(u)}, but {what} has shape {jnp.shape(r)}.")


def check_floating(algo: str, path, leaf) -> None:
  """TypeError for an integer, boolean or float0 gradient leaf (see above)."""
  dtype = jnp.result_type(leaf) if hasattr(leaf, "dtype") else None
  if dtype is not None and not jnp.issubdtype(dtype, jnp.inexact):
    raise TypeError(
        f"{algo}: the gradient leaf at {jax.tree_util.keystr(path)} has dtype {dtype}; "
        "optkit updates floating-point leaves only. Keep integer or boolean params "
        "(step counters, masks) out of the optimizer: optimize the float leaves only "
        "(optax.masked(tx, mask) with the update of the others dropped, or "
        "nnx.Optimizer(model, tx, wrt=nnx.Param) in Flax).")


def check_floating_tree(algo: str, updates: Any) -> None:
  """``check_floating`` on every leaf (for updates without a state to compare)."""
  for path, u in jax.tree_util.tree_leaves_with_path(updates):
    check_floating(algo, path, u)


def floating_only(algo: str, tx):
  """``tx`` with ``check_floating_tree`` run first on every update.

  For optkit algorithms built by chaining optax pieces whose first piece would
  otherwise fail on a float0/integer gradient with an unclear numpy error.
  """
  tx = optax.with_extra_args_support(tx)

  def update_fn(updates, state, params=None, **extra_args):
    check_floating_tree(algo, updates)
    return tx.update(updates, state, params, **extra_args)

  return optax.GradientTransformationExtraArgs(tx.init, update_fn)


def leading_axis_size(algo: str, tree: Any) -> int:
  """Size of the common leading axis of every leaf (aggregator input)."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    raise ValueError(f"{algo}: received an empty tree of gradients.")
  sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
  if None in sizes or len(sizes) != 1:
    raise ValueError(
        f"{algo}: every leaf must have the same leading objective axis (one row "
        f"per objective, as jax.jacrev of a vector-valued loss gives it); got "
        f"leading sizes {sorted(s for s in sizes if s is not None)} "
        f"{'and scalar leaves' if None in sizes else ''}.")
  return sizes.pop()


def check_rows_match(algo: str, rows: Any, params: Any, num_rows: int,
                     what: str = "Jacobian") -> None:
  """Every leaf of ``rows`` is (num_rows,) + the matching params leaf's shape.

  For inputs with one row per objective or per example (aggregators,
  per-example reductions); ``what`` names the input in the message.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.core import tree
    >>> tree.check_rows_match("upgrad", {"w": jnp.ones((2, 3))}, {"w": jnp.ones(3)}, 2)
    >>> tree.check_rows_match("upgrad", {"w": jnp.ones((2, 4))}, {"w": jnp.ones(3)}, 2)
    Traceback (most recent call last):
    ...
    ValueError: upgrad: the Jacobian leaf at ['w'] has shape (2, 4); expected (rows,) + params shape = (2, 3).
  """
  s_r, s_p = jax.tree.structure(rows), jax.tree.structure(params)
  if s_r != s_p:
    raise ValueError(f"{algo}: the {what} tree does not match the params: got structure "
                     f"{s_r}, expected {s_p}.")
  for (path, r), p in zip(jax.tree_util.tree_leaves_with_path(rows), jax.tree.leaves(params)):
    want = (num_rows,) + tuple(jnp.shape(p))
    if tuple(jnp.shape(r)) != want:
      raise ValueError(f"{algo}: the {what} leaf at {jax.tree_util.keystr(path)} has shape "
                       f"{tuple(jnp.shape(r))}; expected (rows,) + params shape = {want}.")


def flatten_rows(tree: Any) -> jax.Array:
  """Stacks a tree whose leaves have a leading axis m into an (m, n) matrix."""
  leaves = jax.tree.leaves(tree)
  m = jnp.shape(leaves[0])[0]
  return jnp.concatenate([jnp.reshape(x, (m, -1)) for x in leaves], axis=1)


def random_like(key: jax.Array, tree: Any, distribution: str = "rademacher",
                dtype=None) -> Any:
  """A tree of i.i.d. probes shaped like ``tree``.

  ``rademacher``: entries +-1 with probability 1/2; ``gaussian``: N(0, 1).
  One flat float32 vector is drawn for the whole tree and cut into leaves
  (Rademacher signs are unpacked 32 to a random word)
  (cast to each leaf's float dtype, or ``dtype``): a single RNG kernel, which
  XLA compiles far faster than one n-D draw per leaf.
  """
  if distribution not in ("rademacher", "gaussian"):
    raise ValueError(
        f"random_like: distribution must be 'rademacher' or 'gaussian', got "
        f"{distribution!r}.")
  leaves, treedef = jax.tree.flatten(tree)
  sizes = [int(np.prod(jnp.shape(x), dtype=np.int64)) for x in leaves]
  total = sum(sizes)
  if distribution == "rademacher":
    # 32 signs per random word: threefry costs 32x less than one draw a sign.
    words = jax.random.bits(key, (-(-total // 32),), jnp.uint32)
    bits = (words[:, None] >> jnp.arange(32, dtype=jnp.uint32)) & 1
    flat = (2.0 * bits.reshape(-1)[:total].astype(jnp.float32) - 1.0)
  else:
    flat = jax.random.normal(key, (total,), dtype=jnp.float32)
  out, offset = [], 0
  for x, n in zip(leaves, sizes):
    dt = dtype or jnp.result_type(x)
    if not jnp.issubdtype(dt, jnp.floating):
      dt = jnp.float32
    out.append(flat[offset:offset + n].reshape(jnp.shape(x)).astype(dt))
    offset += n
  return jax.tree.unflatten(treedef, out)
