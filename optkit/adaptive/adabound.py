"""AdaBound and AMSBound: Adam / AMSGrad with dynamic bounds on the step size.

Luo, Xiong, Liu & Sun, "Adaptive Gradient Methods with Dynamic Bound of
Learning Rate", arXiv:1902.09843 (ICLR 2019), Algorithms 2 (AdaBound) and 3
(AMSBound). Official code: Luolc/AdaBound. With t = count + 1, eta_t the
learning rate at this step and eta_0 the first positive learning rate seen::

  m_t   = b1 m_{t-1} + (1 - b1) g_t
  v_t   = b2 v_{t-1} + (1 - b2) g_t^2
  AMSBound: vmax_t = max(vmax_{t-1}, v_t);  V_t = vmax_t  (AdaBound: V_t = v_t)
  f_t   = final_lr * eta_t / eta_0                  # the final lr follows the schedule
  lower = f_t (1 - 1 / (gamma t + 1));  upper = f_t (1 + 1 / (gamma t))
  bounds='code' (default; official code and pytorch_optimizer):
    rate_t = clip(eta_t sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(V_t + eps_root) + eps), lower, upper)
  bounds='paper' (Algorithm 2/3: no bias correction, clipped rate divided by sqrt(t)):
    rate_t = clip(eta_t / (sqrt(V_t + eps_root) + eps), lower, upper) / sqrt(t)
  u_t   = rate_t * m_t                              # what scale_by_adabound returns
  x_t   = x_{t-1} - u_t - eta_t lambda x_{t-1}      # adabound: lambda = weight_decay

Paper -> code: alpha -> ``learning_rate`` (eta_t), the bound functions'
limit (0.1 in the paper's eta_l / eta_u) -> ``final_lr``, the bounds'
convergence speed (1 - beta_2 in the paper's example) -> ``gamma``, beta_1 ->
``b1``, beta_2 -> ``b2``, m_t -> ``state.mu``, v_t -> ``state.nu``, v_hat_t ->
``state.nu_max`` (AMSBound), eta_0 -> ``state.base_lr``, t -> ``state.count`` + 1.

Defaults (official code; the paper's experiments): alpha = 1e-3 (required
argument here), final_lr = 0.1, gamma = 1e-3 (equal to the paper's 1 - beta_2
for beta_2 = 0.999), b1 = 0.9, b2 = 0.999, eps = 1e-8.

The learning rate lives inside the direction (catalog): the bounds clip the
per-coordinate step size alpha_t / sqrt(V_t), so ``scale_by_adabound`` takes
``learning_rate`` and returns the full step in the positive-gradient
convention (``x <- x - u``); ``adabound`` does NOT append
``optax.scale_by_learning_rate``, it appends ``optax.scale(-1)``.

Differences between the references, and the choices:
* Paper vs code: the paper's Algorithm 2 has no bias correction and divides
  the clipped rate by sqrt(t); the official code and pytorch_optimizer
  bias-correct (efficient form) and do not divide. Default: the code
  (``bounds='code'``); ``bounds='paper'`` gives the algorithm as printed.
* eps: added to sqrt(v) BEFORE bias correction in both codes (the efficient
  form); pytorch_optimizer 4.1.0 also adds 1e-15 to v inside the root, for
  AdaBound and AMSBound alike: ``eps_root=1e-15`` reproduces it; the default
  ``eps_root=0`` is the official code.
* The final lr follows the lr schedule: f_t = final_lr eta_t / eta_0, with
  eta_0 the first positive learning rate seen (kept in ``state.base_lr``;
  pytorch_optimizer resets a zero base lr the same way, so a warm-up from 0
  works). This also holds under ``optax.inject_hyperparams`` with a scheduled
  lr, where the factory only ever sees the current value.
* Weight decay: decoupled, x <- x (1 - eta_t lambda), as pytorch_optimizer's
  default; the official code adds lambda x to the gradient (coupled L2):
  ``optax.chain(optax.add_decayed_weights(lambda), optkit.scale_by_adabound(...),
  optax.scale(-1.0))`` builds that.

Numerics: m_t keeps the params' dtype unless ``mu_dtype`` is given; v_t and
vmax_t are float32 (or wider). The bias corrections 1 - b^t are formed as
-expm1(t log1p(-(1 - b))) with 1 - b in double precision, as accurate as the
references' float64 ones (float32(0.999) would be 1.3e-5 relative off in
1 - b2^t).

Pitfalls: at t = 1 the upper bound is f (1 + 1/gamma) ~ 1000 f, effectively
unbounded; ``gamma = 0`` gives the bounds [0, inf) (Adam in the efficient
form). A zero denominator (``eps = 0``, V = 0) gives the upper bound as rate and
a zero update (m = 0 there).

UNSURE (catalog): none beyond the paper/code difference above. Decided here:
the paper's decaying beta_{1t} is not offered (constant ``b1``, as both codes).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

BOUNDS = ("code", "paper")


class ScaleByAdaBoundState(NamedTuple):
  """State of AdaBound / AMSBound."""
  count: jax.Array       # int32, shape (): t - 1
  base_lr: jax.Array     # float32, shape (): eta_0, first positive lr seen (0 before)
  mu: optax.Updates      # m_t, params-shaped; dtype mu_dtype or the params'
  nu: optax.Updates      # v_t, params-shaped; float32 (or wider)
  nu_max: optax.Updates  # v_hat_t = max_s v_s (AMSBound), params-shaped float32; () for AdaBound


def _validate(name, learning_rate, final_lr, gamma, b1, b2, eps, eps_root, bounds):
  validate.learning_rate(name, learning_rate)
  validate.non_negative(name, final_lr=final_lr, gamma=gamma, eps=eps, eps_root=eps_root)
  validate.unit_interval(name, b1=b1, b2=b2)
  validate.one_of(name, "bounds", bounds, BOUNDS)


def _scale_by_adabound(name, learning_rate, final_lr, gamma, b1, b2, eps, amsbound,
                       eps_root, bounds, mu_dtype):
  _validate(name, learning_rate, final_lr, gamma, b1, b2, eps, eps_root, bounds)
  mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

  def init_fn(params):
    mu = jax.tree.map(lambda p: jnp.zeros(
        jnp.shape(p), jnp.result_type(p) if mu_dtype is None else mu_dtype), params)
    return ScaleByAdaBoundState(
        count=jnp.zeros([], jnp.int32), base_lr=jnp.zeros([], jnp.float32), mu=mu,
        nu=numerics.stat_zeros(params), nu_max=numerics.stat_zeros(params) if amsbound else ())

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure(name, updates, state.mu)
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    lr = jnp.asarray(lr, jnp.float32)  # eta_t (schedule at count, optax convention)
    base_lr = jnp.where(state.base_lr > 0, state.base_lr, lr)  # eta_0
    ratio = jnp.where(base_lr > 0, lr / jnp.where(base_lr > 0, base_lr, 1.0), 0.0)
    count_inc = optax.safe_increment(state.count)
    t = count_inc.astype(jnp.float32)

    f = jnp.asarray(final_lr, jnp.float32) * ratio
    gt = jnp.asarray(gamma, jnp.float32) * t
    lower = f * (1 - 1 / (gt + 1))
    upper = jnp.where(gt > 0, f * (1 + 1 / jnp.where(gt > 0, gt, 1.0)), jnp.inf)

    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(
        optax.tree.cast_like(updates, state.nu), state.nu, b2, 2)
    if amsbound:
      nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
      v_eff = nu_max
    else:
      nu_max = ()
      v_eff = nu

    if bounds == "code":
      bc1 = numerics.bias_correction(b1, t)
      bc2 = numerics.bias_correction(b2, t)
      step = lr * jnp.sqrt(bc2) / bc1
    else:
      step = lr

    def leaf(m, v):
      den = jnp.sqrt(v + eps_root) + eps
      rate = jnp.where(den > 0, step / jnp.where(den > 0, den, 1.0), upper)
      rate = jnp.clip(rate, lower, upper)
      if bounds == "paper":
        rate = rate / jnp.sqrt(t)
      m32 = m.astype(v.dtype)
      return jnp.where(m32 == 0, 0.0, rate * m32).astype(v.dtype)

    direction = jax.tree.map(leaf, mu, v_eff)
    direction = optax.tree.cast_like(direction, updates)
    new_state = ScaleByAdaBoundState(
        count=count_inc, base_lr=base_lr.astype(jnp.float32),
        mu=optax.tree.cast_like(mu, state.mu),
        nu=optax.tree.cast_like(nu, state.nu),
        nu_max=optax.tree.cast_like(nu_max, state.nu_max) if amsbound else ())
    return direction, new_state

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_adabound(learning_rate: optax.ScalarOrSchedule,
                      final_lr: float = 0.1,
                      gamma: float = 1e-3,
                      b1: float = 0.9,
                      b2: float = 0.999,
                      eps: float = 1e-8,
                      *,
                      amsbound: bool = False,
                      eps_root: float = 0.0,
                      bounds: str = "code",
                      mu_dtype: Optional[Any] = None) -> optax.GradientTransformation:
  r"""AdaBound's step (learning rate included), Algorithm 2 of Luo et al.

  .. math::
    u_t = \mathrm{clip}\Big(\frac{\eta_t\sqrt{1-\beta_2^t}}{(1-\beta_1^t)
    (\sqrt{v_t}+\epsilon)},\ \eta_l(t),\ \eta_u(t)\Big)\odot m_t,\quad
    \eta_l(t) = f_t\Big(1-\frac{1}{\gamma t+1}\Big),\
    \eta_u(t) = f_t\Big(1+\frac{1}{\gamma t}\Big).

  The returned update is the whole step in the positive-gradient convention:
  apply it as ``x - u`` (``optax.scale(-1.0)``), not through
  ``scale_by_learning_rate``.

  Args:
    learning_rate: alpha, a number or an optax schedule (official: 1e-3).
    final_lr: the SGD learning rate both bounds tend to (official: 0.1);
      scaled by eta_t / eta_0 when the lr follows a schedule.
    gamma: convergence speed of the bounds (official: 1e-3); 0 gives [0, inf).
    b1: beta_1 (0.9).
    b2: beta_2 (0.999).
    eps: added to sqrt(v) before bias correction (1e-8).
    amsbound: use vmax_t = max(vmax_{t-1}, v_t) (AMSBound, Algorithm 3).
    eps_root: added to v inside the root (0; pytorch_optimizer: 1e-15).
    bounds: ``'code'`` (official code, default) or ``'paper'`` (no bias
      correction, clipped rate divided by sqrt(t)).
    mu_dtype: dtype of the first-moment buffer; None keeps the params' dtype.

  Returns:
    An ``optax.GradientTransformation`` with state ``ScaleByAdaBoundState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.adaptive.scale_by_adabound(0.1, final_lr=0.01, gamma=1.0, eps=0.0)
    >>> g = jnp.array([4.0, -1.0])
    >>> u, s = tx.update(g, tx.init(g))  # m_1 = 0.1 g; rates 0.25, 1 clipped to 0.02
    >>> u
    Array([ 0.008, -0.002], dtype=float32)

  References:
    Luo, Xiong, Liu & Sun, Adaptive Gradient Methods with Dynamic Bound of
    Learning Rate, https://arxiv.org/abs/1902.09843
  """
  return _scale_by_adabound("amsbound" if amsbound else "adabound", learning_rate, final_lr,
                            gamma, b1, b2, eps, amsbound, eps_root, bounds, mu_dtype)


def _lr_times(learning_rate, weight_decay):
  """eta_t * lambda as a number or a schedule (decoupled decay scaled by the lr)."""
  if callable(learning_rate) or callable(weight_decay):
    lr_fn = learning_rate if callable(learning_rate) else (lambda _: learning_rate)
    wd_fn = weight_decay if callable(weight_decay) else (lambda _: weight_decay)
    return lambda count: lr_fn(count) * wd_fn(count)
  if isinstance(weight_decay, (int, float)) and weight_decay == 0:
    return 0.0
  return learning_rate * weight_decay


def _alias(name, learning_rate, final_lr, gamma, b1, b2, eps, weight_decay, mask, amsbound,
           eps_root, bounds, mu_dtype):
  _validate(name, learning_rate, final_lr, gamma, b1, b2, eps, eps_root, bounds)
  validate.non_negative(name, weight_decay=weight_decay)
  return optax.chain(
      _scale_by_adabound(name, learning_rate, final_lr, gamma, b1, b2, eps, amsbound,
                         eps_root, bounds, mu_dtype),
      optax.add_decayed_weights(_lr_times(learning_rate, weight_decay), mask),
      optax.scale(-1.0),
  )


def adabound(learning_rate: optax.ScalarOrSchedule,
             final_lr: float = 0.1,
             gamma: float = 1e-3,
             b1: float = 0.9,
             b2: float = 0.999,
             eps: float = 1e-8,
             weight_decay: optax.ScalarOrSchedule = 0.0,
             mask: Optional[Any] = None,
             *,
             amsbound: bool = False,
             eps_root: float = 0.0,
             bounds: str = "code",
             mu_dtype: Optional[Any] = None) -> optax.GradientTransformationExtraArgs:
  r"""AdaBound (Adam whose per-coordinate step is clipped to bounds tending to
  ``final_lr``), with optional decoupled weight decay.

  .. math::
    x_t = x_{t-1} - \mathrm{clip}\Big(\frac{\eta_t\sqrt{1-\beta_2^t}}{(1-\beta_1^t)
    (\sqrt{v_t}+\epsilon)},\ \eta_l(t),\ \eta_u(t)\Big)\odot m_t - \eta_t\lambda x_{t-1}.

  With ``eps_root=1e-15`` it reproduces pytorch_optimizer 4.1.0 ``AdaBound``
  (``weight_decouple=True``).

  Args:
    learning_rate: alpha, a number or an optax schedule (official: 1e-3).
    final_lr: limit of both bounds (official: 0.1).
    gamma: convergence speed of the bounds (official: 1e-3).
    b1: beta_1 (0.9).
    b2: beta_2 (0.999).
    eps: added to sqrt(v) before bias correction (1e-8).
    weight_decay: lambda, decoupled decay scaled by eta_t (0: AdaBound itself).
    mask: optional tree or callable selecting the decayed params.
    amsbound: AMSBound (running max of v).
    eps_root: added to v inside the root (0; pytorch_optimizer: 1e-15).
    bounds: ``'code'`` (default) or ``'paper'``.
    mu_dtype: dtype of the first-moment buffer.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.adaptive.adabound(learning_rate=0.1, eps=0.0)
    >>> p = jnp.zeros(2)
    >>> opt.update(jnp.array([0.5, -2.0]), opt.init(p), p)[0]  # t = 1: Adam's step
    Array([-0.1,  0.1], dtype=float32)

  References:
    Luo, Xiong, Liu & Sun, Adaptive Gradient Methods with Dynamic Bound of
    Learning Rate, https://arxiv.org/abs/1902.09843
  """
  return _alias("amsbound" if amsbound else "adabound", learning_rate, final_lr, gamma, b1,
                b2, eps, weight_decay, mask, amsbound, eps_root, bounds, mu_dtype)


def amsbound(learning_rate: optax.ScalarOrSchedule,
             final_lr: float = 0.1,
             gamma: float = 1e-3,
             b1: float = 0.9,
             b2: float = 0.999,
             eps: float = 1e-8,
             weight_decay: optax.ScalarOrSchedule = 0.0,
             mask: Optional[Any] = None,
             *,
             eps_root: float = 0.0,
             bounds: str = "code",
             mu_dtype: Optional[Any] = None) -> optax.GradientTransformationExtraArgs:
  r"""AMSBound: ``adabound(..., amsbound=True)`` (Algorithm 3 of Luo et al.).

  .. math::
    \hat v_t = \max(\hat v_{t-1}, v_t),\quad
    x_t = x_{t-1} - \mathrm{clip}\Big(\frac{\eta_t\sqrt{1-\beta_2^t}}{(1-\beta_1^t)
    (\sqrt{\hat v_t}+\epsilon)},\ \eta_l(t),\ \eta_u(t)\Big)\odot m_t - \eta_t\lambda x_{t-1}.

  Args:
    learning_rate, final_lr, gamma, b1, b2, eps, weight_decay, mask, eps_root,
    bounds, mu_dtype: as for ``adabound``.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.adaptive.amsbound(learning_rate=0.1, eps=0.0)
    >>> p = jnp.zeros(2)
    >>> opt.update(jnp.array([0.5, -2.0]), opt.init(p), p)[0]
    Array([-0.1,  0.1], dtype=float32)

  References:
    Luo, Xiong, Liu & Sun, Adaptive Gradient Methods with Dynamic Bound of
    Learning Rate, https://arxiv.org/abs/1902.09843
  """
  return _alias("amsbound", learning_rate, final_lr, gamma, b1, b2, eps, weight_decay, mask,
                True, eps_root, bounds, mu_dtype)
