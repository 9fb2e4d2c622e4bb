"""LAWN: after a free phase, keep each constrained layer's weight norm fixed.

Gupta, Ramanath, Shi, Ramachandran, Zhou, Zhou & Keerthi, "Logit Attenuating
Weight Normalization", arXiv:2108.05839. LAWN is stacked onto any optimizer:
it trains freely for a while, then constrains the weight norms of the layers of
the final homogeneous sub-network (which bounds the logits), so the network
keeps its ability to move instead of growing its weights::

    phase 1 (t < T_switch):   W <- W + d_t                 (inner optimizer)
    at t = T_switch:          c_l = ||W_l||                 (recorded once)
    phase 2 (t >= T_switch):  d_t <- d_t - (<d_t, W_l> / ||W_l||^2) W_l   (optional)
                              W_l <- c_l (W_l + d_t) / ||W_l + d_t||

Paper -> code: T_switch -> ``switch_step`` (compared with the state's
``count``, the number of steps taken before this one); c_l -> ``norms`` in the
state; the layers of the final homogeneous sub-network -> ``mask``; the inner
optimizer -> ``inner``. The returned update is ``projected W - W``, so
``optax.apply_updates`` lands exactly on the sphere of radius c_l.

UNSURE points of the catalog, decided here:

* Per-layer norms: one Frobenius norm per masked leaf (a layer's weight
  matrix or kernel), not per unit; ``mask`` defaults to every leaf with at
  least 2 dimensions (weights, not biases or scalars).
* Switch criterion: a fixed step ``switch_step`` (the paper switches after a
  number of warm-up epochs); at that step the norms of the params the step
  receives are recorded, and that step is already constrained.
* Learning-rate restart at the switch: not part of this wrapper; compose a
  schedule (e.g. ``optax.join_schedules``) in the inner optimizer if wanted.
* Radial removal (``project_updates=True``) acts on the inner optimizer's
  update, not on the gradient, so Adam's effective step size on the sphere is
  what the inner update gives (the catalog's pitfall).

Signature: the catalog's ``lawn(switch_step, mask, project_updates=True)``
takes the wrapped optimizer first here: ``lawn(inner, switch_step, mask)``.

The projection re-uses ``optax.projections.projection_l2_sphere`` per leaf;
a zero-norm leaf is left unchanged (no division by zero).

Reference: none found. tests/constraints/test_lawn.py checks that after the
switch the masked leaves keep their recorded norm (to 1e-6 relative) while an
unconstrained inner optimizer changes it (negative control), that unmasked
leaves get exactly the inner update, that phase 1 is the inner optimizer, and
the equality of the projection with optax's.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args, tree as tree_lib, validate

_NAME = "lawn"


class LawnState(NamedTuple):
  count: jax.Array            # int32, shape (): steps taken, t
  norms: Any                  # tree like params, float32 shape () each: c_l
  inner_state: optax.OptState  # the inner optimizer's state


def _default_mask(params):
  return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def _norm(w):
  w32 = w.astype(jnp.promote_types(jnp.result_type(w), jnp.float32))
  return jnp.sqrt(jnp.sum(w32 * w32))


def project_to_norm(w: jax.Array, c: Any) -> jax.Array:
  """``c * w / ||w||`` (optax's ``projection_l2_sphere``); ``w`` itself when
  ``||w|| = 0``. Computed in float32 or wider, returned in that dtype."""
  w32 = w.astype(jnp.promote_types(jnp.result_type(w), jnp.float32))
  n = _norm(w32)
  safe = jnp.where(n > 0, w32, jnp.ones_like(w32))
  projected = optax.projections.projection_l2_sphere(safe, jnp.asarray(c, w32.dtype))
  return jnp.where(n > 0, projected, w32)


def lawn(inner: optax.GradientTransformation, switch_step: int = 1000,
         mask: Optional[Any] = None, *,
         project_updates: bool = True) -> optax.GradientTransformationExtraArgs:
  r"""Logit Attenuating Weight Normalization around an inner optimizer.

  .. math::
    t < T:\ W \leftarrow W + d_t;\qquad
    t \ge T:\ W_l \leftarrow c_l\,\frac{W_l + d_t^\perp}{\|W_l + d_t^\perp\|},
    \quad c_l = \|W_l\|\ \text{at}\ t = T

  Args:
    inner: the optimizer whose updates are constrained (any optax
      transformation, learning rate included).
    switch_step: T, the number of free steps before the norms are recorded
      and fixed (>= 0; 1000 is an arbitrary default: the paper switches after
      a few warm-up epochs).
    mask: tree of booleans (or ``params -> tree``) of the constrained leaves;
      default: every leaf with ``ndim >= 2``.
    project_updates: remove the radial component of the inner update on the
      constrained leaves before the projection (default True).

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``update`` needs ``params``
    and forwards extra arguments to ``inner``.

  Example:
    >>> import optkit
    >>> import optax
    >>> import jax.numpy as jnp
    >>> tx = optkit.lawn(optax.sgd(0.1), switch_step=0)
    >>> w = {"w": jnp.array([[3.0, 4.0]])}          # norm 5, recorded at step 0
    >>> u, s = tx.update({"w": jnp.array([[-10.0, 0.0]])}, tx.init(w), w)
    >>> new = optax.apply_updates(w, u)
    >>> float(jnp.linalg.norm(new["w"]))
    5.0

  References:
    Gupta et al., Logit Attenuating Weight Normalization, 2021.
    https://arxiv.org/abs/2108.05839
  """
  validate.transformation(_NAME, inner=inner)
  validate.non_negative(_NAME, switch_step=switch_step)
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    return LawnState(
        count=jnp.zeros([], jnp.int32),
        norms=jax.tree.map(lambda p: jnp.zeros([], jnp.float32), params),
        inner_state=inner.init(params))

  def update_fn(updates, state, params=None, **extra):
    extra_args.require_params(_NAME, params, "the projection acts on the weights")
    tree_lib.check_same_structure(_NAME, updates, params, what="the params")
    d, inner_state = inner.update(updates, state.inner_state, params, **extra)
    at_switch = state.count == switch_step
    constrained = state.count >= switch_step
    norms = jax.tree.map(lambda c, w: jnp.where(at_switch, _norm(w), c).astype(jnp.float32),
                         state.norms, params)
    use = mask(params) if callable(mask) else mask
    if use is None:
      use = _default_mask(params)

    def step(u, w, c, on):
      if not on:
        return u
      w32 = w.astype(jnp.promote_types(jnp.result_type(w), jnp.float32))
      u32 = u.astype(w32.dtype)
      if project_updates:  # remove the radial part of the update
        nw2 = jnp.sum(w32 * w32)
        coef = jnp.where(nw2 > 0, jnp.sum(u32 * w32) / jnp.where(nw2 > 0, nw2, 1.0), 0.0)
        u32 = u32 - coef * w32
      new = project_to_norm(w32 + u32, c)
      out = jnp.where(constrained, new - w32, u.astype(w32.dtype))
      return out.astype(jnp.result_type(u))

    out = jax.tree.map(step, d, params, norms, use)
    return out, LawnState(optax.safe_increment(state.count), norms, inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
