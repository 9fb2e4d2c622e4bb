"""Private helpers shared by the zeroth-order estimators (not public API).

Conventions every estimator of the family follows:

* perturbation arithmetic is done in float32 (float64 for float64 params): the
  params are cast to ``work_dtype`` before ``theta + mu u`` is formed and
  ``value_fn`` is called on that float32 copy, so a step ``mu = 5e-3`` is not
  rounded away in bfloat16 (catalog pitfall);
* probe directions are drawn as ONE flat vector over the whole tree (the
  dimension d of the sphere scaling is the total parameter count);
* keys live in the state as ``jax.random.key_data`` (uint32) and are split at
  every use.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

# Smallest norm we divide by (sphere normalization, projections): finite output
# for zero directions and size-0 trees.
TINY = 1e-30


def work_dtype(leaf) -> jnp.dtype:
  """float32, or float64 for float64 leaves."""
  return jnp.promote_types(jnp.float32, jnp.result_type(leaf))


def to_work(tree: Any) -> Any:
  """``tree`` with every leaf cast to its work dtype (float32 / float64)."""
  return jax.tree.map(lambda x: jnp.asarray(x, work_dtype(x)), tree)


def init_key(seed) -> jax.Array:
  """uint32 key data seeded by ``seed``."""
  return jax.random.key_data(jax.random.key(seed))


def split(key_data: jax.Array, num: int = 2):
  """Splits stored key data; returns ``num`` typed keys' data (uint32)."""
  keys = jax.random.split(jax.random.wrap_key_data(key_data), num)
  return jax.random.key_data(keys)


def num_params(tree: Any) -> int:
  """d: the total number of entries of ``tree`` (static)."""
  return int(sum(int(np.prod(jnp.shape(x), dtype=np.int64)) for x in jax.tree.leaves(tree)))


def tree_vdot(a: Any, b: Any) -> jax.Array:
  """<a, b> over the whole tree, in float32 (float64 for float64 leaves)."""
  parts = [jnp.sum(x.astype(work_dtype(x)) * y.astype(work_dtype(x)))
           for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
  return sum(parts, jnp.zeros((), jnp.float32))


def axpy(a, x: Any, y: Any) -> Any:
  """``a x + y`` leafwise (a scalar)."""
  return jax.tree.map(lambda xi, yi: (a * xi + yi).astype(yi.dtype), x, y)


def gaussian_like(key_data: jax.Array, tree: Any) -> Any:
  """i.i.d. N(0, 1) tree in the work dtypes of ``tree``."""
  leaves, treedef = jax.tree.flatten(tree)
  sizes = [int(np.prod(jnp.shape(x), dtype=np.int64)) for x in leaves]
  dtype = jnp.float32
  for x in leaves:
    dtype = jnp.promote_types(dtype, work_dtype(x))
  flat = jax.random.normal(jax.random.wrap_key_data(key_data), (sum(sizes),), dtype)
  out, offset = [], 0
  for x, n in zip(leaves, sizes):
    out.append(flat[offset:offset + n].reshape(jnp.shape(x)).astype(work_dtype(x)))
    offset += n
  return jax.tree.unflatten(treedef, out)


def sphere_like(key_data: jax.Array, tree: Any) -> Any:
  """A direction uniform on the unit sphere of R^d, d = ``num_params(tree)``."""
  u = gaussian_like(key_data, tree)
  norm = jnp.sqrt(tree_vdot(u, u))
  return jax.tree.map(lambda x: x / jnp.maximum(norm, TINY).astype(x.dtype), u)


def evaluate(value_fn: Callable[[Any], Any], params: Any) -> jax.Array:
  """``value_fn(params)`` as a float32 (float64 under x64 params) scalar.

  ``value_fn`` is called through ``jax.jit``: finite differences divide the
  rounding error of the loss by mu, and an eagerly executed loss rounds
  differently from the compiled one (fusion, reduction order), so without it a
  jitted and an eager update would differ by ~ulp(F)/mu.
  """
  v = jnp.asarray(jax.jit(value_fn)(params))
  return v.astype(jnp.promote_types(jnp.float32, v.dtype)).reshape(())


def zeros_work(tree: Any) -> Any:
  """Zeros in the work dtypes (float32 statistics)."""
  return jax.tree.map(lambda x: jnp.zeros(jnp.shape(x), work_dtype(x)), tree)


def cast_like(tree: Any, like: Any) -> Any:
  """Casts ``tree`` leafwise to the dtypes of ``like`` (bf16 grads -> bf16 updates)."""
  return optax.tree.cast_like(tree, like)
