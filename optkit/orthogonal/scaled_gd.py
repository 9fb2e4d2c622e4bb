"""ScaledGD(lambda): preconditioned gradient descent on low-rank factors.

Xu, Shen, Chi & Ma, "The Power of Preconditioning in Overparameterized
Low-Rank Matrix Sensing", arXiv:2302.01186 (ICML 2023). For a loss of a
low-rank matrix written through factors, each factor's gradient is multiplied
on the right by the damped inverse Gram matrix of its partner::

    symmetric  M = X X^T,  X (n, r):
        X_{t+1} = X_t - eta grad_X f(X_t) (X_t^T X_t + lambda I)^(-1)
    asymmetric M = L R^T,  L (n1, r), R (n2, r):
        L_{t+1} = L_t - eta grad_L f (R_t^T R_t + lambda I)^(-1)
        R_{t+1} = R_t - eta grad_R f (L_t^T L_t + lambda I)^(-1)

Only r x r systems are solved. The paper's setting is overparameterized
(r larger than the true rank) with a small random initialization; its result is
a linear rate, after a short phase, that depends only logarithmically on the
condition number, where plain GD on the same factors slows down polynomially.

Paper -> code: eta -> ``learning_rate``; lambda -> ``damping``; the factors
and their pairing -> ``pairs`` (a factory argument; the factors' current values
come from ``params``). Both factors of a pair use the factors at the current
step (``params``), never an updated partner.

Pairing (``pairs``): leaves are named by their path in the params tree, keys
joined by ``/`` (``{"layer": {"lora_a": ...}}`` -> ``"layer/lora_a"``; list
indices are numbers). ``pairs`` is a sequence of pairs of names, or a mapping
``name -> partner`` (each leaf may appear in one pair; ``("x", "x")`` is a
symmetric factor). Every factor is a 2-D ``(n, r)`` leaf with the rank on the
LAST axis, and the two factors of a pair share ``r`` (``M = L R^T``; a Flax
LoRA ``B`` of shape ``(r, out)`` is the transpose of such a factor: store it as
``(out, r)``). Leaves in no pair get the plain gradient (documented fallback:
ScaledGD is GD with a preconditioner on factor leaves only), so biases, norms
and other parameters of a model can share the optimizer. A name that is not a
leaf, a leaf in two pairs, a factor that is not 2-D or ranks that differ raise a
ValueError naming ``scaled_gd`` and the path.

Numerics: the r x r Gram matrices and the solve run in float32 (float64 for
float64 params) through a symmetric eigendecomposition; eigenvalues below
``r * eps * max_eigenvalue`` are treated as zero (pseudo-inverse), so
``damping = 0`` with a rank-deficient factor (e.g. a zero init) gives a finite
direction instead of inf/NaN. With ``damping = 0`` and full-rank factors the
step is exactly ScaledGD without damping (invariant to ``L -> L S``,
``R -> R S^(-T)``).

Defaults and UNSURE points:

* ``damping = 1e-2`` (absolute): optkit's choice. The paper's analysis takes
  lambda proportional to the smallest nonzero singular value of the target
  matrix (a small constant times sigma_min, as we read it; not re-verified
  here); it is problem-dependent, so set it from the scale of the target.
  The catalog leaves "the recommended lambda in practice" UNSURE.
* The learning rate has no default (the paper's analysis uses a constant
  eta below a small absolute constant; 0.5 works on the tests' problems).
"""

from __future__ import annotations

from typing import Mapping, Sequence, Union

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as _extra
from optkit.core import tree as _tree
from optkit.core import validate

_NAME = "scaled_gd"

Pairs = Union[Mapping[str, str], Sequence[Sequence[str]]]


def _key_name(k) -> str:
  for attr in ("key", "idx", "name"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def leaf_name(path) -> str:
  """The ``/``-joined name of a key path (``pairs`` uses these names)."""
  return "/".join(_key_name(k) for k in path)


def _partners(pairs: Pairs) -> dict:
  """``{name: partner}`` for both directions of every pair (validated)."""
  if isinstance(pairs, Mapping):
    items = list(pairs.items())
  elif isinstance(pairs, (list, tuple)):
    items = []
    for p in pairs:
      if isinstance(p, str) or not isinstance(p, (list, tuple)) or len(p) != 2:
        raise ValueError(
            f"{_NAME}: `pairs` must be a sequence of (factor, partner) name pairs or a "
            f"mapping factor -> partner, got the entry {p!r}.")
      items.append(tuple(p))
  else:
    raise ValueError(
        f"{_NAME}: `pairs` must be a sequence of (factor, partner) name pairs or a "
        f"mapping factor -> partner, got {pairs!r}.")
  if not items:
    raise ValueError(f"{_NAME}: `pairs` is empty; name at least one factor pair.")
  out = {}
  for a, b in items:
    if not isinstance(a, str) or not isinstance(b, str):
      raise ValueError(f"{_NAME}: factor names must be strings ('a/b' paths), got "
                       f"{(a, b)!r}.")
    for x, y in ((a, b), (b, a)):
      if x in out and out[x] != y:
        raise ValueError(
            f"{_NAME}: the leaf {x!r} is paired with both {out[x]!r} and {y!r}; each "
            "factor has exactly one partner.")
      out[x] = y
  return out


def _check_factors(partners: dict, tree, what: str) -> None:
  """Static checks of the pairing against a tree (names, ranks, shared rank)."""
  shapes = {leaf_name(p): jnp.shape(x)
            for p, x in jax.tree_util.tree_leaves_with_path(tree)}
  for name in partners:
    if name not in shapes:
      raise ValueError(
          f"{_NAME}: `pairs` names {name!r}, which is not a leaf of the {what} "
          f"(leaves: {sorted(shapes)}).")
  for name, partner in partners.items():
    s, t = shapes[name], shapes[partner]
    if len(s) != 2:
      raise ValueError(
          f"{_NAME}: the factor {name!r} must be a 2-D (n, r) leaf, got shape {s}.")
    if len(t) == 2 and s[1] != t[1]:
      raise ValueError(
          f"{_NAME}: the factors {name!r} {s} and {partner!r} {t} must share the rank "
          "(their last axis): M = L R^T.")


def _damped_right_solve(g: jax.Array, partner: jax.Array, damping) -> jax.Array:
  """``g (P^T P + damping I)^(-1)`` for ``g`` (n, r) and ``P`` (m, r)."""
  dtype = jnp.promote_types(jnp.result_type(g), jnp.float32)
  g = g.astype(dtype)
  p = partner.astype(dtype)
  r = p.shape[1]
  gram = p.T @ p
  gram = 0.5 * (gram + gram.T) + jnp.asarray(damping, dtype) * jnp.eye(r, dtype=dtype)
  w, v = jnp.linalg.eigh(gram)
  tol = jnp.max(jnp.abs(w), initial=0.0) * r * jnp.finfo(dtype).eps
  inv_w = jnp.where(w > tol, 1.0 / jnp.where(w > tol, w, 1.0), 0.0)
  return ((g @ v) * inv_w) @ v.T


def scale_by_scaled_gd(pairs: Pairs,
                       damping: float = 1e-2) -> optax.GradientTransformationExtraArgs:
  """ScaledGD(lambda) direction: ``grad_L (R^T R + lambda I)^(-1)`` per factor.

  Needs ``params`` (the current factors). Leaves in no pair pass their
  gradient through unchanged.

  Args:
    pairs: the factor pairing (see the module docstring): a sequence of
      ``(factor, partner)`` names such as ``[("L", "R")]`` or ``[("X", "X")]``
      (symmetric), or a mapping ``{"L": "R"}``. Static.
    damping: lambda >= 0, added to the partner's Gram matrix.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (stateless apart from the
    empty state); updates keep the gradients' dtypes.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_scaled_gd([("L", "R")], damping=0.0)
    >>> p = {"L": jnp.array([[1.0], [0.0]]), "R": jnp.array([[2.0]])}
    >>> g = {"L": jnp.array([[4.0], [8.0]]), "R": jnp.array([[1.0]])}
    >>> u, _ = tx.update(g, tx.init(p), p)
    >>> u["L"], u["R"]   # g_L / R^T R = g_L / 4;  g_R / L^T L = g_R / 1
    (Array([[1.],
           [2.]], dtype=float32), Array([[1.]], dtype=float32))

  References:
    Xu, Shen, Chi & Ma, `The Power of Preconditioning in Overparameterized
    Low-Rank Matrix Sensing <https://arxiv.org/abs/2302.01186>`_, ICML 2023.
  """
  return _scale_by_scaled_gd(pairs, damping)


def _scale_by_scaled_gd(pairs, damping):
  partners = _partners(pairs)
  validate.non_negative(_NAME, damping=damping)

  def init_fn(params):
    _check_factors(partners, params, "params")
    return optax.EmptyState()

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    _extra.require_params(_NAME, params, "ScaledGD preconditions each factor by its "
                          "partner's current value")
    _tree.check_same_structure(_NAME, updates, params, what="the params")
    _check_factors(partners, params, "params")
    by_name = {leaf_name(p): x for p, x in jax.tree_util.tree_leaves_with_path(params)}

    def one(path, g):
      name = leaf_name(path)
      if name not in partners:
        return g                                   # not a factor: plain GD
      d = _damped_right_solve(g, by_name[partners[name]], damping)
      return d.astype(jnp.result_type(g))

    return jax.tree_util.tree_map_with_path(one, updates), state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scaled_gd(learning_rate: optax.ScalarOrSchedule,
              pairs: Pairs,
              damping: float = 1e-2) -> optax.GradientTransformationExtraArgs:
  """ScaledGD(lambda): ``L <- L - eta grad_L f (R^T R + lambda I)^(-1)`` per pair.

  ``chain(scale_by_scaled_gd(pairs, damping), scale_by_learning_rate(eta))``;
  leaves in no pair take plain gradient steps ``-eta g``. Needs ``params``.

  Args:
    learning_rate: eta, a float or an optax schedule.
    pairs: the factor pairing (see :func:`scale_by_scaled_gd`).
    damping: lambda >= 0.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optax
    >>> target = jnp.diag(jnp.array([100.0, 1.0]))       # condition number 100
    >>> loss = lambda p: 0.25 * jnp.sum((p["X"] @ p["X"].T - target) ** 2)
    >>> opt = optkit.scaled_gd(0.5, pairs=[("X", "X")], damping=1e-3)
    >>> p = {"X": 0.1 * jnp.eye(2)}
    >>> s = opt.init(p)
    >>> for _ in range(40):
    ...   u, s = opt.update(jax.grad(loss)(p), s, p)
    ...   p = optax.apply_updates(p, u)
    >>> bool(loss(p) < 1e-6)
    True

  References:
    Xu, Shen, Chi & Ma, `The Power of Preconditioning in Overparameterized
    Low-Rank Matrix Sensing <https://arxiv.org/abs/2302.01186>`_, ICML 2023.
  """
  validate.learning_rate(_NAME, learning_rate)
  return optax.chain(_scale_by_scaled_gd(pairs, damping),
                     optax.scale_by_learning_rate(learning_rate))
