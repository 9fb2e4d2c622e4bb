"""FRUGAL: a state-full optimizer in a subspace, a state-free one on the rest.

Zmushko, Beznosikov, Takáč, Horváth, "FRUGAL: Memory-Efficient Optimization
by Reducing State Overhead for Scalable Training", arXiv:2411.07837, Alg. 1.

Each projectable gradient leaf G is split into a part in a low-dimensional
subspace and the residual::

  G = P(G) + (G - P(G))
  stateful   : N = Adam-direction(R),  R = reduced coordinates of P(G)
  state-free : S = sign(G - P(G))      (signSGD; or the residual itself: SGD)
  direction  : D = back(N) + state_free_lr_scale * S
  every T = update_gap steps: re-select the subspace (lax.cond), reset the
  projected leaves' Adam moments and their step count

Projections (``projection``; each leaf viewed as a matrix (m, n) with
m = prod(shape[:-1]), n = shape[-1]):

* ``'svd'`` (GaLore-style): r = ceil(density * min(m, n)) top singular vectors
  of the gradient at the refresh step, on the smaller side: m <= n keeps
  P = U[:, :r] (m x r), R = P^T G (r x n), back(N) = P N; m > n keeps
  Q = V[:, :r] (n x r), R = G Q (m x r), back(N) = N Q^T.
* ``'randk'``: k = ceil(density * m n) coordinates drawn uniformly without
  replacement; R = vec(G)[idx] (k,), back scatters N to idx.
* ``'columns'``: r = ceil(density * n) columns drawn uniformly without
  replacement; R = G[:, idx] (m x r) (the authors' coordinate choice
  'columns').

Not shipped: the paper's blockwise ("BAdam-like") selection of whole layers.
JAX state has fixed shapes, so a changing set of active layers would need
moments for every layer (no memory saved); 'columns' keeps the same state
fraction inside every leaf with fixed shapes.

The stateful moments live only in the reduced shape (the tests check it): for
density rho the state of a matrix leaf is about 2 rho of Adam's plus the
projector (svd: r min(m, n) floats; randk/columns: k or r int32 indices).

Paper -> code: rho -> ``density``, T -> ``update_gap``, the state-full
optimizer -> Adam (``b1``, ``b2``, ``eps``; moments ``mu``/``nu`` in the
reduced shapes, one step count per leaf in ``counts``, as PyTorch keeps
per-parameter state; the paper's Lion/SGDM variants are not shipped), the
state-free optimizer -> ``state_free`` (``'sign'`` or ``'sgd'``), the
state-free learning-rate multiplier -> ``state_free_lr_scale`` (1.0 for
pre-training, 0.1 for fine-tuning in the paper).

Defaults and their source: density = 0.25, update_gap = 200, signSGD as the
state-free part, Adam's b1 = 0.9, b2 = 0.999, eps = 1e-8 (paper / catalog);
weight_decay = 0 (optkit's usual default; decoupled, applied to the whole
leaf as in AdamW).

Fallbacks (documented, not errors): leaves with fewer than 2 dimensions
(biases, norms, scalars) get the full stateful optimizer (the paper keeps
embeddings, norms and heads on AdamW; exclude other leaves with
``optax.multi_transform`` as needed). Leaves with more than 2 dimensions are
viewed as (prod(shape[:-1]), shape[-1]). When the reduced dimension is the
whole leaf (density 1, or a rank that rounds up to min(m, n)) the leaf is
plain stateful (no projection: with a full basis the projection would only
rotate Adam's coordinates); when it is 0 (density 0) the leaf is plain
state-free. So density 1 is exactly AdamW and density 0 exactly signSGD on
the matrix leaves.

Reference read (not run): the authors' FRUGAL code as found in forks through
the code index (their ``GaloreAdamW`` / ``CoordAdamW`` / ``BlockAdamW``
arguments): ``density=0.25``, ``update_gap=200``, ``reset_statistics=True``,
``inactive_update_rule`` in {'no', 'sgd', 'sign_sgd'} (here ``state_free`` in
{'none', 'sgd', 'sign'}), ``inactive_lr_scale=1.0`` (here
``state_free_lr_scale``), coordinate choice 'randk' or 'columns'; decoupled
decay ``p *= 1 - lr wd`` before the step, which equals optkit's
``add_decayed_weights`` then ``scale_by_learning_rate`` exactly.

UNSURE points of the catalog, decided:

* Reset vs re-projection of the moments when the subspace changes: reset
  (a projected leaf's moments and its step count go back to zero at every
  refresh), the authors' default (``reset_statistics=True``), which keeps Adam's bias correction
  consistent with the age of the moments. Leaves that are not projected
  (vectors, density 1) are never reset: they are plain AdamW throughout.
* Rank rounding: ceil, so any density > 0 keeps at least one direction.
* The state-free step is ``learning_rate * state_free_lr_scale * sign(.)``
  (scale of the learning rate, not of Adam's update), as the paper states.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import numerics
from optkit.core import tree as _tree
from optkit.core import validate

_NAME = "frugal"
PROJECTIONS = ("svd", "randk", "columns")
STATE_FREE = ("sign", "sgd", "none")


class ScaleByFrugalState(NamedTuple):
  count: jax.Array          # int32, shape (): steps taken
  key: jax.Array            # uint32, shape (2,): PRNG key for random subspaces
  # Statistics are float32 (float64 for float64 params), whatever the params' dtype.
  proj: optax.Params        # per leaf: svd float (m, r) / (n, r); randk int32 (k,);
                            # columns int32 (r,); full / state-free leaves float (1,)
                            # placeholder (orbax cannot save zero-size arrays)
  counts: optax.Params      # int32, shape () per leaf: Adam's step count t of the leaf
  mu: optax.Params          # float, reduced shape per leaf: Adam's first moment of R
  nu: optax.Params          # float, reduced shape per leaf: Adam's second moment of R
                            # ((1,) placeholder, always 0, for state-free leaves)


class _Plan(NamedTuple):
  mode: str                 # 'full' | 'none' | 'svd_left' | 'svd_right' | 'randk' | 'columns'
  m: int
  n: int
  r: int


def _ceil(x: float) -> int:
  return int(math.ceil(x - 1e-9))


def _plan(shape, density: float, projection: str) -> _Plan:
  """Static per-leaf decision from the leaf's shape."""
  if len(shape) < 2:
    return _Plan("full", 0, 0, 0)
  m, n = int(np.prod(shape[:-1])), int(shape[-1])
  if projection == "svd":
    full, r = min(m, n), _ceil(density * min(m, n))
    mode = "svd_left" if m <= n else "svd_right"
  elif projection == "randk":
    full, r, mode = m * n, _ceil(density * m * n), "randk"
  else:
    full, r, mode = n, _ceil(density * n), "columns"
  if r <= 0:
    return _Plan("none", m, n, 0)
  if r >= full:
    return _Plan("full", m, n, full)
  return _Plan(mode, m, n, r)


def _proj_init(plan: _Plan, dtype=jnp.float32):
  if plan.mode == "svd_left":
    return jnp.zeros((plan.m, plan.r), dtype)
  if plan.mode == "svd_right":
    return jnp.zeros((plan.n, plan.r), dtype)
  if plan.mode in ("randk", "columns"):
    return jnp.zeros((plan.r,), jnp.int32)
  return jnp.zeros((1,), dtype)   # placeholder: no projector


def _reduced_shape(plan: _Plan, shape):
  if plan.mode == "full":
    return tuple(shape)
  if plan.mode == "svd_left":
    return (plan.r, plan.n)
  if plan.mode in ("svd_right", "columns"):
    return (plan.m, plan.r)
  if plan.mode == "randk":
    return (plan.r,)
  return (1,)   # 'none': placeholder (no stateful part; kept at 0)


def _refresh(plan: _Plan, g2, key):
  """New projector for one leaf from its (m, n) gradient view (statistics dtype)."""
  if plan.mode == "svd_left":
    u, _, _ = jnp.linalg.svd(g2, full_matrices=False)
    return u[:, :plan.r]
  if plan.mode == "svd_right":
    _, _, vt = jnp.linalg.svd(g2, full_matrices=False)
    return vt[:plan.r].T
  if plan.mode in ("randk", "columns"):
    # A uniform subset without replacement: the r largest of i.i.d. uniforms
    # (one top_k; cheaper to compile than a permutation).
    size = plan.m * plan.n if plan.mode == "randk" else plan.n
    return jax.lax.top_k(jax.random.uniform(key, (size,)), plan.r)[1].astype(jnp.int32)
  return jnp.zeros((1,), g2.dtype)


def _split(plan: _Plan, g, proj):
  """(reduced gradient R, residual G - P(G) in g's shape), statistics dtype."""
  g = g.astype(numerics.stat_dtype(g.dtype))
  if plan.mode == "full":
    return g, jnp.zeros_like(g)
  if plan.mode == "none":
    return jnp.zeros((1,), g.dtype), g
  g2 = g.reshape(plan.m, plan.n)
  if plan.mode == "svd_left":
    red = proj.T @ g2
    resid = g2 - proj @ red
  elif plan.mode == "svd_right":
    red = g2 @ proj
    resid = g2 - red @ proj.T
  elif plan.mode == "randk":
    flat = g2.reshape(-1)
    red = flat[proj]
    resid = flat.at[proj].set(0.0)
  else:
    red = g2[:, proj]
    resid = g2.at[:, proj].set(0.0)
  return red, resid.reshape(g.shape)


def _back(plan: _Plan, n_red, proj, shape):
  """The stateful direction mapped back to the leaf's shape (n_red's dtype)."""
  if plan.mode == "full":
    return n_red
  if plan.mode == "none":
    return jnp.zeros(shape, n_red.dtype)
  if plan.mode == "svd_left":
    out = proj @ n_red
  elif plan.mode == "svd_right":
    out = n_red @ proj.T
  elif plan.mode == "randk":
    out = jnp.zeros((plan.m * plan.n,), n_red.dtype).at[proj].set(n_red)
  else:
    out = jnp.zeros((plan.m, plan.n), n_red.dtype).at[:, proj].set(n_red)
  return out.reshape(shape)


def _check_args(density, update_gap, projection, state_free, state_free_lr_scale):
  if isinstance(density, jax.core.Tracer):
    raise TypeError(f"{_NAME}: `density` must be a static Python float (it sets "
                    "state shapes); list it in `static_args` of optax.inject_hyperparams.")
  validate.closed_unit_interval(_NAME, density=density)
  validate.at_least(_NAME, 1, update_gap=update_gap)
  validate.non_negative(_NAME, state_free_lr_scale=state_free_lr_scale)
  validate.one_of(_NAME, "projection", projection, PROJECTIONS)
  validate.one_of(_NAME, "state_free", state_free, STATE_FREE)


def scale_by_frugal(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    density: float = 0.25,
    update_gap: int = 200,
    projection: str = "svd",
    state_free: str = "sign",
    state_free_lr_scale: float = 1.0,
    seed: int = 0,
) -> optax.GradientTransformationExtraArgs:
  r"""FRUGAL direction: Adam in a subspace, signSGD on the rest.

  .. math::
    D = \mathrm{back}\Big(\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}\Big)
        + s\,\mathrm{sign}(G - P(G)),

  with R the gradient's coordinates in the current subspace (refreshed every
  ``update_gap`` steps), m, v Adam's moments of R (reduced shape, bias
  correction with the leaf's own step count) and s = ``state_free_lr_scale``.

  Args:
    b1, b2, eps: Adam's parameters of the stateful part (eps added to
      sqrt(v-hat), optax form).
    density: rho in [0, 1], the fraction of each matrix leaf's dimension kept
      in the stateful subspace (static: it sets state shapes).
    update_gap: T >= 1, steps between subspace refreshes (moments reset).
    projection: ``'svd'``, ``'randk'`` or ``'columns'`` (see module docstring).
    state_free: ``'sign'`` (signSGD, default), ``'sgd'``, or ``'none'`` (the
      residual is dropped: GaLore-like low-rank updates) on the residual.
    state_free_lr_scale: multiplier of the state-free part (>= 0).
    seed: seed of the PRNG key (random subspaces).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_frugal(density=0.5, projection='columns')
    >>> g = {'w': jnp.ones((2, 4))}
    >>> d, s = tx.update(g, tx.init(g))
    >>> s.mu['w'].shape   # Adam moments on 2 of the 4 columns
    (2, 2)

  References:
    Zmushko et al., 2024, https://arxiv.org/abs/2411.07837
  """
  _check_args(density, update_gap, projection, state_free, state_free_lr_scale)
  validate.unit_interval(_NAME, b1=b1, b2=b2)
  validate.non_negative(_NAME, eps=eps)
  is_plan = lambda v: isinstance(v, _Plan)

  def plans_of(tree):
    return jax.tree.map(lambda x: _plan(jnp.shape(x), density, projection), tree)

  def init_fn(params):
    plans = plans_of(params)
    zeros = jax.tree.map(
        lambda pl, x: jnp.zeros(_reduced_shape(pl, jnp.shape(x)),
                                numerics.stat_dtype(jnp.result_type(x))), plans, params,
        is_leaf=is_plan)
    return ScaleByFrugalState(
        count=jnp.zeros([], jnp.int32),
        key=jax.random.PRNGKey(seed),
        proj=jax.tree.map(lambda pl, x: _proj_init(pl, numerics.stat_dtype(jnp.result_type(x))),
                          plans, params, is_leaf=is_plan),
        counts=jax.tree.map(lambda _: jnp.zeros([], jnp.int32), params),
        mu=zeros,
        nu=jax.tree.map(jnp.copy, zeros))

  def check(updates, state):
    if jax.tree.structure(updates) != jax.tree.structure(state.proj):
      raise ValueError(
          f"{_NAME}: the gradient tree does not match the optimizer state: got "
          f"structure {jax.tree.structure(updates)}, expected "
          f"{jax.tree.structure(state.proj)}. Was the state initialized with other params?")
    for (path, u), p, m in zip(jax.tree_util.tree_leaves_with_path(updates),
                               jax.tree.leaves(state.proj), jax.tree.leaves(state.mu)):
      plan = _plan(jnp.shape(u), density, projection)
      if (_proj_init(plan).shape != p.shape
          or _reduced_shape(plan, jnp.shape(u)) != jnp.shape(m)):
        raise ValueError(
            f"{_NAME}: the gradient leaf at {jax.tree_util.keystr(path)} has shape "
            f"{jnp.shape(u)}, which does not match the optimizer state (projector "
            f"{p.shape}, moments {jnp.shape(m)}). Was the state initialized with other params?")

  def adam_leaf(r, m, v, t):
    """One Adam step on a reduced leaf with its own count t (already incremented)."""
    m = optax.tree.update_moment(r, m, b1, 1)
    v = optax.tree.update_moment_per_elem_norm(r, v, b2, 2)
    m_hat = optax.tree.bias_correction(m, b1, t)
    v_hat = optax.tree.bias_correction(v, b2, t)
    return m_hat / (jnp.sqrt(v_hat) + eps), m, v

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    _tree.check_floating_tree(_NAME, updates)
    check(updates, state)
    plan_leaves, treedef = jax.tree.flatten(plans_of(updates), is_leaf=is_plan)
    g_leaves = treedef.flatten_up_to(updates)
    p_leaves = treedef.flatten_up_to(state.proj)
    key, sub = jax.random.split(state.key)
    refresh = jnp.mod(state.count, update_gap) == 0
    projected = [pl.mode not in ("full", "none") for pl in plan_leaves]

    def new_proj():
      return [_refresh(pl, g.astype(p.dtype if pl.mode.startswith("svd") else
                                    numerics.stat_dtype(g.dtype)).reshape(pl.m, pl.n),
                       jax.random.fold_in(sub, i)) if pj else p
              for i, (pl, g, p, pj) in enumerate(zip(plan_leaves, g_leaves, p_leaves,
                                                     projected))]

    if any(projected):
      p_leaves = jax.lax.cond(refresh, new_proj, lambda: list(p_leaves))

    out, mus, nus, counts = [], [], [], []
    for pl, g, p, pj, m, v, t in zip(
        plan_leaves, g_leaves, p_leaves, projected, treedef.flatten_up_to(state.mu),
        treedef.flatten_up_to(state.nu), treedef.flatten_up_to(state.counts)):
      if pj:  # a new subspace restarts the leaf's moments and step count
        m, v = (jnp.where(refresh, jnp.zeros_like(x), x) for x in (m, v))
        t = jnp.where(refresh, jnp.zeros_like(t), t)
      red, resid = _split(pl, g, p)
      t = optax.safe_increment(t)
      n_red, m, v = adam_leaf(red, m, v, t)
      free = {"sign": jnp.sign, "sgd": lambda x: x,
              "none": jnp.zeros_like}[state_free](resid)
      d = _back(pl, n_red, p, jnp.shape(g)) + state_free_lr_scale * free
      out.append(d.astype(jnp.result_type(g)))
      mus.append(m)
      nus.append(v)
      counts.append(t)
    un = treedef.unflatten
    return un(out), ScaleByFrugalState(
        count=optax.safe_increment(state.count), key=key, proj=un(p_leaves),
        counts=un(counts), mu=un(mus), nu=un(nus))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def frugal(
    learning_rate: optax.ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    *,
    density: float = 0.25,
    update_gap: int = 200,
    projection: str = "svd",
    state_free: str = "sign",
    state_free_lr_scale: float = 1.0,
    seed: int = 0,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""FRUGAL optimizer: AdamW in a subspace, signSGD on the residual.

  ``chain(scale_by_frugal(...), add_decayed_weights(weight_decay, mask),
  scale_by_learning_rate(learning_rate))``: the stateful part moves by
  eta * Adam(R) mapped back, the residual by eta * s * sign(G - P(G)).

  Args:
    learning_rate: eta, a number or a schedule.
    b1, b2, eps: Adam's parameters of the stateful part.
    weight_decay: decoupled weight decay lambda (whole leaf).
    density, update_gap, projection, state_free, state_free_lr_scale, seed:
      see ``scale_by_frugal``.
    mask: mask of ``add_decayed_weights``.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.frugal(0.1, density=0.0)   # density 0: signSGD on matrices
    >>> p = {'w': jnp.array([[1.0, -2.0], [3.0, 0.5]])}
    >>> opt.update(p, opt.init(p), p)[0]['w']
    Array([[-0.1,  0.1],
           [-0.1, -0.1]], dtype=float32)

  References:
    Zmushko et al., 2024, https://arxiv.org/abs/2411.07837
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.with_extra_args_support(optax.chain(
      scale_by_frugal(b1, b2, eps, density=density, update_gap=update_gap,
                      projection=projection, state_free=state_free,
                      state_free_lr_scale=state_free_lr_scale, seed=seed),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate)))
