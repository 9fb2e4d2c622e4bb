"""AMSGrad and AdamNC.

Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", arXiv:1904.09237
(ICLR 2018), Algorithm 2 (AMSGrad) and Sec. 5 (AdamNC). With t = count + 1::

  m_t   = b1 m_{t-1} + (1 - b1) g_t
  v_t   = b2 v_{t-1} + (1 - b2) g_t^2
  AMSGrad (default, optax order):
    v_eff = v_t / (1 - b2^t) if bias_correction_nu else v_t
    vmax_t = max(vmax_{t-1}, v_eff);       v_hat = vmax_t
  AMSGrad (max_before_bias_correction=True, torch.optim.Adam(amsgrad=True)):
    vmax_t = max(vmax_{t-1}, v_t);         v_hat = vmax_t / (1 - b2^t)
  m_eff = m_t / (1 - b1^t) if bias_correction_mu else m_t
  u_t   = m_eff / (sqrt(v_hat + eps_root) + eps)

  AdamNC: b2_t = 1 - 1/t, i.e. v_t = (1/t) sum_{i<=t} g_i^2 (no max needed:
    with the paper's alpha_t = alpha / sqrt(t), alpha_t / sqrt(v_t) =
    alpha / sqrt(sum g_i^2) is already non-increasing).
    u_t = m_eff / (sqrt(v_t) + eps).

Paper -> code: alpha_t -> ``learning_rate`` (a schedule for alpha/sqrt(t)),
beta_1 -> ``b1``, beta_2 -> ``b2``, m_t -> ``state.mu``, v_t -> ``state.nu``,
v_hat_t -> ``state.nu_max``, t -> ``state.count`` + 1.

Defaults: b1 = 0.9, b2 = 0.999, eps = 1e-8 (optax / Adam's paper; Reddi et al.
use b1 = 0.9 and b2 in {0.99, 0.999} in Sec. 6). The paper's Algorithm 2 has no
bias correction and alpha_t = alpha / sqrt(t): ``bias_correction_mu=False,
bias_correction_nu=False`` with the schedule
``lambda count: alpha / jnp.sqrt(count + 1)`` gives it exactly.

optax 0.2.8's ``scale_by_amsgrad`` is faithful (max over the bias-corrected v,
``bias_correction_mu/nu`` flags) and is re-used for the default order. optkit
adds: validation naming the algorithm, the tree check, float32 (or wider)
second moments for low-precision params, updates cast to the gradient's dtype,
dtype-stable state, the PyTorch order of max and bias correction
(``max_before_bias_correction=True``; the two orders differ in the first few
hundred steps) and AdamNC (not in optax).

UNSURE (catalog: none for the rule). Decided here:
- AdamNC's alpha/sqrt(t) is NOT built in (as for AMSGrad): ``learning_rate``
  takes it as a schedule, so the same factory serves both uses.
- AdamNC's first moment is bias-corrected by default (``bias_correction_mu=
  True``, consistent with ``amsgrad``); the paper's form is
  ``bias_correction_mu=False``. v_t needs no correction (it is a mean).
- AdamNC keeps a constant b1; the paper's optional decaying b1_t is omitted.
- ``scale_by_adamnc`` is public (the catalog names only ``adamnc``) so that the
  record has a direction, like every other optimizer.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import tree as tree_lib
from optkit.core import validate

# optax's state: ``count`` (int32, shape ()), ``mu`` (m_t, dtype ``mu_dtype``
# or the params'), ``nu`` (v_t) and ``nu_max`` (v_hat_t), both params-shaped
# float32 (or the params' dtype where wider).
ScaleByAmsgradState = optax.ScaleByAmsgradState


class ScaleByAdamNCState(NamedTuple):
  """State of AdamNC."""
  count: jax.Array      # int32, shape (): t - 1
  mu: optax.Updates     # m_t, params-shaped; dtype mu_dtype or the params'
  nu: optax.Updates     # v_t = mean of g_i^2 over i <= t; params-shaped, float32+


def _stat_zeros(params):
  return jax.tree.map(
      lambda p: jnp.zeros(jnp.shape(p), jnp.promote_types(jnp.result_type(p), jnp.float32)),
      params)


def _divide(mu_hat, nu_hat, eps, eps_root):
  return jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)


def scale_by_amsgrad(b1: float = 0.9,
                     b2: float = 0.999,
                     eps: float = 1e-8,
                     eps_root: float = 0.0,
                     mu_dtype: Optional[Any] = None,
                     *,
                     bias_correction_mu: bool = True,
                     bias_correction_nu: bool = True,
                     max_before_bias_correction: bool = False
                     ) -> optax.GradientTransformation:
  r"""AMSGrad's direction (no learning rate), Algorithm 2 of Reddi et al.

  .. math::
    \hat v_t = \max(\hat v_{t-1}, v_t),\quad
    u_t = \frac{m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}
    \quad\text{(with the optional bias corrections)}.

  Args:
    b1: beta_1 (0.9).
    b2: beta_2 (0.999).
    eps: added to sqrt(v_hat) (1e-8).
    eps_root: added inside the root (0).
    mu_dtype: dtype of the first-moment buffer; None keeps the params' dtype.
    bias_correction_mu: divide m_t by 1 - b1^t (False: the paper).
    bias_correction_nu: correct v_t by 1 - b2^t (False: the paper).
    max_before_bias_correction: take the max of the raw v_t and correct it
      afterwards (``torch.optim.Adam(amsgrad=True)``); False takes the max of
      the corrected v_t (optax). Equal when ``bias_correction_nu=False``.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.adaptive.scale_by_amsgrad(eps=0.0)
    >>> g = jnp.array([0.5, -2.0])
    >>> s = tx.init(g)
    >>> u, s = tx.update(g, s)
    >>> u
    Array([ 1., -1.], dtype=float32)
    >>> u, s = tx.update(0.1 * g, s)  # v_hat keeps the large past v
    >>> u
    Array([ 0.526..., -0.526...], dtype=float32)

  References:
    Reddi, Kale & Kumar, On the Convergence of Adam and Beyond,
    https://arxiv.org/abs/1904.09237
  """
  validate.unit_interval("amsgrad", b1=b1, b2=b2)
  validate.non_negative("amsgrad", eps=eps, eps_root=eps_root)
  inner = optax.scale_by_amsgrad(b1=b1, b2=b2, eps=eps, eps_root=eps_root,
                                 mu_dtype=mu_dtype, bias_correction_mu=bias_correction_mu,
                                 bias_correction_nu=bias_correction_nu)

  def init_fn(params):
    state = inner.init(params)
    return state._replace(nu=_stat_zeros(params), nu_max=_stat_zeros(params))

  def torch_order_update(updates, state):
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count_inc = optax.safe_increment(state.count)
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
    mu_hat = optax.tree.bias_correction(mu, b1, count_inc) if bias_correction_mu else mu
    nu_hat = (optax.tree.bias_correction(nu_max, b2, count_inc)
              if bias_correction_nu else nu_max)
    return _divide(mu_hat, nu_hat, eps, eps_root), ScaleByAmsgradState(
        count=count_inc, mu=mu, nu=nu, nu_max=nu_max)

  def update_fn(updates, state, params=None):
    tree_lib.check_same_structure("amsgrad", updates, state.mu)
    if max_before_bias_correction:
      direction, new_state = torch_order_update(updates, state)
    else:
      direction, new_state = inner.update(updates, state, params)
    direction = optax.tree.cast_like(direction, updates)
    new_state = new_state._replace(
        mu=optax.tree.cast_like(new_state.mu, state.mu),
        nu=optax.tree.cast_like(new_state.nu, state.nu),
        nu_max=optax.tree.cast_like(new_state.nu_max, state.nu_max))
    return direction, new_state

  return optax.GradientTransformation(init_fn, update_fn)


def amsgrad(learning_rate: optax.ScalarOrSchedule,
            b1: float = 0.9,
            b2: float = 0.999,
            eps: float = 1e-8,
            eps_root: float = 0.0,
            weight_decay: optax.ScalarOrSchedule = 0.0,
            mask: Optional[Any] = None,
            *,
            mu_dtype: Optional[Any] = None,
            bias_correction_mu: bool = True,
            bias_correction_nu: bool = True,
            max_before_bias_correction: bool = False
            ) -> optax.GradientTransformationExtraArgs:
  r"""AMSGrad, with optional decoupled weight decay.

  .. math::
    x_t = x_{t-1} - \alpha_t\Big(\frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}}
    + \epsilon} + \lambda x_{t-1}\Big),\quad \hat v_t = \max(\hat v_{t-1}, v_t).

  Equal to ``optax.amsgrad`` for ``weight_decay=0`` in float32. For the paper's
  Algorithm 2 pass ``bias_correction_mu=False, bias_correction_nu=False`` and
  ``learning_rate=lambda t: alpha / jnp.sqrt(t + 1)``.

  Args:
    learning_rate: alpha_t, a number or an optax schedule.
    b1: beta_1 (0.9).
    b2: beta_2 (0.999).
    eps: added to sqrt(v_hat) (1e-8).
    eps_root: added inside the root (0).
    weight_decay: lambda, decoupled decay (0: AMSGrad itself).
    mask: optional tree or callable selecting the decayed params.
    mu_dtype: dtype of the first-moment buffer.
    bias_correction_mu: divide m_t by 1 - b1^t.
    bias_correction_nu: correct v_t by 1 - b2^t.
    max_before_bias_correction: PyTorch's order (max of raw v, then correct).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.adaptive.amsgrad(learning_rate=0.1, eps=0.0)
    >>> p = jnp.zeros(2)
    >>> opt.update(jnp.array([0.3, -2.0]), opt.init(p), p)[0]
    Array([-0.1,  0.1], dtype=float32)

  References:
    Reddi, Kale & Kumar, On the Convergence of Adam and Beyond,
    https://arxiv.org/abs/1904.09237
  """
  validate.learning_rate("amsgrad", learning_rate)
  validate.non_negative("amsgrad", weight_decay=weight_decay)
  return optax.chain(
      scale_by_amsgrad(b1, b2, eps, eps_root, mu_dtype,
                       bias_correction_mu=bias_correction_mu,
                       bias_correction_nu=bias_correction_nu,
                       max_before_bias_correction=max_before_bias_correction),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )


def scale_by_adamnc(b1: float = 0.9,
                    eps: float = 1e-8,
                    *,
                    mu_dtype: Optional[Any] = None,
                    bias_correction_mu: bool = True) -> optax.GradientTransformation:
  r"""AdamNC's direction: Adam with b2_t = 1 - 1/t (Reddi et al., Sec. 5).

  .. math::
    v_t = \Big(1-\frac1t\Big) v_{t-1} + \frac1t g_t^2 = \frac1t\sum_{i\le t} g_i^2,\quad
    u_t = \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t} + \epsilon}.

  Args:
    b1: beta_1, constant (0.9).
    eps: added to sqrt(v_t) (1e-8).
    mu_dtype: dtype of the first-moment buffer; None keeps the params' dtype.
    bias_correction_mu: divide m_t by 1 - b1^t (False: the paper's form).

  Returns:
    An ``optax.GradientTransformation`` with state ``ScaleByAdamNCState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.adaptive.scale_by_adamnc(b1=0.0, eps=0.0)
    >>> s = tx.init(jnp.zeros(1))
    >>> _, s = tx.update(jnp.array([3.0]), s)
    >>> u, s = tx.update(jnp.array([1.0]), s)
    >>> u, s.nu  # v = (9 + 1) / 2
    (Array([0.4472...], dtype=float32), Array([5.], dtype=float32))

  References:
    Reddi, Kale & Kumar, On the Convergence of Adam and Beyond,
    https://arxiv.org/abs/1904.09237
  """
  validate.unit_interval("adamnc", b1=b1)
  validate.non_negative("adamnc", eps=eps)
  mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

  def init_fn(params):
    mu = jax.tree.map(lambda p: jnp.zeros(
        jnp.shape(p), jnp.result_type(p) if mu_dtype is None else mu_dtype),
                      params)
    return ScaleByAdamNCState(count=jnp.zeros([], jnp.int32), mu=mu, nu=_stat_zeros(params))

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure("adamnc", updates, state.mu)
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    count_inc = optax.safe_increment(state.count)
    inv_t = 1.0 / count_inc.astype(jnp.float32)  # 1 - b2_t, t = count + 1
    nu = jax.tree.map(
        lambda g, v: v + inv_t.astype(v.dtype) * (jnp.square(g.astype(v.dtype)) - v),
        updates, state.nu)  # running mean of g^2
    mu_hat = optax.tree.bias_correction(mu, b1, count_inc) if bias_correction_mu else mu
    direction = _divide(mu_hat, nu, eps, 0.0)
    direction = optax.tree.cast_like(direction, updates)
    return direction, ScaleByAdamNCState(count=count_inc,
                                         mu=optax.tree.cast_like(mu, state.mu),
                                         nu=optax.tree.cast_like(nu, state.nu))

  return optax.GradientTransformation(init_fn, update_fn)


def adamnc(learning_rate: optax.ScalarOrSchedule,
           b1: float = 0.9,
           eps: float = 1e-8,
           weight_decay: optax.ScalarOrSchedule = 0.0,
           mask: Optional[Any] = None,
           *,
           mu_dtype: Optional[Any] = None,
           bias_correction_mu: bool = True) -> optax.GradientTransformationExtraArgs:
  r"""AdamNC: Adam with the non-constant b2_t = 1 - 1/t (Reddi et al., Sec. 5).

  .. math::
    x_t = x_{t-1} - \alpha_t\Big(\frac{\hat m_t}{\sqrt{v_t} + \epsilon}
    + \lambda x_{t-1}\Big),\quad v_t = \frac1t\sum_{i\le t} g_i^2.

  With the paper's ``learning_rate=lambda t: alpha / jnp.sqrt(t + 1)`` the
  effective step alpha_t / sqrt(v_t) = alpha / sqrt(sum_i g_i^2) never grows,
  so no max is needed (with b1 = 0 it is AdaGrad).

  Args:
    learning_rate: alpha_t, a number or an optax schedule.
    b1: beta_1 (0.9).
    eps: added to sqrt(v_t) (1e-8).
    weight_decay: lambda, decoupled decay (0: AdamNC itself).
    mask: optional tree or callable selecting the decayed params.
    mu_dtype: dtype of the first-moment buffer.
    bias_correction_mu: divide m_t by 1 - b1^t (False: the paper's form).

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.adaptive.adamnc(learning_rate=0.1, eps=0.0)
    >>> p = jnp.zeros(2)
    >>> opt.update(jnp.array([0.3, -2.0]), opt.init(p), p)[0]
    Array([-0.1,  0.1], dtype=float32)

  References:
    Reddi, Kale & Kumar, On the Convergence of Adam and Beyond,
    https://arxiv.org/abs/1904.09237
  """
  validate.learning_rate("adamnc", learning_rate)
  validate.non_negative("adamnc", weight_decay=weight_decay)
  return optax.chain(
      scale_by_adamnc(b1, eps, mu_dtype=mu_dtype, bias_correction_mu=bias_correction_mu),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
