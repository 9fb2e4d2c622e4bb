"""perturbation family: loss-function wrappers that evaluate gradients at
other points (they read the ``value_fn`` extra argument)."""

import optax

from optkit.core.algorithm import Algorithm
from optkit.perturbation.amp import (
    AdversarialModelPerturbationState,
    adversarial_model_perturbation,
    amp,
    amp_perturbation,
)

__all__ = [
    "AdversarialModelPerturbationState",
    "adversarial_model_perturbation",
    "amp",
    "amp_perturbation",
]

RECORDS = (
    Algorithm(
        name="adversarial_model_perturbation",
        family="perturbation",
        kind="wrapper",
        paper="Regularizing Neural Networks via Adversarial Model Perturbation",
        arxiv="2010.04925",
        factory=adversarial_model_perturbation,
        extra_args=("value_fn",),
        test_hparams={"inner": optax.sgd(0.05), "epsilon": 0.1},
        static_hparams=("inner", "inner_iters", "norm"),
        problems=("quadratic",),
        reference=("hiyouga/AMP-Regularizer amp.py (NumPy re-derivation in "
                   "tests/perturbation/test_amp.py)"),
        description=("Gradient at an adversarial per-tensor epsilon-ball "
                     "perturbation, fed to an inner optimizer (alias `amp`)."),
    ),
)
