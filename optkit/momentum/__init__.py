"""momentum family: EMA mixtures and variance-reduced momentum.

Catalog: shared/algorithms/momentum.md.
"""

import optax

from optkit.core.algorithm import Algorithm
from optkit.momentum.ademamix import (
    ScaleByAdemamixState,
    ademamix,
    ademamix_alpha_schedule,
    ademamix_b3_schedule,
    scale_by_ademamix,
    simplified_ademamix,
)
from optkit.momentum.ef21 import (
    Compressor,
    ScaleByEF21State,
    ef21,
    identity_compressor,
    rand_k,
    scale_by_ef21,
    top_k,
)
from optkit.momentum.gravity import ScaleByGravityState, gravity, scale_by_gravity
from optkit.momentum.harpg import (
    NormalizedHARPGState,
    NormalizedIGTState,
    igt_step_size_schedule,
    normalized_harpg,
    normalized_igt,
    normalized_igt_eval_params,
    scale_by_normalized_igt,
)
from optkit.momentum.mars import (
    ScaleByMarsCorrectionState,
    ScaleByMarsState,
    mars,
    mars_exact,
    scale_by_mars,
    scale_by_mars_correction,
)
from optkit.momentum.multi_momentum import MultiMomentumState, multi_momentum
from optkit.momentum.o2nc import ScaleByO2ncState, o2nc, o2nc_eval_params, scale_by_o2nc
from optkit.momentum.quasar import (
    QasvrgState,
    ScaleByQasgdState,
    qasgd,
    qasgd_eval_params,
    qasvrg,
    qasvrg_is_snapshot_step,
    scale_by_qasgd,
)
from optkit.momentum.random_scaled import (
    ScaleByExponentialRandomState,
    random_scaled_sgdm,
    scale_by_exponential_random,
)
from optkit.momentum.xgrad import XGradState, xgrad, xgrad_eval_params
from optkit.momentum.bo_rep import (
    ScaleByNormalizedMomentumState,
    bo_rep,
    bo_rep_hypergradient,
    scale_by_normalized_momentum,
)
from optkit.momentum.compositional import (
    CompositionalEstimator,
    CompositionalState,
    compositional_moving_average,
)
from optkit.momentum.cyclic_block_vr import cyclic_block_vr
from optkit.momentum.prospect import prospect, spectral_risk_weights

__all__ = [
    "CompositionalEstimator",
    "CompositionalState",
    "ScaleByNormalizedMomentumState",
    "Compressor",
    "MultiMomentumState",
    "NormalizedHARPGState",
    "NormalizedIGTState",
    "ScaleByAdemamixState",
    "ScaleByEF21State",
    "ScaleByGravityState",
    "ef21",
    "gravity",
    "identity_compressor",
    "igt_step_size_schedule",
    "multi_momentum",
    "normalized_harpg",
    "normalized_igt",
    "normalized_igt_eval_params",
    "rand_k",
    "scale_by_ef21",
    "scale_by_gravity",
    "scale_by_normalized_igt",
    "top_k",
    "ScaleByMarsCorrectionState",
    "ScaleByMarsState",
    "ademamix",
    "ademamix_alpha_schedule",
    "ademamix_b3_schedule",
    "bo_rep",
    "bo_rep_hypergradient",
    "compositional_moving_average",
    "cyclic_block_vr",
    "mars",
    "mars_exact",
    "scale_by_ademamix",
    "scale_by_mars",
    "scale_by_mars_correction",
    "prospect",
    "scale_by_normalized_momentum",
    "simplified_ademamix",
    "spectral_risk_weights",
    "QasvrgState",
    "ScaleByExponentialRandomState",
    "ScaleByO2ncState",
    "ScaleByQasgdState",
    "XGradState",
    "o2nc",
    "o2nc_eval_params",
    "qasgd",
    "qasgd_eval_params",
    "qasvrg",
    "qasvrg_is_snapshot_step",
    "random_scaled_sgdm",
    "scale_by_exponential_random",
    "scale_by_o2nc",
    "scale_by_qasgd",
    "xgrad",
    "xgrad_eval_params",
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
    Algorithm(
        name="multi_momentum",
        family="momentum",
        kind="aggregator",
        paper="Variance Reduction in Deep Learning: More Momentum is All You Need",
        arxiv="2111.11828",
        factory=multi_momentum,
        test_hparams={"num_clusters": 2},
        static_hparams=("num_clusters",),
        problems=("two_quadratics",),
        reference="none found; properties in tests/momentum/test_multi_momentum.py",
        description=("One momentum per data cluster (leading K axis), combined "
                     "SAG-style: g_k - m_k + mean_j m_j over present clusters."),
    ),
    Algorithm(
        name="gravity",
        family="momentum",
        kind="optimizer",
        paper="Gravity Optimizer: a Kinematic Approach on Optimization in Deep Learning",
        arxiv="2101.09192",
        factory=gravity,
        direction=scale_by_gravity,
        # zeta ~ 1 / (g max|g|^2) is tiny for the contract quadratic's O(1-10)
        # gradients: eta = 0.1 moves it by 10% in 200 steps, eta = 3 halves it.
        test_hparams={"learning_rate": 3.0},
        static_hparams=("mask",),
        problems=("quadratic", "logistic_regression"),
        reference=("pytorch_optimizer 4.1.0 Gravity trajectory fixture with the initial "
                   "velocity injected (tests/fixtures/reference/momentum_gravity.npz)"),
        description=("Velocity averaging of the saturating step g / (1 + (g max|g|)^2) "
                     "with beta_t = (beta t + 1)/(t + 2); random initial velocity."),
    ),
    Algorithm(
        name="normalized_igt",
        family="momentum",
        kind="optimizer",
        paper=("Stochastic Policy Gradient Methods: Improved Sample Complexity for "
               "Fisher-non-degenerate Policies"),
        arxiv="2302.01734",
        factory=normalized_igt,
        direction=scale_by_normalized_igt,
        test_hparams={"learning_rate": 0.2, "eta": 0.5},
        problems=("quadratic", "logistic_regression"),
        reference="none found; properties in tests/momentum/test_harpg.py",
        description=("N-PG-IGT: momentum on gradients at the transported point "
                     "theta + (1-eta)/eta (theta - theta_prev), normalized step."),
    ),
    Algorithm(
        name="normalized_harpg",
        family="momentum",
        kind="optimizer",
        paper=("Stochastic Policy Gradient Methods: Improved Sample Complexity for "
               "Fisher-non-degenerate Policies"),
        arxiv="2302.01734",
        factory=normalized_harpg,
        extra_args=("value_fn",),
        test_hparams={"learning_rate": 0.2, "eta": 0.5},
        problems=("quadratic", "logistic_regression"),
        reference="none found; properties in tests/momentum/test_harpg.py",
        description=("N-HARPG: recursive momentum corrected by a Hessian-vector "
                     "product at a random interpolation point, normalized step."),
    ),
    Algorithm(
        name="ef21",
        family="momentum",
        kind="optimizer",
        paper="Error Feedback Reloaded: From Quadratic to Arithmetic Mean of Smoothness Constants",
        arxiv="2402.10774",
        factory=ef21,
        direction=scale_by_ef21,
        test_hparams={"learning_rate": 0.1, "compressor": top_k(fraction=0.5)},
        static_hparams=("compressor", "axis_name", "weights", "mask"),
        problems=("quadratic", "logistic_regression"),
        reference="NumPy float64 n-worker simulation (tests/momentum/test_ef21.py)",
        description=("EF21 error feedback: g += C(grad - g) with a contractive "
                     "compressor (top-k, rand-k); psum over axis_name; EF21-W weights."),
    ),
    Algorithm(
        name="o2nc",
        family="momentum",
        kind="optimizer",
        paper=("Optimal Stochastic Non-smooth Non-convex Optimization through "
               "Online-to-Non-convex Conversion"),
        arxiv="2302.03775",
        factory=o2nc,
        direction=scale_by_o2nc,
        test_hparams={"learning_rate": 0.003, "radius": 0.2},
        static_hparams=("period", "mask", "seed", "sample_fn"),
        problems=("quadratic", "ill_conditioned_quadratic"),
        reference="none found; NumPy float64 re-derivation in tests/momentum/test_o2nc.py",
        description=("Online-to-non-convex conversion: projected OGD on the step "
                     "Delta (D-ball), gradient at a uniformly random point of each step."),
    ),
    Algorithm(
        name="random_scaled_sgdm",
        family="momentum",
        kind="optimizer",
        paper="Random Scaling and Momentum for Non-smooth Non-convex Optimization",
        arxiv="2405.09742",
        factory=random_scaled_sgdm,
        test_hparams={"learning_rate": 0.05},
        static_hparams=("mask", "seed", "sample_fn"),
        problems=("quadratic", "logistic_regression"),
        reference="none found; NumPy float64 re-derivation in tests/momentum/test_random_scaled.py",
        description="EMA-momentum SGD whose every step is scaled by one s ~ Exp(1).",
    ),
    Algorithm(
        name="scale_by_exponential_random",
        family="momentum",
        kind="direction",
        paper="Random Scaling and Momentum for Non-smooth Non-convex Optimization",
        arxiv="2405.09742",
        factory=scale_by_exponential_random,
        static_hparams=("seed", "sample_fn"),
        reference="none found; properties in tests/momentum/test_random_scaled.py",
        description="Multiplies any update by one scalar s ~ Exp(1) per step (key in state).",
    ),
    Algorithm(
        name="xgrad",
        family="momentum",
        kind="wrapper",
        paper="XGrad: Boosting Gradient-Based Optimizers With Weight Prediction",
        arxiv="2305.18240",
        factory=xgrad,
        test_hparams={"inner": optax.scale_by_adam(), "learning_rate": 0.05},
        static_hparams=("inner",),
        problems=("quadratic", "logistic_regression", "ill_conditioned_quadratic"),
        reference="none checked (guanleics/XGrad); NumPy re-derivation in tests/momentum/test_xgrad.py",
        description=("Weight prediction: gradients at theta - s lr d (the inner "
                     "direction re-applied s steps ahead); true weights in the state."),
    ),
    Algorithm(
        name="qasgd",
        family="momentum",
        kind="optimizer",
        paper="Accelerated Stochastic Optimization Methods under Quasar-convexity",
        arxiv="2305.04736",
        factory=qasgd,
        direction=scale_by_qasgd,
        test_hparams={"learning_rate": 0.1},
        static_hparams=("mask",),
        problems=("quadratic", "logistic_regression"),
        reference=("authors' experiment code (read); NumPy float64 re-derivation in "
                   "tests/momentum/test_quasar.py"),
        description=("Accelerated coupling of a gradient step y and a mirror step z "
                     "(step gamma (2k+3) lr / 4) for gamma-quasar-convex losses."),
    ),
    Algorithm(
        name="qasvrg",
        family="momentum",
        kind="optimizer",
        paper="Accelerated Stochastic Optimization Methods under Quasar-convexity",
        arxiv="2305.04736",
        factory=qasvrg,
        extra_args=("value_fn",),
        test_hparams={"learning_rate": 0.1, "epoch_length": 20},
        static_hparams=("epoch_length",),
        problems=("quadratic", "logistic_regression"),
        reference=("authors' experiment code (read); NumPy float64 re-derivation in "
                   "tests/momentum/test_quasar.py"),
        description=("QASGD coupling with SVRG gradients in stages; full gradient "
                     "at each stage start, snapshot gradients from value_fn."),
    ),
    Algorithm(
        name="scale_by_normalized_momentum",
        family="momentum",
        kind="direction",
        paper=("Bilevel Optimization under Unbounded Smoothness: A New Algorithm and "
               "Convergence Analysis"),
        arxiv="2401.09587",
        factory=scale_by_normalized_momentum,
        direction=scale_by_normalized_momentum,
        reference="none found; hand-computed steps in tests/momentum/test_bo_rep.py",
        description=("BO-REP's upper-level update m / ||m|| of an EMA m (global l2 "
                     "norm); the bo_rep solver and bo_rep_hypergradient are functions."),
    ),
)
