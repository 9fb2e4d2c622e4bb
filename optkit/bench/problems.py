"""Small deterministic test problems named by registry records.

Each problem gives initial params, a scalar loss and, for multi-objective
problems, a vector of objectives. They are pure JAX (no data downloads) and
small enough for the contract suite on a 2-core CPU. ``CONTRACT_SHAPES`` is the
tree every contract test uses: a scalar, a vector, a matrix and a conv kernel
in Flax's ``(kh, kw, in, out)`` layout.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

CONTRACT_SHAPES = {"b": (3,), "c": (), "k": (3, 3, 2, 4), "w": (4, 3)}


@dataclasses.dataclass(frozen=True)
class Problem:
  """A test problem: ``loss(init(dtype))`` is the starting loss.

  Attributes:
    name: registry name of the problem (see ``optkit.core.algorithm.PROBLEMS``).
    init: ``dtype -> params``.
    loss: ``params -> scalar`` (computed in float32 for low-precision params).
    objectives: ``params -> (m,)`` vector for multi-objective problems, else None.
    minimum: the optimal loss value where known.
  """

  name: str
  init: Callable[[Any], Any]
  loss: Callable[[Any], jax.Array]
  objectives: Optional[Callable[[Any], jax.Array]] = None
  minimum: Optional[float] = None


def _tree_from_rng(seed: int, shapes: dict, scale: float = 1.0, offset: float = 0.0):
  rng = np.random.default_rng(seed)
  return {k: offset + scale * rng.standard_normal(s).astype(np.float32)
          for k, s in shapes.items()}


_CURV = {k: np.abs(v) + 0.5 for k, v in _tree_from_rng(1, CONTRACT_SHAPES).items()}
_CENTER = _tree_from_rng(2, CONTRACT_SHAPES)
_START = _tree_from_rng(3, CONTRACT_SHAPES, scale=1.0, offset=2.0)


def _f32(tree):
  return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)


def contract_params(dtype=jnp.float32):
  """The contract tree's starting point, cast to ``dtype``."""
  return {k: jnp.asarray(v, dtype) for k, v in _START.items()}


def _quadratic_loss(params):
  p = _f32(params)
  return sum(0.5 * jnp.sum(_CURV[k] * (p[k] - _CENTER[k]) ** 2) for k in CONTRACT_SHAPES)


quadratic = Problem("quadratic", contract_params, _quadratic_loss, minimum=0.0)

_ILL_DIM = 16
_ILL_EIGS = np.logspace(0, 2, _ILL_DIM).astype(np.float32)  # condition number 100
_ILL_Q = np.linalg.qr(np.random.default_rng(4).standard_normal((_ILL_DIM, _ILL_DIM)))[0].astype(np.float32)
_ILL_A = (_ILL_Q * _ILL_EIGS) @ _ILL_Q.T


def _ill_loss(params):
  x = _f32(params)["x"]
  return 0.5 * x @ _ILL_A @ x


ill_conditioned_quadratic = Problem(
    "ill_conditioned_quadratic",
    lambda dtype=jnp.float32: {"x": jnp.ones((_ILL_DIM,), dtype)},
    _ill_loss, minimum=0.0)


def _rosenbrock_loss(params):
  x = _f32(params)["x"]
  return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


rosenbrock = Problem(
    "rosenbrock",
    lambda dtype=jnp.float32: {"x": jnp.asarray([-1.2, 1.0], dtype)},
    _rosenbrock_loss, minimum=0.0)

_LR_RNG = np.random.default_rng(5)
_LR_X = _LR_RNG.standard_normal((128, 8)).astype(np.float32)
_LR_Y = (_LR_X @ _LR_RNG.standard_normal(8) + 0.5 * _LR_RNG.standard_normal(128) > 0).astype(np.float32)


def _logreg_loss(params):
  p = _f32(params)
  logits = _LR_X @ p["w"] + p["b"]
  return jnp.mean(jax.nn.softplus(logits) - _LR_Y * logits) + 1e-3 * jnp.sum(p["w"] ** 2)


logistic_regression = Problem(
    "logistic_regression",
    lambda dtype=jnp.float32: {"w": jnp.full((8,), 2.0, dtype), "b": jnp.asarray(-2.0, dtype)},
    _logreg_loss)

_TWO_C1 = _tree_from_rng(6, CONTRACT_SHAPES, scale=0.5, offset=1.0)
_TWO_C2 = _tree_from_rng(7, CONTRACT_SHAPES, scale=0.5, offset=-1.0)


def _two_objectives(params):
  p = _f32(params)
  f1 = sum(0.5 * jnp.sum((p[k] - _TWO_C1[k]) ** 2) for k in CONTRACT_SHAPES)
  f2 = sum(0.5 * jnp.sum(_CURV[k] * (p[k] - _TWO_C2[k]) ** 2) for k in CONTRACT_SHAPES)
  return jnp.stack([f1, f2])


def _two_start(dtype=jnp.float32):
  # Far from both minima, on the side of neither: both objectives can improve.
  return {k: jnp.asarray(v, dtype) for k, v in _tree_from_rng(8, CONTRACT_SHAPES, 1.0, 4.0).items()}


two_quadratics = Problem(
    "two_quadratics", _two_start, lambda p: jnp.sum(_two_objectives(p)),
    objectives=_two_objectives)

PROBLEMS = {p.name: p for p in (quadratic, ill_conditioned_quadratic, rosenbrock,
                                logistic_regression, two_quadratics)}


def get(name: str) -> Problem:
  if name not in PROBLEMS:
    raise KeyError(f"optkit.bench.problems: unknown problem {name!r}; known: {sorted(PROBLEMS)}.")
  return PROBLEMS[name]
