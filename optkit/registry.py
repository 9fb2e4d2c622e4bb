"""Collects the families' ``Algorithm`` records and looks them up.

Each family package defines ``RECORDS``, a tuple of ``optkit.core.Algorithm``;
this module only gathers them, so adding an algorithm never touches it.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from typing import Optional

from optkit.core.algorithm import Algorithm

FAMILIES = (
    "momentum",
    "adaptive",
    "sign",
    "orthogonal",
    "curvature",
    "clipping",
    "schedules",
    "parameter_free",
    "memory",
    "perturbation",
    "multi_objective",
    "zeroth_order",
    "constraints",
)

_CACHE: Optional[dict] = None


def _load() -> dict:
  global _CACHE
  if _CACHE is None:
    records = {}
    for family in FAMILIES:
      try:
        module = importlib.import_module(f"optkit.{family}")
      except ModuleNotFoundError as e:
        if e.name == f"optkit.{family}":
          continue  # family not implemented yet
        raise
      for rec in getattr(module, "RECORDS", ()):
        if rec.name in records:
          raise ValueError(f"optkit.registry: duplicate algorithm name {rec.name!r}.")
        if rec.family != family:
          raise ValueError(
              f"optkit.registry: {rec.name!r} is listed by family {family!r} but "
              f"says family={rec.family!r}.")
        records[rec.name] = rec
    _CACHE = records
  return _CACHE


def algorithms(family: Optional[str] = None, kind: Optional[str] = None,
               pattern: Optional[str] = None,
               extra_arg: Optional[str] = None) -> list[Algorithm]:
  """Every registered record, optionally filtered.

  Args:
    family: keep one family (``"sign"``).
    kind: keep one kind (``"optimizer"``, ``"schedule"``, ...).
    pattern: shell-style glob on the name (``"lion*"``).
    extra_arg: keep records that require this extra argument (``"value_fn"``).
  """
  out = list(_load().values())
  if family is not None:
    out = [r for r in out if r.family == family]
  if kind is not None:
    out = [r for r in out if r.kind == kind]
  if pattern is not None:
    out = [r for r in out if fnmatch.fnmatch(r.name, pattern)]
  if extra_arg is not None:
    out = [r for r in out if extra_arg in r.extra_args]
  return out


def names() -> list[str]:
  return list(_load())


def get(name: str) -> Algorithm:
  """The record called ``name``; a KeyError lists close matches."""
  records = _load()
  if name in records:
    return records[name]
  close = difflib.get_close_matches(name, list(records), n=5, cutoff=0.5)
  hint = f" Did you mean: {', '.join(close)}?" if close else ""
  raise KeyError(f"optkit: no algorithm named {name!r}.{hint} "
                 "(`python -m optkit list` shows them all.)")
