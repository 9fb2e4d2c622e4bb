"""XGrad: gradients taken at predicted future weights (weight prediction).

Guan, Li, Shi & Meng, "XGrad: Boosting Gradient-Based Optimizers With Weight
Prediction", arXiv:2305.18240. Before each mini-batch the weights s steps ahead
are predicted from the optimizer's update rule; forward and backward passes
run at the predicted weights; the optimizer then updates the TRUE weights with
that gradient::

  theta_hat_t = theta_t - s eta_t d_{t-1}        # prediction, s = steps_ahead
  g_t = grad L(theta_hat_t)
  d_t, inner_state = inner(g_t, inner_state, theta_t)   # inner's direction
  theta_{t+1} = theta_t - eta_t d_t

Paper -> code: theta_t -> ``state.theta`` (float32), theta_hat_t -> the visible
params, s -> ``steps_ahead``, gamma / eta -> ``learning_rate``, the optimizer's
update direction (SGDM: the momentum buffer; Adam / AdamW: m-hat / (sqrt(v-hat) +
eps)) -> ``d_t``, what ``inner`` returns.

Shape of the wrapper: ``inner`` is a DIRECTION in optax's positive-gradient
convention without learning rate (``optax.scale_by_adam()``,
``optax.trace(0.9)``, ``optax.chain(optax.scale_by_adam(),
optax.add_decayed_weights(1e-4))``, ...); ``xgrad`` applies ``-learning_rate``
to it, so the same lr serves the step and the prediction. Do not pass a full
optimizer that already contains a learning rate.

Gradient at a shifted point (catalog convention): the visible params are
theta_hat; theta lives in the state; the returned update moves the visible
params from theta_hat_t to theta_hat_{t+1} = theta_{t+1} - s eta_{t+1} d_t (it is
``theta_{t+1} - theta_t + s-term - (params - theta_t)``, re-anchored on the
state, so with s = 0 it equals the inner update exactly). ``update`` requires
``params``; ``inner`` receives theta_t (cast to the params' dtype) as its
``params``. Evaluate with ``xgrad_eval_params(state)`` (theta), not with the
visible params.

Decisions on the catalog's UNSURE point and details it leaves open:

* Prediction formula: the paper derives one per optimizer, each "the update the
  optimizer would apply next, computed from its latest state" because the next
  gradient is unknown: SGDM uses the latest momentum, Adam/AdamW the latest
  bias-corrected m-hat / (sqrt(v-hat) + eps). For a black-box inner direction
  that is d_t, the direction just computed (it does not advance the inner
  state again; calling ``inner.update`` with a guessed gradient would).
* The prediction uses the learning rate of the NEXT step, eta_{t+1}
  (schedule evaluated at count + 1); the two agree for constant lr.
* theta is float32 (master weights) even for bf16 params.
* steps_ahead may be any non-negative number (paper: s = 1 by default).
* Step 0 has no previous direction: theta_hat_0 = theta_0.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as extra_args_lib
from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "xgrad"


class XGradState(NamedTuple):
  count: jax.Array          # int32, shape (): t
  theta: optax.Params       # true weights theta_t; float32 (float64 for f64 params)
  inner_state: Any          # state of the inner direction


def xgrad(
    inner: optax.GradientTransformation,
    learning_rate: optax.ScalarOrSchedule,
    steps_ahead: float = 1.0,
) -> optax.GradientTransformationExtraArgs:
  r"""Weight-prediction wrapper around an optax direction.

  .. math::
    \theta_{t+1} = \theta_t - \eta_t d_t,\qquad
    \hat\theta_{t+1} = \theta_{t+1} - s\,\eta_{t+1} d_t,

  where :math:`d_t` = ``inner`` applied to the gradient taken at the visible
  params :math:`\hat\theta_t`. Returns :math:`\hat\theta_{t+1} - \hat\theta_t`.

  Args:
    inner: the optimizer's direction without learning rate (e.g.
      ``optax.scale_by_adam()``); extra args are forwarded to it.
    learning_rate: eta, a number or an optax schedule.
    steps_ahead: s, how many steps ahead to predict (paper: 1); 0 gives the
      inner optimizer exactly.

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``update`` requires ``params``.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optkit
    >>> opt = optkit.xgrad(optax.identity(), learning_rate=0.1)
    >>> p = jnp.array([1.0, -2.0])
    >>> state = opt.init(p)
    >>> u, state = opt.update(p, state, p)  # SGD step, then one more predicted
    >>> u
    Array([-0.2,  0.4], dtype=float32)
    >>> optkit.xgrad_eval_params(state)
    Array([ 0.9, -1.8], dtype=float32)

  References:
    Guan et al., XGrad: Boosting Gradient-Based Optimizers With Weight
    Prediction, https://arxiv.org/abs/2305.18240
  """
  validate.transformation(_NAME, inner=inner)
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, steps_ahead=steps_ahead)
  inner_tx = optax.with_extra_args_support(inner)

  def lr_at(count):
    return learning_rate(count) if callable(learning_rate) else learning_rate

  def init_fn(params):
    theta = jax.tree.map(lambda p: jnp.array(p, dtype=numerics.stat_dtype(p), copy=True), params)
    return XGradState(count=jnp.zeros([], jnp.int32), theta=theta,
                      inner_state=inner_tx.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    tree_lib.check_same_structure(_NAME, updates, state.theta)
    params = extra_args_lib.require_params(
        _NAME, params, "the update moves the visible params to the predicted ones")
    theta_p = optax.tree.cast_like(state.theta, params)
    d, inner_state = inner_tx.update(updates, state.inner_state, theta_p, **extra_args)
    d = optax.tree.cast_like(d, state.theta)
    eta, eta_next = lr_at(state.count), lr_at(optax.safe_increment(state.count))
    step = jax.tree.map(lambda di: -eta * di, d)                      # theta_{t+1} - theta_t
    theta = jax.tree.map(lambda th, u: th + u, state.theta, step)
    # theta_hat_{t+1} - params = step - s eta_{t+1} d_t - (params - theta_t)
    out = jax.tree.map(
        lambda u, di, p, th: u - steps_ahead * eta_next * di - (p.astype(th.dtype) - th),
        step, d, params, state.theta)
    new_state = XGradState(count=optax.safe_increment(state.count), theta=theta,
                           inner_state=inner_state)
    return optax.tree.cast_like(out, updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def xgrad_eval_params(state: Any) -> optax.Params:
  """The true weights theta of an XGrad run (float32 tree), for evaluation.

  ``state`` may be the ``xgrad`` state or any optimizer state (chain, MultiSteps,
  inject_hyperparams) that holds exactly one ``XGradState``.

  Example:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> import optkit
    >>> opt = optkit.xgrad(optax.sgd(0.1), learning_rate=0.1)
    >>> p = jnp.array([1.0, -2.0])
    >>> u, state = opt.update(2 * p, opt.init(p), p)
    >>> optkit.xgrad_eval_params(state).shape
    (2,)
  """
  found = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, XGradState))
           if isinstance(s, XGradState)]
  if len(found) != 1:
    raise ValueError(f"xgrad_eval_params: expected exactly one XGradState in `state`, "
                     f"found {len(found)}.")
  return found[0].theta
