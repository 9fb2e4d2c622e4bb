"""Stochastic Model Building (SMB).

Birbil, Martin, Onay & Öztoprak, "Bolstering Stochastic Gradient Descent with
Model Building", arXiv:2111.07058; authors' code sibirbil/SMB
(``source/smbsolve/smb.py``, class ``SMB``, method ``step_smb``; read).

Each step tries the SGD step and, when it fails an Armijo test on the same
batch, replaces it by the minimizer of a regularized quadratic model built, per
parameter tensor, from the two gradients at the base and trial points::

    g = grad f(x);  s = -lr g;  x_t = x + s                     # trial step
    if ||g|| < 1e-8 or f(x_t) <= f(x) - c lr ||g||^2:  x <- x_t  # accept
    else, per tensor, with g_t = grad f(x_t), y = g_t - g:
        ys = s.y, ss = s.s, yy = y.y, yg = y.g, gg = g.g, sg = s.g
        sigma = (sqrt(ss) (sqrt(yy) + sqrt(gg)/eta) - ys) / 2
        Theta = (ys + 2 sigma)^2 - ss yy
        c_g = -ss / (2 sigma)
        c_s = c_g / Theta (-(ys + 2 sigma) yg + yy sg)
        c_y = c_g / Theta (-(ys + 2 sigma) sg + ss yg)
        s' = c_s s + c_g g + c_y y;   x <- x + s'                 # model step
    autoschedule: every n_batches_per_epoch steps, if the fraction of model
        steps in the window is > gamma: lr *= beta, elif lr/beta <= lr_max:
        lr /= beta.

``||g||`` in the Armijo test is the global norm over all tensors (as in the
code: one parameter group); the model step is per tensor.

Paper/code -> code: lr -> ``learning_rate`` (inside the direction: the Armijo
test needs it); eta -> ``eta``; c -> ``c``; gamma, beta, lr_max,
n_batches_per_epoch -> same names; f on the current batch -> ``value_fn``
(``value`` is used for f(x) when given, else ``value_fn(params)``).

Defaults and their source: the official constructor (lr 1, eta 0.99, c 0.1,
n_batches_per_epoch 500, autoschedule off, gamma 0.05, beta 0.9, lr_max 20).

Decisions:

* Direction convention: :func:`scale_by_smb` returns the positive-convention
  direction ``d = -(step)`` (``lr g`` when the trial step is accepted) with the
  learning rate inside (README convention for self-tuned steps); :func:`smb`
  negates it. No weight decay: the reference has none (chain
  ``optax.add_decayed_weights`` yourself).
* A schedule for ``learning_rate`` is evaluated at ``count``; the
  autoschedule multiplies it by ``beta**k``, the integer ``k`` kept in the state
  (starting at 0; exact, where a float factor would drift); the ``lr_max`` cap
  applies to the effective rate.
* Degenerate tensors: the official formulas divide by ``sigma`` and
  ``Theta``, which vanish only when the tensor's ``g`` is zero (then ``s = 0``
  and the official code returns NaN). optkit keeps the trial step ``s`` for a
  tensor whose ``sigma`` or ``Theta`` is not positive and finite (``s = 0``
  there when ``g = 0``).
* The accept/reject choice uses ``lax.cond``, so the gradient at ``x_t`` is
  only computed for a model step (as in the code); under ``vmap`` both
  branches run.
* SMBi (``independent_batch=True``, the model step on the next batch) is not
  implemented: it needs two batches per step; use ``value_fn`` of one batch.
* Statistics are float32 (float64 for float64 params); the trial point is cast
  to the params' dtype before ``value_fn`` sees it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as _extra
from optkit.core import numerics
from optkit.core import tree as _tree
from optkit.core import validate

_NAME = "smb"
_DIR_NAME = "scale_by_smb"
# The official code skips the Armijo test / model step when ||g|| < 1e-8.
_GRAD_NORM_FLOOR = 1e-8


class ScaleBySMBState(NamedTuple):
  """State of :func:`scale_by_smb`."""
  count: jax.Array  # int32, shape (): steps taken
  lr_exponent: jax.Array  # int32, shape (): k, autoschedule factor beta**k (0 without it)
  window_steps: jax.Array  # int32, shape (): steps in the current window
  window_model_steps: jax.Array  # int32, shape (): model steps in the window
  model_step: jax.Array  # int32, shape (): 1 if the last step was a model step


def _model_step(s, g, g_t, eta):
  """The per-tensor model step ``s'`` (official formulas), guarded."""
  s, g, g_t = (jnp.ravel(v) for v in (s, g, g_t))
  y = g_t - g
  ys = jnp.dot(s, g_t) - jnp.dot(s, g)  # as in the code: s.g_t - s.g
  ss = jnp.dot(s, s)
  yy = jnp.dot(y, y)
  yg = jnp.dot(y, g)
  gg = jnp.dot(g, g)
  sg = jnp.dot(s, g)
  sigma = 0.5 * (jnp.sqrt(ss) * (jnp.sqrt(yy) + jnp.sqrt(gg) / eta) - ys)
  theta = (ys + 2.0 * sigma) ** 2 - ss * yy
  ok = (sigma > 0) & (theta > 0)
  safe_sigma = jnp.where(ok, sigma, 1.0)
  safe_theta = jnp.where(ok, theta, 1.0)
  cg = -ss / (2.0 * safe_sigma)
  cs = cg / safe_theta * (-(ys + 2.0 * sigma) * yg + yy * sg)
  cy = cg / safe_theta * (-(ys + 2.0 * sigma) * sg + ss * yg)
  new = cs * s + cg * g + cy * y
  ok = ok & jnp.all(jnp.isfinite(new))
  return jnp.where(ok, new, s)


def scale_by_smb(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    eta=0.99,
    c=0.1,
    *,
    autoschedule: bool = False,
    n_batches_per_epoch: int = 500,
    gamma=0.05,
    beta=0.9,
    lr_max=20.0,
) -> optax.GradientTransformationExtraArgs:
  r"""SMB direction (learning rate inside): ``-(x_new - x)``.

  See the module docstring for the rule. ``update`` requires ``value_fn``
  (``params -> loss`` on the batch of ``updates``) and ``params``; it uses the
  ``value`` extra argument for ``f(x)`` when given.

  Args:
    learning_rate: SGD trial step ``lr`` (float or schedule). Default 1
      (official).
    eta: model regularization ``eta`` in (0, 1]. Default 0.99 (official).
    c: Armijo constant ``c`` in (0, 1). Default 0.1 (official).
    autoschedule: adapt ``lr`` every ``n_batches_per_epoch`` steps (static).
    n_batches_per_epoch: window of the autoschedule (static int >= 1).
    gamma: model-step fraction above which ``lr`` shrinks. Default 0.05.
    beta: shrink factor in (0, 1). Default 0.9.
    lr_max: cap on the grown ``lr``. Default 20.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: jnp.sum(p ** 2)
    >>> tx = optkit.scale_by_smb(learning_rate=0.1)
    >>> p = jnp.array([3.0, 4.0])
    >>> d, _ = tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)
    >>> d  # Armijo holds: the SGD step lr g
    Array([0.6, 0.8], dtype=float32)

  References:
    Birbil, Martin, Onay & Öztoprak, "Bolstering Stochastic Gradient Descent
    with Model Building", 2021. https://arxiv.org/abs/2111.07058
  """
  validate.learning_rate(_DIR_NAME, learning_rate)
  validate.positive(_DIR_NAME, eta=eta, c=c, lr_max=lr_max)
  validate.closed_unit_interval(_DIR_NAME, eta=eta, gamma=gamma)
  validate.unit_interval(_DIR_NAME, c=c)
  validate.positive(_DIR_NAME, beta=beta)
  validate.unit_interval(_DIR_NAME, beta=beta)
  validate.integer_at_least(_DIR_NAME, 1,
                            n_batches_per_epoch=n_batches_per_epoch)
  if not isinstance(autoschedule, bool):
    raise ValueError(
        f"{_DIR_NAME}: `autoschedule` must be a bool, got {autoschedule!r}.")
  n_window = int(n_batches_per_epoch)

  def init_fn(params):
    del params
    return ScaleBySMBState(jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32),
                           jnp.zeros([], jnp.int32), jnp.zeros([], jnp.int32),
                           jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, **extra_args):
    value_fn = _extra.require(_DIR_NAME, extra_args, "value_fn")
    _extra.require_params(_DIR_NAME, params,
                          "SMB evaluates the loss at the trial point")
    _tree.check_same_structure(_DIR_NAME, updates, params, what="params")
    base_lr = (learning_rate(state.count) if callable(learning_rate)
               else learning_rate)
    # The autoschedule factor is beta**k with an integer k: exact, no drift.
    lr = jnp.asarray(base_lr) * jnp.asarray(beta) ** state.lr_exponent
    value = extra_args.get("value")
    f_x = jnp.asarray(value_fn(params) if value is None else value)

    g = jax.tree.map(lambda u, p: u.astype(numerics.stat_dtype(p)), updates, params)
    gnorm = optax.tree.norm(g)
    s = jax.tree.map(lambda gi: -lr.astype(gi.dtype) * gi, g)  # s = -lr g
    x_t = jax.tree.map(lambda p, si: (p.astype(si.dtype) + si).astype(
        jnp.result_type(p)), params, s)
    f_t = jnp.asarray(value_fn(x_t))
    dt = jnp.promote_types(jnp.result_type(f_x, f_t, gnorm), jnp.float32)
    armijo = f_t.astype(dt) <= (f_x.astype(dt)
                                - c * lr.astype(dt) * gnorm.astype(dt) ** 2)
    accept = (gnorm < _GRAD_NORM_FLOOR) | armijo

    def model_branch():
      g_t = jax.grad(value_fn)(x_t)
      return jax.tree.map(
          lambda si, gi, gti: _model_step(si, gi, gti.astype(gi.dtype),
                                          eta).reshape(si.shape).astype(
                                              si.dtype), s, g, g_t)

    step = jax.lax.cond(accept, lambda: s, model_branch)
    d = optax.tree.cast_like(jax.tree.map(jnp.negative, step), updates)

    is_model = jnp.logical_not(accept)
    count = optax.safe_increment(state.count)
    if autoschedule:
      win = state.window_steps + 1
      wmod = state.window_model_steps + is_model.astype(jnp.int32)
      done = win >= n_window
      frac = wmod.astype(jnp.float32) / win.astype(jnp.float32)
      shrink = frac > gamma
      grow = jnp.logical_not(shrink) & (lr / beta <= lr_max)
      k = state.lr_exponent + jnp.where(shrink, 1, jnp.where(grow, -1, 0))
      lr_exponent = jnp.where(done, k, state.lr_exponent).astype(jnp.int32)
      win = jnp.where(done, 0, win).astype(jnp.int32)
      wmod = jnp.where(done, 0, wmod).astype(jnp.int32)
    else:
      lr_exponent, win, wmod = (state.lr_exponent, state.window_steps,
                                state.window_model_steps)
    return d, ScaleBySMBState(count, lr_exponent, win, wmod,
                              is_model.astype(jnp.int32))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def smb(
    learning_rate: optax.ScalarOrSchedule,
    eta=0.99,
    c=0.1,
    *,
    autoschedule: bool = False,
    n_batches_per_epoch: int = 500,
    gamma=0.05,
    beta=0.9,
    lr_max=20.0,
) -> optax.GradientTransformationExtraArgs:
  r"""Stochastic Model Building optimizer.

  ``x <- x - lr g`` when the trial step passes the Armijo test
  ``f(x - lr g) <= f(x) - c lr ||g||^2`` on the same batch, else the step
  that minimizes a regularized per-tensor quadratic model built from the
  gradients at ``x`` and ``x - lr g`` (:func:`scale_by_smb`). Needs
  ``value_fn``.

  Args:
    learning_rate: trial step ``lr`` (float or schedule; the official default
      is 1).
    eta: model regularization ``eta`` in (0, 1]. Default 0.99.
    c: Armijo constant in (0, 1). Default 0.1.
    autoschedule: adapt ``lr`` every ``n_batches_per_epoch`` steps.
    n_batches_per_epoch: autoschedule window (static). Default 500.
    gamma: model-step fraction threshold. Default 0.05.
    beta: shrink factor. Default 0.9.
    lr_max: cap on the grown ``lr``. Default 20.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: jnp.sum(p ** 2)
    >>> tx = optkit.smb(learning_rate=0.1)
    >>> p = jnp.array([3.0, 4.0])
    >>> u, _ = tx.update(jax.grad(loss)(p), tx.init(p), p, value_fn=loss)
    >>> u
    Array([-0.6, -0.8], dtype=float32)

  References:
    Birbil, Martin, Onay & Öztoprak, "Bolstering Stochastic Gradient Descent
    with Model Building", 2021. https://arxiv.org/abs/2111.07058
  """
  validate.learning_rate(_NAME, learning_rate)
  direction = scale_by_smb(learning_rate, eta, c, autoschedule=autoschedule,
                           n_batches_per_epoch=n_batches_per_epoch,
                           gamma=gamma, beta=beta, lr_max=lr_max)
  return optax.chain(direction, optax.scale(-1.0))
