"""Adam and AdaMax.

Kingma & Ba, "Adam: A Method for Stochastic Optimization", arXiv:1412.6980,
Algorithm 1 (Adam) and Algorithm 2 (AdaMax). With t = count + 1::

  Adam:    m_t = b1 m_{t-1} + (1 - b1) g_t                 # first moment
           v_t = b2 v_{t-1} + (1 - b2) g_t^2               # second raw moment
           u_t = (m_t / (1 - b1^t)) / (sqrt(v_t / (1 - b2^t) + eps_root) + eps)
  AdaMax:  m_t = b1 m_{t-1} + (1 - b1) g_t
           u_t = max(b2 u_{t-1}, |g_t| + eps)              # eps inside the max (optax)
           step = (m_t / (1 - b1^t)) / u_t                 # no correction on u_t
  x_t = x_{t-1} - alpha (step + lambda x_{t-1})            # lambda = weight_decay

Paper -> code: alpha -> ``learning_rate``, beta_1 -> ``b1``, beta_2 -> ``b2``,
epsilon -> ``eps``, m_t -> ``state.mu``, v_t (u_t for AdaMax) -> ``state.nu``,
t -> ``state.count`` (0 in the fresh state; the first update uses t = 1).

Defaults (paper, Sec. 2 and Alg. 2): alpha = 1e-3 (AdaMax 2e-3), b1 = 0.9,
b2 = 0.999, eps = 1e-8. ``weight_decay`` (decoupled, AdamW, Loshchilov &
Hutter arXiv:1711.05101) defaults to 0, which is Adam itself.

eps placement: eps is added to sqrt(v_hat) (the bias-corrected root), as in
optax and ``torch.optim.Adam`` (which divides sqrt(v) by sqrt(1 - b2^t) and
then adds eps). The paper's "efficient" form, alpha_t = alpha
sqrt(1 - b2^t)/(1 - b1^t) with eps_hat added to sqrt(v), is the same update
with eps_hat = eps sqrt(1 - b2^t); optkit does not offer it (the catalog lists
nothing missing here).

optax 0.2.8's ``scale_by_adam`` / ``scale_by_adamax`` are faithful and are
re-used. optkit adds: construction-time validation naming the algorithm, a
clear error for a gradient tree that does not match the state, float32 (or
wider) second-moment statistics for low-precision params (optax keeps ``nu`` in
the params' dtype, so bf16 params get a bf16 ``v``), updates cast back to the
gradient's dtype (optax returns float32 updates for bf16 grads when
``mu_dtype=float32``) and state dtypes that never drift (also under
``inject_hyperparams``, where the betas are float32 arrays). For float32 params
the numbers are exactly optax's.

Rounding (inherited from optax, kept for bitwise equality): optax forms
``1 - b2`` in float64 for the moment update but ``1 - b2**t`` from the float32
b2 for the bias correction; with b2 = 0.999 these differ by 1.3e-5 relative,
so the first step is 0.9999934 sign(g), not sign(g). torch forms the
correction in float64; over 40 steps at lr 0.05 the trajectories drift apart by
about 1.2e-5 (see tests/adaptive/test_adam.py).

Zero gradients with ``eps = 0`` give 0/0; keep eps > 0 (the default) unless
the gradients are known to be nonzero.

UNSURE (catalog): none. Decided here: ``adamax``'s learning rate is required
(lr first, as for every optkit optimizer and optax.adamax); the paper's 2e-3 is
documented instead of being a default.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import tree as tree_lib
from optkit.core import validate

# optax's state: ``count`` (int32, shape ()), ``mu`` (params-shaped m_t, dtype
# ``mu_dtype`` or the params'), ``nu`` (params-shaped v_t, or AdaMax's u_t;
# float32, or the params' dtype if wider).
ScaleByAdamState = optax.ScaleByAdamState


def _stat_zeros(params):
  """Zeros like ``params`` in float32, or the params' dtype where it is wider."""
  return jax.tree.map(
      lambda p: jnp.zeros(jnp.shape(p), jnp.promote_types(jnp.result_type(p), jnp.float32)),
      params)


def _wrap(name, inner):
  """optax ``inner`` with f32 statistics, a tree check and dtype-stable outputs."""

  def init_fn(params):
    return inner.init(params)._replace(nu=_stat_zeros(params))

  def update_fn(updates, state, params=None):
    tree_lib.check_same_structure(name, updates, state.mu)
    direction, new_state = inner.update(updates, state, params)
    direction = optax.tree.cast_like(direction, updates)
    new_state = new_state._replace(mu=optax.tree.cast_like(new_state.mu, state.mu),
                                   nu=optax.tree.cast_like(new_state.nu, state.nu))
    return direction, new_state

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_adam(b1: float = 0.9,
                  b2: float = 0.999,
                  eps: float = 1e-8,
                  eps_root: float = 0.0,
                  mu_dtype: Optional[Any] = None,
                  *,
                  nesterov: bool = False) -> optax.GradientTransformation:
  r"""Adam's direction (no learning rate), Algorithm 1 of Kingma & Ba.

  .. math::
    \hat m_t = \frac{m_t}{1-\beta_1^t},\quad \hat v_t = \frac{v_t}{1-\beta_2^t},\quad
    u_t = \frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}} + \epsilon}.

  Args:
    b1: beta_1, first-moment decay (paper: 0.9).
    b2: beta_2, second-moment decay (paper: 0.999).
    eps: epsilon, added to sqrt(v_hat) (paper: 1e-8).
    eps_root: added inside the root (0 in the paper; > 0 helps when
      differentiating through the update).
    mu_dtype: dtype of the first-moment buffer; None keeps the params' dtype.
      The second moment is always float32 (or wider).
    nesterov: Nadam's Nesterov form (Dozat 2016), as in optax.

  Returns:
    An ``optax.GradientTransformation`` (optax's ``scale_by_adam`` with checks
    and dtype casts).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.adaptive.scale_by_adam(eps=0.0)
    >>> g = jnp.array([0.5, -2.0, 3.0])
    >>> tx.update(g, tx.init(g))[0]  # first step: sign(g)
    Array([ 1., -1.,  1.], dtype=float32)

  References:
    Kingma & Ba, Adam: A Method for Stochastic Optimization,
    https://arxiv.org/abs/1412.6980
  """
  validate.unit_interval("adam", b1=b1, b2=b2)
  validate.non_negative("adam", eps=eps, eps_root=eps_root)
  return _wrap("adam", optax.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root,
                                           mu_dtype=mu_dtype, nesterov=nesterov))


def adam(learning_rate: optax.ScalarOrSchedule,
         b1: float = 0.9,
         b2: float = 0.999,
         eps: float = 1e-8,
         eps_root: float = 0.0,
         weight_decay: optax.ScalarOrSchedule = 0.0,
         mask: Optional[Any] = None,
         *,
         mu_dtype: Optional[Any] = None,
         nesterov: bool = False) -> optax.GradientTransformationExtraArgs:
  r"""Adam, with optional decoupled weight decay (AdamW when ``weight_decay > 0``).

  .. math::
    x_t = x_{t-1} - \alpha\Big(\frac{\hat m_t}{\sqrt{\hat v_t + \epsilon_{root}}
    + \epsilon} + \lambda x_{t-1}\Big).

  Equal to ``optax.adam`` (``weight_decay=0``) and ``optax.adamw`` in float32.

  Args:
    learning_rate: alpha, a number or an optax schedule (paper: 1e-3).
    b1: beta_1 (paper: 0.9).
    b2: beta_2 (paper: 0.999).
    eps: epsilon, added to sqrt(v_hat) (paper: 1e-8).
    eps_root: added inside the root (paper: 0).
    weight_decay: lambda, decoupled decay (0: plain Adam; a number or schedule).
    mask: optional tree or callable selecting the decayed params.
    mu_dtype: dtype of the first-moment buffer.
    nesterov: use Nadam's Nesterov momentum.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.adaptive.adam(learning_rate=0.1, eps=0.0)
    >>> p = jnp.array([1.0, 1.0, 1.0])
    >>> opt.update(jnp.array([0.3, -2.0, 5.0]), opt.init(p), p)[0]
    Array([-0.1,  0.1, -0.1], dtype=float32)

  References:
    Kingma & Ba, Adam: A Method for Stochastic Optimization,
    https://arxiv.org/abs/1412.6980
  """
  validate.learning_rate("adam", learning_rate)
  validate.non_negative("adam", weight_decay=weight_decay)
  return optax.chain(
      scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )


def scale_by_adamax(b1: float = 0.9,
                    b2: float = 0.999,
                    eps: float = 1e-8) -> optax.GradientTransformation:
  r"""AdaMax's direction (no learning rate), Algorithm 2 of Kingma & Ba.

  .. math::
    u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon),\quad
    \text{step} = \frac{m_t}{(1-\beta_1^t)\,u_t}.

  Args:
    b1: beta_1, first-moment decay (paper: 0.9).
    b2: beta_2, decay of the infinity norm (paper: 0.999).
    eps: added to |g| inside the max (optax; keeps u_t > 0 for zero gradients).

  Returns:
    An ``optax.GradientTransformation`` (optax's ``scale_by_adamax`` with
    checks, float32 u_t and dtype casts).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.adaptive.scale_by_adamax(eps=0.0)
    >>> g = jnp.array([0.5, -2.0, 4.0])
    >>> tx.update(g, tx.init(g))[0]
    Array([ 1., -1.,  1.], dtype=float32)

  References:
    Kingma & Ba, Adam: A Method for Stochastic Optimization,
    https://arxiv.org/abs/1412.6980
  """
  validate.unit_interval("adamax", b1=b1, b2=b2)
  validate.non_negative("adamax", eps=eps)
  return _wrap("adamax", optax.scale_by_adamax(b1=b1, b2=b2, eps=eps))


def adamax(learning_rate: optax.ScalarOrSchedule,
           b1: float = 0.9,
           b2: float = 0.999,
           eps: float = 1e-8,
           weight_decay: optax.ScalarOrSchedule = 0.0,
           mask: Optional[Any] = None) -> optax.GradientTransformationExtraArgs:
  r"""AdaMax (Adam with the infinity norm), with optional decoupled weight decay.

  .. math::
    x_t = x_{t-1} - \alpha\Big(\frac{m_t}{(1-\beta_1^t)\,u_t} + \lambda x_{t-1}\Big).

  Equal to ``optax.adamax`` for ``weight_decay=0`` in float32.

  Args:
    learning_rate: alpha, a number or schedule (paper: 2e-3).
    b1: beta_1 (paper: 0.9).
    b2: beta_2 (paper: 0.999).
    eps: added to |g| inside the max (1e-8).
    weight_decay: lambda, decoupled decay (0: AdaMax itself).
    mask: optional tree or callable selecting the decayed params.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.adaptive.adamax(learning_rate=2e-3)
    >>> p = jnp.zeros(2)
    >>> opt.update(jnp.array([1.0, -3.0]), opt.init(p), p)[0]
    Array([-0.002,  0.002], dtype=float32)

  References:
    Kingma & Ba, Adam: A Method for Stochastic Optimization,
    https://arxiv.org/abs/1412.6980
  """
  validate.learning_rate("adamax", learning_rate)
  validate.non_negative("adamax", weight_decay=weight_decay)
  return optax.chain(
      scale_by_adamax(b1, b2, eps),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
