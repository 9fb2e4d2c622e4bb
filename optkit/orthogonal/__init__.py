"""orthogonal family: steepest descent under per-tensor norms (sign, spectral,
RMS->RMS, l1->RMS), Muon and orthogonalization-based methods."""

import optax as _optax

from optkit.core.algorithm import Algorithm
from optkit.orthogonal.asgo import ScaleByAsgoState, asgo, dasgo, scale_by_asgo
from optkit.orthogonal.auon import ScaleByAuonState, auon, hybrid_auon, scale_by_auon
from optkit.orthogonal.muon import muon, scale_by_muon
from optkit.orthogonal.lmo import (
    LMO,
    ScaleByLMOState,
    lmo_l2,
    lmo_optimizer,
    lmo_sign,
    lmo_spectral,
    scale_by_lmo,
)
from optkit.orthogonal.scaled_gd import scale_by_scaled_gd, scaled_gd
from optkit.orthogonal.mup import (
    ROLES,
    LayerMultipliers,
    ScaleByMupState,
    mup_multipliers,
    scale_by_mup,
)
from optkit.orthogonal.mup_second_order import SecondOrderMultipliers, mup_second_order_scaling
from optkit.orthogonal.u_mup import ScaleByUMupState, scale_by_u_mup, u_mup_multipliers
from optkit.orthogonal.width_scaling import width_scaled_adamw, width_scaling_multipliers
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
    "LMO",
    "ScaleByAsgoState",
    "ScaleByAuonState",
    "asgo",
    "auon",
    "dasgo",
    "hybrid_auon",
    "scale_by_asgo",
    "scale_by_auon",
    "ScaleByLMOState",
    "lmo_l2",
    "lmo_optimizer",
    "lmo_sign",
    "lmo_spectral",
    "scale_by_lmo",
    "scale_by_scaled_gd",
    "scaled_gd",
    "LayerMultipliers",
    "ROLES",
    "ScaleByMupState",
    "ScaleByUMupState",
    "SecondOrderMultipliers",
    "mup_multipliers",
    "mup_second_order_scaling",
    "scale_by_mup",
    "scale_by_u_mup",
    "u_mup_multipliers",
    "width_scaled_adamw",
    "width_scaling_multipliers",
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
    Algorithm(
        name="lmo_optimizer",
        family="orthogonal",
        kind="optimizer",
        paper=("Understanding Gradient Orthogonalization for Deep Learning via "
               "Non-Euclidean Trust-Region Optimization"),
        arxiv="2503.12645",
        factory=lmo_optimizer,
        direction=scale_by_lmo,
        test_hparams={"learning_rate": 0.05, "lmo": "spectral"},
        static_hparams=("lmo", "mask", "mu_dtype"),
        problems=("quadratic",),
        reference=("optax.contrib.muon's Muon branch (1e-6); pytorch_optimizer Muon fixture "
                   "fixtures/reference/orthogonal_lmo_muon.npz (1e-5); optax.signum (exact); "
                   "exact SVD U V^T"),
        description=("Non-Euclidean trust-region method x <- (1 - eta lambda) x + eta lmo(m): "
                     "spectral (Muon), l_inf (Signum) or l2 (normalized SGDM) LMO."),
    ),
    Algorithm(
        name="scaled_gd",
        family="orthogonal",
        kind="optimizer",
        paper="The Power of Preconditioning in Overparameterized Low-Rank Matrix Sensing",
        arxiv="2302.01186",
        factory=scaled_gd,
        direction=scale_by_scaled_gd,
        # The contract tree has no factor pair: its (4, 3) matrix is used as a
        # symmetric factor X (preconditioned by (X^T X + lambda I)^(-1)); the
        # other leaves take the documented plain-GD fallback.
        test_hparams={"learning_rate": 0.1, "pairs": (("w", "w"),), "damping": 1.0},
        static_hparams=("pairs",),
        problems=("quadratic",),
        reference=None,
        description=("ScaledGD(lambda): factor gradients preconditioned by the partner's "
                     "damped inverse Gram matrix (low-rank matrix sensing)."),
    ),
    Algorithm(
        name="scale_by_mup",
        family="orthogonal",
        kind="wrapper",
        paper="Tensor Programs IVb: Adaptive Optimization in the Infinite-Width Limit",
        arxiv="2308.01814",
        factory=scale_by_mup,
        # Contract tree: roles per leaf name, every width 2x the base width.
        test_hparams={"inner": _optax.adam(0.1), "width_mults": 2.0,
                      "roles": {"b": "bias", "c": "bias", "k": "hidden", "w": "output"}},
        static_hparams=("roles", "inner", "optimizer", "readout"),
        problems=("quadratic",),
        reference=("microsoft/mup MuAdam/MuSGD tables (read); coordinate check in "
                   "tests/orthogonal/test_mup.py"),
        description=("muP per-layer lr multipliers (Adam: hidden/output 1/r; SGD: "
                     "input/bias r) applied to an inner optimizer's update."),
    ),
    Algorithm(
        name="scale_by_u_mup",
        family="orthogonal",
        kind="wrapper",
        paper="u-μP: The Unit-Scaled Maximal Update Parametrization",
        arxiv="2407.17465",
        factory=scale_by_u_mup,
        # Contract tree: roles per leaf name, fan-in from the shapes (Flax layout).
        test_hparams={"inner": _optax.adam(0.1), "weight_decay": 1e-3,
                      "roles": {"b": "bias", "c": "bias", "k": "hidden", "w": "output"}},
        static_hparams=("roles", "fan_in", "inner", "residual_depth", "optimizer",
                        "readout_constraint"),
        problems=("quadratic",),
        reference=("graphcore-research/unit-scaling optim.py lr_scale_func_adam/sgd "
                   "(read); coordinate check in tests/orthogonal/test_u_mup.py"),
        description=("u-muP lr multipliers (weights fan_in^-1/2, depth^-1/2 in residual "
                     "branches) and lr-independent weight decay on an inner optimizer."),
    ),
    Algorithm(
        name="width_scaled_adamw",
        family="orthogonal",
        kind="optimizer",
        paper="Robust Layerwise Scaling Rules by Proper Weight Decay Tuning",
        arxiv="2510.15262",
        factory=width_scaled_adamw,
        direction=_optax.scale_by_adam,
        test_hparams={"learning_rate": 0.1, "weight_decay": 1e-3, "width_mults": 2.0},
        static_hparams=("roles", "mu_dtype"),
        problems=("quadratic",),
        reference=("none found; rule from the paper (eta/r, lambda sqrt(r) on matrix-like "
                   "leaves); equilibrium check in tests/orthogonal/test_width_scaling.py"),
        description=("AdamW with muP lr (1/r) and sqrt(r) weight decay on matrix-like "
                     "leaves, lr x 1 and no decay on vector-like leaves."),
    ),
    Algorithm(
        name="asgo",
        family="orthogonal",
        kind="optimizer",
        paper="ASGO: Adaptive Structured Gradient Optimization",
        arxiv="2503.20762",
        factory=asgo,
        direction=scale_by_asgo,
        # Updates have RMS 0.2 * lr (the code's rescaling): a larger lr reaches
        # the quadratic's basin within 200 steps.
        test_hparams={"learning_rate": 0.5, "weight_decay": 0.0},
        static_hparams=("matrix_steps", "inverse", "mask", "dimension_numbers", "mu_dtype"),
        problems=("quadratic",),
        reference=("float64 NumPy re-derivation (1e-10); float64 torch port of "
                   "infinity-stars/ASGO asgo.py with PolarExpress (fixture orthogonal_asgo.npz, "
                   "1e-8); U V^T without accumulation (1e-5)"),
        description=("One-sided full-matrix adaptive preconditioner (V + eps I)^(-1/2) M on "
                     "the smaller side, update rescaled to RMS 0.2; reduces to U V^T."),
    ),
    Algorithm(
        name="dasgo",
        family="orthogonal",
        kind="optimizer",
        paper="ASGO: Adaptive Structured Gradient Optimization",
        arxiv="2503.20762",
        factory=dasgo,
        direction=scale_by_asgo,
        test_hparams={"learning_rate": 0.5, "weight_decay": 0.0},
        static_hparams=("mask", "dimension_numbers", "mu_dtype"),
        problems=("quadratic",),
        reference=("float64 NumPy re-derivation and torch port of infinity-stars/ASGO "
                   "dasgo.py (fixture orthogonal_asgo.npz, 1e-10); optax.scale_by_rms on a "
                   "one-column leaf (1e-6)"),
        description=("Diagonal ASGO: per-row second moments diag(G G^T), M / sqrt(v + eps), "
                     "update rescaled to RMS 0.2."),
    ),
    Algorithm(
        name="auon",
        family="orthogonal",
        kind="optimizer",
        paper="AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates",
        arxiv="2509.24320",
        factory=auon,
        direction=scale_by_auon,
        test_hparams={"learning_rate": 0.1},
        static_hparams=("mask", "mu_dtype"),
        problems=("quadratic",),
        reference=("torch port of ryyzn9/AuON auon/optimizer.py AuON (fixture "
                   "orthogonal_auon.npz, 1e-10 in float64, 1e-6 in float32)"),
        description=("Nesterov-lerped EMA momentum divided by the cosh brake "
                     "sqrt(mean(cosh(gamma G/||G||)^2)) (about 1 on large layers)."),
    ),
    Algorithm(
        name="hybrid_auon",
        family="orthogonal",
        kind="optimizer",
        paper="AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates",
        arxiv="2509.24320",
        factory=hybrid_auon,
        direction=scale_by_auon,
        test_hparams={"learning_rate": 0.1},
        static_hparams=("ns_steps", "ns_coeffs", "mask", "dimension_numbers", "mu_dtype"),
        problems=("quadratic",),
        reference=("torch port of ryyzn9/AuON auon/optimizer.py HybridAuON (fixture "
                   "orthogonal_auon.npz, 1e-10 in float64, 1e-5 in float32)"),
        description=("Hybrid-AuON: quintic Newton-Schulz on rank >= 2 leaves, then the "
                     "cosh brake; brake only on 0-D/1-D leaves."),
    ),
)
