"""DeepZero: randomized (RGE) and coordinate-wise (CGE) zeroth-order gradients.

Chen, Zhang, Jia, Liu, Hong, Wang & Liu, "DeepZero: Scaling up Zeroth-Order
Optimization for Deep Model Training", ICLR 2024, arXiv:2310.02025, eqs. (1)-(2)
and Sec. 4 (sparsity-induced ZO training)::

    RGE  g = (1/q) sum_j phi(d) [l(theta + mu u_j) - l(theta)] / mu * u_j
             u_j ~ N(0, I) with phi(d) = 1, or u_j ~ Unif(unit sphere of R^d) with phi(d) = d
    CGE  g_i = [l(theta + mu e_i) - l(theta)] / mu   for i in S,  0 otherwise
             (central: [l(theta + mu e_i) - l(theta - mu e_i)] / (2 mu))
    DeepZero: each step draw S_t with, in every layer (leaf), a fraction
             1 - s_l of its coordinates (uniformly, without replacement);
             theta <- theta - eta (sparse CGE on S_t)

Paper -> code: q -> ``num_queries``; mu -> ``mu``; d -> the total number of
parameters; S -> ``coordinates`` (CGE) / the per-step random subset (DeepZero);
s_l -> ``sparsity`` (uniform) or ``layer_sparsity`` (per leaf); eta ->
``learning_rate``; l -> ``value_fn``.

Every evaluation of ``value_fn`` is at a float32 copy of the params (float64 for
float64 params): the catalog's pitfall about mu in bf16. CGE evaluates
``value_fn`` once per selected coordinate (plus once at theta for forward
differences); the perturbed evaluations are batched with ``jax.lax.map`` in
chunks of ``chunk_size`` (``jax.vmap`` inside a chunk), which is the JAX form of
the paper's "batched perturbed forward passes". The paper's feature reuse
(caching activations before the perturbed layer) needs the model's structure and
is not done here: ``value_fn`` is a black box.

UNSURE points, decided:

* Defaults mu = 5e-3 and sparsity = 0.9: the catalog's (DeepZero trains ResNet-20
  at 90% sparsity; mu = 5e-3 is the paper's CGE smoothing).
* Sparse what: the gradient ESTIMATE is sparse (re-sampled every step); the
  weights stay dense. This is the paper's "sparsity-induced ZO training" as the
  catalog reads it: the pruning mask only sets the per-layer ratios.
* The per-layer ratios: the paper obtains them once, at initialization, from
  ZO-GraSP (a zeroth-order GraSP pruning score). ``init`` receives no
  ``value_fn``, so this module takes the ratios as an argument
  (``layer_sparsity``, a tree of floats; default: ``sparsity`` for every leaf)
  and does not ship ZO-GraSP itself.
* Coordinates per leaf: ``ceil((1 - s_l) * size_l)`` (at least one coordinate of
  every non-empty leaf), a static count so the state and the computation keep
  fixed shapes.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from optkit.core import extra_args as _extra
from optkit.core import tree as _tree
from optkit.core import validate
from optkit.zeroth_order import _common as C

DISTRIBUTIONS = ("gaussian", "sphere")


class ZOGradientState(NamedTuple):
  """State of :func:`zo_random_gradient`, :func:`zo_coordinate_gradient` and
  :func:`scale_by_deepzero`."""
  count: jax.Array   # int32, shape (): number of estimates so far
  key: jax.Array     # uint32 key data, shape (2,); unused (but kept) by plain CGE


def _prepare(algo, updates, params, extra):
  value_fn = _extra.require(algo, extra, "value_fn")
  _extra.require_params(algo, params, "the loss is queried around params")
  _tree.check_same_structure(algo, updates, params, "the params")
  return value_fn, C.to_work(params)


def _rge(value_fn, x, key_data, num_queries, mu, distribution):
  """(1/q) sum_j phi(d) [l(x + mu u_j) - l(x)] / mu u_j (eq. (1))."""
  d = C.num_params(x)
  phi = float(d) if distribution == "sphere" else 1.0
  draw = C.sphere_like if distribution == "sphere" else C.gaussian_like
  f0 = C.evaluate(value_fn, x)

  def one(acc, k):
    u = draw(k, x)
    fu = C.evaluate(value_fn, C.axpy(mu, u, x))
    return C.axpy(phi * (fu - f0) / mu, u, acc), None

  total, _ = jax.lax.scan(one, C.zeros_work(x), C.split(key_data, num_queries))
  return jax.tree.map(lambda s: s / num_queries, total)


def _cge(value_fn, x, idx, mu, central, chunk_size):
  """Finite differences on the flat coordinates ``idx`` (eq. (2)); 0 elsewhere."""
  flat, unravel = ravel_pytree(x)
  if idx.shape[0] == 0:
    return unravel(jnp.zeros_like(flat))
  f = lambda z: C.evaluate(value_fn, unravel(z))
  mu = jnp.asarray(mu, flat.dtype)
  f0 = None if central else f(flat)

  def one(i):
    fp = f(flat.at[i].add(mu))
    if central:
      return (fp - f(flat.at[i].add(-mu))) / (2 * mu)
    return (fp - f0) / mu

  vals = jax.lax.map(one, idx, batch_size=min(chunk_size, int(idx.shape[0])))
  return unravel(jnp.zeros_like(flat).at[idx].set(vals.astype(flat.dtype)))


def zo_random_gradient(num_queries: int = 1,
                       mu: float = 5e-3,
                       distribution: str = "gaussian",
                       seed: int = 0) -> optax.GradientTransformationExtraArgs:
  """Randomized gradient estimate (RGE), DeepZero eq. (1).

  ``g = (1/q) sum_j phi(d) [l(theta + mu u_j) - l(theta)] / mu * u_j`` with
  ``u_j ~ N(0, I)`` (phi = 1) or uniform on the unit sphere (phi = d, the total
  parameter count). q + 1 evaluations of ``value_fn``; the incoming updates are
  ignored (only their structure is checked).

  Args:
    num_queries: q, random directions per estimate (static int >= 1).
    mu: smoothing radius mu > 0 (5e-3, catalog).
    distribution: ``'gaussian'`` or ``'sphere'``.
    seed: seed of the PRNG key kept in the state.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (needs ``params``, ``value_fn``).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.zo_random_gradient(num_queries=2000, distribution="sphere")
    >>> p = jnp.array([1.0, -2.0])
    >>> g, _ = tx.update(jnp.zeros(2), tx.init(p), p, value_fn=lambda q: q @ q)
    >>> bool(jnp.allclose(g, 2 * p, atol=0.3))
    True

  References:
    Chen et al., `DeepZero: Scaling up Zeroth-Order Optimization for Deep Model
    Training <https://arxiv.org/abs/2310.02025>`_, ICLR 2024.
  """
  algo = "zo_random_gradient"
  validate.integer_at_least(algo, 1, num_queries=num_queries)
  validate.positive(algo, mu=mu)
  validate.one_of(algo, "distribution", distribution, DISTRIBUTIONS)
  num_queries = int(num_queries)

  def init_fn(params):
    del params
    return ZOGradientState(jnp.zeros([], jnp.int32), C.init_key(seed))

  def update_fn(updates, state, params=None, **extra):
    value_fn, x = _prepare(algo, updates, params, extra)
    key, sub = C.split(state.key)
    g = _rge(value_fn, x, sub, num_queries, mu, distribution)
    return C.cast_like(g, updates), ZOGradientState(optax.safe_increment(state.count), key)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _mask_indices(algo, coordinates, params):
  """Flat indices of the True entries of the static mask tree ``coordinates``."""
  try:
    leaves = jax.tree.leaves(jax.tree.map(lambda m, p: np.broadcast_to(
        np.asarray(m, bool), jnp.shape(p)).reshape(-1), coordinates, params))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"{algo}: `coordinates` must be a tree of boolean masks shaped "
                     f"like the params (static), got an error: {e}") from None
  flat = np.concatenate(leaves) if leaves else np.zeros((0,), bool)
  return jnp.asarray(np.flatnonzero(flat), jnp.int32)


def zo_coordinate_gradient(mu: float = 5e-3,
                           coordinates: Any = None,
                           central: bool = False,
                           *,
                           chunk_size: int = 32) -> optax.GradientTransformationExtraArgs:
  """Coordinate-wise gradient estimate (CGE), DeepZero eq. (2).

  ``g_i = [l(theta + mu e_i) - l(theta)] / mu`` for i in S (``central``:
  ``[l(theta + mu e_i) - l(theta - mu e_i)] / (2 mu)``), exactly 0 outside S.
  Costs |S| (+1) evaluations of ``value_fn`` (2|S| when central), batched in
  chunks of ``chunk_size``.

  Args:
    mu: finite-difference step mu > 0 (5e-3, catalog).
    coordinates: S as a static tree of boolean masks shaped like the params
      (numpy/Python values); None: every coordinate.
    central: central instead of forward differences.
    chunk_size: perturbed evaluations vmapped together (static int >= 1).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (needs ``params``, ``value_fn``).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.zo_coordinate_gradient(central=True)
    >>> p = jnp.array([1.0, -2.0])
    >>> g, _ = tx.update(jnp.zeros(2), tx.init(p), p, value_fn=lambda q: q @ q)
    >>> g.round(3)
    Array([ 2., -4.], dtype=float32)

  References:
    Chen et al., `DeepZero: Scaling up Zeroth-Order Optimization for Deep Model
    Training <https://arxiv.org/abs/2310.02025>`_, ICLR 2024.
  """
  algo = "zo_coordinate_gradient"
  validate.positive(algo, mu=mu)
  validate.integer_at_least(algo, 1, chunk_size=chunk_size)
  if not isinstance(central, bool):
    raise ValueError(f"{algo}: `central` must be a bool, got {central!r}.")

  def init_fn(params):
    del params
    return ZOGradientState(jnp.zeros([], jnp.int32), C.init_key(0))

  def update_fn(updates, state, params=None, **extra):
    value_fn, x = _prepare(algo, updates, params, extra)
    if coordinates is None:
      idx = jnp.arange(C.num_params(x), dtype=jnp.int32)
    else:
      idx = _mask_indices(algo, coordinates, x)
    g = _cge(value_fn, x, idx, mu, central, int(chunk_size))
    return C.cast_like(g, updates), state._replace(count=optax.safe_increment(state.count))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _layer_counts(algo, params, sparsity, layer_sparsity):
  """Static number of sampled coordinates per leaf: ceil((1 - s_l) size_l)."""
  leaves = jax.tree.leaves(params)
  if layer_sparsity is None:
    ratios = [sparsity] * len(leaves)
  else:
    try:
      ratios = jax.tree.leaves(jax.tree.map(lambda s, p: float(s), layer_sparsity, params))
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f"{algo}: `layer_sparsity` must be a tree of floats in [0, 1) "
                       f"shaped like the params, got an error: {e}") from None
  counts = []
  for s, p in zip(ratios, leaves):
    validate.unit_interval(algo, layer_sparsity=s)
    size = int(np.prod(jnp.shape(p), dtype=np.int64))
    counts.append((size, min(size, math.ceil((1.0 - s) * size - 1e-9))))
  return counts


def scale_by_deepzero(sparsity: float = 0.9,
                      mu: float = 5e-3,
                      seed: int = 0,
                      *,
                      layer_sparsity: Any = None,
                      central: bool = False,
                      chunk_size: int = 32) -> optax.GradientTransformationExtraArgs:
  """DeepZero's sparse CGE direction (no learning rate).

  Every step draws, in every leaf l, ``ceil((1 - s_l) size_l)`` coordinates
  uniformly without replacement and returns their CGE (forward or central
  differences with step mu); every other coordinate is exactly 0.

  Args:
    sparsity: s, the fraction of coordinates of every leaf NOT estimated per
      step (static float in [0, 1); 0.9, catalog).
    mu: finite-difference step (5e-3).
    seed: seed of the PRNG key kept in the state.
    layer_sparsity: optional static tree of per-leaf ratios s_l (e.g. from a
      ZO-GraSP pruning mask); overrides ``sparsity``.
    central: central instead of forward differences.
    chunk_size: perturbed evaluations vmapped together.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (needs ``params``, ``value_fn``).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_deepzero(sparsity=0.5, central=True)
    >>> p = jnp.array([1.0, -2.0])
    >>> g, _ = tx.update(jnp.zeros(2), tx.init(p), p, value_fn=lambda q: q @ q)
    >>> int((g != 0).sum())       # one of the two coordinates, estimated
    1

  References:
    Chen et al., `DeepZero: Scaling up Zeroth-Order Optimization for Deep Model
    Training <https://arxiv.org/abs/2310.02025>`_, ICLR 2024.
  """
  algo = "deepzero"
  validate.unit_interval(algo, sparsity=sparsity)
  validate.positive(algo, mu=mu)
  validate.integer_at_least(algo, 1, chunk_size=chunk_size)
  if not isinstance(central, bool):
    raise ValueError(f"{algo}: `central` must be a bool, got {central!r}.")

  def init_fn(params):
    _layer_counts(algo, params, sparsity, layer_sparsity)  # validates early
    return ZOGradientState(jnp.zeros([], jnp.int32), C.init_key(seed))

  def update_fn(updates, state, params=None, **extra):
    value_fn, x = _prepare(algo, updates, params, extra)
    counts = _layer_counts(algo, x, sparsity, layer_sparsity)
    key, sub = C.split(state.key)
    keys = C.split(sub, max(len(counts), 1))
    parts, offset = [], 0
    for (size, n), k in zip(counts, keys):
      if n > 0:
        local = jax.random.choice(jax.random.wrap_key_data(k), size, (n,), replace=False)
        parts.append(offset + local.astype(jnp.int32))
      offset += size
    idx = jnp.concatenate(parts) if parts else jnp.zeros((0,), jnp.int32)
    g = _cge(value_fn, x, idx, mu, central, int(chunk_size))
    return C.cast_like(g, updates), ZOGradientState(optax.safe_increment(state.count), key)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def deepzero(learning_rate: optax.ScalarOrSchedule,
             sparsity: float = 0.9,
             mu: float = 5e-3,
             seed: int = 0,
             weight_decay: float = 0.0,
             *,
             mask: Optional[Any] = None,
             layer_sparsity: Any = None,
             central: bool = False,
             chunk_size: int = 32) -> optax.GradientTransformationExtraArgs:
  """DeepZero: ZO-SGD on the sparse coordinate-wise gradient estimate.

  ``chain(scale_by_deepzero(...), add_decayed_weights(weight_decay, mask),
  scale_by_learning_rate(learning_rate))``: ``theta <- theta - eta g_S``.

  Args:
    learning_rate: eta, a float or an optax schedule.
    sparsity, mu, seed, layer_sparsity, central, chunk_size: see
      :func:`scale_by_deepzero`.
    weight_decay: decoupled weight decay (0).
    mask: weight-decay mask, as in ``optax.add_decayed_weights``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.deepzero(0.1, sparsity=0.0, central=True)
    >>> p = jnp.array([1.0, -2.0])
    >>> u, _ = opt.update(jnp.zeros(2), opt.init(p), p, value_fn=lambda q: q @ q)
    >>> u.round(3)
    Array([-0.2,  0.4], dtype=float32)

  References:
    Chen et al., `DeepZero: Scaling up Zeroth-Order Optimization for Deep Model
    Training <https://arxiv.org/abs/2310.02025>`_, ICLR 2024.
  """
  algo = "deepzero"
  validate.learning_rate(algo, learning_rate)
  validate.non_negative(algo, weight_decay=weight_decay)
  return optax.chain(
      scale_by_deepzero(sparsity, mu, seed, layer_sparsity=layer_sparsity,
                        central=central, chunk_size=chunk_size),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate))
