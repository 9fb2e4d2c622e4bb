"""memory family: optimizers that keep less state than Adam (subspace and
subset statistics, projected moments, block selection, freezing)."""

import optax as _optax

from optkit.core.algorithm import Algorithm
from optkit.memory.frugal import frugal, scale_by_frugal
from optkit.memory.grades import freeze_converged, frozen_fraction
from optkit.memory.greedy_bcd import (block_coordinate_descent, greedy_block_mask,
                                      scale_by_block_coordinate_descent)
from optkit.memory.natural_galore import natural_galore, scale_by_natural_galore
from optkit.memory.subset_norm import (adamw_snsm, scale_by_subset_norm,
                                       scale_by_subspace_momentum)

__all__ = [
    "block_coordinate_descent",
    "freeze_converged",
    "frozen_fraction",
    "frugal",
    "greedy_block_mask",
    "scale_by_block_coordinate_descent",
    "scale_by_frugal",
    "adamw_snsm",
    "natural_galore",
    "scale_by_natural_galore",
    "scale_by_subset_norm",
    "scale_by_subspace_momentum",
]

RECORDS = (
    Algorithm(
        name="adamw_snsm", family="memory", kind="optimizer",
        paper=("Efficient Adaptive Optimization via Subset-Norm and Subspace-Momentum: "
               "Fast, Memory-Reduced Training with Convergence Guarantees"),
        arxiv="2411.07120", factory=adamw_snsm, direction=scale_by_subset_norm,
        test_hparams={"learning_rate": 0.1, "rank": 1, "update_proj_gap": 10},
        static_hparams=("rank", "subset_size", "seed"),
        problems=("quadratic", "ill_conditioned_quadratic", "logistic_regression"),
        reference="pytorch_optimizer AdamWSN (subset norm); float64 NumPy (subspace momentum)",
        description="AdamW with subset-norm second moments and rank-r subspace momentum"),
    Algorithm(
        name="natural_galore", family="memory", kind="optimizer",
        paper=("Natural GaLore: Accelerating GaLore for memory-efficient LLM Training "
               "and Fine-tuning"),
        arxiv="2410.16029", factory=natural_galore, direction=scale_by_natural_galore,
        test_hparams={"learning_rate": 0.1, "rank": 1, "update_proj_gap": 10, "scale": 1.0,
                      "history_size": 3},
        static_hparams=("rank", "history_size"),
        problems=("quadratic", "ill_conditioned_quadratic", "logistic_regression"),
        reference="pytorch_optimizer GaLore (history_size=0); optax.contrib.galore",
        description="GaLore low-rank Adam with a Woodbury empirical-Fisher natural gradient"),
    Algorithm(
        name="frugal", family="memory", kind="optimizer",
        paper=("FRUGAL: Memory-Efficient Optimization by Reducing State Overhead for "
               "Scalable Training"),
        arxiv="2411.07837", factory=frugal, direction=scale_by_frugal,
        test_hparams={"learning_rate": 0.05, "density": 0.5, "update_gap": 10},
        static_hparams=("density", "projection", "state_free", "seed"),
        problems=("quadratic", "ill_conditioned_quadratic", "logistic_regression"),
        reference="optax.adamw (density 1), optax.sign_sgd (density 0); float64 NumPy "
                  "re-derivation (tests/memory/test_frugal.py)",
        description="AdamW on a subspace (SVD / Rand-K / columns), signSGD on the residual"),
    Algorithm(
        name="block_coordinate_descent", family="memory", kind="optimizer",
        paper=("Let's Make Block Coordinate Descent Converge Faster: Faster Greedy Rules, "
               "Message-Passing, Active-Set Complexity, and Superlinear Convergence"),
        arxiv="1712.08859", factory=block_coordinate_descent,
        direction=scale_by_block_coordinate_descent,
        test_hparams={"learning_rate": 0.2, "rule": "gs", "k": 3},
        static_hparams=("rule", "k", "lipschitz", "block_size"),
        # Not the ill-conditioned quadratic: one leaf is one block there, so the
        # method is plain gradient descent with a fixed step (no 1/L_b known).
        problems=("quadratic", "logistic_regression"),
        reference="none found; selection rules checked by hand (tests/memory/test_greedy_bcd.py)",
        description="Greedy (GS / GSL / GSQ) block selection; only the k best blocks move"),
    Algorithm(
        name="freeze_converged", family="memory", kind="wrapper",
        paper=("GradES: Significantly Faster Training in Transformers with Gradient-Based "
               "Early Stopping"),
        arxiv="2509.01842", factory=freeze_converged,
        test_hparams={"inner": _optax.sgd(0.1), "total_steps": 200, "tau": 1e-3,
                      "grace_fraction": 0.5},
        static_hparams=("inner", "metric", "reduction", "mask"),
        problems=("quadratic", "logistic_regression"),
        reference="none checked (IXZZZ9/GradES); properties in tests/memory/test_grades.py",
        description="Wrapper: freezes for good the matrices whose gradient L1 falls below tau"),
)
