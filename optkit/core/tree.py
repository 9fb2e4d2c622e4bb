"""Tree helpers that ``optax.tree`` lacks."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def check_same_structure(algo: str, updates: Any, reference: Any,
                         what: str = "the optimizer state") -> None:
  """Raises a ValueError when ``updates`` is not shaped like ``reference``.

  The check is static (tree structure and leaf shapes), so it costs nothing
  under ``jax.jit``.
  """
  s_u = jax.tree.structure(updates)
  s_r = jax.tree.structure(reference)
  if s_u != s_r:
    raise ValueError(
        f"{algo}: the gradient tree does not match {what}: got structure "
        f"{s_u}, expected {s_r}. Was the state initialized with other params?")
  for (path, u), r in zip(jax.tree_util.tree_leaves_with_path(updates),
                          jax.tree.leaves(reference)):
    if jnp.shape(u) != jnp.shape(r):
      raise ValueError(
          f"{algo}: the gradient leaf at {jax.tree_util.keystr(path)} has shape "
          f"{jnp.shape(u)}, but {what} has shape {jnp.shape(r)}.")


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
