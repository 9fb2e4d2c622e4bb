"""sign family: Lion, Lion-K, Grams, Distributed Lion, ANO/Anolog, SignRound.

Catalog: shared/algorithms/sign.md.
"""

import optax

from optkit.core.algorithm import Algorithm
from optkit.sign.ano import ScaleByAnoState, ano, anolog, scale_by_ano
from optkit.sign.distributed_lion import (
    ScaleByDistributedLionState,
    distributed_lion,
    distributed_lion_simulated,
    scale_by_distributed_lion,
)
from optkit.sign.grams import WithGradientSignState, grams, scale_by_grams, with_gradient_sign
from optkit.sign.lion import ScaleByLionState, lion, scale_by_lion
from optkit.sign.sign_round import (
    ScaleBySignedRoundingStepState,
    scale_by_signed_rounding_step,
    sign_round,
)
from optkit.sign.lion_k import (
    PRESETS as LION_K_PRESETS,
    ScaleByLionKState,
    lion_k,
    lion_k_constraint,
    scale_by_lion_k,
)

__all__ = [
    "LION_K_PRESETS",
    "ScaleByAnoState",
    "ScaleByDistributedLionState",
    "WithGradientSignState",
    "ano",
    "anolog",
    "distributed_lion",
    "distributed_lion_simulated",
    "grams",
    "scale_by_ano",
    "scale_by_distributed_lion",
    "scale_by_grams",
    "with_gradient_sign",
    "ScaleByLionKState",
    "ScaleByLionState",
    "ScaleBySignedRoundingStepState",
    "lion",
    "lion_k",
    "lion_k_constraint",
    "scale_by_lion",
    "scale_by_lion_k",
    "scale_by_signed_rounding_step",
    "sign_round",
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
    Algorithm(
        name="grams",
        family="sign",
        kind="optimizer",
        paper="Grams: Gradient Descent with Adaptive Momentum Scaling",
        arxiv="2412.17107",
        factory=grams,
        direction=scale_by_grams,
        test_hparams={"learning_rate": 5e-2},
        problems=("quadratic", "rosenbrock", "logistic_regression"),
        reference="pytorch_optimizer.Grams fixture (tests/fixtures/reference/sign_grams.npz); "
                  "optax.adam magnitudes",
        description="Adam's step magnitude with the sign of the current gradient.",
    ),
    Algorithm(
        name="with_gradient_sign",
        family="sign",
        kind="wrapper",
        paper="Grams: Gradient Descent with Adaptive Momentum Scaling",
        arxiv="2412.17107",
        factory=with_gradient_sign,
        test_hparams={"inner": optax.scale_by_adam()},
        static_hparams=("inner",),
        # The wrapper outputs a direction (gradient-signed, before the learning
        # rate), so applying it as an update ascends: no convergence problem.
        problems=(),
        reference="optax.scale_by_adam magnitudes; pytorch_optimizer.Grams fixture",
        description="Wrapper: any direction's magnitudes with the current gradient's sign.",
    ),
    Algorithm(
        name="distributed_lion_simulated",
        family="sign",
        kind="aggregator",
        paper="Communication Efficient Distributed Training with Distributed Lion",
        arxiv="2404.00438",
        factory=distributed_lion_simulated,
        test_hparams={"num_workers": 2},
        static_hparams=("num_workers", "aggregation"),
        problems=("two_quadratics",),
        reference="distributed_lion under jax.shard_map on 4 CPU devices and jax.vmap "
                  "(tests/sign/test_distributed_lion.py); optax.lion for N = 1",
        description="Distributed Lion's majority vote (or mean) of N workers' Lion signs; "
                    "leading worker axis.",
    ),
    Algorithm(
        name="ano",
        family="sign",
        kind="optimizer",
        paper="ANO : Faster is Better in Noisy Landscape",
        arxiv="2508.18258",
        factory=ano,
        direction=scale_by_ano,
        test_hparams={"learning_rate": 5e-2},
        static_hparams=("eps_inside_sqrt",),
        problems=("quadratic", "rosenbrock", "logistic_regression"),
        reference="NumPy port of the official Adrienkgz/ano-experiments rule; "
                  "pytorch_optimizer.Ano fixture (tests/fixtures/reference/sign_ano.npz)",
        description="Sign of momentum times |g| over a Yogi-style second moment.",
    ),
    Algorithm(
        name="anolog",
        family="sign",
        kind="optimizer",
        paper="ANO : Faster is Better in Noisy Landscape",
        arxiv="2508.18258",
        factory=anolog,
        direction=scale_by_ano,
        # b2 = 0.99 here (default 0.999, tested in tests/sign/test_ano.py): injected
        # as a float32 array, 0.999 changes 1 - b2 by 1.3e-5 relative, and without
        # bias correction (official Anolog) nothing cancels it, so the injected and
        # plain runs differ by ~3e-5 relative after 3 steps; float32(0.99) changes
        # 1 - b2 by 1e-6 only. Without correction the first steps are
        # |g| / sqrt((1 - b2) g^2) = 10 lr long; lr 1e-2 keeps them O(0.1).
        test_hparams={"learning_rate": 1e-2, "b2": 0.99},
        static_hparams=("eps_inside_sqrt", "bias_correction"),
        problems=("quadratic", "rosenbrock", "logistic_regression"),
        reference="NumPy port of the official anolog.py; pytorch_optimizer.Ano "
                  "(logarithmic_schedule=True) fixture",
        description="ANO with the logarithmic momentum schedule 1 - 1/ln(max(2, t)).",
    ),
    Algorithm(
        name="sign_round",
        family="sign",
        kind="optimizer",
        paper="Optimize Weight Rounding via Signed Gradient Descent for the "
              "Quantization of LLMs",
        arxiv="2309.05516",
        factory=sign_round,
        direction=scale_by_signed_rounding_step,
        test_hparams={"learning_rate": 5e-2},
        static_hparams=("num_steps",),
        problems=("quadratic",),
        reference="hand-computed projected signed steps; toy 1-layer rounding "
                  "reconstruction vs round-to-nearest (tests/sign/test_sign_round.py)",
        description="Signed steps with linear decay projected to [-0.5, 0.5] "
                    "(rounding offsets).",
    ),
)
