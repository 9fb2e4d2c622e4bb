"""curvature family: Hessian, Gauss-Newton, Fisher and Kronecker preconditioners."""

from optkit.core.algorithm import Algorithm
from optkit.curvature.adahessian import (
    HutchinsonDiagHessianState,
    ScaleByAdaHessianState,
    adahessian,
    hutchinson_diag_hessian,
    scale_by_adahessian,
)

__all__ = [
    "HutchinsonDiagHessianState",
    "ScaleByAdaHessianState",
    "adahessian",
    "hutchinson_diag_hessian",
    "scale_by_adahessian",
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
)
