"""SANIA: preconditioned Polyak step sizes (linear and quadratic constraints).

Abdukhakimov, Xiang, Kamzolov, Gower, Takac, "SANIA: Polyak-type Optimization
Framework Leads to Scale Invariant Stochastic Algorithms", arXiv:2312.17369.

One step (gradient g, loss value f on the current batch, t = count + 1)::

  B   = identity                       | AdaGrad-SQR: max(sum_{i<=t} g_i^2, eps)
      | Adam-SQR: max(v_t / (1 - b2^t), eps),  v_t = b2 v + (1 - b2) g^2
      | Hutchinson: max(|h_t / (1 - b2^t)|, eps),  h_t = b2 h + (1 - b2) z * (H z)
  p   = B^-1 g,   s = g' B^-1 g,   c = (f - f*)_+ / s
  linear constraint (PSPS):     tau = c                      (min(tau, max_step) if given)
  quadratic constraint (SANIA): tau = 1 - sqrt(1 - 2c) if 2c <= 1 else 1
  direction = tau * p     (the step size is inside the direction)

The quadratic rule is the smallest root tau of the model
f - tau s + tau^2 s / 2 = f* (the constraint f + <g, d> + <B d, d>/2 = f* along
d = -tau B^-1 g); when there is no real root the model's minimizer tau = 1 is
taken. The "SQR" preconditioners have no square root: B^-1 g transforms like
the parameters under a diagonal rescaling of them, which is the paper's scale
(feature-scaling) invariance.

Paper -> code: f* -> ``f_star``, B_t -> the preconditioner (``state.nu`` holds
sum g^2, the EMA of g^2, or the EMA of z * Hz), the Polyak step gamma_t ->
tau, beta_2 -> ``b2``, the lower clamp of B -> ``eps``.

Decisions on the catalog's UNSURE points:

* Default constraint: ``'quadratic'``. A public SANIA implementation found
  through the code index (classes ``SANIA``, ``SANIA_AdagradSQR``,
  ``SANIA_AdamSQR``, NumPy and PyTorch) uses exactly the quadratic root rule
  above with tau = 1 when 2 f > s; the linear rule is the earlier PSPS paper's
  and is offered as ``constraint='linear'``.
* ``eps = 0.1``: that implementation's PyTorch default, applied as
  ``max(B, eps)`` (its NumPy variant adds eps instead; not followed).
* Default preconditioner: ``'identity'`` (the catalog's first option), so the
  bare method is the (quadratic-constraint) stochastic Polyak step; pass
  ``'adagrad_sqr'`` for the scale-invariant method.
* Adam-SQR's EMA is bias-corrected (as in that implementation); the
  Hutchinson EMA is bias-corrected the same way (not specified; chosen so that
  step 1 uses the first estimate itself rather than (1 - b2) times it).
* (f - f*)_+ : a loss below f* gives tau = 0 instead of a step uphill.
* ``learning_rate`` of ``sania`` multiplies tau (1.0 is the paper's method;
  the reference code has the same multiplier ``lr = 1.0``).

Numerics: statistics are float32 (float64 for float64 params); s is computed
as sum g * (B^-1 g) with B >= eps > 0; s = 0 (zero gradient) gives tau = 0.
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

_NAME = "sania"
PRECONDITIONERS = ("identity", "adagrad_sqr", "adam_sqr", "hutchinson")
CONSTRAINTS = ("linear", "quadratic")


class ScaleBySaniaState(NamedTuple):
  count: jax.Array      # int32, shape (): t - 1
  nu: optax.Updates     # sum g^2 | EMA g^2 | EMA z*Hz (zeros for identity); float32
  key: jax.Array        # uint32 key data; split every step (used by 'hutchinson')


def polyak_step_size(c: jax.Array, constraint: str) -> jax.Array:
  """tau from c = (f - f*)_+ / s: ``c`` (linear) or the smallest root (quadratic)."""
  if constraint == "linear":
    return c
  disc = 1 - 2 * c
  return jnp.where(disc >= 0, 1 - jnp.sqrt(jnp.maximum(disc, 0)), 1.0)


def scale_by_sania(
    f_star: float = 0.0,
    eps: float = 0.1,
    b2: float = 0.999,
    max_step: Optional[float] = None,
    *,
    preconditioner: str = "identity",
    constraint: str = "quadratic",
    num_samples: int = 1,
    seed: int = 0,
) -> optax.GradientTransformationExtraArgs:
  r"""SANIA's direction, Polyak step size included.

  .. math::
    c = \frac{(f - f^*)_+}{g^\top B^{-1} g},\qquad
    \tau = \begin{cases} c & \text{linear}\\ 1-\sqrt{1-2c}\ (2c\le 1),\ 1\ (2c>1)
    & \text{quadratic}\end{cases},\qquad u = \tau B^{-1} g.

  ``update`` needs the extra argument ``value`` (the loss at ``params`` on the
  current batch), and ``params`` + ``value_fn`` for the Hutchinson
  preconditioner.

  Args:
    f_star: f*, the optimal (or a lower bound of the) loss (0: interpolation).
    eps: lower clamp of the diagonal preconditioner (0.1, reference code;
      unused for ``'identity'``).
    b2: EMA decay of Adam-SQR / Hutchinson (0.999).
    max_step: optional upper bound on tau (None: none).
    preconditioner: ``'identity'``, ``'adagrad_sqr'``, ``'adam_sqr'`` or
      ``'hutchinson'``.
    constraint: ``'quadratic'`` (SANIA, default) or ``'linear'`` (PSPS).
    num_samples: Hutchinson probes per step (static).
    seed: seeds the PRNG key kept in the state.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_sania(constraint="linear")
    >>> p = jnp.array([1.0, 2.0])
    >>> g = 2 * p                            # f = |p|^2 = 5, |g|^2 = 20
    >>> tx.update(g, tx.init(p), p, value=5.0)[0]   # (5 / 20) * g
    Array([0.5, 1. ], dtype=float32)

  References:
    Abdukhakimov et al., SANIA: Polyak-type Optimization Framework Leads to
    Scale Invariant Stochastic Algorithms, https://arxiv.org/abs/2312.17369
  """
  validate.one_of(_NAME, "preconditioner", preconditioner, PRECONDITIONERS)
  validate.one_of(_NAME, "constraint", constraint, CONSTRAINTS)
  validate.positive(_NAME, eps=eps)
  validate.unit_interval(_NAME, b2=b2)
  validate._check(_NAME, {"f_star": f_star}, lambda v: True, "finite")  # pylint: disable=protected-access
  if max_step is not None:
    validate.positive(_NAME, max_step=max_step)
  validate.integer_at_least(_NAME, 1, num_samples=num_samples)
  validate.seed(_NAME, seed)
  num_samples = int(num_samples)

  def init_fn(params):
    return ScaleBySaniaState(
        count=jnp.zeros([], jnp.int32),
        nu=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), numerics.stat_dtype(p)), params),
        key=jax.random.key_data(jax.random.key(seed)))

  def update_fn(updates, state, params=None, **extra_args):
    tree_lib.check_same_structure(_NAME, updates, state.nu)
    value = extra_args_lib.require(_NAME, extra_args, "value")
    new_key, probe_key = jax.random.split(jax.random.wrap_key_data(state.key))
    leaves = jax.tree.leaves(state.nu)
    cdtype = jnp.result_type(*leaves) if leaves else jnp.float32
    count = optax.safe_increment(state.count)
    g = jax.tree.map(lambda u, n: u.astype(n.dtype), updates, state.nu)
    eps_ = jnp.asarray(eps, cdtype)
    b2_ = jnp.asarray(b2, cdtype)

    if preconditioner == "identity":
      nu = state.nu
      p = g
    elif preconditioner == "adagrad_sqr":
      nu = jax.tree.map(lambda n, x: n + x * x, state.nu, g)
      p = jax.tree.map(lambda x, n: x / jnp.maximum(n, eps_), g, nu)
    else:
      if preconditioner == "adam_sqr":
        stat = jax.tree.map(lambda x: x * x, g)
      else:
        params = extra_args_lib.require_params(
            _NAME, params, "the Hessian-vector product is taken at params")
        value_fn = extra_args_lib.require(_NAME, extra_args, "value_fn")
        est = hessian_lib.hutchinson_diag(value_fn, params, probe_key, num_samples)
        stat = jax.tree.map(lambda e, n: e.astype(n.dtype), est, state.nu)
      nu = jax.tree.map(lambda n, x: b2_ * n + (1 - b2_) * x, state.nu, stat)
      bc = numerics.bias_correction(b2_, count).astype(cdtype)
      p = jax.tree.map(lambda x, n: x / jnp.maximum(jnp.abs(n / bc), eps_), g, nu)

    s = sum((jnp.sum(x * y) for x, y in zip(jax.tree.leaves(g), jax.tree.leaves(p))),
            jnp.zeros([], cdtype))
    gap = jnp.maximum(jnp.asarray(value, cdtype) - jnp.asarray(f_star, cdtype), 0)
    ok = (s > 0) & jnp.isfinite(s)
    c = jnp.where(ok, gap / jnp.where(ok, s, 1), 0)
    tau = polyak_step_size(c, constraint)
    if max_step is not None:
      tau = jnp.minimum(tau, jnp.asarray(max_step, cdtype))
    tau = jnp.where(ok & jnp.isfinite(tau), tau, 0)
    out = jax.tree.map(lambda x: tau * x, p)
    new_state = ScaleBySaniaState(count=count, nu=nu, key=jax.random.key_data(new_key))
    return optax.tree.cast_like(out, updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def sania(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    f_star: float = 0.0,
    eps: float = 0.1,
    b2: float = 0.999,
    max_step: Optional[float] = None,
    weight_decay: float = 0.0,
    *,
    preconditioner: str = "identity",
    constraint: str = "quadratic",
    num_samples: int = 1,
    seed: int = 0,
    mask: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""SANIA: :math:`x_{t+1} = x_t - \gamma\,\tau_t B_t^{-1} g_t` (Polyak-type step).

  Built as ``chain(scale_by_sania(...), add_decayed_weights(weight_decay,
  mask), scale_by_learning_rate(learning_rate))``; tau is self-tuned, and
  ``learning_rate`` (gamma) multiplies it (1.0: the paper). ``update`` needs
  ``value=loss(params, batch)`` (and ``value_fn`` for ``'hutchinson'``).

  Args:
    learning_rate: gamma, multiplier of the Polyak step (1.0); number or schedule.
    f_star: f*, lower bound of the loss (0).
    eps: lower clamp of the preconditioner (0.1).
    b2: EMA decay of Adam-SQR / Hutchinson (0.999).
    max_step: optional upper bound on tau.
    weight_decay: decoupled weight decay added before the lr (0).
    preconditioner: ``'identity'``, ``'adagrad_sqr'``, ``'adam_sqr'``,
      ``'hutchinson'``.
    constraint: ``'quadratic'`` (default) or ``'linear'``.
    num_samples: Hutchinson probes per step (static).
    seed: seeds the PRNG key kept in the state.
    mask: optional tree or callable selecting the decayed params.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optax
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: jnp.sum(jnp.array([1.0, 10.0]) * p ** 2)
    >>> params = jnp.array([1.0, 1.0])
    >>> opt = optkit.sania(1.0, preconditioner="adagrad_sqr", constraint="linear")
    >>> state = opt.init(params)
    >>> for _ in range(20):
    ...   updates, state = opt.update(jax.grad(loss)(params), state, params,
    ...                               value=loss(params))
    ...   params = optax.apply_updates(params, updates)
    >>> bool(loss(params) < 1e-3)
    True

  References:
    Abdukhakimov et al., SANIA: Polyak-type Optimization Framework Leads to
    Scale Invariant Stochastic Algorithms, https://arxiv.org/abs/2312.17369
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_sania(f_star=f_star, eps=eps, b2=b2, max_step=max_step,
                     preconditioner=preconditioner, constraint=constraint,
                     num_samples=num_samples, seed=seed),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
