"""Lion: EvoLved Sign Momentum.

Chen, Liang, Huang, Real, Wang, Pham, Dong, Luong, Hsieh, Lu, Le, "Symbolic
Discovery of Optimization Algorithms", arXiv:2302.06675, Program 1 / Alg. 2.

Update (gradient g_t, momentum m, decoupled weight decay lambda, lr eta)::

  c_t     = beta_1 m_{t-1} + (1 - beta_1) g_t      # interpolation
  u_t     = sign(c_t)                              # sign(0) = 0
  x_t     = x_{t-1} - eta (u_t + lambda x_{t-1})    # decoupled decay
  m_t     = beta_2 m_{t-1} + (1 - beta_2) g_t      # momentum, AFTER u_t

Paper -> code: beta_1 -> ``b1``, beta_2 -> ``b2``, lambda -> ``weight_decay``,
eta -> ``learning_rate``, m -> ``state.mu`` (dtype ``mu_dtype``).

Defaults: (b1, b2) = (0.9, 0.99) from the paper (and optax); the paper
recommends (0.95, 0.98) where training is unstable, e.g. for language models.
``weight_decay = 1e-3`` is optax's default (the paper's practical rule: lr
3-10x smaller and lambda 3-10x larger than AdamW's, so that eta*lambda stays
similar).

optax 0.2.8's ``optax.scale_by_lion`` (mode ``'hard'``) is faithful and is
re-used for the paper's form. optkit adds: construction-time validation (optax checks nothing),
a clear error for a gradient tree that does not match the state, and dtype
stability (the update is cast to the gradient's dtype and the momentum to its
stored dtype, so ``mu_dtype=float32`` with bf16 params still gives bf16 updates
and a state whose dtypes never drift), and the faster update order below.

Constraint view (Chen, Liu, Liang, Liu, arXiv:2310.05898; see ``lion_k``): with
``weight_decay = lambda > 0`` and ``eta * lambda <= 1``,
``|x_{t+1}| <= (1 - eta*lambda) |x_t| + eta`` coordinatewise, so the box
``||x||_inf <= 1/lambda`` is invariant and is entered geometrically fast (rate
``1 - eta*lambda``) from outside.

Performance (``from_new_momentum``): the paper computes ``c_t`` from the OLD
momentum and then overwrites it. Under buffer donation XLA then has to copy
``m_{t-1}`` before updating it in place (two fusions read it, one writes it),
which made Lion slower than Adam although it moves less memory. Since
``m_t = beta_2 m_{t-1} + (1 - beta_2) g_t``, the same ``c_t`` is, in exact
arithmetic, ``c_t = r m_t + (1 - r) g_t`` with ``r = beta_1 / beta_2``: a convex
combination when ``beta_2 >= beta_1`` (every published setting), so no
cancellation. optkit updates ``m`` first and reads only ``m_t``: no copy, one
read of ``m`` instead of three, 20-28 bytes per parameter instead of 36 (see
``benchmarks/results/step_time.md``). The default (``from_new_momentum=None``)
uses this form when ``b1`` and ``b2`` are Python numbers with
``0 < b1 <= b2``; otherwise (``b2 < b1``, or hyperparameters given as arrays,
e.g. under ``optax.inject_hyperparams``) it uses the paper's form, which is
exactly optax's. ``from_new_momentum=False`` always gives optax's numbers
bit for bit; the two forms differ only by float rounding of ``c_t``, which can
flip a sign only where ``|c_t|`` is at the rounding level of its two terms.

UNSURE (catalog), decided: which settings use (0.95, 0.98) -- the paper
recommends them when training is unstable (language modelling); defaults stay
(0.9, 0.99).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "lion"

# The state is optax's: ``count`` (int32, shape ()) and ``mu`` (params-shaped
# momentum m_t, dtype ``mu_dtype`` or the params' dtype).
ScaleByLionState = optax.ScaleByLionState


def _python_number(x) -> bool:
  return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def use_new_momentum_form(name: str, b1, b2, from_new_momentum: Optional[bool]) -> bool:
  """Whether ``c_t`` is computed from the updated momentum (see module docstring).

  Shared by ``lion`` and ``lion_k``. ``None`` decides from the values: only
  Python numbers with ``0 < b1 <= b2`` use the new form, so the choice never
  depends on whether an array hyperparameter happens to be concrete or traced.
  """
  if from_new_momentum is None:
    return _python_number(b1) and _python_number(b2) and 0 < b1 <= b2
  if not isinstance(from_new_momentum, bool):
    raise TypeError(f"{name}: `from_new_momentum` must be True, False or None, "
                    f"got {from_new_momentum!r}.")
  if from_new_momentum and _python_number(b1) and _python_number(b2) and not 0 < b1 <= b2:
    raise ValueError(f"{name}: `from_new_momentum=True` needs 0 < b1 <= b2 (c_t is "
                     f"rebuilt from m_t with weight b1/b2), got b1={b1}, b2={b2}.")
  return from_new_momentum


def interpolate_and_update(updates, mu, b1, b2, new_form: bool):
  """Returns ``(c_t, m_t)``: Lion's interpolation and the updated momentum.

  ``c_t = b1 m_{t-1} + (1 - b1) g_t`` (float32 or wider), ``m_t`` in ``mu``'s
  dtype. With ``new_form`` the momentum is updated first and ``c_t`` is read
  from it, ``c_t = (b1/b2) m_t + (1 - b1/b2) g_t``.
  """
  new_mu = optax.tree.update_moment(updates, mu, b2, 1)
  new_mu = optax.tree.cast_like(new_mu, mu)
  if new_form:
    r = b1 / b2
    c = jax.tree.map(lambda g, m: r * m.astype(jnp.promote_types(m.dtype, jnp.float32))
                     + (1.0 - r) * g, updates, new_mu)
  else:
    c = jax.tree.map(lambda g, m: (1.0 - b1) * g + b1 * m, updates, mu)
  return c, new_mu


def scale_by_lion(b1: float = 0.9, b2: float = 0.99, *,
                  mu_dtype: Optional[Any] = None,
                  from_new_momentum: Optional[bool] = None) -> optax.GradientTransformation:
  """Lion's direction ``sign(b1 m + (1 - b1) g)`` (no learning rate, no decay).

  Args:
    b1: beta_1, interpolation between momentum and current gradient (paper: 0.9).
    b2: beta_2, momentum decay, applied after the direction (paper: 0.99).
    mu_dtype: dtype of the momentum buffer; None keeps the params' dtype.
    from_new_momentum: compute ``c_t`` from the updated momentum (faster under
      donation, equal up to float rounding); None: when ``0 < b1 <= b2`` are
      Python numbers. False: optax's numbers bit for bit.

  Returns:
    An ``optax.GradientTransformation`` with optax's ``ScaleByLionState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_lion()
    >>> g = jnp.array([0.5, -2.0, 0.0])
    >>> tx.update(g, tx.init(g))[0]
    Array([ 1., -1.,  0.], dtype=float32)

  References:
    Chen et al., Symbolic Discovery of Optimization Algorithms,
    https://arxiv.org/abs/2302.06675
  """
  validate.unit_interval(_NAME, b1=b1, b2=b2)
  new_form = use_new_momentum_form(_NAME, b1, b2, from_new_momentum)
  inner = optax.scale_by_lion(b1=b1, b2=b2, mu_dtype=mu_dtype, mode="hard")

  def init_fn(params):
    return inner.init(params)

  def update_fn(updates, state, params=None):
    tree_lib.check_same_structure(_NAME, updates, state.mu)
    if new_form:
      c, mu = interpolate_and_update(updates, state.mu, b1, b2, True)
      direction = jax.tree.map(jnp.sign, c)
      new_state = ScaleByLionState(count=optax.safe_increment(state.count), mu=mu)
    else:
      direction, new_state = inner.update(updates, state, params)
      new_state = new_state._replace(mu=optax.tree.cast_like(new_state.mu, state.mu))
    direction = optax.tree.cast_like(direction, updates)  # bf16 grads -> bf16 update
    return direction, new_state

  return optax.GradientTransformation(init_fn, update_fn)


def lion(learning_rate: optax.ScalarOrSchedule,
         b1: float = 0.9,
         b2: float = 0.99,
         weight_decay: optax.ScalarOrSchedule = 1e-3,
         mask: Optional[Any] = None,
         *,
         mu_dtype: Optional[Any] = None,
         from_new_momentum: Optional[bool] = None) -> optax.GradientTransformationExtraArgs:
  r"""The Lion optimizer (EvoLved Sign Momentum) with decoupled weight decay.

  .. math::
    c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
    x_t = x_{t-1} - \eta\,(\mathrm{sign}(c_t) + \lambda x_{t-1}),\quad
    m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t.

  ``optax.lion``'s numbers (bit for bit with ``from_new_momentum=False``).
  With ``weight_decay > 0``
  and ``learning_rate * weight_decay <= 1`` the iterates enter and stay in the
  box ``||x||_inf <= 1 / weight_decay`` (the constraint view of arXiv:2310.05898).

  Args:
    learning_rate: eta, a number or an optax schedule (paper: 3-10x smaller
      than AdamW's).
    b1: beta_1 (paper: 0.9; 0.95 for unstable runs).
    b2: beta_2 (paper: 0.99; 0.98 for unstable runs).
    weight_decay: lambda, decoupled (optax default 1e-3; a number or schedule).
    mask: optional tree or callable selecting the params that are decayed
      (``optax.add_decayed_weights``).
    mu_dtype: dtype of the momentum buffer (the paper allows bf16).
    from_new_momentum: see ``scale_by_lion``; False reproduces ``optax.lion``
      bit for bit, the default is equal up to float rounding and faster.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.lion(learning_rate=0.1, weight_decay=0.5)
    >>> p = jnp.array([1.0, 1.0, 1.0])
    >>> g = jnp.array([0.3, -2.0, 0.0])
    >>> opt.update(g, opt.init(p), p)[0]
    Array([-0.15,  0.05, -0.05], dtype=float32)

  References:
    Chen et al., Symbolic Discovery of Optimization Algorithms,
    https://arxiv.org/abs/2302.06675
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_lion(b1=b1, b2=b2, mu_dtype=mu_dtype, from_new_momentum=from_new_momentum),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
