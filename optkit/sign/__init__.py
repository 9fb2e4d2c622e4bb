"""sign family: Lion and Lion-K (sign-based and K-gradient momentum updates).

Catalog: shared/algorithms/sign.md.
"""

from optkit.core.algorithm import Algorithm
from optkit.sign.lion import ScaleByLionState, lion, scale_by_lion
from optkit.sign.lion_k import (
    PRESETS as LION_K_PRESETS,
    ScaleByLionKState,
    lion_k,
    lion_k_constraint,
    scale_by_lion_k,
)

__all__ = [
    "LION_K_PRESETS",
    "ScaleByLionKState",
    "ScaleByLionState",
    "lion",
    "lion_k",
    "lion_k_constraint",
    "scale_by_lion",
    "scale_by_lion_k",
]

RECORDS = (
    Algorithm(
        name="lion",
        family="sign",
        kind="optimizer",
        paper="Symbolic Discovery of Optimization Algorithms",
        arxiv="2302.06675",
        factory=lion,
        direction=scale_by_lion,
        test_hparams={"learning_rate": 1e-2},
        static_hparams=("mask", "mu_dtype", "from_new_momentum"),
        problems=("quadratic", "rosenbrock", "logistic_regression"),
        reference="optax.lion; pytorch_optimizer.Lion fixture "
                  "(tests/fixtures/reference/lion_pytorch_optimizer.npz)",
        description="Sign of interpolated momentum with decoupled weight decay.",
    ),
    Algorithm(
        name="lion_k",
        family="sign",
        kind="optimizer",
        paper="Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts",
        arxiv="2310.05898",
        factory=lion_k,
        direction=scale_by_lion_k,
        test_hparams={"learning_rate": 1e-2},
        static_hparams=("grad_k", "per_leaf", "mask", "mu_dtype", "from_new_momentum"),
        problems=("quadratic", "rosenbrock", "logistic_regression"),
        reference="optax.lion (grad_k='sign'), optax.scale_by_lion(mode='refined') "
                  "(grad_k='huber', delta=1), optax.ema chain (grad_k='identity'); "
                  "pytorch_optimizer.Lion fixture",
        description="Lion with the sign replaced by the gradient of a convex K "
                    "(l1, l2, Huber, lp, identity or a callable).",
    ),
)
