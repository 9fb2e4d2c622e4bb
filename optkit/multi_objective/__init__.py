"""multi_objective family: aggregators of several gradients (a leading objective axis)."""

import optax

from optkit.core.algorithm import Algorithm
from optkit.multi_objective.bloop import (
    BloopState,
    PCGradEMAState,
    bloop,
    dynamic_barrier,
    pcgrad_ema,
)
from optkit.multi_objective.fish import (
    FishState,
    FishStep,
    fish,
    fish_first_order_update,
)
from optkit.multi_objective.hessian_alignment import hessian_alignment_penalty
from optkit.multi_objective.odice import (
    OrthogonalCombineState,
    orthogonal_gradient_combine,
)
from optkit.multi_objective.upgrad import (
    UPGradState,
    iwrm_jacobian,
    jacobian_descent,
    upgrad,
    upgrad_weights,
)

__all__ = [
    "BloopState",
    "PCGradEMAState",
    "bloop",
    "dynamic_barrier",
    "pcgrad_ema",
    "FishState",
    "FishStep",
    "fish",
    "fish_first_order_update",
    "hessian_alignment_penalty",
    "OrthogonalCombineState",
    "orthogonal_gradient_combine",
    "UPGradState",
    "iwrm_jacobian",
    "jacobian_descent",
    "upgrad",
    "upgrad_weights",
]

_JD_PAPER = "Jacobian Descent for Multi-Objective Optimization"
_BLOOP_PAPER = "Careful with that Scalpel: Improving Gradient Surgery with an EMA"
_ODICE_PAPER = ("ODICE: Revealing the Mystery of Distribution Correction Estimation via "
                "Orthogonal-gradient Update")

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
    Algorithm(
        name="bloop",
        family="multi_objective",
        kind="aggregator",
        paper=_BLOOP_PAPER,
        arxiv="2402.02998",
        factory=bloop,
        test_hparams={},
        static_hparams=("init",),
        problems=("two_quadratics",),
        reference="NumPy port of apple/ml-bloop bloop_direction (fixture)",
        description="Main gradient plus lambda times the auxiliary gradient with "
                    "the main gradient's EMA projected out.",
    ),
    Algorithm(
        name="dynamic_barrier",
        family="multi_objective",
        kind="aggregator",
        paper=_BLOOP_PAPER,
        arxiv="2402.02998",
        factory=dynamic_barrier,
        test_hparams={},
        static_hparams=("init",),
        problems=("two_quadratics",),
        reference="NumPy port of apple/ml-bloop dynamic_barrier_direction (fixture)",
        description="Bloop with the projection ratio clipped at 1/lambda "
                    "(dynamic barrier with an EMA).",
    ),
    Algorithm(
        name="pcgrad_ema",
        family="multi_objective",
        kind="aggregator",
        paper=_BLOOP_PAPER,
        arxiv="2402.02998",
        factory=pcgrad_ema,
        test_hparams={},
        static_hparams=("init",),
        problems=("two_quadratics",),
        reference="NumPy port of apple/ml-bloop pcgrad_direction (fixture)",
        description="PCGrad against EMAs: each gradient loses its part that "
                    "conflicts with the other gradient's EMA.",
    ),
    Algorithm(
        name="orthogonal_gradient_combine",
        family="multi_objective",
        kind="aggregator",
        paper=_ODICE_PAPER,
        arxiv="2402.00348",
        factory=orthogonal_gradient_combine,
        test_hparams={},
        static_hparams=("per_leaf",),
        problems=("two_quadratics",),
        reference="NumPy restatement of the authors' ODICE orthogonal_true_g_update (test)",
        description="Forward gradient plus eta times the backward gradient projected "
                    "onto the forward gradient's normal plane (O-DICE).",
    ),
)
