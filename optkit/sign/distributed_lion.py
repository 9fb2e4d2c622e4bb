"""Distributed Lion: workers vote with Lion signs, the server aggregates them.

Liu, Wu, Chen, Liang, Zhu, Liang, Krishnamoorthi, Liu, "Communication
Efficient Distributed Training with Distributed Lion", arXiv:2404.00438,
Algorithm 1.

Update on worker i of N (local gradient g_i, local momentum m_i, lr eta,
decoupled weight decay lambda)::

  delta_i = sign(beta_1 m_i + (1 - beta_1) g_i)   # local Lion sign, in {-1, 0, 1}
  m_i    <- beta_2 m_i + (1 - beta_2) g_i          # local momentum, never synchronized
  Delta   = sign(sum_i delta_i)                    # 'majority_vote' (ties -> 0)
          = (1/N) sum_i delta_i                    # 'average'
  x      <- x - eta (Delta + lambda x)             # identical on every worker

Paper -> code: beta_1 -> ``b1``, beta_2 -> ``b2``, eta -> ``learning_rate``,
lambda -> ``weight_decay``, m_i -> ``state.mu`` (on each worker; in the
simulation, row i of ``state.mu``), the server's aggregation ->
``jax.lax.psum`` over ``axis_name`` (``aggregation`` picks Delta).

Two forms of the same rule:

* ``distributed_lion(learning_rate, ..., axis_name='batch')`` runs inside a
  mapped axis (``jax.shard_map``, ``jax.pmap`` or ``jax.vmap(...,
  axis_name=...)``): each worker passes its own gradient and keeps its own
  momentum; the votes are summed with one ``psum``. Used outside a mapped
  axis it raises a ValueError naming ``axis_name``.
* ``distributed_lion_simulated(num_workers, ...)`` is an aggregator (the
  leading-axis convention of optkit's multi-objective aggregators): its
  ``updates`` carry a leading worker axis of size N (row i = worker i's
  gradient), its state holds every worker's momentum, and it returns Delta.
  ``optax.chain(distributed_lion_simulated(N), optax.add_decayed_weights(wd),
  optax.scale_by_learning_rate(lr))`` is exactly ``distributed_lion``.

Defaults and their source: (b1, b2) = (0.9, 0.99) (Lion, which the paper
uses unchanged); weight_decay 0 and aggregation 'majority_vote' from the
catalog entry (the paper evaluates both aggregations).

Communication: the votes are summed as int8 when the axis has at most 127
workers (int32 otherwise), so the collective moves 8-bit integers instead of
float32 gradients (the paper's bandwidth saving needs bit-packing on top;
a psum cannot express the paper's 1-bit transfer). The sum of N votes is
exact in both. With an even N, a tie gives Delta = 0 for that coordinate
under majority vote.

Catalog UNSURE points: none for the rule. Decision: with N = 1 both
aggregations are Lion (tested); ``distributed_lion`` has no
"no-axis means one worker" fallback (a silently unsynchronized optimizer is
worse than an error).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import optax

from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "distributed_lion"
_SIM_NAME = "distributed_lion_simulated"
AGGREGATIONS = ("majority_vote", "average")

AxisName = Union[str, Sequence[str]]


class ScaleByDistributedLionState(NamedTuple):
  count: jax.Array    # int32, shape (): number of steps taken
  mu: optax.Updates   # m_i: this worker's momentum, params-shaped; dtype mu_dtype
                      # (simulated form: shape (N, *param.shape), row i = worker i)


def _work(x):
  """Low-precision floats are mapped in float32; float32/64 stay as they are."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _vote_dtype(n: int):
  return jnp.int8 if n <= 127 else jnp.int32


def _local_sign(g, m, b1):
  """delta_i = sign(b1 m_i + (1 - b1) g_i) as a small integer (exact)."""
  return jnp.sign((1.0 - b1) * _work(g) + b1 * _work(m))


def _aggregate(vote_sum, n, aggregation, dtype):
  """Delta from the sum of N votes."""
  s = vote_sum.astype(jnp.float32)
  out = jnp.sign(s) if aggregation == "majority_vote" else s / n
  return out.astype(dtype)


def _check_common(name, b1, b2, aggregation):
  validate.unit_interval(name, b1=b1, b2=b2)
  validate.one_of(name, "aggregation", aggregation, AGGREGATIONS)


def _check_axis_name(axis_name):
  names = axis_name if isinstance(axis_name, (tuple, list)) else (axis_name,)
  if not names or not all(isinstance(a, str) and a for a in names):
    raise ValueError(
        f"{_NAME}: `axis_name` must be the name (or a tuple of names) of the mapped "
        f"axis the workers run over, e.g. 'batch'; got {axis_name!r}.")
  return tuple(names) if isinstance(axis_name, (tuple, list)) else axis_name


def _axis_size(axis_name):
  try:
    return jax.lax.axis_size(axis_name)
  except NameError as err:
    raise ValueError(
        f"{_NAME}: `axis_name`={axis_name!r} is not bound: distributed_lion must run "
        f"inside a mapped axis (jax.shard_map, jax.pmap, or jax.vmap with "
        f"axis_name={axis_name!r}), one call per worker. For a single process with "
        f"a leading worker axis use distributed_lion_simulated. ({err})") from err


def scale_by_distributed_lion(b1: float = 0.9,
                              b2: float = 0.99,
                              *,
                              axis_name: AxisName = "batch",
                              aggregation: str = "majority_vote",
                              mu_dtype: Optional[Any] = None
                              ) -> optax.GradientTransformation:
  r"""Distributed Lion direction :math:`\Delta` (no lr, no decay), per worker.

  Must run inside a mapped axis named ``axis_name``; each worker passes its
  local gradient and gets the same aggregated Delta.

  Args:
    b1: beta_1 of each worker's Lion sign (0.9).
    b2: beta_2 of each worker's local momentum (0.99).
    axis_name: the mapped axis (or tuple of axes) the workers run over.
    aggregation: 'majority_vote' (sign of the vote sum; ties give 0) or
      'average' (mean vote, in [-1, 1]). Static.
    mu_dtype: dtype of the local momentum; None keeps the params' dtype.

  Returns:
    An ``optax.GradientTransformation`` with state
    ``ScaleByDistributedLionState``.

  Example:
    >>> import jax
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_distributed_lion(axis_name='w')
    >>> g = jnp.array([[1.0, 2.0], [1.0, -2.0], [-1.0, -2.0]])  # 3 workers
    >>> step = jax.vmap(lambda g, s: tx.update(g, s)[0], axis_name='w')
    >>> step(g, jax.vmap(tx.init)(g))[0]   # worker 0's Delta = everyone's
    Array([ 1., -1.], dtype=float32)

  References:
    Liu et al., Communication Efficient Distributed Training with Distributed
    Lion, https://arxiv.org/abs/2404.00438
  """
  _check_common(_NAME, b1, b2, aggregation)
  axis_name = _check_axis_name(axis_name)

  def init_fn(params):
    return ScaleByDistributedLionState(count=jnp.zeros([], jnp.int32),
                                       mu=optax.tree.zeros_like(params, dtype=mu_dtype))

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure(_NAME, updates, state.mu)
    n = _axis_size(axis_name)
    vote = _vote_dtype(n)
    deltas = jax.tree.map(lambda g, m: _local_sign(g, m, b1).astype(vote),   # delta_i
                          updates, state.mu)
    sums = jax.lax.psum(deltas, axis_name)                                    # server
    out = jax.tree.map(lambda s, g: _aggregate(s, n, aggregation, g.dtype), sums, updates)
    mu = optax.tree.update_moment(updates, state.mu, b2, 1)                   # m_i
    mu = optax.tree.cast_like(mu, state.mu)
    return out, ScaleByDistributedLionState(count=optax.safe_increment(state.count), mu=mu)

  return optax.GradientTransformation(init_fn, update_fn)


def distributed_lion(learning_rate: optax.ScalarOrSchedule,
                     b1: float = 0.9,
                     b2: float = 0.99,
                     weight_decay: optax.ScalarOrSchedule = 0.0,
                     mask: Optional[Any] = None,
                     *,
                     axis_name: AxisName = "batch",
                     aggregation: str = "majority_vote",
                     mu_dtype: Optional[Any] = None) -> optax.GradientTransformationExtraArgs:
  r"""Distributed Lion, run per worker inside a mapped axis.

  .. math::
    \delta_i = \mathrm{sign}(\beta_1 m_i + (1-\beta_1) g_i),\quad
    \Delta = \mathrm{sign}\big(\textstyle\sum_i \delta_i\big)\ \text{or}\
    \tfrac1N \textstyle\sum_i \delta_i,\quad
    x \leftarrow x - \eta(\Delta + \lambda x)

  Every worker receives the same update, so replicated params stay equal;
  the momenta stay local.

  Args:
    learning_rate: eta, a number or an optax schedule.
    b1: beta_1 (0.9).
    b2: beta_2 (0.99).
    weight_decay: lambda, decoupled (0).
    mask: optional tree or callable selecting the decayed params.
    axis_name: the mapped axis the workers run over ('batch').
    aggregation: 'majority_vote' or 'average'. Static.
    mu_dtype: dtype of the local momentum.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import jax
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.distributed_lion(0.1, axis_name='w', aggregation='average')
    >>> p = jnp.zeros((4, 2))                     # 4 workers' (replicated) params
    >>> g = jnp.array([[1.0, 2.0], [1.0, -2.0], [1.0, 3.0], [-1.0, 0.0]])
    >>> step = jax.vmap(lambda g, s, p: opt.update(g, s, p)[0], axis_name='w')
    >>> step(g, jax.vmap(opt.init)(p), p)[0]      # -0.1 * mean vote
    Array([-0.05 , -0.025], dtype=float32)

  References:
    Liu et al., Communication Efficient Distributed Training with Distributed
    Lion, https://arxiv.org/abs/2404.00438
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_distributed_lion(b1=b1, b2=b2, axis_name=axis_name, aggregation=aggregation,
                                mu_dtype=mu_dtype),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )


def distributed_lion_simulated(num_workers: int,
                               b1: float = 0.9,
                               b2: float = 0.99,
                               *,
                               aggregation: str = "majority_vote",
                               mu_dtype: Optional[Any] = None
                               ) -> optax.GradientTransformationExtraArgs:
  r"""Distributed Lion's aggregated direction for N simulated workers (aggregator).

  ``updates`` has a leading worker axis of size ``num_workers`` on every leaf
  (row i: worker i's gradient); the output is one params-shaped Delta.
  ``init`` takes the params (without the worker axis) and keeps N momenta.
  Chain with ``optax.add_decayed_weights(weight_decay)`` and
  ``optax.scale_by_learning_rate(learning_rate)`` to get ``distributed_lion``.

  Args:
    num_workers: N, the number of workers (static).
    b1: beta_1 (0.9).
    b2: beta_2 (0.99).
    aggregation: 'majority_vote' or 'average'. Static.
    mu_dtype: dtype of the momenta; None keeps the params' dtype.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with state
    ``ScaleByDistributedLionState`` (``mu`` leaves of shape (N, *param.shape)).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.distributed_lion_simulated(num_workers=2)
    >>> g = jnp.array([[1.0, 2.0], [1.0, -2.0]])   # a tie on coordinate 1
    >>> tx.update(g, tx.init(jnp.zeros(2)))[0]
    Array([1., 0.], dtype=float32)

  References:
    Liu et al., Communication Efficient Distributed Training with Distributed
    Lion, https://arxiv.org/abs/2404.00438
  """
  validate.integer_at_least(_SIM_NAME, 1, num_workers=num_workers)
  _check_common(_SIM_NAME, b1, b2, aggregation)
  n = int(num_workers)
  vote = _vote_dtype(n)

  def init_fn(params):
    return ScaleByDistributedLionState(
        count=jnp.zeros([], jnp.int32),
        mu=jax.tree.map(lambda p: jnp.zeros((n,) + jnp.shape(p),
                                            jnp.result_type(p) if mu_dtype is None
                                            else mu_dtype), params))

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    tree_lib.check_same_structure(_SIM_NAME, updates, state.mu,
                                  what=f"the optimizer state (leading axis {n} = workers)")
    tree_lib.leading_axis_size(_SIM_NAME, updates)
    votes = jax.tree.map(lambda g, m: jnp.sum(_local_sign(g, m, b1).astype(vote), axis=0),
                         updates, state.mu)
    out = jax.tree.map(lambda s, g: _aggregate(s, n, aggregation, g.dtype), votes, updates)
    mu = optax.tree.update_moment(updates, state.mu, b2, 1)
    mu = optax.tree.cast_like(mu, state.mu)
    return out, ScaleByDistributedLionState(count=optax.safe_increment(state.count), mu=mu)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
