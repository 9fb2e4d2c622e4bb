"""Gradient-norm clipping: global (whole pytree) and per-block (per leaf).

Pascanu, Mikolov, Bengio, "On the difficulty of training Recurrent Neural
Networks", arXiv:1211.5063, Algorithm 1 (the clipping heuristic, section 3.2)::

  g_hat <- dE/dtheta
  if ||g_hat|| >= threshold:  g_hat <- (threshold / ||g_hat||) g_hat

i.e. g <- g * min(1, c / ||g||) with ``||.||`` the L2 norm over all
parameters. Paper -> code: ``threshold`` -> ``max_norm`` (c), ``g_hat`` ->
``updates``.

``clip_by_global_norm`` calls ``optax.clip_by_global_norm`` (faithful: it
keeps g where ||g|| < c, else g c/||g||, so n = 0 never divides). optkit adds:

* ``max_norm`` may be an optax schedule of the step count (the state holds
  ``count``);
* the norm and the scaling are computed in float32 for low-precision leaves
  (bf16 in, bf16 out); optax on bf16 leaves would form the norm in bf16 and,
  with an array ``max_norm`` (``optax.inject_hyperparams``), fail on mixed
  dtypes in ``lax.select``;
* the state keeps the last pre-clip global norm ``norm`` (the catalog's
  "with stats" variant, for logging and for wrappers), so no separate
  ``clip_by_global_norm_with_stats`` is needed.

``clip_by_block_norm`` applies the same rule to each leaf separately
(g_leaf <- g_leaf min(1, c/||g_leaf||)); it calls ``optax.clip_by_block_rms``
leaf by leaf with threshold c / sqrt(size) (RMS = norm / sqrt(size)).

Defaults and their source: the paper takes c around the average gradient
norm over many updates (results insensitive within ~0.5x-10x); c = 1.0, the
common LLM default, is the default here. The paper's soft constraint Omega
against vanishing gradients is a loss term, out of scope.

Catalog UNSURE points: none.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import tree as tree_lib
from optkit.core import validate


class ClipByGlobalNormState(NamedTuple):
  count: jax.Array   # int32, shape (): steps taken (the schedule's argument)
  norm: jax.Array    # float32, shape (): the last pre-clip global norm ||g||
  leaf_norms: Any    # float32 () per leaf: the last pre-clip norm of each leaf


def _work(x):
  """bf16/f16 leaves are processed in float32; float32/64 keep their dtype."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _max_norm_at(max_norm, count):
  return max_norm(count) if callable(max_norm) else max_norm


def leaf_norm_tree(updates):
  """The float32 L2 norm of every leaf (one () array per leaf)."""
  return jax.tree.map(lambda g: jnp.linalg.norm(_work(g).ravel()).astype(jnp.float32),
                      updates)


def _zero_norms(params):
  return jax.tree.map(lambda _: jnp.zeros([], jnp.float32), params)


def check_tree(name, updates, reference):
  """ValueError when ``updates`` does not have ``reference``'s tree structure;
  TypeError for a non-floating leaf."""
  tree_lib.check_floating_tree(name, updates)
  s_u, s_r = jax.tree.structure(updates), jax.tree.structure(reference)
  if s_u != s_r:
    raise ValueError(
        f"{name}: the gradient tree does not match the optimizer state: got "
        f"structure {s_u}, expected {s_r}. Was the state initialized with other params?")


def clip_by_global_norm(max_norm: optax.ScalarOrSchedule = 1.0
                        ) -> optax.GradientTransformation:
  r"""Clips the whole update tree to global L2 norm at most ``max_norm``.

  .. math::
    g \leftarrow g \cdot \min\big(1, c / \|g\|_2\big), \qquad
    \|g\|_2 = \Big(\sum_{\text{leaves}} \|g_\ell\|_2^2\Big)^{1/2}

  The direction is unchanged; the output norm is min(||g||, c).

  Args:
    max_norm: c, the clipping threshold (> 0), a number or an optax schedule
      of the step count (default 1.0; the paper: about the average gradient
      norm).

  Returns:
    An ``optax.GradientTransformation`` with state ``ClipByGlobalNormState``
    (step count, the last pre-clip global norm and per-leaf norms).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.clip_by_global_norm(1.0)
    >>> g = {"a": jnp.array([3.0, 0.0]), "b": jnp.array(4.0)}
    >>> u, s = tx.update(g, tx.init(g))
    >>> u["a"], u["b"], s.norm
    (Array([0.6, 0. ], dtype=float32), Array(0.8, dtype=float32), Array(5., dtype=float32))

  References:
    Pascanu, Mikolov, Bengio, On the difficulty of training Recurrent Neural
    Networks, https://arxiv.org/abs/1211.5063
  """
  name = "clip_by_global_norm"
  validate.positive(name, max_norm=max_norm)

  def init_fn(params):
    return ClipByGlobalNormState(jnp.zeros([], jnp.int32), jnp.zeros([], jnp.float32),
                                 _zero_norms(params))

  def update_fn(updates, state, params=None):
    del params
    check_tree(name, updates, state.leaf_norms)
    c = _max_norm_at(max_norm, state.count)
    work = jax.tree.map(_work, updates)
    clipped, _ = optax.clip_by_global_norm(c).update(work, optax.EmptyState())
    leaf_norms = leaf_norm_tree(work)
    norm = optax.tree.norm(work).astype(jnp.float32)
    new_state = ClipByGlobalNormState(optax.safe_increment(state.count), norm, leaf_norms)
    return optax.tree.cast_like(clipped, updates), new_state

  return optax.GradientTransformation(init_fn, update_fn)


class ClipByBlockNormState(NamedTuple):
  count: jax.Array   # int32, shape (): steps taken (the schedule's argument)
  leaf_norms: Any    # float32 () per leaf: the last pre-clip norm of each leaf


def clip_by_block_norm(max_norm: optax.ScalarOrSchedule = 1.0
                       ) -> optax.GradientTransformation:
  r"""Clips every leaf (block) to L2 norm at most ``max_norm`` separately.

  .. math::
    g_\ell \leftarrow g_\ell \cdot \min\big(1, c / \|g_\ell\|_2\big)
    \quad\text{for every leaf } \ell

  Same as ``optax.clip_by_block_rms(c / sqrt(size))`` on each leaf (which this
  calls): the RMS of a leaf is its norm over sqrt(size).

  Args:
    max_norm: c (> 0), a number or an optax schedule of the step count
      (default 1.0).

  Returns:
    An ``optax.GradientTransformation`` with state ``ClipByBlockNormState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.clip_by_block_norm(1.0)
    >>> g = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.5])}
    >>> u, _ = tx.update(g, tx.init(g))
    >>> u["a"], u["b"]
    (Array([0.6, 0.8], dtype=float32), Array([0.5], dtype=float32))

  References:
    Pascanu, Mikolov, Bengio, On the difficulty of training Recurrent Neural
    Networks, https://arxiv.org/abs/1211.5063
  """
  name = "clip_by_block_norm"
  validate.positive(name, max_norm=max_norm)

  def init_fn(params):
    return ClipByBlockNormState(jnp.zeros([], jnp.int32), _zero_norms(params))

  def update_fn(updates, state, params=None):
    del params
    check_tree(name, updates, state.leaf_norms)
    c = _max_norm_at(max_norm, state.count)

    def clip_leaf(g):
      size = int(np.prod(jnp.shape(g), dtype=np.int64))
      if size == 0:
        return g
      w = _work(g)
      out, _ = optax.clip_by_block_rms(c / np.sqrt(size)).update(w, optax.EmptyState())
      return out.astype(jnp.result_type(g))

    out = jax.tree.map(clip_leaf, updates)
    return out, ClipByBlockNormState(optax.safe_increment(state.count),
                                     leaf_norm_tree(updates))

  return optax.GradientTransformation(init_fn, update_fn)
