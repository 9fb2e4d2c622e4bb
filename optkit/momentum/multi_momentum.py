"""Multi-momentum: one momentum buffer per data cluster, SAG-style combination.

Tondji et al., "Variance Reduction in Deep Learning: More Momentum is All You
Need", arXiv:2111.11828. One step (K clusters, g_k the mean gradient of the
examples of cluster k in the batch, m_k the momentum of cluster k)::

  present_k = (g_k != 0)                                    # absent row: all zeros
  g~_k      = g_k - m_k + (1/K) sum_j m_j                   # control variate
  output    = (1/|present|) sum_{k present} g~_k
  m_k      <- beta m_k + (1 - beta) g_k    (present k only; absent m_k unchanged)

Paper -> code: K -> ``num_clusters``, beta -> ``beta``, m_k -> ``state.m[k]``.
Default beta = 0.9 (catalog).

Input convention (shared/algorithms/README.md, multi-gradient inputs):
``updates`` has, on every leaf, a leading axis of size K (one row per
cluster), as ``jax.jacrev`` of a K-vector of per-cluster mean losses gives
it; the output is one ordinary update tree (no leading axis), to feed any
base optimizer: ``optax.chain(optkit.multi_momentum(K), optax.sgd(lr))``.
A cluster absent from the batch must give an all-zero row (define its loss as
0): it contributes nothing and its momentum is left untouched. A present
cluster whose gradient is exactly zero everywhere is treated as absent (a
measure-zero event). With every row zero the output is zero.

Memory: the state holds K momentum trees, i.e. K x the model size (float32).

UNSURE points (catalog) and the decisions taken:

* Combination: control variate (SAG/SAGA form, above) versus plain averaging
  of the cluster momenta. Decided: the control-variate form of the catalog,
  averaged over the PRESENT clusters; it reduces to the plain gradient for
  K = 1 and, with identical rows, to the mean gradient (tested). The average
  (1/K) sum_j m_j is taken BEFORE the momenta are updated with this batch (the
  stored estimates of the other clusters), so the first step, with m = 0,
  returns the mean gradient.
* Cluster formation (classes versus k-means on features): outside the
  transformation; the user builds the K per-cluster losses. Nothing to decide
  here beyond the all-zero-row convention.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "multi_momentum"


class MultiMomentumState(NamedTuple):
  count: jax.Array     # int32, shape (): number of updates
  m: optax.Updates     # m_k, leaves of shape (K, *param.shape); float32


def multi_momentum(num_clusters: int, beta=0.9) -> optax.GradientTransformation:
  """Multi-momentum aggregation of K per-cluster gradients.

  .. math::
    \\tilde g_k = g_k - m_k + \\tfrac1K \\textstyle\\sum_j m_j, \\quad
    d = \\operatorname{mean}_{k\\ \\mathrm{present}} \\tilde g_k, \\quad
    m_k \\leftarrow \\beta m_k + (1-\\beta) g_k .

  Args:
    num_clusters: K, the size of the leading cluster axis of ``updates``
      (static).
    beta: momentum coefficient beta of every cluster buffer, in [0, 1)
      (catalog default 0.9).

  Returns:
    An ``optax.GradientTransformation`` whose ``update`` takes a tree whose
    leaves have a leading axis K and returns one update tree shaped like the
    params.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.multi_momentum(num_clusters=2, beta=0.5)
    >>> p = jnp.zeros(3)
    >>> g = jnp.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    >>> d, state = tx.update(g, tx.init(p))
    >>> d
    Array([2., 2., 2.], dtype=float32)
    >>> state.m[0]
    Array([0.5, 1. , 1.5], dtype=float32)

  References:
    Tondji et al., "Variance Reduction in Deep Learning: More Momentum is All
    You Need", 2021. https://arxiv.org/abs/2111.11828
  """
  validate.integer_at_least(_NAME, 1, num_clusters=num_clusters)
  validate.unit_interval(_NAME, beta=beta)
  k_num = int(num_clusters)

  def init_fn(params):
    return MultiMomentumState(
        count=jnp.zeros([], jnp.int32),
        m=jax.tree.map(lambda p: jnp.zeros((k_num,) + jnp.shape(p), numerics.stat_dtype(p)),
                       params))

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure(_NAME, updates, state.m,
                                  "the state's momenta (K rows per leaf)")
    g = jax.tree.map(lambda u, m: u.astype(m.dtype), updates, state.m)
    leaves = jax.tree.leaves(g)
    # present_k: row k is non-zero somewhere in the whole tree.
    nonzero = [jnp.any(x.reshape(k_num, -1) != 0, axis=1) for x in leaves]
    present = jnp.any(jnp.stack(nonzero), axis=0)                    # (K,)
    n_present = jnp.sum(present.astype(jnp.int32))
    inv_n = jnp.where(n_present > 0, 1.0 / jnp.maximum(n_present, 1), 0.0)

    def expand(v, x):
      return v.reshape((k_num,) + (1,) * (x.ndim - 1)).astype(x.dtype)

    def combine(gk, mk):
      m_bar = jnp.mean(mk, axis=0, keepdims=True)                    # (1/K) sum_j m_j
      g_tilde = gk - mk + m_bar                                       # control variate
      w = expand(present, gk)
      return jnp.sum(w * g_tilde, axis=0) * inv_n.astype(gk.dtype)

    out = jax.tree.map(combine, g, state.m)
    new_m = jax.tree.map(
        lambda gk, mk: jnp.where(expand(present, gk) > 0,
                                 beta * mk + (1 - beta) * gk, mk), g, state.m)
    out = jax.tree.map(lambda o, u: o.astype(u.dtype), out,
                       jax.tree.map(lambda u: u[0], updates))
    return out, MultiMomentumState(optax.safe_increment(state.count), new_m)

  return optax.GradientTransformation(init_fn, update_fn)
