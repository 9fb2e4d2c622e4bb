"""multi_objective family: aggregators of several gradients (a leading objective axis)."""

import optax

from optkit.core.algorithm import Algorithm
from optkit.multi_objective.upgrad import (
    UPGradState,
    iwrm_jacobian,
    jacobian_descent,
    upgrad,
    upgrad_weights,
)

__all__ = [
    "UPGradState",
    "iwrm_jacobian",
    "jacobian_descent",
    "upgrad",
    "upgrad_weights",
]

_JD_PAPER = "Jacobian Descent for Multi-Objective Optimization"

RECORDS = (
    Algorithm(
        name="upgrad",
        family="multi_objective",
        kind="aggregator",
        paper=_JD_PAPER,
        arxiv="2406.16232",
        factory=upgrad,
        test_hparams={},
        static_hparams=("pref_vector", "solver", "max_iters"),
        problems=("two_quadratics",),
        reference="torchjd 0.18 UPGrad fixture",
        description="Projects each gradient onto the dual cone of all of them and "
                    "sums: a conflict-free aggregation of a Jacobian.",
    ),
    Algorithm(
        name="jacobian_descent",
        family="multi_objective",
        kind="optimizer",
        paper=_JD_PAPER,
        arxiv="2406.16232",
        factory=jacobian_descent,
        test_hparams={"aggregator": upgrad(), "inner": optax.sgd(0.05)},
        static_hparams=("aggregator", "inner"),
        problems=("two_quadratics",),
        reference="torchjd 0.18 UPGrad fixture",
        description="Jacobian descent: takes a Jacobian tree (leading objective "
                    "axis m), aggregates it (UPGrad) and steps with an inner optimizer.",
    ),
)
