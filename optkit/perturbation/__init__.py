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
from optkit.perturbation.target_surrogates import (
    StepFunction,
    TargetSurrogateState,
    sso,
    target_surrogate,
)
from optkit.perturbation.optex import OptExState, optex, optex_gradient_estimate
from optkit.perturbation.proxy_prox import ProxyProxState, proxy_prox
from optkit.perturbation.finite_difference_gr import (
    FDGradientRegularizationState,
    fd_gradient_regularization,
    fd_regularized_gradient,
)
from optkit.perturbation.ggpo import (
    GGPOState,
    RandomWeightPerturbationState,
    ggpo_perturbation,
    ggpo_row_std,
    random_weight_perturbation,
    row_gaussian_noise,
)
from optkit.perturbation.smb import ScaleBySMBState, scale_by_smb, smb

__all__ = [
    "AdversarialModelPerturbationState",
    "adversarial_model_perturbation",
    "amp",
    "amp_perturbation",
    "StepFunction",
    "TargetSurrogateState",
    "sso",
    "target_surrogate",
    "OptExState",
    "optex",
    "optex_gradient_estimate",
    "ProxyProxState",
    "proxy_prox",
    "FDGradientRegularizationState",
    "fd_gradient_regularization",
    "fd_regularized_gradient",
    "GGPOState",
    "RandomWeightPerturbationState",
    "ggpo_perturbation",
    "ggpo_row_std",
    "random_weight_perturbation",
    "row_gaussian_noise",
    "ScaleBySMBState",
    "scale_by_smb",
    "smb",
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
    Algorithm(
        name="fd_gradient_regularization",
        family="perturbation",
        kind="direction",
        paper=("Understanding Gradient Regularization in Deep Learning: Efficient "
               "Finite-Difference Computation and Implicit Bias"),
        arxiv="2210.02720",
        factory=fd_gradient_regularization,
        extra_args=("value_fn",),
        test_hparams={"gamma": 0.05, "epsilon": 0.05},
        static_hparams=("mode", "normalize"),
        problems=("quadratic",),
        reference=("none found; exact GR gradient (jax.grad of the penalty) in "
                   "tests/perturbation/test_finite_difference_gr.py"),
        description=("Replaces g by a finite-difference estimate of the gradient of "
                     "L + (gamma/2)||grad L||^2 (one extra gradient); chain an optimizer."),
    ),
    Algorithm(
        name="ggpo_perturbation",
        family="perturbation",
        kind="wrapper",
        paper=("LoRA-GGPO: Mitigating Double Descent in LoRA Fine-Tuning via "
               "Gradient-Guided Perturbation Optimization"),
        arxiv="2502.14538",
        factory=ggpo_perturbation,
        extra_args=("value_fn",),
        test_hparams={"inner": optax.sgd(0.05), "sigma": 0.01},
        static_hparams=("inner", "merged_weight_fn", "seed", "mask"),
        problems=("quadratic",),
        reference=("llm172/LoRA-GGPO not available; sampled noise statistics in "
                   "tests/perturbation/test_ggpo.py"),
        description=("Gradient at a row-wise Gaussian perturbation scaled by weight "
                     "and previous-gradient row norms, fed to an inner optimizer."),
    ),
    Algorithm(
        name="random_weight_perturbation",
        family="perturbation",
        kind="wrapper",
        paper=("LoRA-GGPO: Mitigating Double Descent in LoRA Fine-Tuning via "
               "Gradient-Guided Perturbation Optimization"),
        arxiv="2502.14538",
        factory=random_weight_perturbation,
        extra_args=("value_fn",),
        test_hparams={"inner": optax.sgd(0.05), "sigma_fn": lambda params: 0.01},
        static_hparams=("inner", "sigma_fn", "seed", "mask"),
        problems=("quadratic",),
        reference="none; sampled noise statistics in tests/perturbation/test_ggpo.py",
        description=("Gradient at a row-wise Gaussian perturbation with user-given "
                     "per-row standard deviations, fed to an inner optimizer."),
    ),
    Algorithm(
        name="smb",
        family="perturbation",
        kind="optimizer",
        paper="Bolstering Stochastic Gradient Descent with Model Building",
        arxiv="2111.07058",
        factory=smb,
        direction=scale_by_smb,
        extra_args=("value_fn",),
        test_hparams={"learning_rate": 0.1},
        static_hparams=("autoschedule", "n_batches_per_epoch"),
        problems=("quadratic", "ill_conditioned_quadratic", "logistic_regression"),
        reference=("sibirbil/SMB source/smbsolve/smb.py (fixture "
                   "tests/fixtures/reference/perturbation_smb.npz) and a NumPy "
                   "float64 re-derivation in tests/perturbation/test_smb.py"),
        description=("SGD trial step with an Armijo test; on failure a per-tensor "
                     "regularized quadratic model step from the two gradients."),
    ),
)
