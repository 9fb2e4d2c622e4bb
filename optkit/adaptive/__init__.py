"""adaptive family: Adam-like per-coordinate scaling (Adam, AdaMax, AMSGrad, AdamNC).

Catalog: shared/algorithms/adaptive.md.
"""

from optkit.core.algorithm import Algorithm
from optkit.adaptive.adam import ScaleByAdamState, adam, adamax, scale_by_adam, scale_by_adamax
from optkit.adaptive.amsgrad import (
    ScaleByAdamNCState,
    ScaleByAmsgradState,
    adamnc,
    amsgrad,
    scale_by_adamnc,
    scale_by_amsgrad,
)

__all__ = [
    "ScaleByAdamNCState",
    "ScaleByAdamState",
    "ScaleByAmsgradState",
    "adam",
    "adamax",
    "adamnc",
    "amsgrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_adamnc",
    "scale_by_amsgrad",
]

_ADAM_PAPER = "Adam: A Method for Stochastic Optimization"
_AMSGRAD_PAPER = "On the Convergence of Adam and Beyond"
_PROBLEMS = ("quadratic", "ill_conditioned_quadratic", "rosenbrock", "logistic_regression")

RECORDS = (
    Algorithm(
        name="adam",
        family="adaptive",
        kind="optimizer",
        paper=_ADAM_PAPER,
        arxiv="1412.6980",
        factory=adam,
        direction=scale_by_adam,
        test_hparams={"learning_rate": 5e-2},
        problems=_PROBLEMS,
        reference="optax.adam / optax.adamw (exact); torch.optim.Adam / AdamW fixture "
                  "(tests/fixtures/reference/adaptive_torch.npz)",
        description="Bias-corrected first and second moments; decoupled decay optional.",
    ),
    Algorithm(
        name="adamax",
        family="adaptive",
        kind="optimizer",
        paper=_ADAM_PAPER,
        arxiv="1412.6980",
        factory=adamax,
        direction=scale_by_adamax,
        test_hparams={"learning_rate": 5e-2},
        problems=_PROBLEMS,
        reference="optax.adamax (exact); torch.optim.Adamax fixture "
                  "(tests/fixtures/reference/adaptive_torch.npz)",
        description="Adam with the infinity norm in place of the second moment.",
    ),
    Algorithm(
        name="amsgrad",
        family="adaptive",
        kind="optimizer",
        paper=_AMSGRAD_PAPER,
        arxiv="1904.09237",
        factory=amsgrad,
        direction=scale_by_amsgrad,
        test_hparams={"learning_rate": 5e-2},
        problems=_PROBLEMS,
        reference="optax.amsgrad (exact); torch.optim.Adam(amsgrad=True) fixture "
                  "(tests/fixtures/reference/adaptive_torch.npz)",
        description="Adam with a running max of the second moment (non-increasing steps).",
    ),
    Algorithm(
        name="adamnc",
        family="adaptive",
        kind="optimizer",
        paper=_AMSGRAD_PAPER,
        arxiv="1904.09237",
        factory=adamnc,
        direction=scale_by_adamnc,
        test_hparams={"learning_rate": 5e-2},
        problems=_PROBLEMS,
        reference="NumPy float64 re-derivation (running mean of g^2); AdaGrad for b1=0",
        description="Adam with b2_t = 1 - 1/t: v is the running mean of squared gradients.",
    ),
)
