"""parameter_free family: step sizes set from the run itself (distance from
the initial point, accumulated gradients) rather than tuned."""

from optkit.core.algorithm import Algorithm
from optkit.parameter_free.dog import (
    PolynomialDecayAveragingState,
    ScaleByDogState,
    ScaleByLDogState,
    dog,
    l_dog,
    polynomial_decay_averaged_params,
    polynomial_decay_averaging,
    scale_by_dog,
    scale_by_l_dog,
)
from optkit.parameter_free.implicit_ftrl import (
    ScaleByImplicitFtrlState,
    implicit_ftrl,
    scale_by_implicit_ftrl,
)
from optkit.parameter_free.udog import ScaleByUDogState, scale_by_u_dog, u_dog

__all__ = [
    "PolynomialDecayAveragingState",
    "ScaleByDogState",
    "ScaleByLDogState",
    "dog",
    "l_dog",
    "polynomial_decay_averaged_params",
    "polynomial_decay_averaging",
    "scale_by_dog",
    "scale_by_l_dog",
    "ScaleByImplicitFtrlState",
    "implicit_ftrl",
    "scale_by_implicit_ftrl",
    "ScaleByUDogState",
    "scale_by_u_dog",
    "u_dog",
]

_DOG_PAPER = "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule"

RECORDS = (
    # DoG, L-DoG and U-DoG take ``learning_rate=1.0`` as a multiplier of their
    # self-tuned step size (the paper's c), by convention; the records keep
    # that default. implicit_ftrl's learning_rate is FTRL's regularizer scale eta.
    Algorithm(
        name="dog",
        family="parameter_free",
        kind="optimizer",
        paper=_DOG_PAPER,
        arxiv="2302.12022",
        factory=dog,
        direction=scale_by_dog,
        test_hparams={"learning_rate": 1.0, "reps_rel": 1e-4},
        static_hparams=("mask", "init_eta"),
        problems=("quadratic", "ill_conditioned_quadratic", "logistic_regression"),
        reference="optax.contrib.scale_by_dog / optax.contrib.dog (equality, 20 steps)",
        description="Distance over gradients: rbar_t / sqrt(sum ||g||^2) step size, global.",
    ),
    Algorithm(
        name="l_dog",
        family="parameter_free",
        kind="optimizer",
        paper=_DOG_PAPER,
        arxiv="2302.12022",
        factory=l_dog,
        direction=scale_by_l_dog,
        test_hparams={"learning_rate": 1.0, "reps_rel": 1e-4},
        static_hparams=("mask", "init_eta"),
        problems=("quadratic", "ill_conditioned_quadratic", "logistic_regression"),
        reference="single-leaf equality with optkit.dog (optax.contrib.scale_by_dog)",
        description="Layer-wise DoG: the DoG step size per leaf.",
    ),
    Algorithm(
        name="u_dog",
        family="parameter_free",
        kind="optimizer",
        paper="Accelerated Parameter-Free Stochastic Optimization",
        arxiv="2404.00666",
        factory=u_dog,
        direction=scale_by_u_dog,
        extra_args=("value_fn",),
        test_hparams={"learning_rate": 1.0, "reps_rel": 1e-4},
        problems=("quadratic", "ill_conditioned_quadratic", "rosenbrock",
                  "logistic_regression"),
        reference="float64 NumPy re-derivation (tests/parameter_free/test_udog.py)",
        description="UniXGrad extra-gradient averaging with DoG step sizes (2 gradients/step).",
    ),
    Algorithm(
        name="implicit_ftrl",
        family="parameter_free",
        kind="optimizer",
        paper="Generalized Implicit Follow-The-Regularized-Leader",
        arxiv="2306.00201",
        factory=implicit_ftrl,
        direction=scale_by_implicit_ftrl,
        extra_args=("value",),
        test_hparams={"learning_rate": 1.0},
        static_hparams=("variant",),
        problems=("quadratic", "ill_conditioned_quadratic", "rosenbrock",
                  "logistic_regression"),
        reference="closed-form optimality conditions of the implicit step (float64)",
        description="FTRL with the aProx truncated-linear implicit update (uses the loss value).",
    ),
)
