"""MARS: variance-reduced (STORM-type) gradients fed to AdamW, Lion or Shampoo.

Yuan, Liu, Wu, Zhou, Gu, "MARS: Unleashing the Power of Variance Reduction for
Training Large Models", arXiv:2411.10438, Algorithms 1-3. The rule below is the
authors' code (AGI-Arena/MARS ``MARS/optimizers/mars.py``), restated, not
copied.

One step, per tensor (gradient g, t = count + 1)::

  c  = g + gamma (b1 / (1 - b1)) (g - g_prev)        # scaled gradient correction
  c <- c * clip / ||c||_F    if ||c||_F > clip        # PER TENSOR, clip = 1
  m  = b1 m + (1 - b1) c
  MARS-AdamW : v = b2 v + (1 - b2) c^2
               u = (m / (1 - b1^t)) / (sqrt(v) / sqrt(1 - b2^t) + eps)
  MARS-Lion  : u = sign(m)
  MARS-Shampoo (leaves with ndim >= 2, reshaped to (d0, rest)):
               u = NS5(m / (1 - b1)) * sqrt(max(1, rows / cols))
               (quintic Newton-Schulz, (3.4445, -4.7750, 2.0315), 5 steps,
               input divided by ||.||_F + 1e-7); other leaves: the AdamW rule
  g_prev <- g
  x <- x - lr (u + lambda x)
  leaves with ndim < 2 (unless optimize_1d): plain AdamW on g with
  (b1_1d, b2_1d) = (0.9, 0.95), lr_1d, weight_decay_1d.

Paper -> code: gamma -> ``gamma``, beta_1 -> ``b1``, beta_2 -> ``b2``, epsilon
-> ``eps``, eta -> ``learning_rate``, lambda -> ``weight_decay``; c_t ->
(not stored), m_t -> ``state.mu``, v_t -> ``state.nu``, the previous gradient
-> ``state.last_grad``.

Defaults (AGI-Arena/MARS): lr 3e-3, betas (0.95, 0.99), gamma 0.025, eps 1e-8,
weight_decay 0, lr_1d 3e-3, betas_1d (0.9, 0.95), weight_decay_1d 0.1,
optimize_1d False, clip threshold 1.

Approximate vs exact variant (decision, following the catalog entry):

* ``mars`` / ``scale_by_mars`` (the reference's default ``is_approx=True``):
  g_prev is the previous step's gradient, i.e. grad f(x_{t-1}; xi_{t-1}),
  kept in ``state.last_grad`` (zeros at init, so the first correction is
  ``g (1 + gamma b1 / (1 - b1))`` before clipping, as in the reference).
  This costs one extra params-sized buffer and no extra gradient.
* ``mars_exact`` (``exact=True``): g_prev = grad f(x_{t-1}; xi_t), the
  gradient at the PREVIOUS params on the CURRENT batch. It receives it through
  the standard extra argument ``value_fn`` (``params -> loss`` on the current
  batch): ``update`` computes ``jax.grad(value_fn)(state.prev_params)``, one
  extra backward pass per step, under ``lax.cond`` so that the first step
  (where x_0 has no predecessor) uses g_prev = 0 like the approximate variant
  and does not call ``value_fn``. The state stores x_{t-1} in
  ``state.prev_params`` (params' dtype) instead of the previous gradient
  (``last_grad`` still holds g, for a fixed state schema). ``update`` then
  requires ``params`` and ``value_fn``; ``value_fn`` must take the full params
  tree (do not place ``mars_exact`` inside ``optax.masked``).

Eps placement (``eps_placement``) and the two references:
* ``'adam'`` (default, AGI-Arena): ``denom = sqrt(v + eps_root) / sqrt(1 - b2^t) + eps``.
* ``'raw'`` (pytorch_optimizer 4.1.0 ``MARS``): ``denom = (sqrt(v + eps_root)
  + eps) / sqrt(1 - b2^t)``; pytorch_optimizer also always adds 1e-15 to v
  inside the root, so ``eps_placement='raw', eps_root=1e-15`` reproduces it
  (in the MARS path and in the 1-D AdamW fallback alike).
``eps = 0`` with ``v = 0`` gives a zero direction (0/0 is guarded).

Clipping (``clip_threshold``): both references clip the correction per tensor
at Frobenius norm 1 (``clip_threshold=1.0``); a large leaf never rescales a
small one. ``clip_threshold=None`` disables clipping. The 1-D AdamW fallback
is never clipped and never corrected (reference behaviour).

Shampoo variant: both references run Newton-Schulz in bf16; optkit runs it
in float32 (``optkit.core.linalg.newton_schulz``, eps 1e-7 added to the norm;
pytorch_optimizer clamps the norm at ``eps`` instead, a difference far below
bf16 rounding).

Learning rates: ``mars`` scales the MARS leaves by ``learning_rate`` and the
1-D AdamW leaves by ``lr_1d`` (each a number or schedule); the reference
instead multiplies its single (scheduled) lr by ``lr_1d / lr``, which is the
same for constant rates.

UNSURE (catalog): the recommended lr / weight decay per model size (configs
exist per GPT-2 size in the authors' repository; not transcribed, defaults are
the optimizer's).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as extra_args_lib
from optkit.core import linalg
from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "mars"
_EXACT_NAME = "mars_exact"
_CORR_NAME = "scale_by_mars_correction"
VARIANTS = ("adamw", "lion", "shampoo")
EPS_PLACEMENTS = ("adam", "raw")
_NS_EPS = 1e-7  # Frobenius pre-scaling of Newton-Schulz (AGI-Arena)


class ScaleByMarsCorrectionState(NamedTuple):
  count: jax.Array            # int32, shape (): t - 1
  last_grad: optax.Updates    # g_{t-1} (approx); float32 (float64 for f64 params)
  prev_params: optax.Updates  # x_{t-1} (exact variant; params' dtype); () leaves otherwise


class ScaleByMarsState(NamedTuple):
  count: jax.Array            # int32, shape (): t - 1
  mu: optax.Updates           # m_t; dtype mu_dtype or float32
  nu: optax.Updates           # v_t (not bias-corrected); float32
  last_grad: optax.Updates    # g_{t-1}; float32
  prev_params: optax.Updates  # x_{t-1} (exact variant); () leaves otherwise


# --------------------------------------------------------------------------
# Private helpers.


def _stat_zeros(params):
  return jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), numerics.stat_dtype(p)), params)


def _prev_params_init(params, exact: bool):
  if exact:
    # A copy: the state must not alias params, or donating both (as users do
    # with jax.jit(step, donate_argnums=...)) donates one buffer twice.
    return jax.tree.map(lambda p: jnp.array(p, copy=True), params)
  return jax.tree.map(lambda p: jnp.zeros((), numerics.stat_dtype(p)), params)


def _previous_gradient(algo, state, updates, params, extra, exact: bool):
  """g_prev: last_grad (approx) or grad value_fn(x_{t-1}) on this batch (exact)."""
  if not exact:
    return state.last_grad
  params = extra_args_lib.require_params(algo, params, "x_{t-1} is stored from params")
  value_fn = extra_args_lib.require(algo, extra, "value_fn")
  del params

  def at_prev():
    g = jax.grad(value_fn)(state.prev_params)
    return jax.tree.map(lambda a, r: jnp.asarray(a, r.dtype), g, state.last_grad)

  return jax.lax.cond(state.count > 0, at_prev,
                      lambda: jax.tree.map(jnp.zeros_like, state.last_grad))


def _correction(g, g_prev, gamma, b1, clip_threshold):
  """Clipped c = g + gamma b1/(1-b1) (g - g_prev) for one tensor (float32)."""
  g = g.astype(g_prev.dtype)
  c = g + gamma * (b1 / (1 - b1)) * (g - g_prev)
  if clip_threshold is None:
    return c
  norm = jnp.linalg.norm(c.reshape(-1)) if c.ndim else jnp.abs(c)
  scale = jnp.where(norm > clip_threshold,
                    clip_threshold / jnp.where(norm > clip_threshold, norm, 1), 1)
  return c * scale


def _adam_direction(m, v, bc1, sqrt_bc2, eps, eps_root, placement):
  root = jnp.sqrt(v + eps_root)
  if placement == "adam":
    denom = root / sqrt_bc2 + eps
  else:
    denom = (root + eps) / sqrt_bc2
  ok = denom > 0
  return jnp.where(ok, (m / bc1) / jnp.where(ok, denom, 1), 0)


def _shampoo_direction(m, b1, ns_steps):
  rows = m.shape[0]
  mat = (m / (1 - b1)).reshape(rows, -1)
  cols = mat.shape[1]
  factor = max(1.0, rows / cols) ** 0.5
  ortho = linalg.newton_schulz(mat.astype(numerics.stat_dtype(mat)), steps=ns_steps, eps=_NS_EPS)
  return (ortho * factor).reshape(m.shape)


def _check_common(algo, gamma, b1, clip_threshold, exact):
  validate.non_negative(algo, gamma=gamma)
  validate.unit_interval(algo, b1=b1)
  if clip_threshold is not None:
    validate.non_negative(algo, clip_threshold=clip_threshold)
  if not isinstance(exact, bool):
    raise ValueError(f"{algo}: `exact` must be a bool, got {exact!r}.")


# --------------------------------------------------------------------------
# Public transformations.


def scale_by_mars_correction(
    gamma: float = 0.025,
    b1: float = 0.95,
    clip_threshold: Optional[float] = 1.0,
    *,
    exact: bool = False,
) -> optax.GradientTransformationExtraArgs:
  r"""MARS's variance-reduced gradient alone, to put before any preconditioner.

  .. math::
    c_t = \mathrm{clip}_{\|\cdot\|_F \le 1}\Big(g_t + \gamma\frac{\beta_1}{1-\beta_1}
          (g_t - g_{t-1})\Big)\quad\text{(per tensor)}.

  Args:
    gamma: correction strength (paper: 0.025); 0 gives the clipped gradient.
    b1: beta_1 of the momentum that follows (paper: 0.95); only its ratio
      b1 / (1 - b1) enters here.
    clip_threshold: per-tensor Frobenius threshold (paper: 1); None disables.
    exact: use grad f(x_{t-1}; xi_t) from ``value_fn`` instead of the previous
      gradient (see the module docstring; needs ``params`` and ``value_fn``).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.momentum import scale_by_mars_correction
    >>> tx = scale_by_mars_correction(gamma=0.1, b1=0.5, clip_threshold=None)
    >>> g = jnp.array([1.0, -2.0])
    >>> tx.update(g, tx.init(g))[0]  # g (1 + 0.1 * 1): g_prev starts at 0
    Array([ 1.1, -2.2], dtype=float32)

  References:
    Yuan et al., MARS: Unleashing the Power of Variance Reduction for Training
    Large Models, https://arxiv.org/abs/2411.10438
  """
  _check_common(_CORR_NAME, gamma, b1, clip_threshold, exact)

  def init_fn(params):
    return ScaleByMarsCorrectionState(
        count=jnp.zeros([], jnp.int32), last_grad=_stat_zeros(params),
        prev_params=_prev_params_init(params, exact))

  def update_fn(updates, state, params=None, **extra_args):
    tree_lib.check_same_structure(_CORR_NAME, updates, state.last_grad)
    g_prev = _previous_gradient(_CORR_NAME, state, updates, params, extra_args, exact)
    c = jax.tree.map(lambda g, gp: _correction(g, gp, gamma, b1, clip_threshold),
                     updates, g_prev)
    new_state = ScaleByMarsCorrectionState(
        count=optax.safe_increment(state.count),
        last_grad=optax.tree.cast_like(updates, state.last_grad),
        prev_params=(optax.tree.cast_like(params, state.prev_params) if exact
                     else state.prev_params))
    return optax.tree.cast_like(c, updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_mars(
    b1: float = 0.95,
    b2: float = 0.99,
    gamma: float = 0.025,
    eps: float = 1e-8,
    variant: str = "adamw",
    ns_steps: int = 5,
    *,
    clip_threshold: Optional[float] = 1.0,
    eps_placement: str = "adam",
    eps_root: float = 0.0,
    optimize_1d: bool = True,
    b1_1d: float = 0.9,
    b2_1d: float = 0.95,
    exact: bool = False,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""MARS's direction (no learning rate, no weight decay).

  .. math::
    c_t = \mathrm{clip}\Big(g_t + \gamma\tfrac{\beta_1}{1-\beta_1}(g_t - g_{t-1})\Big),\
    m_t = \beta_1 m_{t-1} + (1-\beta_1) c_t,

  then the AdamW (``v_t`` from ``c_t^2``), Lion (``sign(m_t)``) or Shampoo
  (Newton-Schulz of ``m_t / (1-\beta_1)``) rule; see the module docstring.

  Args:
    b1: beta_1 (paper: 0.95).
    b2: beta_2 (paper: 0.99).
    gamma: correction strength (paper: 0.025).
    eps: denominator constant (paper: 1e-8).
    variant: ``'adamw'``, ``'lion'`` or ``'shampoo'`` (static).
    ns_steps: Newton-Schulz steps of the Shampoo variant (paper: 5; static).
    clip_threshold: per-tensor clip of the correction (paper: 1); None: off.
    eps_placement: ``'adam'`` (AGI-Arena) or ``'raw'`` (pytorch_optimizer).
    eps_root: added to v inside the square root (pytorch_optimizer: 1e-15).
    optimize_1d: apply the MARS rule to leaves with ndim < 2 too (default
      True here); False gives those leaves plain Adam with (b1_1d, b2_1d).
    b1_1d, b2_1d: betas of that 1-D Adam fallback (paper: 0.9, 0.95).
    exact: the exact variant (``value_fn`` gradient at x_{t-1}; static).
    mu_dtype: dtype of m; None gives float32.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.momentum import scale_by_mars
    >>> tx = scale_by_mars(gamma=0.0, eps=0.0)
    >>> g = jnp.array([0.5, -0.25])
    >>> tx.update(g, tx.init(g))[0]  # gamma = 0, first step: like Adam, sign(g)
    Array([ 1., -1.], dtype=float32)

  References:
    Yuan et al., MARS: Unleashing the Power of Variance Reduction for Training
    Large Models, https://arxiv.org/abs/2411.10438
  """
  algo = _EXACT_NAME if exact else _NAME
  _check_common(algo, gamma, b1, clip_threshold, exact)
  validate.unit_interval(algo, b2=b2, b1_1d=b1_1d, b2_1d=b2_1d)
  validate.non_negative(algo, eps=eps, eps_root=eps_root)
  validate.one_of(algo, "variant", variant, VARIANTS)
  validate.one_of(algo, "eps_placement", eps_placement, EPS_PLACEMENTS)
  validate.integer_at_least(algo, 1, ns_steps=ns_steps)
  ns_steps = int(ns_steps)
  optimize_1d = bool(optimize_1d)

  def init_fn(params):
    mu = _stat_zeros(params)
    if mu_dtype is not None:
      mu = optax.tree.cast(mu, mu_dtype)
    return ScaleByMarsState(
        count=jnp.zeros([], jnp.int32), mu=mu, nu=_stat_zeros(params),
        last_grad=_stat_zeros(params), prev_params=_prev_params_init(params, exact))

  def update_fn(updates, state, params=None, **extra_args):
    tree_lib.check_same_structure(algo, updates, state.mu)
    g_prev = _previous_gradient(algo, state, updates, params, extra_args, exact)
    t = optax.safe_increment(state.count)

    def leaf(g, gp, m, v):
      cdt = v.dtype
      tf = t.astype(cdt)
      mixed = optimize_1d or g.ndim >= 2
      if mixed:
        bb1, bb2 = jnp.asarray(b1, cdt), jnp.asarray(b2, cdt)
        c = _correction(g, gp, gamma, bb1, clip_threshold)           # eqs. c_t, clip
      else:
        bb1, bb2 = jnp.asarray(b1_1d, cdt), jnp.asarray(b2_1d, cdt)
        c = g.astype(cdt)                                            # 1-D AdamW
      m_new = bb1 * m.astype(cdt) + (1 - bb1) * c
      use_adam = (not mixed or variant == "adamw"
                  or (variant == "shampoo" and g.ndim < 2))
      if use_adam:
        v_new = bb2 * v + (1 - bb2) * c * c
        bc1 = 1 - bb1 ** tf
        sqrt_bc2 = jnp.sqrt(1 - bb2 ** tf)
        u = _adam_direction(m_new, v_new, bc1, sqrt_bc2, jnp.asarray(eps, cdt),
                            jnp.asarray(eps_root, cdt), eps_placement)
      elif variant == "lion":
        v_new, u = v, jnp.sign(m_new)
      else:
        v_new, u = v, _shampoo_direction(m_new, bb1, ns_steps)
      return u.astype(g.dtype), m_new.astype(m.dtype), v_new

    out = jax.tree.map(leaf, updates, g_prev, state.mu, state.nu)
    treedef = jax.tree.structure(updates)
    u, mu, nu = (jax.tree.unflatten(treedef, [o[i] for o in treedef.flatten_up_to(out)])
                 for i in range(3))
    new_state = ScaleByMarsState(
        count=t, mu=mu, nu=nu,
        last_grad=optax.tree.cast_like(updates, state.last_grad),
        prev_params=(optax.tree.cast_like(params, state.prev_params) if exact
                     else state.prev_params))
    return u, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _is_mixed(p) -> bool:
  return jnp.ndim(p) >= 2


def _mars_chain(algo, learning_rate, b1, b2, gamma, eps, weight_decay, lr_1d, b1_1d,
                b2_1d, weight_decay_1d, optimize_1d, mask, variant, ns_steps,
                clip_threshold, eps_placement, eps_root, mu_dtype, exact):
  validate.learning_rate(algo, learning_rate)
  validate.learning_rate(algo, lr_1d)
  validate.non_negative(algo, weight_decay=weight_decay, weight_decay_1d=weight_decay_1d)
  direction = scale_by_mars(
      b1, b2, gamma, eps, variant, ns_steps, clip_threshold=clip_threshold,
      eps_placement=eps_placement, eps_root=eps_root, optimize_1d=optimize_1d,
      b1_1d=b1_1d, b2_1d=b2_1d, exact=exact, mu_dtype=mu_dtype)
  main = optax.chain(optax.add_decayed_weights(weight_decay, mask),
                     optax.scale_by_learning_rate(learning_rate))
  if optimize_1d:
    return optax.chain(direction, main)
  one_d = optax.chain(optax.add_decayed_weights(weight_decay_1d, mask),
                      optax.scale_by_learning_rate(lr_1d))
  labels = lambda params: jax.tree.map(lambda p: "mars" if _is_mixed(p) else "1d", params)
  return optax.chain(direction,
                     optax.multi_transform({"mars": main, "1d": one_d}, labels))


def mars(
    learning_rate: optax.ScalarOrSchedule = 3e-3,
    b1: float = 0.95,
    b2: float = 0.99,
    gamma: float = 0.025,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    lr_1d: optax.ScalarOrSchedule = 3e-3,
    b1_1d: float = 0.9,
    b2_1d: float = 0.95,
    weight_decay_1d: optax.ScalarOrSchedule = 0.1,
    optimize_1d: bool = False,
    mask: Optional[Any] = None,
    *,
    variant: str = "adamw",
    ns_steps: int = 5,
    clip_threshold: Optional[float] = 1.0,
    eps_placement: str = "adam",
    eps_root: float = 0.0,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""The MARS optimizer (approximate variant: g_prev is the last gradient).

  .. math::
    x_t = x_{t-1} - \eta\,(u_t + \lambda x_{t-1}),

  with ``u_t`` from ``scale_by_mars``. Leaves with ndim < 2 get plain AdamW
  ((b1_1d, b2_1d), ``lr_1d``, ``weight_decay_1d``) unless ``optimize_1d``.
  With ``eps_placement='raw', eps_root=1e-15`` it is pytorch_optimizer 4.1.0's
  ``MARS``.

  Args:
    learning_rate: eta for the MARS leaves (paper: 3e-3), number or schedule.
    b1, b2, gamma, eps: see ``scale_by_mars`` (paper: 0.95, 0.99, 0.025, 1e-8).
    weight_decay: lambda, decoupled, for the MARS leaves (paper: 0).
    lr_1d: learning rate of the 1-D AdamW leaves (paper: 3e-3).
    b1_1d, b2_1d: their betas (paper: 0.9, 0.95).
    weight_decay_1d: their decoupled decay (paper: 0.1).
    optimize_1d: apply MARS to 1-D leaves too (paper: False; static).
    mask: tree or callable selecting the decayed params.
    variant, ns_steps, clip_threshold, eps_placement, eps_root, mu_dtype: see
      ``scale_by_mars``.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.momentum import mars
    >>> opt = mars(learning_rate=0.1, gamma=0.0, eps=0.0)
    >>> p = {"w": jnp.ones((1, 2))}
    >>> opt.update({"w": jnp.array([[0.5, -0.25]])}, opt.init(p), p)[0]
    {'w': Array([[-0.1,  0.1]], dtype=float32)}

  References:
    Yuan et al., MARS: Unleashing the Power of Variance Reduction for Training
    Large Models, https://arxiv.org/abs/2411.10438
  """
  return _mars_chain(_NAME, learning_rate, b1, b2, gamma, eps, weight_decay, lr_1d,
                     b1_1d, b2_1d, weight_decay_1d, optimize_1d, mask, variant,
                     ns_steps, clip_threshold, eps_placement, eps_root, mu_dtype,
                     exact=False)


def mars_exact(
    learning_rate: optax.ScalarOrSchedule = 3e-3,
    b1: float = 0.95,
    b2: float = 0.99,
    gamma: float = 0.025,
    eps: float = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    lr_1d: optax.ScalarOrSchedule = 3e-3,
    b1_1d: float = 0.9,
    b2_1d: float = 0.95,
    weight_decay_1d: optax.ScalarOrSchedule = 0.1,
    optimize_1d: bool = False,
    mask: Optional[Any] = None,
    *,
    variant: str = "adamw",
    ns_steps: int = 5,
    clip_threshold: Optional[float] = 1.0,
    eps_placement: str = "adam",
    eps_root: float = 0.0,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Exact MARS: g_prev = grad f(x_{t-1}; xi_t) on the current batch.

  Same arguments and rule as ``mars``; ``update`` needs ``params`` and the
  extra argument ``value_fn`` (``params -> loss`` on the current batch) and
  evaluates ``jax.grad(value_fn)`` at the previous params, stored in the
  state (one extra backward pass per step; none on the first step).

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.momentum import mars_exact
    >>> loss = lambda p: 0.5 * jnp.sum(p["w"] ** 2)
    >>> opt = mars_exact(learning_rate=0.1, gamma=0.0, eps=0.0)
    >>> p = {"w": jnp.array([[0.5, -0.25]])}
    >>> opt.update(p, opt.init(p), p, value_fn=loss)[0]
    {'w': Array([[-0.1,  0.1]], dtype=float32)}

  References:
    Yuan et al., MARS: Unleashing the Power of Variance Reduction for Training
    Large Models, https://arxiv.org/abs/2411.10438
  """
  return _mars_chain(_EXACT_NAME, learning_rate, b1, b2, gamma, eps, weight_decay, lr_1d,
                     b1_1d, b2_1d, weight_decay_1d, optimize_1d, mask, variant,
                     ns_steps, clip_threshold, eps_placement, eps_root, mu_dtype,
                     exact=True)
