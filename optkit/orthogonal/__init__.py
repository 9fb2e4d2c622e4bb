"""orthogonal family: steepest descent under per-tensor norms (sign, spectral,
RMS->RMS, l1->RMS), Muon and orthogonalization-based methods."""

from optkit.core.algorithm import Algorithm
from optkit.orthogonal.muon import muon, scale_by_muon
from optkit.orthogonal.steepest_descent import (
    ScaleBySteepestDescentState,
    dualize_columns,
    dualize_l2,
    dualize_rms,
    dualize_rms_to_rms,
    dualize_sign,
    dualize_spectral,
    scale_by_spectral_descent,
    scale_by_steepest_descent,
    sign_descent,
    spectral_descent,
    steepest_descent,
)

__all__ = [
    "ScaleBySteepestDescentState",
    "dualize_columns",
    "dualize_l2",
    "dualize_rms",
    "dualize_rms_to_rms",
    "dualize_sign",
    "dualize_spectral",
    "muon",
    "scale_by_muon",
    "scale_by_spectral_descent",
    "scale_by_steepest_descent",
    "sign_descent",
    "spectral_descent",
    "steepest_descent",
]

_ANTHOLOGY = "Old Optimizer, New Norm: An Anthology"
_ANTHOLOGY_ARXIV = "2409.20325"

RECORDS = (
    Algorithm(
        name="spectral_descent",
        family="orthogonal",
        kind="optimizer",
        paper=_ANTHOLOGY,
        arxiv=_ANTHOLOGY_ARXIV,
        factory=spectral_descent,
        direction=scale_by_spectral_descent,
        # Constant-size steps: a larger lr still decreases the quadratic's loss
        # 100x in 200 steps before oscillating at the lr scale.
        test_hparams={"learning_rate": 0.1},
        static_hparams=("ns_steps", "method", "mask", "dimension_numbers", "fallback"),
        problems=("quadratic",),
        reference=("optax.contrib.scale_by_muon with beta=0 (Newton-Schulz, 1e-6); exact "
                   "SVD and a float64 NumPy Shampoo (GG^T)^(-1/4) G (G^TG)^(-1/4) (1e-5)"),
        description=("Spectral steepest descent U V^T (Shampoo without accumulation); "
                     "Newton-Schulz or SVD, l2 fallback for 0-D/1-D leaves."),
    ),
    Algorithm(
        name="steepest_descent",
        family="orthogonal",
        kind="optimizer",
        paper=_ANTHOLOGY,
        arxiv=_ANTHOLOGY_ARXIV,
        factory=steepest_descent,
        direction=scale_by_steepest_descent,
        test_hparams={"learning_rate": 0.2, "norms": "rms_to_rms"},
        static_hparams=("norms", "ns_steps", "method", "mask", "dimension_numbers"),
        problems=("quadratic",),
        reference="exact dual norms (NumPy SVD / l1 / l2) and optax.adam(b1=b2=eps=0)",
        description=("Steepest descent with a norm per leaf (sign, l2, rms, spectral, "
                     "rms_to_rms, columns), optional dual-norm step size."),
    ),
    Algorithm(
        name="sign_descent",
        family="orthogonal",
        kind="optimizer",
        paper=_ANTHOLOGY,
        arxiv=_ANTHOLOGY_ARXIV,
        factory=sign_descent,
        direction=scale_by_steepest_descent,
        test_hparams={"learning_rate": 0.05},
        static_hparams=("mask",),
        problems=("quadratic",),
        reference="optax.adam with b1 = b2 = eps = 0 (exact)",
        description="Sign descent: steepest descent under the l_inf norm (Adam without EMAs).",
    ),
    Algorithm(
        name="muon",
        family="orthogonal",
        kind="optimizer",
        paper=("Understanding Gradient Orthogonalization for Deep Learning via "
               "Non-Euclidean Trust-Region Optimization"),
        arxiv="2503.12645",
        factory=muon,
        direction=scale_by_muon,
        test_hparams={"learning_rate": 0.05},
        static_hparams=("ns_steps", "weight_decay_mask", "muon_weight_dimension_numbers"),
        problems=("quadratic",),
        reference="optax.contrib.muon",
        description=("Muon (optax.contrib.muon re-used): Nesterov momentum orthogonalized by "
                     "Newton-Schulz on 2-D leaves, AdamW elsewhere."),
    ),
)
