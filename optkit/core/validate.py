"""Construction-time checks of hyperparameters.

Every check names the algorithm and the argument. Values that are JAX tracers
(as under ``optax.inject_hyperparams`` inside ``jax.jit``) or schedules
(callables) are skipped: they can only be checked by the caller.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import jax
import numpy as np


def _concrete(value: Any):
  """Returns a Python/NumPy number for ``value``, or None if it cannot be checked."""
  if value is None or callable(value) or isinstance(value, jax.core.Tracer):
    return None
  if isinstance(value, bool):
    return None
  if isinstance(value, numbers.Number):
    return value
  try:
    arr = np.asarray(value)
  except Exception:  # pylint: disable=broad-except
    return None
  if arr.dtype.kind not in "biuf" or arr.size != 1:
    return None
  return arr.reshape(()).item()


def _fail(algo: str, arg: str, value: Any, expected: str):
  raise ValueError(f"{algo}: `{arg}` must be {expected}, got {value!r}.")


def _check(algo, kwargs, pred, expected):
  for arg, value in kwargs.items():
    v = _concrete(value)
    if v is None:
      continue
    if not np.isfinite(v) or not pred(v):
      _fail(algo, arg, value, expected)


def positive(algo: str, **kwargs):
  """Each value must be > 0 (and finite)."""
  _check(algo, kwargs, lambda v: v > 0, "positive")


def non_negative(algo: str, **kwargs):
  """Each value must be >= 0 (and finite)."""
  _check(algo, kwargs, lambda v: v >= 0, "non-negative")


def at_least(algo: str, minimum: float, **kwargs):
  """Each value must be >= minimum (and finite)."""
  _check(algo, kwargs, lambda v: v >= minimum, f">= {minimum}")


def unit_interval(algo: str, **kwargs):
  """Each value must lie in [0, 1) (betas, decay rates)."""
  _check(algo, kwargs, lambda v: 0 <= v < 1, "in [0, 1)")


def closed_unit_interval(algo: str, **kwargs):
  """Each value must lie in [0, 1]."""
  _check(algo, kwargs, lambda v: 0 <= v <= 1, "in [0, 1]")


def learning_rate(algo: str, learning_rate: Any):
  """A learning rate: a schedule, or a number >= 0."""
  _check(algo, {"learning_rate": learning_rate}, lambda v: v >= 0,
         "non-negative (or a schedule)")


def integer_at_least(algo: str, minimum: int, **kwargs):
  """Each value must be an integer >= minimum (static: tracers are rejected)."""
  for arg, value in kwargs.items():
    if isinstance(value, jax.core.Tracer):
      raise TypeError(
          f"{algo}: `{arg}` must be a static Python int; list it in "
          "`static_args` of optax.inject_hyperparams.")
    v = _concrete(value)
    if v is None or isinstance(value, bool) or float(v) != int(v) or v < minimum:
      _fail(algo, arg, value, f"an integer >= {minimum}")


def one_of(algo: str, arg: str, value: Any, choices: Iterable[Any]):
  """``value`` must be one of ``choices``."""
  choices = tuple(choices)
  if value not in choices:
    _fail(algo, arg, value, f"one of {choices}")


def boolean(algo: str, **kwargs):
  """Each value must be a bool (Python or NumPy), not a number or a tracer.

  Example:
    >>> from optkit.core import validate
    >>> validate.boolean("shampoo", nesterov=True)
    >>> validate.boolean("shampoo", nesterov=1)
    Traceback (most recent call last):
    ...
    ValueError: shampoo: `nesterov` must be a bool, got 1.
  """
  for arg, value in kwargs.items():
    if not isinstance(value, (bool, np.bool_)):
      raise ValueError(f"{algo}: `{arg}` must be a bool, got {value!r}.")


def callable_or_none(algo: str, **kwargs):
  for arg, value in kwargs.items():
    if value is not None and not callable(value):
      raise TypeError(f"{algo}: `{arg}` must be callable or None, got {value!r}.")


def transformation(algo: str, **kwargs):
  """Each value must be an optax GradientTransformation (init/update pair)."""
  for arg, value in kwargs.items():
    if not (hasattr(value, "init") and hasattr(value, "update")
            and callable(value.init) and callable(value.update)):
      raise TypeError(
          f"{algo}: `{arg}` must be an optax GradientTransformation, got "
          f"{type(value).__name__}.")


def seed(algo: str, seed: Any):
  """``seed`` is an integer (a Python/NumPy int or an integral float; tracers skipped).

  Example:
    >>> from optkit.core import validate
    >>> validate.seed("oasis", 3)
    >>> validate.seed("oasis", 1.5)
    Traceback (most recent call last):
    ...
    ValueError: oasis: `seed` must be an integer, got 1.5.
  """
  if isinstance(seed, jax.core.Tracer):
    return
  v = np.asarray(seed)
  if isinstance(seed, bool) or v.size != 1 or v.dtype.kind not in "iuf" or (
      float(v.reshape(())) != int(v.reshape(()))):
    raise ValueError(f"{algo}: `seed` must be an integer, got {seed!r}.")
