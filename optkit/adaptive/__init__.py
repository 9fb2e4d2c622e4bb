"""adaptive family: Adam-like per-coordinate scaling (Adam, AdaMax, AMSGrad, AdamNC).

Catalog: shared/algorithms/adaptive.md.
"""

from optkit.core.algorithm import Algorithm
from optkit.adaptive.adam import ScaleByAdamState, adam, adamax, scale_by_adam, scale_by_adamax
import optax as _optax  # project_out_radial's record wraps optax.sgd
from optkit.adaptive.adabound import ScaleByAdaBoundState, adabound, amsbound, scale_by_adabound
from optkit.adaptive.adamp import (
    ProjectOutRadialState,
    ScaleByAdamPMomentsState,
    ScaleBySGDPMomentumState,
    adamp,
    project_out_radial,
    scale_by_adamp,
    scale_by_sgdp,
    sgdp,
)
from optkit.adaptive.diffgrad import ScaleByDiffGradState, diffgrad, scale_by_diffgrad
from optkit.adaptive.adamomentum import (
    ScaleByAdaMomentumState,
    adamomentum,
    scale_by_adamomentum,
)
from optkit.adaptive.ranger21 import (
    AddStableWeightDecayState,
    Ranger21State,
    ScaleByPnmState,
    add_stable_weight_decay,
    normalize_by_std,
    ranger21,
    ranger21_learning_rate,
    scale_by_pnm,
)
from optkit.adaptive.optimistic_amsgrad import (
    OptimisticAmsgradState,
    optimistic_amsgrad,
    optimistic_amsgrad_eval_params,
    rmpe_extrapolate,
)
from optkit.adaptive.amsgrad import (
    ScaleByAdamNCState,
    ScaleByAmsgradState,
    adamnc,
    amsgrad,
    scale_by_adamnc,
    scale_by_amsgrad,
)

__all__ = [
    "OptimisticAmsgradState",
    "optimistic_amsgrad",
    "optimistic_amsgrad_eval_params",
    "rmpe_extrapolate",
    "AddStableWeightDecayState",
    "Ranger21State",
    "ScaleByPnmState",
    "add_stable_weight_decay",
    "normalize_by_std",
    "ranger21",
    "ranger21_learning_rate",
    "scale_by_pnm",
    "ScaleByAdaMomentumState",
    "adamomentum",
    "scale_by_adamomentum",
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
    "ProjectOutRadialState",
    "ScaleByAdaBoundState",
    "ScaleByAdamPMomentsState",
    "ScaleByDiffGradState",
    "ScaleBySGDPMomentumState",
    "adabound",
    "adamp",
    "amsbound",
    "diffgrad",
    "project_out_radial",
    "scale_by_adabound",
    "scale_by_adamp",
    "scale_by_diffgrad",
    "scale_by_sgdp",
    "sgdp",
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
    Algorithm(
        name="adamomentum",
        family="adaptive",
        kind="optimizer",
        paper="Rethinking Adam: A Twofold Exponential Moving Average Approach",
        arxiv="2106.11514",
        factory=adamomentum,
        direction=scale_by_adamomentum,
        test_hparams={"learning_rate": 5e-2},
        problems=_PROBLEMS,
        reference="NumPy float64 re-derivation of Algorithm 2 (no public reference found)",
        description="Adam whose second moment is the EMA of the squared momentum (eps inside v).",
    ),
    Algorithm(
        name="ranger21",
        family="adaptive",
        kind="optimizer",
        paper="Ranger21: a synergistic deep learning optimizer",
        arxiv="2106.13731",
        factory=ranger21,
        direction=None,  # the learning rate and its schedule live inside the update
        # Gradient centralization keeps the per-unit means of every ndim > 1 leaf
        # fixed, and the contract quadratic starts 2 above its center everywhere:
        # with GC its loss cannot halve, so the contract runs without it.
        test_hparams={"learning_rate": 0.1, "num_iterations": 200,
                      "centralize_gradients": False},
        static_hparams=("num_iterations", "lookahead_k", "num_warmup_iterations",
                        "num_warmdown_iterations"),
        problems=_PROBLEMS,
        reference="pytorch_optimizer 4.1.0 Ranger21 fixture "
                  "(tests/fixtures/reference/adaptive_ranger21.npz)",
        description="AGC + GC + std-normalized grads, PNM, stable decay, norm loss, "
                    "softplus denominator, warm-up/down, lookahead.",
    ),
    Algorithm(
        name="optimistic_amsgrad",
        family="adaptive",
        kind="optimizer",
        paper="An Optimistic Acceleration of AMSGrad for Nonconvex Optimization",
        arxiv="1903.01435",
        factory=optimistic_amsgrad,
        direction=None,  # the base iterate w_{t+1/2} lives in the state, lr inside
        test_hparams={"learning_rate": 5e-2},
        static_hparams=("window",),
        problems=_PROBLEMS,
        reference="hand-derived steps and AMSGrad reduction (no public reference found)",
        description="AMSGrad half-step plus an optimistic step along a guess of the next "
                    "gradient (last gradient or RMPE).",
    ),
    Algorithm(
        name="adabound",
        family="adaptive",
        kind="optimizer",
        paper="Adaptive Gradient Methods with Dynamic Bound of Learning Rate",
        arxiv="1902.09843",
        factory=adabound,
        direction=scale_by_adabound,  # the learning rate lives inside the direction
        test_hparams={"learning_rate": 5e-2, "final_lr": 5e-2},
        problems=_PROBLEMS,
        reference="pytorch_optimizer 4.1.0 AdaBound fixture "
                  "(tests/fixtures/reference/adaptive_adabound.npz)",
        description="Adam whose per-coordinate step is clipped to bounds tending to final_lr.",
    ),
    Algorithm(
        name="amsbound",
        family="adaptive",
        kind="optimizer",
        paper="Adaptive Gradient Methods with Dynamic Bound of Learning Rate",
        arxiv="1902.09843",
        factory=amsbound,
        direction=scale_by_adabound,
        test_hparams={"learning_rate": 5e-2, "final_lr": 5e-2},
        problems=_PROBLEMS,
        reference="pytorch_optimizer 4.1.0 AdaBound(ams_bound=True) fixture "
                  "(tests/fixtures/reference/adaptive_adabound.npz)",
        description="AdaBound on the running max of v (AMSGrad with dynamic bounds).",
    ),
    Algorithm(
        name="adamp",
        family="adaptive",
        kind="optimizer",
        paper=("AdamP: Slowing Down the Slowdown for Momentum Optimizers on "
               "Scale-invariant Weights"),
        arxiv="2006.08217",
        factory=adamp,
        direction=scale_by_adamp,
        test_hparams={"learning_rate": 5e-2},
        static_hparams=("channel_axis",),
        problems=_PROBLEMS,
        reference="pytorch_optimizer 4.1.0 AdamP fixture "
                  "(tests/fixtures/reference/adaptive_adamp.npz); optax.adamw",
        description="AdamW with the radial update part removed on scale-invariant weights.",
    ),
    Algorithm(
        name="sgdp",
        family="adaptive",
        kind="optimizer",
        paper=("AdamP: Slowing Down the Slowdown for Momentum Optimizers on "
               "Scale-invariant Weights"),
        arxiv="2006.08217",
        factory=sgdp,
        direction=scale_by_sgdp,
        test_hparams={"learning_rate": 1e-2},
        static_hparams=("channel_axis",),
        problems=("quadratic", "ill_conditioned_quadratic", "logistic_regression"),
        reference="pytorch_optimizer 4.1.0 SGDP fixture "
                  "(tests/fixtures/reference/adaptive_adamp.npz); optax.sgd",
        description="SGD with momentum, radial update part removed on scale-invariant weights.",
    ),
    Algorithm(
        name="project_out_radial",
        family="adaptive",
        kind="wrapper",
        paper=("AdamP: Slowing Down the Slowdown for Momentum Optimizers on "
               "Scale-invariant Weights"),
        arxiv="2006.08217",
        factory=project_out_radial,
        test_hparams={"inner": _optax.sgd(0.05)},
        static_hparams=("inner", "channel_axis"),
        problems=("quadratic", "logistic_regression"),
        reference="the AdamP/SGDP fixtures (through adamp / sgdp)",
        description="Projects the radial part out of any inner update of scale-invariant weights.",
    ),
    Algorithm(
        name="diffgrad",
        family="adaptive",
        kind="optimizer",
        paper="diffGrad: An Optimization Method for Convolutional Neural Networks",
        arxiv="1909.11015",
        factory=diffgrad,
        direction=scale_by_diffgrad,
        test_hparams={"learning_rate": 5e-2},
        problems=_PROBLEMS,
        reference="pytorch_optimizer 4.1.0 DiffGrad fixture "
                  "(tests/fixtures/reference/adaptive_diffgrad.npz)",
        description="Adam whose step is damped by sigmoid(|g_{t-1} - g_t|).",
    ),
)
