"""The `Algorithm` record: one per public optimizer, schedule, estimator,
aggregator or wrapper. Records live beside the code they describe (each family
package's ``RECORDS``); ``optkit.registry`` only collects them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional

KINDS = ("optimizer", "direction", "schedule", "estimator", "aggregator", "wrapper")
EXTRA_ARG_NAMES = ("value", "value_fn", "values")
PROBLEMS = (
    "quadratic",
    "ill_conditioned_quadratic",
    "rosenbrock",
    "logistic_regression",
    "two_quadratics",  # multi-objective: two convex quadratics with conflicting minima
)


@dataclasses.dataclass(frozen=True)
class Algorithm:
  """Metadata that tests, docs, the CLI and benchmarks read about one algorithm.

  Attributes:
    name: public name, unique across optkit (``optkit.<name>`` is ``factory``).
    family: the family package (``sign``, ``orthogonal``, ...).
    kind: one of ``KINDS``.
    paper: exact paper title.
    arxiv: arXiv identifier (``"2302.06675"``), or ``""`` when the paper has none.
    factory: the public callable; ``factory(**test_hparams)`` gives a working
      transformation (or, for schedules, a ``step -> value`` callable).
    direction: the ``scale_by_...`` factory, where there is one.
    extra_args: the extra-args names ``update`` requires (subset of
      ``value``, ``value_fn``, ``values``).
    test_hparams: small hyperparameters for the contract tests.
    static_hparams: factory arguments that ``optax.inject_hyperparams`` must
      treat as static (shapes, loop counts, seeds, modes given as numbers).
    problems: the test problems (``PROBLEMS``) the algorithm must make progress on.
    reference: what the implementation is checked against, or None.
    matrix_only: True where the method is only defined for 2-D leaves and the
      record's factory is expected to be used through a rank-aware wrapper.
    description: one line for tables.
  """

  name: str
  family: str
  kind: str
  paper: str
  arxiv: str
  factory: Callable[..., Any]
  direction: Optional[Callable[..., Any]] = None
  extra_args: tuple[str, ...] = ()
  test_hparams: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  static_hparams: tuple[str, ...] = ()
  problems: tuple[str, ...] = ("quadratic",)
  reference: Optional[str] = None
  description: str = ""

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(
          f"Algorithm {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}.")
    bad = [a for a in self.extra_args if a not in EXTRA_ARG_NAMES]
    if bad:
      raise ValueError(
          f"Algorithm {self.name!r}: extra_args must be among {EXTRA_ARG_NAMES}, "
          f"got {bad}.")
    bad = [p for p in self.problems if p not in PROBLEMS]
    if bad:
      raise ValueError(
          f"Algorithm {self.name!r}: unknown problems {bad}; known: {PROBLEMS}.")
    if not callable(self.factory):
      raise TypeError(f"Algorithm {self.name!r}: factory must be callable.")

  @property
  def arxiv_url(self) -> str:
    return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else ""

  def make(self, **overrides):
    """Builds ``factory(**test_hparams, **overrides)``."""
    return self.factory(**{**dict(self.test_hparams), **overrides})
