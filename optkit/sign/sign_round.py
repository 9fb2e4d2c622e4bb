"""SignRound: signed gradient descent on rounding offsets, projected to a box.

Cheng, Zhang, Shen, Cai, He, Lv, Liu, "Optimize Weight Rounding via Signed
Gradient Descent for the Quantization of LLMs", arXiv:2309.05516.

SignRound learns, per quantized linear layer, a rounding offset V (and in
later versions clip scales alpha, beta) by block-wise reconstruction::

  W_q  = s * clip(round(W / s + V) + zp, 0, 2^b - 1) - ...   # STE through round
  loss = || block(X; W) - block(X; W_q) ||^2
  V   <- clip(V - eta_t sign(grad_V loss), -0.5, 0.5)
  eta_t = eta_0 (1 - t / T)                                  # linear decay to 0

optkit provides the optimizer side only; the quantizer (with its
straight-through estimator), the block loss and "keep the best V seen"
belong to the model code (the test builds a toy 1-layer version).

Paper -> code: eta_0 -> ``learning_rate``, T -> ``num_steps``, the box
[-0.5, 0.5] -> ``(lower, upper)``, V -> the params given to the
transformation, t -> ``state.count`` (from 0).

* ``scale_by_signed_rounding_step(step_size, lower, upper)``: one projected
  signed step, ``u = clip(x - eta_t sign(g), lower, upper) - x``
  (``step_size`` a number or a schedule giving eta_t). Needs ``params``.
* ``sign_round(learning_rate=None, num_steps=200)``: the recipe,
  eta_t = learning_rate(t) * max(0, 1 - t/num_steps) fed to the step above.
  ``learning_rate=None`` means 1/num_steps (5e-3 for 200 steps). A schedule
  is multiplied by the linear decay (so a constant schedule equals the
  number); for a schedule on its own use ``scale_by_signed_rounding_step``.

The recipe is ``chain(sign, scale_by_learning_rate(linear decay),
projection onto the box)``; the projection is done here as one step rather
than with ``optax.projections.projection_box`` because that function
projects params, not updates: as a transformation the projected step has to
be returned as the update ``clip(x + Delta) - x``.

Defaults and their source: num_steps 200 (paper abstract: "in just 200
steps"; an earlier version used 400), eta_0 = 1/num_steps (UNSURE in the
catalog; the authors' auto-round code uses lr = 1/iters by default, not
checked line by line here), linear decay to 0 (catalog), box [-0.5, 0.5]
(the rounding offset can flip rounding up or down but never by more than
one level).

UNSURE points of the catalog, decided: the exact lr and schedule are
exposed as arguments with the defaults above; which parameters besides V
are learned (clip scales alpha, beta in [0, 1] in later versions) is the
caller's choice: put them in the params tree and use ``optax.multi_transform``
with ``scale_by_signed_rounding_step(..., lower=0.5, upper=1.0)`` (or their
own box) for them.

Behaviour worth knowing (seen in the tests' toy layer): the straight-through
gradient of a coordinate points toward its continuous value, so signed steps
drive V to the rounding threshold and then oscillate across it by eta_t; on
inputs with little correlation the iterates are no better than
round-to-nearest, and the gain comes from correlated inputs, where rounding
errors can cancel in the block output. This is why the recipe decays eta_t
to 0 and keeps the best V seen (caller side), as the paper does.

Numerics: with bf16 params the update is computed in float32 and cast to
bf16, so ``x + u`` can land one bf16 ulp outside the box; keep V in float32
(as the paper does) for an exact projection.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as extra_args_lib
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "sign_round"
_STEP_NAME = "signed_rounding_step"


class ScaleBySignedRoundingStepState(NamedTuple):
  count: jax.Array   # int32, shape (): steps taken, t (from 0)


def _work(x):
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _check_box(name, lower, upper):
  lo = validate._concrete(lower)  # pylint: disable=protected-access
  hi = validate._concrete(upper)  # pylint: disable=protected-access
  if lo is not None and hi is not None and not lo < hi:
    raise ValueError(f"{name}: `lower` must be < `upper`, got {lower!r} and {upper!r}.")


def _projected_step(name, step_size_at, lower, upper):
  def init_fn(params):
    del params
    return ScaleBySignedRoundingStepState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    extra_args_lib.require_params(name, params, "the step is projected onto the box")
    tree_lib.check_same_structure(name, updates, params, what="the params")
    eta = step_size_at(state.count)

    def leaf(g, x):
      x32 = _work(x)
      new = jnp.clip(x32 - eta * jnp.sign(_work(g)), lower, upper)
      return (new - x32).astype(g.dtype)

    u = jax.tree.map(leaf, updates, params)
    return u, ScaleBySignedRoundingStepState(count=optax.safe_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_signed_rounding_step(step_size: optax.ScalarOrSchedule,
                                  lower: float = -0.5,
                                  upper: float = 0.5) -> optax.GradientTransformation:
  r"""One projected signed step: :math:`u = \Pi_{[l, u]}(x - \eta_t\,\mathrm{sign}(g)) - x`.

  Args:
    step_size: eta_t, a number or a schedule ``t -> eta_t`` (t from 0).
    lower: lower end of the box (SignRound's V: -0.5).
    upper: upper end of the box (0.5).

  Returns:
    An ``optax.GradientTransformation`` whose update needs ``params``; state
    ``ScaleBySignedRoundingStepState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_signed_rounding_step(0.1)
    >>> v = jnp.array([0.0, 0.45, -0.3])
    >>> tx.update(jnp.array([1.0, -2.0, 0.0]), tx.init(v), v)[0]
    Array([-0.1 ,  0.05,  0.  ], dtype=float32)

  References:
    Cheng et al., Optimize Weight Rounding via Signed Gradient Descent for the
    Quantization of LLMs, https://arxiv.org/abs/2309.05516
  """
  validate.non_negative(_STEP_NAME, step_size=step_size)
  _check_box(_STEP_NAME, lower, upper)
  at = step_size if callable(step_size) else (lambda t: step_size)
  return _projected_step(_STEP_NAME, at, lower, upper)


def sign_round(learning_rate: Optional[optax.ScalarOrSchedule] = None,
               num_steps: int = 200,
               lower: float = -0.5,
               upper: float = 0.5) -> optax.GradientTransformationExtraArgs:
  r"""SignRound's optimizer: signed steps with linear decay, projected to [-0.5, 0.5].

  .. math::
    V_{t+1} = \mathrm{clip}\big(V_t - \eta_0 (1 - t/T)_+\,
              \mathrm{sign}(\nabla_V L), -0.5, 0.5\big)

  Args:
    learning_rate: eta_0, a number, a schedule (multiplied by the linear
      decay), or None for 1/num_steps.
    num_steps: T, the decay length (paper: 200). Static.
    lower: lower end of the box (-0.5).
    upper: upper end of the box (0.5).

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``update`` needs ``params``
    (the rounding offsets V).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.sign_round(learning_rate=0.1, num_steps=4)
    >>> v = jnp.zeros(2)
    >>> s = opt.init(v)
    >>> for _ in range(3):
    ...   u, s = opt.update(jnp.array([1.0, -1.0]), s, v)
    ...   v = v + u
    >>> v   # -(0.1 + 0.075 + 0.05) sign(g)
    Array([-0.225,  0.225], dtype=float32)

  References:
    Cheng et al., Optimize Weight Rounding via Signed Gradient Descent for the
    Quantization of LLMs, https://arxiv.org/abs/2309.05516
  """
  validate.integer_at_least(_NAME, 1, num_steps=num_steps)
  if learning_rate is None:
    learning_rate = 1.0 / num_steps
  validate.learning_rate(_NAME, learning_rate)
  _check_box(_NAME, lower, upper)
  total = float(num_steps)

  def eta(t):
    base = learning_rate(t) if callable(learning_rate) else learning_rate
    return base * jnp.maximum(0.0, 1.0 - t.astype(jnp.float32) / total)

  return optax.with_extra_args_support(_projected_step(_NAME, eta, lower, upper))
