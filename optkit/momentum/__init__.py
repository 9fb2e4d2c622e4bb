"""momentum family: EMA mixtures and variance-reduced momentum.

Catalog: shared/algorithms/momentum.md.
"""

from optkit.core.algorithm import Algorithm
from optkit.momentum.ademamix import (
    ScaleByAdemamixState,
    ademamix,
    ademamix_alpha_schedule,
    ademamix_b3_schedule,
    scale_by_ademamix,
    simplified_ademamix,
)
from optkit.momentum.mars import (
    ScaleByMarsCorrectionState,
    ScaleByMarsState,
    mars,
    mars_exact,
    scale_by_mars,
    scale_by_mars_correction,
)

__all__ = [
    "ScaleByAdemamixState",
    "ScaleByMarsCorrectionState",
    "ScaleByMarsState",
    "ademamix",
    "ademamix_alpha_schedule",
    "ademamix_b3_schedule",
    "mars",
    "mars_exact",
    "scale_by_ademamix",
    "scale_by_mars",
    "scale_by_mars_correction",
    "simplified_ademamix",
]

_MARS_PAPER = "MARS: Unleashing the Power of Variance Reduction for Training Large Models"
_MARS_STATIC = ("variant", "ns_steps", "optimize_1d", "mask", "eps_placement")

RECORDS = (
    Algorithm(
        name="ademamix",
        family="momentum",
        kind="optimizer",
        paper="The AdEMAMix Optimizer: Better, Faster, Older",
        arxiv="2409.03137",
        factory=ademamix,
        direction=scale_by_ademamix,
        test_hparams={"learning_rate": 1e-2},
        static_hparams=("t_alpha", "t_b3", "mask"),
        problems=("quadratic", "rosenbrock", "logistic_regression"),
        reference=("optax.contrib.ademamix (tests/momentum/test_ademamix.py); "
                   "pytorch_optimizer 4.1.0 AdEMAMix trajectory fixture "
                   "(tests/fixtures/reference/momentum_ademamix.npz)"),
        description=("Adam whose numerator mixes a bias-corrected fast EMA with an "
                     "uncorrected slow EMA (b3 = 0.9999) weighted by alpha."),
    ),
    Algorithm(
        name="mars",
        family="momentum",
        kind="optimizer",
        paper=_MARS_PAPER,
        arxiv="2411.10438",
        factory=mars,
        direction=scale_by_mars,
        test_hparams={"learning_rate": 1e-2, "lr_1d": 1e-2},
        static_hparams=_MARS_STATIC,
        problems=("quadratic", "rosenbrock", "logistic_regression"),
        reference=("NumPy float64 port of AGI-Arena/MARS mars.py "
                   "(tests/momentum/test_mars.py); pytorch_optimizer 4.1.0 MARS "
                   "trajectory fixture (tests/fixtures/reference/momentum_mars.npz)"),
        description=("Per-tensor clipped STORM-type corrected gradient "
                     "g + gamma b1/(1-b1) (g - g_prev) fed to AdamW, Lion or Shampoo."),
    ),
    Algorithm(
        name="mars_exact",
        family="momentum",
        kind="optimizer",
        paper=_MARS_PAPER,
        arxiv="2411.10438",
        factory=mars_exact,
        direction=scale_by_mars,
        extra_args=("value_fn",),
        test_hparams={"learning_rate": 1e-2, "lr_1d": 1e-2},
        static_hparams=_MARS_STATIC,
        problems=("quadratic", "logistic_regression"),
        reference="NumPy float64 port of the exact MARS rule (tests/momentum/test_mars.py)",
        description=("MARS with g_prev = gradient at the previous params on the "
                     "current batch, from value_fn."),
    ),
)
