"""Learning rate as a function of batch size, and a Lanczos lr/momentum controller.

Granziol, Zohren & Roberts, "Learning Rates as a Function of Batch Size: A
Random Matrix Theory Approach to Neural Network Training", JMLR 2022,
arXiv:2006.09092.

**Scaling rules** (``scale_lr_by_batch_size``): the extremal eigenvalues of
the mini-batch Hessian grow as the batch shrinks, so the largest stable
learning rate scales with the batch size B (from a tuned (B_0, eta_0)) as

    SGD  ('linear'): eta(B) = eta_0 B / B_0
    Adam ('sqrt')  : eta(B) = eta_0 sqrt(B / B_0)      (the paper's new rule)

valid below a curvature-dependent critical batch size: pass it as
``critical_batch_size`` and B is clipped to it (the rule is not extrapolated).

**Lanczos controller** (``lanczos_lr_momentum``): heavy-ball SGD whose learning
rate and momentum are set on the fly from the curvature (the paper's
"stochastic Lanczos quadrature based on the fly learning rate and momentum
learner", Section 9). Every ``every`` steps (starting at step 0) it runs m =
``num_lanczos_steps`` Lanczos iterations, with full re-orthogonalization, on
Hessian-vector products of ``value_fn`` (the current batch, fixed for the whole
run of m products) from a Gaussian start vector drawn from the state's key,
and takes the extremal Ritz values lambda_max, lambda_min of the tridiagonal
matrix. With kappa = lambda_max / max(lambda_min, 0) it applies Polyak's
heavy-ball tuning for a quadratic with spectrum [lambda_min, lambda_max]::

    sqrt(beta) = (sqrt(lambda_max) - sqrt(lambda_min)) / (sqrt(lambda_max) + sqrt(lambda_min))
    beta  <- min(beta, max_momentum)
    eta   = lr_scale (1 + sqrt(beta))^2 / lambda_max        (= 4 / (sqrt(L) + sqrt(mu))^2
                                                             when beta is not clipped)
    v_{t+1} = beta v_t + g_t,   x_{t+1} = x_t - eta v_{t+1}

eta lambda_max = lr_scale (1 + sqrt(beta))^2 < 2 (1 + beta) for every beta < 1
and lr_scale <= 1: the step is inside the heavy ball's stability region on the
estimated spectrum. The chosen ``learning_rate``, ``momentum``,
``lambda_max`` and ``lambda_min`` are kept in the state (read them like
``optax.inject_hyperparams``' ``hyperparams``).

Paper -> code: B -> ``batch_size``; B_0 -> ``base_batch_size``; eta_0 ->
``base_lr``; m (Lanczos steps) -> ``num_lanczos_steps``; lambda_1 ->
``lambda_max``; rho -> ``momentum``.

UNSURE, decided:
  * The controller's exact formulas (the paper calls it preliminary): eta ~
    c / lambda_max with Polyak's heavy-ball pair as above, c = ``lr_scale`` =
    1 by default; momentum capped at ``max_momentum`` = 0.9 because the
    smallest Ritz value of a short Lanczos run (and of a non-convex Hessian)
    is unreliable. A non-positive lambda_max keeps the previous lr and
    momentum (0 and 0 before the first positive estimate): no step is taken
    on directions of non-positive curvature.
  * The damping rule for second-order / adaptive methods (minimal damping
    proportional to eta / B) is documented, not shipped: its constant is not
    given.
  * Lanczos runs in float32 on the flattened parameter vector (the params'
    float dtype for the HVPs); breakdown (an invariant Krylov subspace, e.g.
    fewer parameters than m) is detected and the remaining steps are padded
    with copies of the first Rayleigh quotient, which leaves the extremal Ritz
    values unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from optkit.core import extra_args as extra_lib
from optkit.core import hessian
from optkit.core import linalg
from optkit.core import tree as tree_lib
from optkit.core import validate

RULES = ("linear", "sqrt")
_NAME = "lanczos_lr_momentum"


def scale_lr_by_batch_size(base_lr, base_batch_size, batch_size, rule: str = "linear",
                           *, critical_batch_size=None):
  """Scales a tuned learning rate to another batch size (module docstring).

  Args:
    base_lr: eta_0, tuned at ``base_batch_size`` (>= 0).
    base_batch_size: B_0 (> 0).
    batch_size: B (> 0); a number or an array (elementwise, jittable).
    rule: ``'linear'`` (SGD) or ``'sqrt'`` (Adam and other adaptive methods).
    critical_batch_size: optional B_crit (> 0); B is clipped to it.

  Returns:
    eta(B) (a float array).

  Example:
    >>> import optkit
    >>> float(optkit.scale_lr_by_batch_size(0.1, 128, 512))
    0.4
    >>> float(optkit.scale_lr_by_batch_size(1e-3, 128, 512, rule="sqrt"))
    0.002

  References:
    Granziol, Zohren & Roberts 2022, https://arxiv.org/abs/2006.09092
  """
  name = "scale_lr_by_batch_size"
  validate.one_of(name, "rule", rule, RULES)
  validate.non_negative(name, base_lr=base_lr)
  validate.positive(name, base_batch_size=base_batch_size,
                    critical_batch_size=critical_batch_size)
  if not isinstance(batch_size, jax.core.Tracer) and np.any(np.asarray(batch_size) <= 0):
    raise ValueError(f"{name}: `batch_size` must be positive, got {batch_size!r}.")
  b = jnp.asarray(batch_size, jnp.result_type(float))
  if critical_batch_size is not None:
    b = jnp.minimum(b, critical_batch_size)
  ratio = b / jnp.asarray(base_batch_size, b.dtype)
  return base_lr * (ratio if rule == "linear" else jnp.sqrt(ratio))


def _extremal_ritz(alpha, beta, num_valid):
  """Largest and smallest Ritz values of the Lanczos tridiagonal.

  Rows after a breakdown repeat alpha_0 (a Rayleigh quotient, so it lies
  between the genuine extremal Ritz values) instead of adding a spurious 0.
  """
  alpha = jnp.where(jnp.arange(alpha.shape[0]) < num_valid, alpha, alpha[0])
  t = jnp.diag(alpha) + jnp.diag(beta, 1) + jnp.diag(beta, -1)
  eig = jnp.linalg.eigvalsh(t)
  return eig[-1], eig[0]


class LanczosLRMomentumState(NamedTuple):
  count: jax.Array          # int32, shape (): t
  key: jax.Array            # uint32, shape (2,): PRNG key data for the start vectors
  trace: optax.Updates      # v_t, float32, shaped like params (heavy-ball buffer)
  learning_rate: jax.Array  # float32, shape (): eta in use
  momentum: jax.Array       # float32, shape (): beta in use
  lambda_max: jax.Array     # float32, shape (): last largest Ritz value
  lambda_min: jax.Array     # float32, shape (): last smallest Ritz value


def lanczos_lr_momentum(num_lanczos_steps: int = 20, every: int = 1000, seed: int = 0,
                        lr_scale=1.0, max_momentum=0.9
                        ) -> optax.GradientTransformationExtraArgs:
  """Heavy-ball SGD with lr and momentum set by a Lanczos curvature estimate.

  See the module docstring. ``update`` needs ``params`` and the extra
  argument ``value_fn`` (the loss on the current batch, for the HVPs).

  Args:
    num_lanczos_steps: m, Lanczos iterations (HVPs) per estimate (static).
    every: K, steps between estimates (static; the first is at step 0).
    seed: seeds the key kept in the state (start vectors).
    lr_scale: c in eta = c (1 + sqrt(beta))^2 / lambda_max, in (0, 1].
    max_momentum: cap on beta, in [0, 1).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` producing the full update
    (the learning rate is inside; do not chain a learning rate after it).

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * p ** 2)
    >>> opt = optkit.lanczos_lr_momentum(num_lanczos_steps=2, every=10)
    >>> p = jnp.array([1.0, 1.0])
    >>> s = opt.init(p)
    >>> u, s = opt.update(jax.grad(loss)(p), s, p, value_fn=loss)
    >>> round(float(s.lambda_max), 4), round(float(s.momentum), 4)
    (4.0, 0.1111)
    >>> round(float(s.learning_rate), 4)         # 4 / (sqrt(4) + 1)^2
    0.4444

  References:
    Granziol, Zohren & Roberts, "Learning Rates as a Function of Batch Size:
    A Random Matrix Theory Approach to Neural Network Training", 2022.
    https://arxiv.org/abs/2006.09092
  """
  validate.integer_at_least(_NAME, 1, num_lanczos_steps=num_lanczos_steps, every=every)
  validate.integer_at_least(_NAME, 0, seed=seed)
  validate.positive(_NAME, lr_scale=lr_scale)
  validate.closed_unit_interval(_NAME, lr_scale=lr_scale)
  validate.unit_interval(_NAME, max_momentum=max_momentum)
  m, every = int(num_lanczos_steps), int(every)

  def init_fn(params):
    f32 = lambda: jnp.zeros([], jnp.float32)
    return LanczosLRMomentumState(
        count=jnp.zeros([], jnp.int32),
        key=jax.random.key_data(jax.random.key(int(seed))),
        trace=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.float32), params),
        learning_rate=f32(), momentum=f32(), lambda_max=f32(), lambda_min=f32())

  def estimate(params, value_fn, key_data, state):
    key, sub = jax.random.split(jax.random.wrap_key_data(key_data))
    flat, unravel = ravel_pytree(jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), params))
    v0 = jax.random.normal(sub, flat.shape, jnp.float32)

    def matvec(v):
      vt = jax.tree.map(lambda a, p: a.astype(jnp.result_type(p)), unravel(v), params)
      hv = hessian.hvp(value_fn, params, vt)
      return ravel_pytree(jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hv))[0]

    _, alpha, beta, num_valid = linalg.lanczos(matvec, v0, m, breakdown_tol=1e-5)
    lmax, lmin = _extremal_ritz(alpha, beta, num_valid)
    good = jnp.isfinite(lmax) & (lmax > jnp.finfo(jnp.float32).tiny)
    safe_lmax = jnp.where(good, lmax, 1.0)
    rho = jnp.clip(jnp.where(good, lmin, 0.0) / safe_lmax, 0.0, 1.0)  # 1 / kappa
    sq = jnp.sqrt(rho)
    mom = jnp.minimum(jnp.square((1.0 - sq) / (1.0 + sq)), max_momentum)
    lr = lr_scale * jnp.square(1.0 + jnp.sqrt(mom)) / safe_lmax
    lr = jnp.where(good, lr, state.learning_rate).astype(jnp.float32)
    mom = jnp.where(good, mom, state.momentum).astype(jnp.float32)
    lmax = jnp.where(jnp.isfinite(lmax), lmax, 0.0).astype(jnp.float32)
    lmin = jnp.where(jnp.isfinite(lmin), lmin, 0.0).astype(jnp.float32)
    return jax.random.key_data(key), lr, mom, lmax, lmin

  def update_fn(updates, state, params=None, **extra):
    tree_lib.check_same_structure(_NAME, updates, state.trace)
    params = extra_lib.require_params(_NAME, params, "the Hessian-vector products")
    value_fn = extra_lib.require(_NAME, extra, "value_fn")

    def keep(params, key_data, state):
      return (key_data, state.learning_rate, state.momentum, state.lambda_max,
              state.lambda_min)

    refresh = (state.count % every) == 0
    key, lr, mom, lmax, lmin = jax.lax.cond(
        refresh, lambda *a: estimate(a[0], value_fn, a[1], a[2]), keep,
        params, state.key, state)
    trace = jax.tree.map(lambda v, g: mom * v + jnp.asarray(g, jnp.float32),
                         state.trace, updates)
    d = jax.tree.map(lambda v: -lr * v, trace)
    d = optax.tree.cast_like(d, updates)
    return d, LanczosLRMomentumState(optax.safe_increment(state.count), key, trace,
                                     lr, mom, lmax, lmin)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
