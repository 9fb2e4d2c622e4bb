"""curvature family: Hessian, Gauss-Newton, Fisher and Kronecker preconditioners."""

from optkit.core.algorithm import Algorithm
from optkit.curvature.adahessian import (
    HutchinsonDiagHessianState,
    ScaleByAdaHessianState,
    adahessian,
    hutchinson_diag_hessian,
    scale_by_adahessian,
)
from optkit.curvature.sophia import (
    GNBDiagHessianState,
    ScaleBySophiaState,
    gnb_diag_hessian,
    gnb_value_fn,
    scale_by_sophia,
    sophia,
    sophia_g,
)
from optkit.curvature.shampoo import (
    ScaleByShampooState,
    scale_by_shampoo,
    shampoo,
)

__all__ = [
    "HutchinsonDiagHessianState",
    "ScaleByAdaHessianState",
    "adahessian",
    "hutchinson_diag_hessian",
    "scale_by_adahessian",
    "GNBDiagHessianState",
    "ScaleBySophiaState",
    "gnb_diag_hessian",
    "gnb_value_fn",
    "scale_by_sophia",
    "sophia",
    "sophia_g",
    "ScaleByShampooState",
    "scale_by_shampoo",
    "shampoo",
]

_ADAHESSIAN_PAPER = "ADAHESSIAN: An Adaptive Second Order Optimizer for Machine Learning"

RECORDS = (
    Algorithm(
        name="adahessian",
        family="curvature",
        kind="optimizer",
        paper=_ADAHESSIAN_PAPER,
        arxiv="2006.00719",
        factory=adahessian,
        direction=scale_by_adahessian,
        extra_args=("value_fn",),
        test_hparams={"learning_rate": 0.1},
        static_hparams=("num_samples", "spatial_axes", "distribution", "mask"),
        problems=("quadratic", "ill_conditioned_quadratic"),
        reference=("NumPy float64 port of amirgholami/adahessian optim_adahessian.py "
                   "(tests/curvature/test_adahessian.py); pytorch_optimizer 4.1.0 "
                   "AdaHessian trajectory fixture (tests/fixtures/reference/adahessian.npz)"),
        description=("Adam-style step preconditioned by the EMA of a spatially "
                     "averaged Hutchinson Hessian diagonal, raised to a power."),
    ),
    Algorithm(
        name="hutchinson_diag_hessian",
        family="curvature",
        kind="estimator",
        paper=_ADAHESSIAN_PAPER,
        arxiv="2006.00719",
        factory=hutchinson_diag_hessian,
        extra_args=("value_fn",),
        test_hparams={},
        static_hparams=("num_samples", "distribution"),
        problems=(),
        reference=("optax.contrib.hutchinson_estimator_diag_hessian (same probes); "
                   "exact Hessian diagonal (unbiasedness)"),
        description="Hutchinson estimate mean_s z_s * (H z_s) of the Hessian diagonal.",
    ),
    Algorithm(
        name="sophia",
        family="curvature",
        kind="optimizer",
        paper=("Sophia: A Scalable Stochastic Second-order Optimizer for Language "
               "Model Pre-training"),
        arxiv="2305.14342",
        factory=sophia,
        direction=scale_by_sophia,
        extra_args=("value_fn",),
        test_hparams={"learning_rate": 0.05},
        static_hparams=("hessian_diag_fn", "hessian_refresh", "mask", "mu_dtype"),
        problems=("quadratic", "ill_conditioned_quadratic", "logistic_regression"),
        reference=("optax.contrib.sophia (same probes); pytorch_optimizer 4.1.0 SophiaH "
                   "trajectory fixture (tests/fixtures/reference/curvature_sophia.npz); "
                   "NumPy port of Liuhong99/Sophia SophiaG (tests/curvature/test_sophia.py)"),
        description=("Momentum divided by gamma times an EMA of a Hessian-diagonal "
                     "estimate refreshed every k steps, clipped to a box (Sophia-H)."),
    ),
    Algorithm(
        name="gnb_diag_hessian",
        family="curvature",
        kind="estimator",
        paper=("Sophia: A Scalable Stochastic Second-order Optimizer for Language "
               "Model Pre-training"),
        arxiv="2305.14342",
        factory=gnb_diag_hessian,
        extra_args=("value_fn",),
        test_hparams={"batch_size": 4.0},
        static_hparams=("seed",),
        problems=(),
        reference="exact Gauss-Newton diagonal of a softmax model (tests/curvature/test_sophia.py)",
        description=("Gauss-Newton-Bartlett estimate B g_hat * g_hat, g_hat the gradient "
                     "of the loss on labels sampled from the model (Sophia-G)."),
    ),
    Algorithm(
        name="sophia_g",
        family="curvature",
        kind="optimizer",
        paper=("Sophia: A Scalable Stochastic Second-order Optimizer for Language "
               "Model Pre-training"),
        arxiv="2305.14342",
        factory=sophia_g,
        direction=scale_by_sophia,
        extra_args=("value_fn",),
        test_hparams={"learning_rate": 0.05, "batch_size": 1.0, "weight_decay": 0.0},
        static_hparams=("update_interval", "seed", "mask", "mu_dtype"),
        problems=("quadratic", "logistic_regression"),
        reference="NumPy port of Liuhong99/Sophia SophiaG (tests/curvature/test_sophia.py)",
        description=("Sophia with the Gauss-Newton-Bartlett estimator: B g_hat^2 from "
                     "value_fn(params, key) with labels sampled from the model."),
    ),
    Algorithm(
        name="shampoo",
        family="curvature",
        kind="optimizer",
        paper="Scalable Second Order Optimization for Deep Learning",
        arxiv="2002.09018",
        factory=shampoo,
        direction=scale_by_shampoo,
        test_hparams={"learning_rate": 0.01},
        static_hparams=("block_size", "skip_preconditioning_dim_size_gt",
                        "exponent_override", "merge_small_dims_block_size",
                        "skip_preconditioning_rank_lt", "mask"),
        problems=("quadratic", "ill_conditioned_quadratic", "logistic_regression"),
        reference=("float64 NumPy re-derivation of google-research distributed_shampoo "
                   "(tests/curvature/test_shampoo.py); pytorch_optimizer 4.1.0 "
                   "ScalableShampoo and Shampoo trajectory fixture "
                   "(tests/fixtures/reference/curvature_shampoo.npz)"),
        description=("Blocked Kronecker-factored (L^-1/4 G R^-1/4) preconditioning "
                     "with layer-wise norm grafting and heavy-ball momentum."),
    ),
)
