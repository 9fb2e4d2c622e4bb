"""u-muP: per-layer learning-rate rules of the unit-scaled maximal update
parametrization.

Blake, Eichenberg, Dean, Balles, Prince, Deiseroth, Cruz-Salinas, Luschi,
Weinbach, Orr, "u-muP: The Unit-Scaled Maximal Update Parametrization",
arXiv:2407.17465. Reference implementation: graphcore-research/unit-scaling,
``unit_scaling/optim.py`` (``lr_scale_func_adam``, ``lr_scale_func_sgd``,
``scaled_parameters``; read, not copied).

Metadata follows the convention of ``optkit.orthogonal.mup`` (roles: input /
hidden / output / bias, given as a tree, prefix tree, callable or one string).
u-muP has no base shapes: its rules use the absolute fan-in of each leaf,
``fan_in`` (same forms; default from the shape in Flax layout: 1 for scalars,
``shape[0]`` for vectors, ``prod(shape[:-1])`` for kernels ``(..., in, out)``).
The paper's roles map to unit-scaling's ``mup_type``: input and hidden ->
"weight", bias -> "bias"/"norm", output -> "output".

Rule (d = residual_depth^(-1/2) for leaves inside residual branches, else 1):

====== ============================== ============================== ========
role   Adam / AdamW lr                SGD lr                          param
====== ============================== ============================== ========
input  d * fan_in^(-1/2)              d * fan_in^(-1/2)               1
hidden d * fan_in^(-1/2)              d * fan_in^(-1/2)               fan_in^(-1/2)
output d                              d                               1/fan_in
bias   d                              d * fan_in (= its size)         1
====== ============================== ============================== ========

``readout_constraint="to_output_scale"`` (SGD only) turns the weight rule into
``d * fan_in^(+1/2)``, as in unit-scaling. Init: every weight unit-scaled
(``init_std`` = 1); ``param`` is the forward multiplier the unit-scaled model
applies (the model's job; returned for reference and used by the tests).

Independent weight decay (unit-scaling's default): torch's per-leaf decay is
``wd / lr_param``, so each step multiplies the weight by ``1 - wd`` whatever the
learning rate. ``scale_by_u_mup(weight_decay=wd)`` adds ``-wd * params`` after
the (lr-scaled) inner update, which is the same factor ``1 - wd``; unlike
unit-scaling (independent of the peak lr only) it is also independent of an lr
schedule. ``u_mup_multipliers(...).weight_decay`` holds ``1 / lr`` multipliers
(unit-scaling's ``wd / lr_param`` relative to ``wd / lr``).

UNSURE points of the catalog, decided:
* SGD rules: taken from ``lr_scale_func_sgd`` (bias/norm ``d * shape[0]``,
  weight ``d * fan_in^(-1/2)`` or ``^(+1/2)`` with the readout constraint,
  output ``d``).
* Embedding fan-in: unit-scaling's ``_get_fan_in`` reads ``shape[1]`` of the
  torch weight, i.e. the hidden (output) dimension of an ``nn.Embedding``
  ``(vocab, hidden)`` and the true fan-in of an ``nn.Linear`` ``(out, in)``.
  optkit's default reads the Flax kernel layout ``(in, out)`` (true fan-in); for
  an embedding table pass ``fan_in`` = its feature (hidden) size explicitly
  (the paper's embedding rule lr ~ fan_out^(-1/2)).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import numpy as np
import optax

from optkit.core import extra_args as extra_args_lib
from optkit.core import validate
from optkit.orthogonal.mup import (
    LayerMultipliers,
    Metadata,
    resolve_positive,
    resolve_roles,
    scale_updates,
    unflatten_like,
)


class ScaleByUMupState(NamedTuple):
  """State of ``scale_by_u_mup``: the inner optimizer's state."""

  inner: optax.OptState


def default_fan_in(leaf) -> float:
  """Fan-in from the shape, Flax layout: 1 (0-D), ``shape[0]`` (1-D),
  ``prod(shape[:-1])`` (kernels ``(..., in, out)``)."""
  shape = np.shape(leaf)
  if len(shape) == 0:
    return 1.0
  if len(shape) == 1:
    return float(shape[0])
  return float(np.prod(shape[:-1]))


def _u_mup_leaf(role, fan_in, depth, optimizer, readout_constraint):
  d = depth ** -0.5
  if role in ("input", "hidden"):
    e = 0.5 if readout_constraint == "to_output_scale" else -0.5
    lr = d * fan_in ** e
  elif role == "output":
    lr = d
  else:  # bias / norm
    lr = d * fan_in if optimizer == "sgd" else d
  param = {"input": 1.0, "hidden": fan_in ** -0.5, "output": 1.0 / fan_in,
           "bias": 1.0}[role]
  return lr, 1.0, param, 1.0 / lr


def _check_modes(fn_name, optimizer, readout_constraint):
  validate.one_of(fn_name, "optimizer", optimizer, ("adam", "sgd"))
  validate.one_of(fn_name, "readout_constraint", readout_constraint,
                  (None, "to_output_scale"))
  if readout_constraint is not None and optimizer != "sgd":
    raise ValueError(f"{fn_name}: `readout_constraint` applies to optimizer='sgd' only.")


def _tables(fn_name, tree, roles, fan_in, residual_depth, optimizer, readout_constraint):
  role_list = resolve_roles(fn_name, tree, roles)
  fan_list = resolve_positive(fn_name, "fan_in", tree, fan_in, default_fan_in)
  depth_list = resolve_positive(fn_name, "residual_depth", tree, residual_depth,
                                lambda _: 1.0)
  return [_u_mup_leaf(r, f, dep, optimizer, readout_constraint)
          for r, f, dep in zip(role_list, fan_list, depth_list)]


def u_mup_multipliers(params: Any, roles: Metadata = None, fan_in: Metadata = None, *,
                      residual_depth: Metadata = None, optimizer: str = "adam",
                      readout_constraint: Optional[str] = None) -> LayerMultipliers:
  """u-muP per-leaf multipliers (pure function of the metadata).

  Adam: ``lr = d * fan_in^(-1/2)`` for input/hidden weights, ``d`` for output
  weights and biases/norms, ``d = residual_depth^(-1/2)`` (unit-scaling
  ``lr_scale_func_adam``). SGD: biases ``d * fan_in``, weights
  ``d * fan_in^(-/+1/2)``, output ``d`` (``lr_scale_func_sgd``).

  Args:
    params: the params (structure and shapes are read).
    roles: per-leaf roles (``optkit.orthogonal.mup`` convention).
    fan_in: per-leaf fan-in > 0; None: from the shape (Flax layout).
    residual_depth: per-leaf depth multiplier (``mup_scaling_depth``) of
      residual-branch leaves; 1 / None elsewhere means no depth scaling.
    optimizer: ``"adam"`` (also AdamW) or ``"sgd"``.
    readout_constraint: None or ``"to_output_scale"`` (SGD only).

  Returns:
    ``LayerMultipliers`` (``lr``, ``init_std`` = 1, forward ``param``
    multipliers, ``weight_decay`` = 1 / lr for independent decay).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> p = {"w": jnp.zeros((16, 16)), "b": jnp.zeros(16), "out": jnp.zeros((16, 2))}
    >>> m = optkit.u_mup_multipliers(p, {"w": "hidden", "b": "bias", "out": "output"})
    >>> m.lr
    {'b': 1.0, 'out': 1.0, 'w': 0.25}

  References:
    Blake et al., 2024, https://arxiv.org/abs/2407.17465
  """
  name = "u_mup_multipliers"
  _check_modes(name, optimizer, readout_constraint)
  rows = _tables(name, params, roles, fan_in, residual_depth, optimizer,
                 readout_constraint)
  return LayerMultipliers(*(unflatten_like(params, [row[i] for row in rows])
                            for i in range(4)))


def scale_by_u_mup(roles: Metadata = None, fan_in: Metadata = None, *,
                   inner: Optional[optax.GradientTransformation] = None,
                   residual_depth: Metadata = None, weight_decay: Optional[Any] = None,
                   optimizer: str = "adam",
                   readout_constraint: Optional[str] = None
                   ) -> optax.GradientTransformationExtraArgs:
  """Applies the u-muP learning-rate multipliers (and independent weight decay)
  to an inner optimizer's update.

  ``update = m_lr * inner_update - weight_decay * params`` per leaf, ``m_lr``
  from ``u_mup_multipliers``. The inner optimizer defaults to
  ``optax.scale_by_adam()`` (``optax.identity()`` for SGD); pass a full
  optimizer with its learning rate (``inner=optax.adam(lr)``) to use the
  independent decay, which must come after the learning rate.

  Args:
    roles: per-leaf roles.
    fan_in: per-leaf fan-in (None: from shapes, Flax layout).
    inner: the optimizer whose update is scaled.
    residual_depth: per-leaf residual depth multiplier (None: no depth scaling).
    weight_decay: independent (lr-free) decoupled weight decay: each step
      multiplies the params by ``1 - weight_decay``; None: none (then params
      are not needed).
    optimizer: ``"adam"`` or ``"sgd"`` (which table).
    readout_constraint: None or ``"to_output_scale"`` (SGD).

  Example:
    >>> import optkit, optax
    >>> import jax.numpy as jnp
    >>> p = {"w": jnp.ones((4, 4)), "b": jnp.ones(4)}
    >>> tx = optkit.scale_by_u_mup({"w": "hidden", "b": "bias"}, inner=optax.sgd(1.0),
    ...                            weight_decay=0.1)
    >>> u, _ = tx.update(p, tx.init(p), p)
    >>> u["w"][0, 0], u["b"][0]
    (Array(-0.6, dtype=float32), Array(-1.1, dtype=float32))

  References:
    Blake et al., 2024, https://arxiv.org/abs/2407.17465
  """
  name = "scale_by_u_mup"
  _check_modes(name, optimizer, readout_constraint)
  if weight_decay is not None:
    validate.non_negative(name, weight_decay=weight_decay)
  if inner is None:
    inner = optax.scale_by_adam() if optimizer == "adam" else optax.identity()
  validate.transformation(name, inner=inner)

  def multipliers_fn(tree):
    rows = _tables(name, tree, roles, fan_in, residual_depth, optimizer,
                   readout_constraint)
    return unflatten_like(tree, [row[0] for row in rows])

  scaled = scale_updates(name, multipliers_fn, inner, ScaleByUMupState)
  if weight_decay is None:
    return scaled

  def update_fn(updates, state, params=None, **extra_args):
    extra_args_lib.require_params(name, params)
    d, state = scaled.update(updates, state, params, **extra_args)
    d = jax.tree.map(lambda u, p: (u - weight_decay * p).astype(u.dtype), d, params)
    return d, state

  return optax.GradientTransformationExtraArgs(scaled.init, update_fn)
