"""OASIS: a Hutchinson-diagonal preconditioner with a self-tuned step size.

Jahani, Rusakov, Shi, Richtarik, Mahoney, Takac, "Doubly Adaptive Scaled
Algorithm for Machine Learning Using Second-Order Information",
arXiv:2109.05198 (Algorithm 1, adaptive learning rate; the fixed-lr variant).

One step at iterate x_k (gradient g_k, Rademacher probe z, k = count)::

  k = 0:  D_0 = mean_{s <= init_samples} z_s * (H(x_0) z_s)
          x_1 = x_0 - eta_0 * D^_0^-1 g_0
  k >= 1: D_k   = b2 D_{k-1} + (1 - b2) z * (H(x_k) z)                 # eq. (7)
          D^_k  = max(|D_k|, alpha)                                    # eq. (8)
          eta_k = min( sqrt(1 + theta_{k-1}) eta_{k-1},
                       ||x_k - x_{k-1}||_{D^_k} /
                       (2 ||grad f(x_k) - grad f(x_{k-1})||*_{D^_k}) )
          theta_k = eta_k / eta_{k-1}        (theta_0 = +inf)
          x_{k+1} = x_k - eta_k D^_k^-1 g_k

with ||v||^2_D = v' D v and ||v||*^2_D = v' D^-1 v. The returned direction is
``eta_k * D^_k^-1 g_k`` (positive-gradient convention): the step size lives
inside the direction. ``oasis(learning_rate)`` multiplies it by
``learning_rate`` (1.0 is the paper's method; a schedule scales the self-tuned
step, as ``optax.contrib.dog`` does).

Paper -> code: beta_2 -> ``b2``, alpha -> ``alpha``, eta_0 -> ``eta0``, D_k ->
``state.diag`` (not truncated), x_{k-1} -> ``state.x_prev``, eta_{k-1} ->
``state.eta``, theta_{k-1} -> ``state.theta``, v_k -> the probe z; the
fixed-learning-rate variant (eta_k = eta for all k) -> ``fixed_lr``.

Decisions on the catalog's UNSURE points and pitfalls:

* Defaults: ``b2 = 0.99`` and ``alpha = 1e-5`` (the catalog's ranges
  0.99-0.999 and 1e-5-1e-3; the low ends, which the paper's logistic-regression
  experiments use); ``init_samples = 10`` probes for D_0 (catalog).
* eta_0: the paper takes eta_0 as an input; ``eta0 = 1.0`` by default (a full
  diagonal-Newton first step, exact for a separable quadratic).
* Both gradients of the difference are evaluated on the CURRENT batch: grad f(x_k)
  comes free with the Hessian-vector product (one forward-over-reverse pass of
  ``value_fn`` at x_k), grad f(x_{k-1}) is ``jax.grad(value_fn)(state.x_prev)``
  (one more gradient). So the stochastic version of the paper's Algorithm is
  followed, and ``state`` does not keep g_{k-1}. The step direction itself uses
  the ``updates`` given to ``update`` (the user's gradient, possibly clipped).
* theta_0 = +inf is not stored (the state stays finite): at k = 1 the first
  term of the min is taken as +inf.
* Degenerate steps: when the gradient did not change (the curvature term is
  0/0 or x/0) or x did not move, eta_k = eta_{k-1} instead of the paper's
  sqrt(1 + theta) growth; without this eta grows geometrically on a flat
  stretch (and overflows in a long run at a converged point).
* Hutchinson probes are Rademacher (paper), through ``optkit.core.hessian``.

Cost per step: one HVP plus one gradient (``init_samples`` HVPs at step 0);
the probes at step 0 and later are computed under ``lax.cond``.

Numerics: D and the norms are float32 (float64 for float64 params); the
weighted norms are computed with a max-scaling so that large gradients do not
overflow float32 squares.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as extra_args_lib
from optkit.core import hessian as hessian_lib
from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "oasis"


class ScaleByOasisState(NamedTuple):
  count: jax.Array        # int32, shape (): k
  diag: optax.Updates     # D_k (EMA of z * Hz, not truncated); float32
  x_prev: optax.Params    # x_{k-1}, the params of the previous call; params' dtype
  eta: jax.Array          # float32 (float64 for f64 params), shape (): eta_{k-1}
  theta: jax.Array        # same dtype, shape (): theta_{k-1} (unused while k <= 1)
  key: jax.Array          # uint32 key data; split every step


def _scaled_norm(tree) -> jax.Array:
  """Euclidean norm of a tree, computed as m * ||x / m|| (m = max |x|)."""
  leaves = [jnp.ravel(x) for x in jax.tree.leaves(tree)]
  if not leaves:
    return jnp.zeros([], jnp.float32)
  flat = jnp.concatenate(leaves)
  if flat.size == 0:
    return jnp.zeros([], flat.dtype)
  m = jnp.max(jnp.abs(flat))
  safe = jnp.where(m > 0, m, 1)
  return jnp.where(m > 0, safe * jnp.sqrt(jnp.sum((flat / safe) ** 2)), 0)


def scale_by_oasis(
    b2: float = 0.99,
    alpha: float = 1e-5,
    eta0: float = 1.0,
    fixed_lr: Optional[float] = None,
    *,
    init_samples: int = 10,
    seed: int = 0,
) -> optax.GradientTransformationExtraArgs:
  r"""OASIS's direction, step size included (Algorithm 1).

  .. math::
    D_k = \beta_2 D_{k-1} + (1-\beta_2)\, z\odot \nabla^2 f(x_k) z,\quad
    \hat D_k = \max(|D_k|, \alpha),\quad
    u_k = \eta_k \hat D_k^{-1} \nabla f(x_k),

  with :math:`\eta_k = \min\{\sqrt{1+\theta_{k-1}}\,\eta_{k-1},\
  \|x_k - x_{k-1}\|_{\hat D_k} / (2\|\nabla f(x_k) - \nabla f(x_{k-1})\|^*_{\hat D_k})\}`
  and :math:`\theta_k = \eta_k/\eta_{k-1}`. ``update`` needs ``params`` and
  ``value_fn`` (``params -> loss`` on the current batch). See the module
  docstring for step 0 and degenerate steps.

  Args:
    b2: beta_2, EMA decay of the Hutchinson diagonal (0.99).
    alpha: truncation of |D| from below (1e-5).
    eta0: eta_0, the step size of the first step (1.0).
    fixed_lr: if given, eta_k = fixed_lr at every step (the paper's
      fixed-learning-rate variant; eta0 is then unused).
    init_samples: Hutchinson probes averaged for D_0 (10; static).
    seed: seeds the PRNG key kept in the state.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 100.0]) * p ** 2)
    >>> tx = optkit.scale_by_oasis()
    >>> p = jnp.array([1.0, 1.0])
    >>> tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)[0]
    Array([1., 1.], dtype=float32)

  References:
    Jahani et al., Doubly Adaptive Scaled Algorithm for Machine Learning Using
    Second-Order Information, https://arxiv.org/abs/2109.05198
  """
  validate.unit_interval(_NAME, b2=b2)
  validate.positive(_NAME, alpha=alpha, eta0=eta0)
  if fixed_lr is not None:
    validate.non_negative(_NAME, fixed_lr=fixed_lr)
  validate.integer_at_least(_NAME, 1, init_samples=init_samples)
  validate.seed(_NAME, seed)
  init_samples = int(init_samples)

  def init_fn(params):
    cdtype = numerics.stat_dtype(params)
    return ScaleByOasisState(
        count=jnp.zeros([], jnp.int32),
        diag=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), numerics.stat_dtype(p)), params),
        x_prev=jax.tree.map(lambda p: jnp.array(p, copy=True), params),
        eta=jnp.asarray(eta0, cdtype),
        theta=jnp.zeros([], cdtype),
        key=jax.random.key_data(jax.random.key(seed)))

  def update_fn(updates, state, params=None, **extra_args):
    tree_lib.check_same_structure(_NAME, updates, state.diag)
    params = extra_args_lib.require_params(
        _NAME, params, "the Hessian-vector product is taken at params")
    value_fn = extra_args_lib.require(_NAME, extra_args, "value_fn")
    new_key, probe_key = jax.random.split(jax.random.wrap_key_data(state.key))
    to_stat = lambda tree: jax.tree.map(lambda x, d: x.astype(d.dtype), tree, state.diag)
    cdtype = state.eta.dtype
    b2_ = jnp.asarray(b2, cdtype)
    alpha_ = jnp.asarray(alpha, cdtype)
    eta_prev = state.eta

    def first():
      d0 = to_stat(hessian_lib.hutchinson_diag(value_fn, params, probe_key, init_samples))
      eta = jnp.asarray(eta0, cdtype)
      return d0, eta, state.theta

    def later():
      z = tree_lib.random_like(probe_key, params, "rademacher")
      g_k, hz = hessian_lib.grad_and_hvp(value_fn, params, z)
      d = jax.tree.map(lambda dd, zz, h: b2_ * dd + (1 - b2_) * (zz * h).astype(dd.dtype),
                       state.diag, z, hz)                                   # eq. (7)
      dhat = jax.tree.map(lambda dd: jnp.maximum(jnp.abs(dd), alpha_), d)  # eq. (8)
      g_prev = jax.grad(value_fn)(state.x_prev)
      dx = jax.tree.map(lambda p, q, dd: p.astype(dd.dtype) - q.astype(dd.dtype),
                        params, state.x_prev, d)
      dg = jax.tree.map(lambda a, b, dd: a.astype(dd.dtype) - b.astype(dd.dtype),
                        g_k, g_prev, d)
      num = _scaled_norm(jax.tree.map(lambda v, h: jnp.sqrt(h) * v, dx, dhat))
      den = 2 * _scaled_norm(jax.tree.map(lambda v, h: v / jnp.sqrt(h), dg, dhat))
      num = num.astype(cdtype)
      den = den.astype(cdtype)
      ok = (num > 0) & (den > 0)
      cand2 = jnp.where(ok, num / jnp.where(ok, den, 1), jnp.inf)
      cand1 = jnp.where(state.count <= 1, jnp.inf, jnp.sqrt(1 + state.theta) * eta_prev)
      eta = jnp.minimum(cand1, cand2)
      eta = jnp.where(ok & jnp.isfinite(eta) & (eta > 0), eta, eta_prev)
      theta = jnp.where(eta_prev > 0, eta / jnp.where(eta_prev > 0, eta_prev, 1), 1.0)
      return d, eta, theta

    d, eta, theta = jax.lax.cond(state.count == 0, first, later)
    if fixed_lr is not None:
      eta = jnp.asarray(fixed_lr, cdtype)
    dhat = jax.tree.map(lambda dd: jnp.maximum(jnp.abs(dd), alpha_.astype(dd.dtype)), d)
    out = jax.tree.map(lambda g, h: eta.astype(h.dtype) * g.astype(h.dtype) / h, updates, dhat)
    new_state = ScaleByOasisState(
        count=optax.safe_increment(state.count), diag=d,
        x_prev=jax.tree.map(lambda p, q: jnp.asarray(p, q.dtype), params, state.x_prev),
        eta=eta.astype(cdtype), theta=theta.astype(cdtype), key=jax.random.key_data(new_key))
    return optax.tree.cast_like(out, updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def oasis(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    b2: float = 0.99,
    alpha: float = 1e-5,
    eta0: float = 1.0,
    fixed_lr: Optional[float] = None,
    weight_decay: float = 0.0,
    *,
    init_samples: int = 10,
    seed: int = 0,
    mask: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""The OASIS optimizer: :math:`x_{k+1} = x_k - \gamma\,\eta_k \hat D_k^{-1}\nabla f(x_k)`.

  Built as ``chain(scale_by_oasis(...), add_decayed_weights(weight_decay,
  mask), scale_by_learning_rate(learning_rate))``. The step size eta_k is
  self-tuned inside ``scale_by_oasis``; ``learning_rate`` (gamma) is a
  multiplier of it, 1.0 for the paper's method. ``update`` needs ``params``
  and ``value_fn=lambda p: loss(p, batch)``.

  Args:
    learning_rate: gamma, multiplier of the self-tuned step (1.0: the paper);
      a number or a schedule.
    b2: beta_2 (0.99).
    alpha: truncation of |D| (1e-5).
    eta0: eta_0, first step size (1.0).
    fixed_lr: fixed-lr variant: eta_k = fixed_lr (None: adaptive).
    weight_decay: decoupled weight decay added before the lr (0).
    init_samples: probes for D_0 (static).
    seed: seeds the PRNG key kept in the state.
    mask: optional tree or callable selecting the decayed params.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optax
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 1000.0]) * (p - 1.0) ** 2)
    >>> params = jnp.array([3.0, -2.0])
    >>> opt = optkit.oasis(learning_rate=1.0)
    >>> state = opt.init(params)
    >>> for _ in range(3):
    ...   updates, state = opt.update(jax.grad(loss)(params), state, params, value_fn=loss)
    ...   params = optax.apply_updates(params, updates)
    >>> params  # no tuning on a 1000x ill-conditioned problem
    Array([1., 1.], dtype=float32)

  References:
    Jahani et al., Doubly Adaptive Scaled Algorithm for Machine Learning Using
    Second-Order Information, https://arxiv.org/abs/2109.05198
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_oasis(b2=b2, alpha=alpha, eta0=eta0, fixed_lr=fixed_lr,
                     init_samples=init_samples, seed=seed),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
