"""constraints family: regularizers, proximal and projection steps, manifold
and constrained optimization (pruning penalties, weight normalization, sparse
training, Sinkhorn mirror steps, Riemannian adaptive methods, augmented
Lagrangians)."""

from optkit.core.algorithm import Algorithm
# -- papers 1-5 of constraints.md (pruning, nonconvex AG, LAWN, AutoSparse, Mirror Sinkhorn)
import optax as _optax_c1  # lawn's record wraps optax.sgd
from optkit.constraints.autosparse import (
    AnnealMaskedGradientsState,
    anneal_masked_gradients,
    gradient_annealing_schedule,
    sparsify_straight_through,
)
from optkit.constraints.lawn import LawnState, lawn
from optkit.constraints.mirror_sinkhorn import (
    MirrorSinkhornState,
    mirror_sinkhorn,
    mirror_sinkhorn_output,
    mirror_sinkhorn_schedule,
    round_to_transport_polytope,
)
from optkit.constraints.nonconvex_penalties import (
    NonconvexAcceleratedProxState,
    mcp_penalty,
    nonconvex_accelerated_prox,
    nonconvex_accelerated_prox_eval_params,
    prox_mcp,
    prox_scad,
    scad_penalty,
    soft_threshold,
)
from optkit.constraints.pruning_regularization import (
    AddSelectiveWeightDecayState,
    add_selective_weight_decay,
    iterative_magnitude_pruning,
)
# -- end papers 1-5
# -- papers 6-10 of constraints.md (spectral reg., Riemannian adaptive, norm loss, LV-HBA,
#    sketched Newton augmented Lagrangian)
from optkit.constraints.augmented_lagrangian import (
    SketchedNewtonALState,
    sketch_and_project_solve,
    sketched_newton_augmented_lagrangian,
)
from optkit.constraints.bilevel_lagrangian import LVHBAState, lv_hba
from optkit.constraints.norm_loss import AddNormLossState, add_norm_loss
from optkit.constraints.riemannian_adaptive import (
    Manifold,
    RiemannianAdagradState,
    RiemannianAdamState,
    euclidean,
    poincare_ball,
    riemannian_adagrad,
    riemannian_adam,
    riemannian_amsgrad,
    sphere,
    stiefel,
)
from optkit.constraints.spectral_regularization import (
    AddSpectralRegularizationState,
    AddWassersteinInitRegularizationState,
    add_spectral_regularization,
    add_wasserstein_init_regularization,
)
# -- end papers 6-10

__all__ = [
    # papers 1-5
    "AddSelectiveWeightDecayState",
    "AnnealMaskedGradientsState",
    "LawnState",
    "MirrorSinkhornState",
    "NonconvexAcceleratedProxState",
    "add_selective_weight_decay",
    "anneal_masked_gradients",
    "gradient_annealing_schedule",
    "iterative_magnitude_pruning",
    "lawn",
    "mcp_penalty",
    "mirror_sinkhorn",
    "mirror_sinkhorn_output",
    "mirror_sinkhorn_schedule",
    "nonconvex_accelerated_prox",
    "nonconvex_accelerated_prox_eval_params",
    "prox_mcp",
    "prox_scad",
    "round_to_transport_polytope",
    "scad_penalty",
    "soft_threshold",
    "sparsify_straight_through",
    # end papers 1-5
    # papers 6-10
    "AddNormLossState",
    "AddSpectralRegularizationState",
    "AddWassersteinInitRegularizationState",
    "LVHBAState",
    "Manifold",
    "RiemannianAdagradState",
    "RiemannianAdamState",
    "SketchedNewtonALState",
    "add_norm_loss",
    "add_spectral_regularization",
    "add_wasserstein_init_regularization",
    "euclidean",
    "lv_hba",
    "poincare_ball",
    "riemannian_adagrad",
    "riemannian_adam",
    "riemannian_amsgrad",
    "sketch_and_project_solve",
    "sketched_newton_augmented_lagrangian",
    "sphere",
    "stiefel",
    # end papers 6-10
]

RECORDS = (
    # papers 1-5
    Algorithm(
        name="add_selective_weight_decay",
        family="constraints",
        kind="direction",
        paper="Regularization-based Pruning of Irrelevant Weights in Deep Neural Architectures",
        arxiv="2204.04977",
        factory=add_selective_weight_decay,
        test_hparams={"weight_decay": 0.1},
        static_hparams=("saliency", "mask"),
        problems=("quadratic",),
        reference=("none found; exact selection / decay checks in "
                   "tests/constraints/test_pruning_regularization.py"),
        description=("Adds weight decay only to the weights whose saliency |w g| is below "
                     "a per-layer percentile (place before the learning rate)."),
    ),
    Algorithm(
        name="nonconvex_accelerated_prox",
        family="constraints",
        kind="optimizer",
        paper="Accelerated Gradient Methods for Sparse Statistical Learning with Nonconvex Penalties",
        arxiv="2009.10629",
        factory=nonconvex_accelerated_prox,
        test_hparams={"learning_rate": 0.1, "lam": 1e-3},
        static_hparams=("penalty",),
        problems=("quadratic", "logistic_regression"),
        reference=("authors' nonconvexAG 1.1.6 UAG_LM_SCAD_MCP fixture "
                   "(tests/fixtures/reference/constraints_nonconvex_ag.npz, rtol 1e-10); "
                   "brute-force prox checks in tests/constraints/test_nonconvex_penalties.py"),
        description=("Ghadimi-Lan accelerated proximal gradient for SCAD/MCP penalties with "
                     "the optimal damping sequence (sparse iterates)."),
    ),
    Algorithm(
        name="lawn",
        family="constraints",
        kind="wrapper",
        paper="Logit Attenuating Weight Normalization",
        arxiv="2108.05839",
        factory=lawn,
        test_hparams={"inner": _optax_c1.sgd(0.05), "switch_step": 100},
        static_hparams=("inner", "mask", "project_updates"),
        problems=("quadratic",),
        reference=("none found; optax.projections.projection_l2_sphere (exact) and norm "
                   "checks in tests/constraints/test_lawn.py"),
        description=("After switch_step free steps, keeps each weight matrix at the norm "
                     "recorded at the switch (radial part of the update removed)."),
    ),
    Algorithm(
        name="anneal_masked_gradients",
        family="constraints",
        kind="direction",
        paper="AUTOSPARSE: Towards Automated Sparse Training of Deep Neural Networks",
        arxiv="2304.06941",
        factory=anneal_masked_gradients,
        test_hparams={"alpha_schedule": 0.5, "threshold_fn": lambda params: 2.0},
        static_hparams=("threshold_fn",),
        problems=("quadratic",),
        reference="none found; mask / annealing checks in tests/constraints/test_autosparse.py",
        description=("Gradient annealing: gradients of weights with |w| <= tau are scaled "
                     "by a decaying alpha_t."),
    ),
    Algorithm(
        name="mirror_sinkhorn",
        family="constraints",
        kind="optimizer",
        paper="Mirror Sinkhorn: Fast Online Optimization on Transport Polytopes",
        arxiv="2211.10420",
        factory=mirror_sinkhorn,
        test_hparams={"learning_rate": 0.1},
        static_hparams=("a", "b", "mask"),
        problems=("quadratic",),
        reference=("none found; float64 NumPy Sinkhorn scaling and marginal checks in "
                   "tests/constraints/test_mirror_sinkhorn.py"),
        description=("Entropic mirror steps alternated with Sinkhorn row/column scalings on "
                     "the transport polytope U(a, b) (2-D leaves)."),
    ),
    # end papers 1-5
    # papers 6-10 (lv_hba and sketched_newton_augmented_lagrangian are tier-C
    # solvers: exported, not registered)
    Algorithm(
        name="add_spectral_regularization",
        family="constraints",
        kind="direction",
        paper="Learning Continually by Spectral Regularization",
        arxiv="2406.06811",
        factory=add_spectral_regularization,
        test_hparams={"strength": 1e-2},
        static_hparams=("num_power_iters", "seed", "dimension_numbers"),
        problems=("quadratic",),
        reference=("none found; jax.grad of the exact-SVD regularizer in "
                   "tests/constraints/test_spectral_regularization.py"),
        description=("Adds the gradient of lambda sum (sigma_max(W)^k - 1)^2 (persistent "
                     "power iteration); vectors pulled to their initial values."),
    ),
    Algorithm(
        name="add_wasserstein_init_regularization",
        family="constraints",
        kind="direction",
        paper="Learning Continually by Spectral Regularization",
        arxiv="2406.06811",
        factory=add_wasserstein_init_regularization,
        test_hparams={"strength": 1e-2},
        problems=("quadratic",),
        reference=("none found; jax.grad of the sorted-weights regularizer in "
                   "tests/constraints/test_spectral_regularization.py"),
        description=("Adds the gradient of lambda ||sort(w) - sort(w_0)||^2: pulls each "
                     "leaf's weight distribution to its initial one."),
    ),
    Algorithm(
        name="riemannian_adam",
        family="constraints",
        kind="optimizer",
        paper="Riemannian Adaptive Optimization Methods",
        arxiv="1810.00760",
        factory=riemannian_adam,
        test_hparams={"learning_rate": 0.1},
        static_hparams=("manifolds", "amsgrad", "bias_correction"),
        problems=("quadratic",),
        reference=("geoopt 0.5.1 RiemannianAdam fixture "
                   "(tests/fixtures/reference/constraints_riemannian_adam.npz); optax.adam"),
        description=("Adam on products of manifolds (Poincare ball, sphere, Stiefel, "
                     "Euclidean): one second moment per component, exp map + transport."),
    ),
    Algorithm(
        name="riemannian_amsgrad",
        family="constraints",
        kind="optimizer",
        paper="Riemannian Adaptive Optimization Methods",
        arxiv="1810.00760",
        factory=riemannian_amsgrad,
        test_hparams={"learning_rate": 0.1},
        static_hparams=("manifolds", "bias_correction"),
        problems=("quadratic",),
        reference=("geoopt 0.5.1 RiemannianAdam(amsgrad=True) fixture; optax.amsgrad "
                   "without bias correction"),
        description="RAMSGrad: Riemannian Adam with vhat = max(vhat, v) per component.",
    ),
    Algorithm(
        name="riemannian_adagrad",
        family="constraints",
        kind="optimizer",
        paper="Riemannian Adaptive Optimization Methods",
        arxiv="1810.00760",
        factory=riemannian_adagrad,
        test_hparams={"learning_rate": 0.5},
        static_hparams=("manifolds",),
        problems=("quadratic",),
        reference="none found; hand-computed Poincare-ball step in tests",
        description="RAdagrad: AdaGrad with one accumulator per manifold component.",
    ),
    Algorithm(
        name="add_norm_loss",
        family="constraints",
        kind="direction",
        paper=("Preprint: Norm Loss: An efficient yet effective regularization method "
               "for deep neural networks"),
        arxiv="2103.06583",
        factory=add_norm_loss,
        test_hparams={"strength": 1e-2},
        static_hparams=("layout",),
        problems=("quadratic",),
        reference=("pytorch_optimizer 4.1.0 Ranger21 norm-loss step fixture "
                   "(tests/fixtures/reference/constraints_norm_loss.npz); jax.grad"),
        description="Adds the gradient of lambda sum_i (1 - ||w_i||)^2 over output units.",
    ),
    # end papers 6-10
)
