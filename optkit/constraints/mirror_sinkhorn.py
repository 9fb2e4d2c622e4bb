"""Mirror Sinkhorn: entropic mirror steps alternated with Sinkhorn row/column scalings.

Ballu & Berthet, "Mirror Sinkhorn: Fast Online Optimization on Transport
Polytopes", arXiv:2211.10420 (ICML 2023). A single-loop method for convex f
on the transport polytope U(a, b) = {X >= 0 : X 1 = a, X^T 1 = b}::

    X_{t+1/2} = X_t * exp(-eta_t grad f(X_t))                  # mirror step
    t odd:  X_{t+1} = diag(a / (X_{t+1/2} 1)) X_{t+1/2}        # rows match a
    t even: X_{t+1} = X_{t+1/2} diag(b / (X_{t+1/2}^T 1))      # columns match b
    output: the average of the iterates, rounded onto U(a, b)

Paper -> code: eta_t -> ``learning_rate`` (a number or a schedule evaluated at
``count``; :func:`mirror_sinkhorn_schedule` gives eta_0 / sqrt(t)); mu, nu (a,
b) -> ``a``, ``b``; t -> ``count + 1`` (so the first step, t = 1, scales
rows); the average -> the state's ``average``; rounding ->
:func:`round_to_transport_polytope` (Altschuler, Weed & Rigollet 2017, Alg. 2),
applied by :func:`mirror_sinkhorn_output`.

Signature: the catalog's ``mirror_sinkhorn(a, b, step_schedule)`` is
``mirror_sinkhorn(learning_rate, a=None, b=None)`` here (optkit's convention:
the step size, a number or schedule, comes first).

Which leaves: those selected by ``mask`` (default: every 2-D leaf) are
positive matrices on U(a, b); the other leaves (vectors, scalars, kernels) get
a plain gradient step ``-eta_t g`` (documented fallback, so a model with other
parameters can use one optimizer). The returned update is ``X_{t+1} - X_t``
(a projection-type step: ``optax.apply_updates`` lands on the new iterate).

Numerics: the step is computed in log space (log X - eta g, then a
log-sum-exp normalization), in float32 or wider; entries of X at or below
``min_value`` (zero or negative starting values) are treated as
``min_value``; a zero marginal entry gives an exact zero row/column.

UNSURE points of the catalog, decided here:

* eta_t: constant or any schedule; the helper gives eta_0 / sqrt(t) with
  t = count + 1 (the paper's 1/sqrt(t) rate for convex f).
* Rounding: the running average is kept in the state (uniform weights over
  the iterates X_1 .. X_T) and rounded on demand by
  :func:`mirror_sinkhorn_output`, not at every step (the iterates themselves
  satisfy one of the two marginal constraints exactly).
* Marginals: ``a = b = None`` (default) takes the row and column sums of the
  initial matrix (so a positive X_0 stays on its own polytope); arrays apply
  to every constrained leaf (their shapes must match).

Reference: none found. tests/constraints/test_mirror_sinkhorn.py checks that
with grad f = 0 the iterates are Sinkhorn's matrix scaling (converging to
the scaling of X_0, compared with a float64 NumPy Sinkhorn loop), row sums
equal a after odd steps and column sums equal b after even steps (plain
exponentiated gradient, the negative control, does not), a hand-computed
first step, the rounding's marginals, and progress on a linear OT objective.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import tree as tree_lib, validate

_NAME = "mirror_sinkhorn"


class MirrorSinkhornState(NamedTuple):
  count: jax.Array  # int32, shape (): steps taken; this step is t = count + 1
  a: Any            # tree: (m,) row marginals per constrained leaf, () zero otherwise
  b: Any            # tree: (n,) column marginals per constrained leaf, () zero otherwise
  average: Any      # tree like params (float32 or wider): mean of X_1 .. X_t


def _wide(x):
  return jnp.asarray(x).astype(jnp.promote_types(jnp.result_type(x), jnp.float32))


def mirror_sinkhorn_schedule(eta0: float = 1.0) -> optax.Schedule:
  """eta_t = eta0 / sqrt(t), t = count + 1.

  Example:
    >>> import optkit
    >>> s = optkit.mirror_sinkhorn_schedule(2.0)
    >>> float(s(0)), float(s(3))
    (2.0, 1.0)
  """
  validate.positive("mirror_sinkhorn_schedule", eta0=eta0)
  return lambda count: eta0 / jnp.sqrt(jnp.asarray(count, jnp.float32) + 1.0)


def round_to_transport_polytope(x: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
  """Rounds a nonnegative matrix onto U(a, b) (Altschuler, Weed & Rigollet 2017,
  Alg. 2): scale rows down to at most a, columns down to at most b, then add
  the rank-one correction err_r err_c^T / ||err_r||_1.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> x = optkit.round_to_transport_polytope(jnp.ones((2, 2)),
    ...     jnp.array([0.3, 0.7]), jnp.array([0.5, 0.5]))
    >>> x.sum(1), x.sum(0)
    (Array([0.3, 0.7], dtype=float32), Array([0.5, 0.5], dtype=float32))
  """
  x = _wide(x)
  r = x.sum(1)
  fr = jnp.where(r > 0, jnp.minimum(a / jnp.where(r > 0, r, 1.0), 1.0), 1.0)
  x = x * fr[:, None]
  c = x.sum(0)
  fc = jnp.where(c > 0, jnp.minimum(b / jnp.where(c > 0, c, 1.0), 1.0), 1.0)
  x = x * fc[None, :]
  err_r = a - x.sum(1)
  err_c = b - x.sum(0)
  total = jnp.sum(jnp.abs(err_r))
  return x + jnp.where(total > 0, jnp.outer(err_r, err_c) / jnp.where(total > 0, total, 1.0), 0.0)


def _default_mask(params):
  return jax.tree.map(lambda p: jnp.ndim(p) == 2, params)


def mirror_sinkhorn(
    learning_rate: optax.ScalarOrSchedule,
    a: Optional[Any] = None,
    b: Optional[Any] = None,
    *,
    mask: Optional[Any] = None,
    min_value: float = 1e-30,
) -> optax.GradientTransformation:
  r"""Mirror Sinkhorn on the transport polytope U(a, b).

  .. math::
    X_{t+1/2} = X_t \odot e^{-\eta_t \nabla f(X_t)},\qquad
    X_{t+1} = \begin{cases}
      \mathrm{diag}(a / X_{t+1/2}\mathbf 1)\, X_{t+1/2} & t \text{ odd} \\
      X_{t+1/2}\, \mathrm{diag}(b / X_{t+1/2}^\top \mathbf 1) & t \text{ even}
    \end{cases}

  Args:
    learning_rate: eta_t, > 0 (a number or a schedule, e.g.
      :func:`mirror_sinkhorn_schedule`).
    a: row marginals (m,), or None for the initial matrix's row sums.
    b: column marginals (n,), or None for the initial matrix's column sums;
      ``sum(a)`` must equal ``sum(b)``.
    mask: tree of booleans (or ``params -> tree``) of the leaves on the
      polytope (2-D); default: every 2-D leaf. Other leaves get ``-eta_t g``.
    min_value: floor for the entries of X before the logarithm (1e-30).

  Returns:
    An ``optax.GradientTransformation``; ``update`` needs ``params``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.mirror_sinkhorn(0.5, a=jnp.array([0.5, 0.5]),
    ...                             b=jnp.array([0.25, 0.75]))
    >>> x = jnp.full((2, 2), 0.25)
    >>> u, s = tx.update(jnp.array([[1.0, 0.0], [0.0, 1.0]]), tx.init(x), x)
    >>> (x + u).sum(1)                              # t = 1: rows match a
    Array([0.5, 0.5], dtype=float32)

  References:
    Ballu & Berthet, Mirror Sinkhorn: Fast Online Optimization on Transport
    Polytopes, 2023. https://arxiv.org/abs/2211.10420
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.positive(_NAME, min_value=min_value)
  if a is not None and b is not None:
    sa, sb = float(np.sum(np.asarray(a))), float(np.sum(np.asarray(b)))
    if not np.isclose(sa, sb, rtol=1e-5, atol=1e-12):
      raise ValueError(f"{_NAME}: `a` and `b` must have the same total mass, got "
                       f"sum(a)={sa} and sum(b)={sb}.")
  for arg, m in (("a", a), ("b", b)):
    if m is not None and (np.ndim(m) != 1 or np.any(np.asarray(m) < 0)):
      raise ValueError(f"{_NAME}: `{arg}` must be a 1-D nonnegative array, got {m!r}.")

  def selected(params):
    use = mask(params) if callable(mask) else mask
    return _default_mask(params) if use is None else use

  def init_fn(params):
    use = selected(params)

    def marginal(p, on, given, axis):
      if not on:
        return jnp.zeros([], jnp.float32)
      if jnp.ndim(p) != 2:
        raise ValueError(f"{_NAME}: a leaf on the transport polytope must be 2-D, "
                         f"got shape {jnp.shape(p)}.")
      x = jnp.maximum(_wide(p), min_value)
      if given is None:
        return x.sum(axis)
      given = _wide(given)
      if given.shape != (jnp.shape(p)[1 - axis],):
        raise ValueError(f"{_NAME}: marginal `{'ab'[1 - axis]}` has shape "
                         f"{given.shape}, the leaf has shape {jnp.shape(p)}.")
      return jnp.array(given, copy=True)  # one buffer per leaf (donation-safe)

    return MirrorSinkhornState(
        count=jnp.zeros([], jnp.int32),
        a=jax.tree.map(lambda p, on: marginal(p, on, a, 1), params, use),
        b=jax.tree.map(lambda p, on: marginal(p, on, b, 0), params, use),
        average=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), _wide(p).dtype), params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(f"{_NAME}: update() requires `params` (the current matrix "
                       "X_t); call `tx.update(updates, state, params)`.")
    tree_lib.check_same_structure(_NAME, updates, params, what="the params")
    eta = learning_rate(state.count) if callable(learning_rate) else learning_rate
    rows = (state.count % 2) == 0          # t = count + 1 odd: scale rows
    use = selected(params)

    def step(g, p, on, ra, cb):
      x = _wide(p)
      if not on:
        return x - eta * g.astype(x.dtype)
      log_half = jnp.log(jnp.maximum(x, min_value)) - eta * g.astype(x.dtype)   # mirror
      by_rows = log_half - jax.nn.logsumexp(log_half, axis=1, keepdims=True) \
          + jnp.log(ra)[:, None]
      by_cols = log_half - jax.nn.logsumexp(log_half, axis=0, keepdims=True) \
          + jnp.log(cb)[None, :]
      return jnp.exp(jnp.where(rows, by_rows, by_cols))

    new = jax.tree.map(step, updates, params, use, state.a, state.b)
    t = optax.safe_increment(state.count)
    w = 1.0 / t.astype(jnp.float32)
    average = jax.tree.map(lambda m, x: (m + w * (x - m)).astype(m.dtype), state.average, new)
    out = jax.tree.map(lambda x, p: (x - _wide(p)).astype(jnp.result_type(p)), new, params)
    return out, MirrorSinkhornState(t, state.a, state.b, average)

  return optax.GradientTransformation(init_fn, update_fn)


def mirror_sinkhorn_output(state: MirrorSinkhornState) -> Any:
  """The paper's output: the average of the iterates, rounded onto U(a, b) on
  the constrained leaves (the plain average on the others).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.mirror_sinkhorn(0.5)
    >>> x = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    >>> _, s = tx.update(jnp.zeros_like(x), tx.init(x), x)
    >>> out = optkit.mirror_sinkhorn_output(s)
    >>> out.sum(1), out.sum(0)
    (Array([3., 7.], dtype=float32), Array([4., 6.], dtype=float32))
  """
  return jax.tree.map(
      lambda m, ra, cb: round_to_transport_polytope(m, ra, cb) if jnp.ndim(ra) == 1 else m,
      state.average, state.a, state.b)
