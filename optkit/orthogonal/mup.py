"""muP: per-layer learning-rate multipliers for Adam and SGD (maximal update).

Greg Yang and Etai Littwin, "Tensor Programs IVb: Adaptive Optimization in the
Infinite-Width Limit", arXiv:2308.01814 (the muP limit of entrywise/adaptive
optimizers), with the concrete tables of "Tensor Programs V" (arXiv:2203.03466,
Table 3 and Table 8) and the reference implementation microsoft/mup
(``mup/optim.py``: ``MuAdam``, ``MuSGD``; read, not copied).

This module also holds the per-leaf **metadata convention** shared by the four
muP-style modules of optkit (``mup``, ``u_mup``, ``mup_second_order``,
``width_scaling``):

* ``roles``: the layer role of every param leaf, one of ``ROLES``:

  - ``"input"``: weights whose fan-in is fixed and fan-out grows with width
    (first dense layer, embedding tables);
  - ``"hidden"``: weights whose fan-in and fan-out both grow with width
    (muP's "matrix-like" params);
  - ``"output"``: weights whose fan-in grows and fan-out is fixed (readout);
  - ``"bias"``: biases, normalization gains and other width-sized vectors
    (and scalars).

  Given as a tree of strings with the params' structure (or a prefix of it:
  one string covers a whole sub-tree, as ``optax.multi_transform`` labels do),
  a callable ``params -> such tree``, a single string for every leaf, or
  ``None``: the default role is ``"hidden"`` for leaves with ``ndim >= 2`` and
  ``"bias"`` for the others (shapes cannot tell an embedding or readout from a
  hidden matrix, so give roles explicitly for real models).
* widths (``width_mults`` here): a positive number per leaf, in the same forms
  (tree / prefix tree / callable / one number for all leaves). For muP it is the
  width multiplier ``r = n / n_base`` of the dimension that grows (fan-in of
  hidden/output weights, fan-out of input weights and biases); ``r = 1`` is the
  base (proxy) model, where every multiplier is 1.

Bad metadata (unknown role, width <= 0 or non-finite, a param leaf with no
entry) raises ``ValueError`` naming the function and the leaf path; entries
that match no leaf are ignored (so the same metadata works under
``optax.masked``).

Rule (r = width multiplier of the leaf; "lr" multiplies the per-leaf step of
the inner optimizer, "init_std" the base model's init std, "param" a forward
multiplier the model applies, "weight_decay" the decoupled decay coefficient):

======== ====================== ======================= ====================
role     Adam (MuAdam) lr       SGD (MuSGD) lr          init_std
======== ====================== ======================= ====================
input    1                      r                       1
hidden   1/r                    1                       r^(-1/2)
output   1/r (readout="lr")     1/r (readout="lr")      1/r   (readout="lr")
         1   (readout="param")  r   (readout="param")   1     (readout="param")
bias     1                      r                       1
======== ====================== ======================= ====================

``readout="lr"`` is TP V Table 3 (no parameter multipliers; output init
variance 1/fan_in^2 and lr 1/fan_in). ``readout="param"`` is the
``MuReadout`` form of microsoft/mup (the model multiplies the logits by
``param = 1/r``): the two are the same dynamics by abc-symmetry (Adam:
A <- A theta, B <- B / theta, C <- C / theta; SGD: C <- C / theta^2).
``weight_decay`` multipliers: MuAdam scales the coupled decay of hidden
matrices by r (so lr x decay is width-independent); with decoupled decay placed
after ``scale_by_mup`` and before ``scale_by_learning_rate`` (AdamW-style,
``chain(scale_by_adam(), scale_by_mup(...), add_decayed_weights(wd),
scale_by_learning_rate(lr))``) the per-step decay is ``lr * wd`` for every
leaf, which is MuAdamW's, so the returned ``weight_decay`` multipliers are 1;
for SGD, MuSGD divides the decay of vector-like leaves by r and multiplies the
(square-ratio) matrix-like decay by 1: returned as ``1 / lr`` multiplier, so
``lr_mult * wd_mult = 1`` (the per-step decay is width-independent).

UNSURE points of the catalog, decided:
* "exact SGD exponents": settled from microsoft/mup ``MuSGD``: vector-like
  (input, bias, and the readout in ``MuReadout`` form) lr x r, matrix-like
  lr x fan_in_mult / fan_out_mult (= 1 for hidden layers scaled uniformly);
  in the no-multiplier form of TP V Table 3 the readout gets lr x 1/r.
* Output layer: both forms are offered (``readout``); default ``"lr"`` so that
  no model-side multiplier is needed (only the init, given in ``init_std``).
* Init variances are returned (``init_std``) but applying them is the model's
  job; the optimizer only uses ``lr``.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import numpy as np
import optax

from optkit.core import tree as tree_lib
from optkit.core import validate

ROLES = ("input", "hidden", "output", "bias")

Metadata = Union[None, str, float, Any, Callable[[Any], Any]]


class LayerMultipliers(NamedTuple):
  """Per-leaf multipliers (trees with the params' structure, Python floats or
  JAX scalars).

  Attributes:
    lr: multiplies the leaf's learning rate (its step).
    init_std: multiplies the base model's init standard deviation.
    param: a forward multiplier the model applies to the leaf (``W_eff =
      param * W``); 1 where the parametrization needs none.
    weight_decay: multiplies the decoupled weight-decay coefficient.
  """

  lr: Any
  init_std: Any
  param: Any
  weight_decay: Any


class ScaleByMupState(NamedTuple):
  """State of ``scale_by_mup``: the inner optimizer's state (no state of its own)."""

  inner: optax.OptState


# --------------------------------------------------------------------------
# Shared metadata helpers (used by u_mup, mup_second_order, width_scaling).
# --------------------------------------------------------------------------


def _keystr(path) -> str:
  return jax.tree_util.keystr(tuple(path)) or "<root>"


def per_leaf(fn_name: str, arg: str, params: Any, spec: Metadata,
             default: Callable[[Any], Any]) -> list:
  """Broadcasts per-leaf metadata ``spec`` to the leaves of ``params``.

  ``spec`` is a tree with the params' structure or a prefix of it, a callable
  ``params -> tree``, a single (non-tree) value for every leaf, or None
  (``default(leaf)`` per leaf). Returns one value per param leaf, in
  ``jax.tree.leaves(params)`` order. A param leaf with no entry raises
  ValueError naming ``fn_name``, ``arg`` and the leaf path. Entries that match
  no leaf are ignored (``optax.masked`` hides masked-out leaves from the
  updates tree the metadata is resolved against).
  """
  leaves_with_path = jax.tree_util.tree_leaves_with_path(params)
  if spec is None:
    return [default(leaf) for _, leaf in leaves_with_path]
  if callable(spec):
    spec = spec(params)
  if isinstance(spec, (str, numbers.Number)) or (
      hasattr(spec, "shape") and np.ndim(spec) == 0):
    return [spec for _ in leaves_with_path]
  entries = dict(
      (tuple(p), v) for p, v in jax.tree_util.tree_leaves_with_path(
          spec, is_leaf=lambda x: isinstance(x, str)))
  out = []
  for path, _ in leaves_with_path:
    path = tuple(path)
    # The longest prefix of the leaf's path that has an entry.
    hit = next((path[:k] for k in range(len(path), -1, -1) if path[:k] in entries), None)
    if hit is None:
      raise ValueError(
          f"{fn_name}: `{arg}` has no entry for the param leaf at {_keystr(path)}.")
    out.append(entries[hit])
  return out


def default_role(leaf) -> str:
  """The role used when ``roles`` is None: ``hidden`` for ``ndim >= 2``, else ``bias``."""
  return "hidden" if np.ndim(leaf) >= 2 else "bias"


def resolve_roles(fn_name: str, params: Any, roles: Metadata) -> list:
  """One validated role string per param leaf (see the module docstring)."""
  out = per_leaf(fn_name, "roles", params, roles, default_role)
  paths = [p for p, _ in jax.tree_util.tree_leaves_with_path(params)]
  for path, role in zip(paths, out):
    if role not in ROLES:
      raise ValueError(
          f"{fn_name}: unknown role {role!r} for the param leaf at {_keystr(path)}; "
          f"expected one of {ROLES}.")
  return out


def resolve_positive(fn_name: str, arg: str, params: Any, spec: Metadata,
                     default: Callable[[Any], Any]) -> list:
  """One positive width-like number per param leaf; tracers pass unchecked."""
  out = per_leaf(fn_name, arg, params, spec, default)
  paths = [p for p, _ in jax.tree_util.tree_leaves_with_path(params)]
  for path, value in zip(paths, out):
    if isinstance(value, jax.core.Tracer):
      continue
    try:
      v = float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
      raise ValueError(
          f"{fn_name}: `{arg}` for the param leaf at {_keystr(path)} must be a "
          f"positive number, got {value!r}.") from None
    if isinstance(value, bool) or not np.isfinite(v) or v <= 0:
      raise ValueError(
          f"{fn_name}: `{arg}` for the param leaf at {_keystr(path)} must be "
          f"positive, got {value!r}.")
  return out


def unflatten_like(params: Any, values: list) -> Any:
  """A tree with the params' structure holding ``values`` (leaf order)."""
  return jax.tree.unflatten(jax.tree.structure(params), values)


def scale_updates(fn_name: str, multipliers_fn: Callable[[Any], Any],
                  inner: optax.GradientTransformation, state_cls=ScaleByMupState):
  """``inner`` followed by a per-leaf multiplication by ``multipliers_fn(updates)``.

  ``multipliers_fn`` maps the updates tree to a tree of per-leaf scalars (it is
  evaluated at trace time from the tree's structure and shapes, so it costs
  nothing per step). Updates keep their dtypes.
  """
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    tree_lib.check_floating_tree(fn_name, params)  # integer params: the shared TypeError
    multipliers_fn(params)  # validates the metadata against the params
    return state_cls(inner.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    tree_lib.check_floating_tree(fn_name, updates)
    mults = multipliers_fn(updates)
    d, inner_state = inner.update(updates, state.inner, params, **extra_args)
    d = jax.tree.map(lambda u, m: (u * m).astype(u.dtype), d, mults)
    return d, state_cls(inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# --------------------------------------------------------------------------
# muP (TP IVb / TP V tables, microsoft/mup).
# --------------------------------------------------------------------------


def _mup_leaf(role: str, r, optimizer: str, readout: str):
  """(lr, init_std, param, weight_decay) multipliers of one leaf."""
  if optimizer == "adam":
    lr = {"input": 1.0, "hidden": 1.0 / r, "bias": 1.0,
          "output": 1.0 / r if readout == "lr" else 1.0}[role]
    wd = 1.0  # decoupled decay after scale_by_mup: lr * wd per step (MuAdamW)
  else:  # sgd
    lr = {"input": r, "hidden": 1.0, "bias": r,
          "output": 1.0 / r if readout == "lr" else r}[role]
    wd = 1.0 / lr  # MuSGD: decay x 1/r where lr x r
  init_std = {"input": 1.0, "hidden": r ** -0.5, "bias": 1.0,
              "output": 1.0 / r if readout == "lr" else 1.0}[role]
  param = 1.0 / r if (role == "output" and readout == "param") else 1.0
  return lr, init_std, param, wd


def _check_modes(fn_name, optimizer, readout):
  validate.one_of(fn_name, "optimizer", optimizer, ("adam", "sgd"))
  validate.one_of(fn_name, "readout", readout, ("lr", "param"))


def mup_multipliers(params: Any, roles: Metadata = None, width_mults: Metadata = 1.0,
                    *, optimizer: str = "adam", readout: str = "lr") -> LayerMultipliers:
  """muP per-leaf multipliers (pure function of the metadata).

  For a leaf of role ``role`` and width multiplier ``r = n / n_base``
  (TP IVb / TP V Table 3, microsoft/mup ``MuAdam`` / ``MuSGD``):

  * Adam: hidden lr x 1/r; input, bias lr x 1; output lr x 1/r
    (``readout="lr"``) or x 1 with the forward multiplier 1/r
    (``readout="param"``).
  * SGD: input, bias lr x r; hidden lr x 1; output lr x 1/r (``"lr"``) or x r
    (``"param"``).
  * init std: hidden x r^(-1/2), output x 1/r (``"lr"``), others x 1.

  Args:
    params: the params (or a tree of arrays / ``jax.ShapeDtypeStruct`` with
      their structure and shapes); only the structure and leaf shapes are read.
    roles: per-leaf roles (``ROLES``), see the module docstring; None: ``hidden``
      for ``ndim >= 2``, else ``bias``.
    width_mults: per-leaf width multiplier r > 0 (one number for a model whose
      widths all scale together).
    optimizer: ``"adam"`` (any entrywise-normalized optimizer) or ``"sgd"``.
    readout: ``"lr"`` (no forward multiplier) or ``"param"`` (``MuReadout``).

  Returns:
    ``LayerMultipliers`` of trees shaped like ``params``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> p = {"w_in": jnp.zeros((3, 8)), "w_h": jnp.zeros((8, 8)), "b": jnp.zeros(8)}
    >>> m = optkit.mup_multipliers(
    ...     p, {"w_in": "input", "w_h": "hidden", "b": "bias"}, width_mults=4.0)
    >>> m.lr
    {'b': 1.0, 'w_h': 0.25, 'w_in': 1.0}

  References:
    Yang & Littwin, 2023, https://arxiv.org/abs/2308.01814;
    Yang et al., 2022 (TP V), https://arxiv.org/abs/2203.03466
  """
  name = "mup_multipliers"
  _check_modes(name, optimizer, readout)
  role_list = resolve_roles(name, params, roles)
  r_list = resolve_positive(name, "width_mults", params, width_mults, lambda _: 1.0)
  rows = [_mup_leaf(role, r, optimizer, readout) for role, r in zip(role_list, r_list)]
  return LayerMultipliers(*(unflatten_like(params, [row[i] for row in rows])
                            for i in range(4)))


def scale_by_mup(roles: Metadata = None, width_mults: Metadata = 1.0, *,
                 inner: Optional[optax.GradientTransformation] = None,
                 optimizer: str = "adam", readout: str = "lr"
                 ) -> optax.GradientTransformationExtraArgs:
  """Applies the muP learning-rate multipliers to an inner optimizer's update.

  ``update = m_lr * inner_update`` per leaf, with ``m_lr`` from
  ``mup_multipliers`` (computed from the update tree's structure at trace
  time). The inner optimizer defaults to ``optax.scale_by_adam()`` (the
  direction, no learning rate; ``optax.identity()`` for ``optimizer="sgd"``);
  follow it with ``optax.scale_by_learning_rate``, or pass a full optimizer
  with its learning rate (``inner=optax.adam(lr)``: the multipliers are linear,
  so placing them after the lr is the same).

  Args:
    roles: per-leaf roles (see ``mup_multipliers``).
    width_mults: per-leaf width multipliers r > 0.
    inner: the optimizer whose update is scaled.
    optimizer: which table: ``"adam"`` or ``"sgd"``.
    readout: ``"lr"`` or ``"param"`` (see ``mup_multipliers``).

  Example:
    >>> import optkit, optax
    >>> import jax.numpy as jnp
    >>> p = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    >>> tx = optkit.scale_by_mup({"w": "hidden", "b": "bias"}, width_mults=4.0,
    ...                          inner=optax.sgd(1.0))
    >>> u, _ = tx.update(p, tx.init(p), p)
    >>> u["w"][0, 0], u["b"][0]
    (Array(-0.25, dtype=float32), Array(-1., dtype=float32))

  References:
    Yang & Littwin, 2023, https://arxiv.org/abs/2308.01814
  """
  name = "scale_by_mup"
  _check_modes(name, optimizer, readout)
  if inner is None:
    inner = optax.scale_by_adam() if optimizer == "adam" else optax.identity()
  validate.transformation(name, inner=inner)

  def multipliers_fn(tree):
    role_list = resolve_roles(name, tree, roles)
    r_list = resolve_positive(name, "width_mults", tree, width_mults, lambda _: 1.0)
    return unflatten_like(tree, [_mup_leaf(role, r, optimizer, readout)[0]
                                 for role, r in zip(role_list, r_list)])

  return scale_updates(name, multipliers_fn, inner)
