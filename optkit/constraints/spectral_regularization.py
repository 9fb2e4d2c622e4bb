"""Spectral regularization and Wasserstein-to-init regularization (continual learning).

Lewandowski, Bortkiewicz, Kumar, György, Schuurmans, Ostaszewski & Machado,
"Learning Continually by Spectral Regularization", ICLR 2025, arXiv:2406.06811
(v2: the spectral regularizer; v1 also: Wasserstein regularization towards the
initial weight distribution).

Spectral regularizer, per matrix leaf W_l (higher-rank leaves viewed as
matrices, see below)::

    R = lambda * sum_l (sigma_max(W_l)^k - 1)^2
    grad R = 2 lambda (sigma^k - 1) k sigma^(k-1) u v^T              # u, v: top singular pair

sigma, u, v come from a *persistent* power iteration: u and v live in the state
and ``num_power_iters`` iterations (v <- W^T u / ||W^T u||, u <- W v / ||W v||,
sigma = u^T W v) run on every update, starting from the previous step's
vectors, so the estimate tracks the slowly changing weights (one iteration
per step suffices once it has converged; the first steps are less accurate).
0-D and 1-D leaves (biases, scales) get an L2 pull towards their initial
values, lambda ||b - b_0||^2, gradient 2 lambda (b - b_0).

Wasserstein-to-init, per leaf (all its entries as one empirical distribution)::

    R = lambda * sum_l ||sort(w_l) - sort(w_l^0)||^2
    grad R = 2 lambda (w_l - sort(w_l^0)[rank(w_l)])

(the i-th smallest weight is pulled to the i-th smallest initial weight).

Paper -> code: lambda -> ``strength``; k -> ``power``; W_l -> a params leaf of
rank >= 2; u, v -> ``state.u``, ``state.v``; w_l^0 -> the params at ``init``.

Matrix view of higher-rank leaves: ``optkit.core.linalg.as_matrix`` (2-D as is;
rank >= 3 as (product of all axes but the last, last axis), Flax's
``(kh, kw, in, out)`` kernel layout); ``dimension_numbers`` overrides it.

UNSURE points (catalog), decided:

* k: ``power=2`` (the paper's default exponent, the catalog's signature).
* Biases: the ICLR version appends the bias as an extra column of W_l; optax
  leaves do not pair a bias with its kernel, so (as the catalog says) every
  0-D/1-D leaf is regularized by L2 towards its initial value with the same
  lambda. Mask leaves out with ``optax.masked`` if unwanted.
* Power-iteration start: u, v are drawn from N(0, I) with the ``seed`` key at
  init and normalized; the key stays in the state and is split every step to
  redraw a vector only when it degenerates (W u = 0, e.g. all-zero weights).
* Wasserstein ties: ``jnp.argsort(..., stable=True)`` ranks equal weights by
  position; the gradient is piecewise constant in the ranking.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args, linalg, tree as tree_lib, validate

_SPEC = "add_spectral_regularization"
_WASS = "add_wasserstein_init_regularization"


def _f32(x):
  return x.astype(jnp.promote_types(jnp.result_type(x), jnp.float32))


class AddSpectralRegularizationState(NamedTuple):
  """State of :func:`add_spectral_regularization`."""
  key: jax.Array        # uint32 key data, shape (2,)
  u: Any                # per leaf: (rows,) left singular vector (matrix leaves), () otherwise
  v: Any                # per leaf: (cols,) right singular vector (matrix leaves), () otherwise
  init_params: Any      # per leaf: b_0 for 0-D/1-D leaves (float32), () placeholder for matrices


class AddWassersteinInitRegularizationState(NamedTuple):
  """State of :func:`add_wasserstein_init_regularization`."""
  sorted_init: Any      # per leaf: sort(w_l^0), flattened (size,), float32


def _dims(path, shape, dimension_numbers):
  return linalg.leaf_dimension_numbers(_SPEC, path, shape, dimension_numbers)


def _matrix(w, dims):
  return linalg.as_matrix(w, dims)


def _normalize(x, fallback):
  n = jnp.linalg.norm(x)
  ok = n > jnp.finfo(x.dtype).tiny * 1e3
  return jnp.where(ok, x / jnp.where(ok, n, 1.0), fallback), ok


def spectral_penalty(params: Any, strength: float = 1.0, power: float = 2.0,
                     init_params: Optional[Any] = None, dimension_numbers=None) -> jax.Array:
  """R with exact SVD (for checks): lambda sum (sigma_max^k - 1)^2 over matrix leaves,
  plus lambda ||b - b_0||^2 over 0-D/1-D leaves when ``init_params`` is given."""
  total = jnp.zeros((), jnp.float32)
  leaves = jax.tree_util.tree_leaves_with_path(params)
  inits = jax.tree.leaves(init_params) if init_params is not None else [None] * len(leaves)
  for (path, w), w0 in zip(leaves, inits):
    w = _f32(w)
    if w.ndim >= 2:
      m, _ = _matrix(w, _dims(path, w.shape, dimension_numbers))
      s = jnp.linalg.svd(m, compute_uv=False)[0]
      total = total + strength * (s ** power - 1.0) ** 2
    elif w0 is not None:
      total = total + strength * jnp.sum((w - _f32(w0)) ** 2)
  return total


def add_spectral_regularization(strength: float = 1e-4, power: float = 2.0,
                                num_power_iters: int = 1, seed: int = 0, *,
                                dimension_numbers=None) -> optax.GradientTransformation:
  r"""Adds the gradient of :math:`\lambda\sum_l(\sigma_{max}(W_l)^k - 1)^2`.

  .. math::
    u \leftarrow u + 2\lambda(\sigma^k - 1)\,k\,\sigma^{k-1}\,u_1 v_1^\top
    \ \text{(matrix leaves)},\qquad
    u \leftarrow u + 2\lambda(b - b_0)\ \text{(0-D/1-D leaves)}

  with (sigma, u_1, v_1) from a persistent power iteration kept in the state.
  Place it before ``optax.scale_by_learning_rate``.

  Args:
    strength: lambda, >= 0 (catalog default 1e-4; tune per task).
    power: k, > 0 (2, the paper's exponent).
    num_power_iters: power iterations per update (static int >= 1; 1, the
      paper's persistent scheme).
    seed: seeds the power-iteration start vectors.
    dimension_numbers: matrix view of rank >= 3 leaves (``optkit.core.linalg``).

  Returns:
    An ``optax.GradientTransformation``; ``update`` needs ``params``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.add_spectral_regularization(strength=1.0, num_power_iters=5)
    >>> w = {"w": jnp.diag(jnp.array([2.0, 0.5]))}      # sigma_max = 2
    >>> u, _ = tx.update({"w": jnp.zeros((2, 2))}, tx.init(w), w)
    >>> print(u["w"].round(2))   # 2 (4 - 1) 2 * 2 e1 e1^T
    [[24.  0.]
     [ 0.  0.]]

  References:
    Lewandowski et al., Learning Continually by Spectral Regularization,
    ICLR 2025. https://arxiv.org/abs/2406.06811
  """
  validate.non_negative(_SPEC, strength=strength)
  validate.positive(_SPEC, power=power)
  validate.integer_at_least(_SPEC, 1, num_power_iters=num_power_iters)
  validate.integer_at_least(_SPEC, 0, seed=seed)
  n_iters = int(num_power_iters)

  def init_fn(params):
    key = jax.random.key_data(jax.random.key(seed))
    leaves = jax.tree_util.tree_leaves_with_path(params)
    treedef = jax.tree.structure(params)
    keys = jax.random.split(jax.random.key(seed), 2 * max(len(leaves), 1) + 1)[1:]
    us, vs, inits = [], [], []
    for i, (path, w) in enumerate(leaves):
      if jnp.ndim(w) >= 2:
        rows, cols = _matrix(jnp.zeros(jnp.shape(w)), _dims(path, jnp.shape(w), dimension_numbers))[0].shape
        us.append(_normalize(jax.random.normal(keys[2 * i], (rows,)), 0.0)[0])
        vs.append(_normalize(jax.random.normal(keys[2 * i + 1], (cols,)), 0.0)[0])
        inits.append(jnp.zeros((), jnp.float32))
      else:
        us.append(jnp.zeros((), jnp.float32))
        vs.append(jnp.zeros((), jnp.float32))
        inits.append(jnp.array(w, jnp.promote_types(jnp.result_type(w), jnp.float32),
                               copy=True))  # b_0 (never aliases params)
    unflat = lambda xs: jax.tree.unflatten(treedef, xs)
    return AddSpectralRegularizationState(key, unflat(us), unflat(vs), unflat(inits))

  def update_fn(updates, state, params=None):
    extra_args.require_params(_SPEC, params, "the regularizer is a function of the weights")
    tree_lib.check_same_structure(_SPEC, updates, params, what="the params")
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    leaves = jax.tree_util.tree_leaves_with_path(params)
    treedef = jax.tree.structure(params)
    subkeys = jax.random.split(sub, max(len(leaves), 1))
    out, us, vs = [], [], []
    for (path, w), g, u, v, w0, k in zip(
        leaves, jax.tree.leaves(updates), jax.tree.leaves(state.u),
        jax.tree.leaves(state.v), jax.tree.leaves(state.init_params), subkeys):
      w32 = _f32(w)
      if w.ndim >= 2:
        m, unflatten = _matrix(w32, _dims(path, w.shape, dimension_numbers))
        fresh = jax.random.normal(k, v.shape, v.dtype)
        fresh = fresh / jnp.maximum(jnp.linalg.norm(fresh), 1e-30)

        def body(_, uv, m=m, fresh=fresh):
          u_, v_ = uv
          v_, _ = _normalize(m.T @ u_, fresh)        # v <- W^T u / ||W^T u||
          u_, _ = _normalize(m @ v_, u_)             # u <- W v / ||W v||
          return u_, v_

        u, v = jax.lax.fori_loop(0, n_iters, body, (u, v))
        sigma = u @ m @ v
        sigma = jnp.maximum(sigma, 0.0)
        coef = 2.0 * strength * (sigma ** power - 1.0) * power * sigma ** (power - 1.0)
        coef = jnp.where(jnp.isfinite(coef), coef, 0.0)
        term = unflatten(coef * jnp.outer(u, v))
      else:
        term = 2.0 * strength * (w32 - w0)
      out.append((_f32(g) + term).astype(jnp.result_type(g)))
      us.append(u)
      vs.append(v)
    unflat = lambda xs: jax.tree.unflatten(treedef, xs)
    new_state = AddSpectralRegularizationState(
        jax.random.key_data(key), unflat(us), unflat(vs), state.init_params)
    return unflat(out), new_state

  return optax.GradientTransformation(init_fn, update_fn)


def wasserstein_init_penalty(params: Any, init_params: Any, strength: float = 1.0) -> jax.Array:
  """lambda sum_l ||sort(w_l) - sort(w_l^0)||^2 (for checks)."""
  return strength * sum(
      jnp.sum((jnp.sort(_f32(w).ravel()) - jnp.sort(_f32(w0).ravel())) ** 2)
      for w, w0 in zip(jax.tree.leaves(params), jax.tree.leaves(init_params)))


def add_wasserstein_init_regularization(strength: float = 1e-4) -> optax.GradientTransformation:
  r"""Adds the gradient of :math:`\lambda\sum_l\|\mathrm{sort}(w_l) - \mathrm{sort}(w_l^0)\|^2`.

  .. math::
    u \leftarrow u + 2\lambda\,(w_l - \mathrm{sort}(w_l^0)[\mathrm{rank}(w_l)])

  Pulls each leaf's empirical weight distribution (not each weight) towards
  the distribution at initialization (the 1-D 2-Wasserstein distance).

  Args:
    strength: lambda, >= 0 (catalog default 1e-4; tune per task).

  Returns:
    An ``optax.GradientTransformation``; ``update`` needs ``params``; the
    initial params are stored (sorted) at ``init``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.add_wasserstein_init_regularization(strength=0.5)
    >>> state = tx.init(jnp.array([1.0, 2.0, 3.0]))
    >>> w = jnp.array([3.0, 1.0, 2.0])                # a permutation: R = 0
    >>> tx.update(jnp.zeros(3), state, w)[0]
    Array([0., 0., 0.], dtype=float32)

  References:
    Lewandowski et al., Learning Continually by Spectral Regularization,
    arXiv:2406.06811 (v1). https://arxiv.org/abs/2406.06811
  """
  validate.non_negative(_WASS, strength=strength)

  def init_fn(params):
    return AddWassersteinInitRegularizationState(
        jax.tree.map(lambda w: jnp.sort(_f32(jnp.asarray(w)).ravel()), params))

  def update_fn(updates, state, params=None):
    extra_args.require_params(_WASS, params, "the regularizer is a function of the weights")
    tree_lib.check_same_structure(_WASS, updates, params, what="the params")

    def term(g, w, s0):
      flat = _f32(w).ravel()
      order = jnp.argsort(flat, stable=True)
      target = jnp.zeros_like(flat).at[order].set(s0)   # unsort(sort(w^0))
      d = 2.0 * strength * (flat - target)
      return (_f32(g) + d.reshape(jnp.shape(w))).astype(jnp.result_type(g))

    return jax.tree.map(term, updates, params, state.sorted_init), state

  return optax.GradientTransformation(init_fn, update_fn)
