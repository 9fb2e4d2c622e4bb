"""UPGrad and Jacobian descent.

Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization",
arXiv:2406.16232 (UPGrad; its Proposition 1 gives the dual QP below; instance-wise
risk minimization, IWRM); reference implementation torchjd 0.18
(``aggregation/_upgrad.py``, ``_linalg/_dual_cone.py``, ``_linalg/_gramian.py``;
read, not copied).

Paper -> code: J (the m x n Jacobian, one row g_i per objective) -> ``updates``
(every leaf carries a leading objective axis of size m, as ``jax.jacrev`` of a
vector-valued loss gives it); G = J Jᵀ -> ``gram``; p (preference vector) ->
``pref_vector``; e_i -> i-th unit vector; w^(i) -> row i of the per-row QP
solutions; A_UPGrad(J) = Jᵀ w -> the returned update tree.

Aggregation (torchjd's defaults replicated so results match it numerically)::

  G = Σ_leaves J_leaf J_leafᵀ                        (float32, leaf by leaf)
  G <- G / tr(G),  or 0 if tr(G) < norm_eps         (torchjd ``normalize``)
  G <- G + reg_eps·I                                (torchjd ``regularize``)
  w^(i) = argmin_{v >= p_i e_i} vᵀ G v,   i = 1..m  (Prop. 1: dual of projecting
                                                    p_i g_i onto the dual cone of J)
  w = Σ_i w^(i);   A = Jᵀ w

Each QP is solved as min_{x >= 0} ½ xᵀGx + (G u)ᵀx with u = p_i e_i, v = u + x.
``solver='active_set'`` (default) is a Lawson-Hanson active-set method in Gram
form: it terminates with the exact solution (up to rounding) after finitely many
steps, each an m x m masked Gauss-Jordan solve, inside a ``lax.while_loop``
vmapped over the m rows. ``max_iters`` caps the steps; about m are needed (random
conflicting J with m = 8, 20, 64 converged within 8, 16, 64 steps), so the
default 100 suits m up to about 50: raise it beyond.
``solver='projected_gradient'`` runs ``max_iters`` steps of accelerated projected
gradient (FISTA with gradient restart, step 1/λ_max(G)); it is approximate (its
error depends on cond(G) and max_iters; the tests use 3000 iterations for 1e-5),
for users who want a fixed-cost loop.

Precision: G and the output are accumulated in float32 (float64 leaves keep
float64; bf16 leaves give bf16 updates); the m x m QP runs in float64 whenever
``jax_enable_x64`` is on, else in float32. The float32 error grows with the
conditioning of G: on torchjd's float64 results for 51 Jacobians (m <= 8, some with
rows scaled by 1e-3 or 1e3) it is at most 2e-6 relative (tested at 1e-5), with
float64 inputs under x64 below 1e-10. For m = 64 rows with cond(G) ~ 1e4 it is
about 2e-4; enable x64 where that matters.

Defaults: norm_eps = reg_eps = 1e-4, uniform p = 1/m: torchjd 0.18
(``QuadprogProjector`` and ``MeanWeighting``).

Decisions (UNSURE points of the catalog entry and behaviour the paper leaves open):

* Reference values: torchjd's defaults give [0.29290, 1.90035, 1.90035] on
  J = [[-4, 1, 1], [6, 1, 1]]; reg_eps = 0 gives the exact [0.29240, 1.90058, 1.90058].
  Both are tested. The exact property J·A >= 0 holds for reg_eps = 0 only.
* Small Jacobians: as in torchjd, tr(G) < norm_eps zeroes G, so the QP solution is
  w = p and UPGrad returns pᵀJ (the mean for uniform p). An all-zero J therefore
  gives a zero update (finite).
* Non-finite input: a non-finite Jacobian (or a Gramian that overflows float32)
  gives an all-NaN update, so an ``optax.apply_if_finite`` placed after the
  aggregator (``jacobian_descent(upgrad(), optax.apply_if_finite(inner, n))``)
  skips the step. No silent fall-back to the mean is made.
* torchjd raises when quadprog fails (for example reg_eps = 0 with an all-zero
  normalized G); here the QP with G = 0 has the solution x = 0, so w = p.
* ``values`` (the m losses) is accepted and ignored, as in the paper.
* ``pref_vector`` is listed as static in the record (None by default); a concrete
  vector must be finite, a traced one (e.g. built under jit) is accepted as is. Its
  sign is not checked: the dual-cone property holds for any p.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "upgrad"
_SOLVERS = ("active_set", "projected_gradient")
_HIGHEST = jax.lax.Precision.HIGHEST
# The Lawson-Hanson dual test accepts an index when its multiplier exceeds
# _TOL_ULPS machine epsilons of the Gramian's scale (tr(G)·max|p|).
_TOL_ULPS = 4.0


class UPGradState(NamedTuple):
  """UPGrad keeps no state (the aggregation is a function of the Jacobian)."""


def _gramian(leaves: Sequence[jax.Array], m: int, dtype) -> jax.Array:
  """G = J Jᵀ accumulated leaf by leaf, never concatenating J."""
  gram = jnp.zeros((m, m), dtype)
  for leaf in leaves:
    rows = jnp.reshape(leaf, (m, -1)).astype(dtype)
    gram = gram + jnp.matmul(rows, rows.T, precision=_HIGHEST)
  return gram


def _gauss_jordan_solve(a: jax.Array, b: jax.Array) -> jax.Array:
  """Solves a x = b for symmetric positive definite a, without pivoting.

  Elimination without pivoting is stable for SPD matrices, and this small loop
  compiles far faster than ``jnp.linalg.solve`` inside a vmapped while_loop. A
  (numerically) singular a gives non-finite entries, which the caller detects.
  """
  m = a.shape[0]
  idx = jnp.arange(m)

  def step(k, carry):
    a, b = carry
    pivot = a[k, k]
    row, bk = a[k] / pivot, b[k] / pivot
    col = jnp.where(idx == k, 0, a[:, k])
    a = jnp.where((idx == k)[:, None], row[None, :], a - col[:, None] * row[None, :])
    b = jnp.where(idx == k, bk, b - col * bk)
    return a, b

  _, x = jax.lax.fori_loop(0, m, step, (a, b))
  return x


def _nnls_active_set(gram: jax.Array, c: jax.Array, max_iters: int,
                     tol: jax.Array) -> jax.Array:
  """argmin_{x >= 0} ½ xᵀ G x + cᵀ x by Lawson-Hanson in Gram form (one row)."""
  m = gram.shape[0]
  eye = jnp.eye(m, dtype=gram.dtype)

  def solve_on(passive):
    # Unconstrained minimizer over the passive set, zero elsewhere.
    a = jnp.where(passive[:, None] & passive[None, :], gram, eye)
    b = jnp.where(passive, -c, 0)
    z = _gauss_jordan_solve(a, b)
    return jnp.where(passive, z, 0)

  def cond(carry):
    it, _, _, _, done = carry
    return (it < max_iters) & ~done

  def body(carry):
    it, x, passive, last, _ = carry
    z = solve_on(passive)
    solve_failed = ~jnp.all(jnp.isfinite(z))
    blocking = passive & (z <= 0)
    infeasible = jnp.any(blocking)

    # Infeasible: move from x towards z until the first passive entry hits 0.
    denom = x - z
    ratio = jnp.where(blocking, x / jnp.where(denom > 0, denom, 1), jnp.inf)
    first = jnp.argmin(ratio)
    alpha = jnp.clip(ratio[first], 0, 1)
    x_back = x + alpha * (z - x)
    passive_back = passive & (x_back > 0) & (jnp.arange(m) != first)
    x_back = jnp.where(passive_back, x_back, 0)
    # Rounding can make the index just added look blocking at once: stop then.
    stalled = (alpha <= 0) & (first == last)

    # Feasible: accept z and add the most violated multiplier, if any.
    dual = -(jnp.matmul(gram, z, precision=_HIGHEST) + c)
    candidate = jnp.where(passive, -jnp.inf, dual)
    j = jnp.argmax(candidate)
    add = candidate[j] > tol
    passive_fwd = passive | ((jnp.arange(m) == j) & add)

    x_new = jnp.where(infeasible, x_back, z)
    passive_new = jnp.where(infeasible, passive_back, passive_fwd)
    last_new = jnp.where(infeasible, last, j).astype(jnp.int32)
    done = jnp.where(infeasible, stalled, ~add)
    # A failed solve (only on a numerically singular passive block) keeps x.
    x_new = jnp.where(solve_failed, x, x_new)
    done = done | solve_failed
    return it + 1, x_new, passive_new, last_new, done

  init = (jnp.zeros([], jnp.int32), jnp.zeros_like(c), jnp.zeros(m, bool),
          jnp.full([], -1, jnp.int32), jnp.zeros([], bool))
  _, x, _, _, _ = jax.lax.while_loop(cond, body, init)
  return x


def _nnls_projected_gradient(gram: jax.Array, c: jax.Array,
                             max_iters: int) -> jax.Array:
  """FISTA with gradient restart on argmin_{X >= 0} ½ xᵀ G x + cᵀ x, all rows."""
  lmax = jnp.linalg.eigvalsh(gram)[-1]
  step = 1.0 / jnp.where(lmax > 0, lmax, 1.0)

  def body(_, carry):
    x, y, t = carry
    grad_y = jnp.matmul(y, gram, precision=_HIGHEST) + c       # rows are problems
    x_new = jnp.maximum(y - step * grad_y, 0)
    t_new = 0.5 * (1 + jnp.sqrt(1 + 4 * t * t))
    restart = jnp.sum(grad_y * (x_new - x), axis=1, keepdims=True) > 0
    momentum = jnp.where(restart, 0.0, (t - 1) / t_new)
    y_new = x_new + momentum * (x_new - x)
    t_new = jnp.where(restart, 1.0, t_new)
    return x_new, y_new, t_new

  zeros = jnp.zeros_like(c)
  t0 = jnp.ones((c.shape[0], 1), c.dtype)
  x, _, _ = jax.lax.fori_loop(0, max_iters, body, (zeros, zeros, t0))
  return x


def upgrad_weights(gram: jax.Array, pref: jax.Array, norm_eps: Any = 1e-4,
                   reg_eps: Any = 1e-4, *, solver: str = "active_set",
                   max_iters: int = 100) -> jax.Array:
  """UPGrad's weights w (A = Jᵀ w) from the Gramian G = J Jᵀ and preference p.

  Args:
    gram: (m, m) Gramian J Jᵀ.
    pref: (m,) preference vector p.
    norm_eps: trace threshold below which G is zeroed.
    reg_eps: ridge added to the diagonal of the normalized G.
    solver: ``'active_set'`` (exact) or ``'projected_gradient'`` (FISTA).
    max_iters: iteration cap of the solver (static).

  Returns:
    w = Σ_i w^(i), shape (m,), dtype of ``gram``; NaN where G is not finite.

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> gram = jnp.array([[1.0, 0.0], [0.0, 1.0]])    # two orthogonal unit gradients
    >>> optkit.upgrad_weights(gram, jnp.ones(2) / 2)  # no conflict: their mean
    Array([0.5, 0.5], dtype=float32)
  """
  validate.one_of(_NAME, "solver", solver, _SOLVERS)
  m = gram.shape[0]
  dtype = gram.dtype
  finite = jnp.all(jnp.isfinite(gram))
  trace = jnp.trace(gram)
  small = trace < norm_eps
  gram = jnp.where(small, 0, gram / jnp.where(small, 1, trace))
  gram = gram + jnp.asarray(reg_eps, dtype) * jnp.eye(m, dtype=dtype)
  gram = 0.5 * (gram + gram.T)
  gram = jnp.where(finite, gram, 0)  # keep the solver finite; NaN set below
  pref = jnp.asarray(pref, dtype)
  us = jnp.diag(pref)                                 # row i: u = p_i e_i
  cs = jnp.matmul(us, gram, precision=_HIGHEST)       # row i: G u (G symmetric)
  if solver == "active_set":
    scale = jnp.trace(gram) * jnp.max(jnp.abs(pref))
    tol = _TOL_ULPS * jnp.finfo(dtype).eps * scale
    xs = jax.vmap(lambda c: _nnls_active_set(gram, c, max_iters, tol))(cs)
  else:
    xs = _nnls_projected_gradient(gram, cs, max_iters)
  w = pref + jnp.sum(xs, axis=0)                      # Σ_i (u_i + x_i)
  return jnp.where(finite, w, jnp.nan)


def _pref_array(pref_vector) -> Any:
  """Checks ``pref_vector`` (concrete values only; a traced vector is kept)."""
  if pref_vector is None:
    return None
  if isinstance(pref_vector, jax.core.Tracer):
    if pref_vector.ndim != 1:
      raise ValueError(f"{_NAME}: `pref_vector` must be a vector, got shape "
                       f"{pref_vector.shape}.")
    return pref_vector
  pref = np.asarray(pref_vector, dtype=np.float64)
  if pref.ndim != 1 or pref.size == 0 or not np.all(np.isfinite(pref)):
    raise ValueError(
        f"{_NAME}: `pref_vector` must be a non-empty finite vector, got {pref_vector!r}.")
  return pref


def upgrad(pref_vector=None, norm_eps: Any = 1e-4, reg_eps: Any = 1e-4, *,
           solver: str = "active_set",
           max_iters: int = 100) -> optax.GradientTransformationExtraArgs:
  r"""UPGrad aggregator: maps a Jacobian tree to one conflict-free update.

  .. math::
    G = J J^\top,\quad w^{(i)} = \arg\min_{v \ge p_i e_i} v^\top G v,\quad
    A_{\mathrm{UPGrad}}(J) = J^\top \textstyle\sum_i w^{(i)}

  with torchjd's trace normalization and ``reg_eps`` ridge on G. ``updates``
  must have a leading axis of size m on every leaf (row i: gradient of objective
  i); the returned update has the params' shapes (no leading axis). Chain it with
  any optimizer: ``optax.chain(optkit.upgrad(), optax.adam(1e-3))``.

  Args:
    pref_vector: preference p (length m; static in the record); None means
      uniform 1/m (torchjd's ``MeanWeighting``).
    norm_eps: G is zeroed when tr(G) < norm_eps (torchjd default 1e-4).
    reg_eps: ridge reg_eps·I added to the normalized G (torchjd default 1e-4);
      0 gives the exact UPGrad, with J·A >= 0.
    solver: ``'active_set'`` (exact, default) or ``'projected_gradient'``.
    max_iters: iteration cap of the QP solver (static).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with empty state; extra
    arguments (``values``, ...) are accepted and ignored.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> jac = {"w": jnp.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])}
    >>> agg = optkit.upgrad()
    >>> out, _ = agg.update(jac, agg.init({"w": jnp.zeros(3)}))
    >>> print(jnp.round(out["w"], 4))
    [0.2929 1.9004 1.9004]

  References:
    Quinton & Rey, Jacobian Descent for Multi-Objective Optimization,
    https://arxiv.org/abs/2406.16232
  """
  validate.non_negative(_NAME, norm_eps=norm_eps, reg_eps=reg_eps)
  validate.one_of(_NAME, "solver", solver, _SOLVERS)
  validate.integer_at_least(_NAME, 1, max_iters=max_iters)
  pref = _pref_array(pref_vector)

  def init_fn(params):
    del params
    return UPGradState()

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args  # `values` is accepted and unused.
    tree_lib.check_floating_tree(_NAME, updates)
    m = tree_lib.leading_axis_size(_NAME, updates)
    if params is not None:
      tree_lib.check_rows_match(_NAME, updates, params, m)
    if pref is not None and pref.shape[0] != m:
      raise ValueError(
          f"{_NAME}: `pref_vector` has length {pref.shape[0]}, but the Jacobian has "
          f"m = {m} rows (leading axis).")
    leaves, treedef = jax.tree.flatten(updates)
    gdtype = jnp.result_type(jnp.float32, *[jnp.result_type(x) for x in leaves])
    qdtype = jax.dtypes.canonicalize_dtype(jnp.float64)  # float64 iff x64 is on
    qdtype = jnp.promote_types(gdtype, qdtype)
    gram = _gramian(leaves, m, gdtype)                    # G = J Jᵀ
    p = np.full((m,), 1.0 / m) if pref is None else pref  # torchjd MeanWeighting
    w = upgrad_weights(gram.astype(qdtype), p, norm_eps, reg_eps,
                       solver=solver, max_iters=max_iters).astype(gdtype)
    out = [jnp.tensordot(w, x.astype(gdtype), axes=1, precision=_HIGHEST)
           .astype(jnp.result_type(x)) for x in leaves]   # A = Jᵀ w
    return jax.tree.unflatten(treedef, out), state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def jacobian_descent(
    aggregator: optax.GradientTransformation,
    inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
  """Jacobian descent: aggregate the Jacobian, then step with ``inner``.

  ``optax.chain(aggregator, inner)``: ``update`` takes the Jacobian tree (every
  leaf with a leading objective axis m) and returns an ordinary update; with
  ``upgrad()`` and ``optax.sgd(lr)`` it is the paper's Jacobian descent with
  A = A_UPGrad. Wrap ``inner`` (not the chain) in
  ``optax.apply_if_finite`` to skip steps whose Jacobian is not finite.

  Args:
    aggregator: an aggregator such as ``optkit.upgrad()``.
    inner: any optax optimizer applied to the aggregated update.

  Example:
    >>> import optkit, optax
    >>> import jax.numpy as jnp
    >>> opt = optkit.jacobian_descent(optkit.upgrad(), optax.sgd(0.1))
    >>> params = jnp.zeros(3)
    >>> jac = jnp.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])
    >>> opt.update(jac, opt.init(params), params)[0]
    Array([-0.0293, -0.1900, -0.1900], dtype=float32)

  References:
    Quinton & Rey, Jacobian Descent for Multi-Objective Optimization,
    https://arxiv.org/abs/2406.16232
  """
  validate.transformation("jacobian_descent", aggregator=aggregator, inner=inner)
  return optax.chain(aggregator, inner)


def iwrm_jacobian(per_example_loss_fn: Callable[..., jax.Array], *,
                  return_values: bool = False) -> Callable[..., Any]:
  """Instance-wise risk minimization: the Jacobian of the per-example losses.

  IWRM (from the paper) treats each example's loss as an objective, so Jacobian
  descent on a batch uses J = ∂(ℓ_1, ..., ℓ_b)/∂θ.

  Args:
    per_example_loss_fn: ``(params, *args, **kwargs) -> (b,)`` losses.
    return_values: also return the losses, as ``(values, jacobian)``.

  Returns:
    ``jac_fn(params, *args, **kwargs)``: the Jacobian tree (params' structure,
    each leaf with a leading axis b), computed with ``jax.jacrev``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> x = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> jac_fn = optkit.iwrm_jacobian(lambda w, x: 0.5 * (x @ w) ** 2)
    >>> jac_fn(jnp.array([1.0, -1.0]), x).shape
    (3, 2)

  References:
    Quinton & Rey, Jacobian Descent for Multi-Objective Optimization,
    https://arxiv.org/abs/2406.16232
  """
  if not callable(per_example_loss_fn):
    raise TypeError(
        "iwrm_jacobian: `per_example_loss_fn` must be callable, got "
        f"{type(per_example_loss_fn).__name__}.")

  def jac_fn(params, *args, **kwargs):
    def losses(p):
      values = per_example_loss_fn(p, *args, **kwargs)
      if jnp.ndim(values) != 1:
        raise ValueError(
            "iwrm_jacobian: `per_example_loss_fn` must return a vector of "
            f"per-example losses, got shape {jnp.shape(values)}.")
      return values, values

    jac, values = jax.jacrev(losses, has_aux=True)(params)
    return (values, jac) if return_values else jac

  return jac_fn
