"""Optimizer state that lives where the params live (JAX SPMD).

Every optkit transformation is a pure function of arrays, so under ``jax.jit``
with sharded params XLA's SPMD partitioner shards the update like any other
computation: nothing in optkit assumes one device. One thing jit cannot infer
is the sharding of a state leaf created from nothing: ``tx.init`` builds
moments with ``zeros_like``, which does not read the params, so a plain
``jax.jit(tx.init)(params)`` may return those zeros replicated (or on one
device). ``init_state`` fixes that: every state subtree that mirrors the params
(moments, momenta, slow weights, ..., also inside ``optax.masked`` /
``multi_transform`` states) gets the params' shardings, leaf by leaf,
and everything else (step counts, PRNG keys, Kronecker factors, projection
matrices) is replicated on the same mesh. After the first step XLA propagates
the params' shardings to those leaves by itself.

What matrix methods gather on sharded matrices, per method:

- ``muon``, ``spectral_descent``, ``steepest_descent`` (Newton-Schulz): a chain
  of matrix products ``X X^T X``; XLA partitions them like any matmul, moving
  shards of the operands (all-gathers / reduce-scatters sized by the
  ``m x m`` Gram matrix, ``m`` the smaller side), never an eigendecomposition
  of the whole matrix. The Gram matrix is the cost that grows with width.
- ``shampoo``: the statistics ``G G^T`` and ``G^T G`` are matmuls as above; the
  inverse p-th roots are eigendecompositions, which XLA computes on a whole
  (gathered, replicated) statistic. That is the bottleneck once a side
  exceeds a few thousand; ``block_size`` splits large sides into blocks so
  each gathered statistic is at most ``block_size x block_size``, and
  ``preconditioning_compute_steps`` amortizes the roots.
- ``orthogonalize_svd`` (``method='svd'``): an SVD of the whole matrix,
  gathered; use the Newton-Schulz method on sharded matrices.
- Elementwise methods (Adam, Lion, ... and the Hessian-diagonal methods) need
  no gather; per-tensor norms (MARS clipping, grafting, AdamP's projection)
  are reductions: one all-reduce of a scalar per leaf.

Example::

  params = jax.device_put(params, param_shardings)
  tx = optkit.lion(3e-4)
  state = optkit.sharding.init_state(tx, params)   # mu sharded like params
  state_shardings = optkit.sharding.state_shardings(tx, params)
  step = jax.jit(train_step, out_shardings=(param_shardings, state_shardings))

Pinning the step's output shardings as above keeps params and state where
they are; without it XLA may pick another layout for a small leaf (e.g. shard
a replicated bias), which costs a recompilation and a reshard next step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy  # noqa: F401
import optax
from jax.sharding import NamedSharding, PartitionSpec

_NAME = "init_state"


def _mesh_of(params):
  for leaf in jax.tree.leaves(params):
    sharding = getattr(leaf, "sharding", None)
    if isinstance(sharding, NamedSharding):
      return sharding.mesh
  raise ValueError(f"{_NAME}: `params` must contain at least one array with a "
                   "NamedSharding (jax.device_put(params, NamedSharding(mesh, spec))).")


def state_shardings(tx: optax.GradientTransformation, params: Any) -> Any:
  """Shardings for ``tx.init(params)``: param-shaped leaves like their params.

  Args:
    tx: any optax / optkit transformation.
    params: the params, with ``NamedSharding``s (at least one leaf).

  Returns:
    A tree of ``NamedSharding`` with the structure of ``tx.init(params)``.
  """
  mesh = _mesh_of(params)
  replicated = NamedSharding(mesh, PartitionSpec())
  abstract = jax.eval_shape(tx.init, params)
  by_path = {}
  for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
    sharding = getattr(p, "sharding", None)
    if isinstance(sharding, NamedSharding):
      by_path[tuple(path)] = (jax.numpy.shape(p), sharding)

  def sharding_of(path, leaf):
    # A state leaf that mirrors a param ends with that param's key path
    # (``mu['block0']['w']``, ``inner_states['adam'].inner_state[0].nu['w']``)
    # and has its shape; it takes the param's sharding. The rest is replicated.
    path = tuple(path)
    for start in range(len(path)):
      hit = by_path.get(path[start:])
      if hit is not None and hit[0] == leaf.shape:
        return hit[1]
    return replicated

  return jax.tree_util.tree_map_with_path(sharding_of, abstract)


def init_state(tx: optax.GradientTransformation, params: Any) -> Any:
  """``tx.init(params)``, jitted, with ``state_shardings`` as output shardings."""
  return jax.jit(tx.init, out_shardings=state_shardings(tx, params))(params)
