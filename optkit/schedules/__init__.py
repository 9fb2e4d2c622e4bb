"""schedules family: step-indexed learning-rate schedules and the rules and
bounds used to choose them."""

from optkit.core.algorithm import Algorithm
from optkit.schedules.wsd import (
    schedule_bound,
    transfer_learning_rate,
    wsd_schedule,
)
from optkit.schedules.onecycle import (
    lr_range_test,
    lr_range_test_peak,
    onecycle_momentum_schedule,
    onecycle_schedule,
)
from optkit.schedules.refinement import (
    array_schedule,
    linear_decay_schedule,
    monitor_grad_norm,
    refined_schedule,
    warmup_linear_decay_schedule,
)
from optkit.schedules.batch_size import (
    lanczos_lr_momentum,
    scale_lr_by_batch_size,
)
from optkit.schedules.shift_robust import shift_robust_schedule
from optkit.schedules.surge import surge_optimal_lr
from optkit.schedules.adagrad_norm import (
    adagrad_norm,
    adaptive_batch_size_test,
    scale_by_adagrad_norm,
)

__all__ = [
    "schedule_bound",
    "transfer_learning_rate",
    "wsd_schedule",
    "adagrad_norm",
    "adaptive_batch_size_test",
    "array_schedule",
    "lanczos_lr_momentum",
    "linear_decay_schedule",
    "lr_range_test",
    "lr_range_test_peak",
    "monitor_grad_norm",
    "onecycle_momentum_schedule",
    "onecycle_schedule",
    "refined_schedule",
    "scale_by_adagrad_norm",
    "scale_lr_by_batch_size",
    "shift_robust_schedule",
    "surge_optimal_lr",
    "warmup_linear_decay_schedule",
]

RECORDS = (
    Algorithm(
        name="wsd_schedule",
        family="schedules",
        kind="schedule",
        paper=("The Surprising Agreement Between Convex Optimization Theory and "
               "Learning-Rate Scheduling for Large Model Training"),
        arxiv="2501.18965",
        factory=wsd_schedule,
        test_hparams={"peak_value": 0.1, "total_steps": 100, "warmup_steps": 10,
                      "cooldown_steps": 20},
        static_hparams=("total_steps", "warmup_steps", "cooldown_steps",
                        "cooldown_shape"),
        problems=("quadratic",),
        reference=("pytorch_optimizer 4.1.0 get_wsd_schedule "
                   "(tests/fixtures/reference/wsd.npz)"),
        description=("Warmup-stable-decay schedule (linear, 1-sqrt or cosine "
                     "cool-down); helpers schedule_bound, transfer_learning_rate."),
    ),
    Algorithm(
        name="onecycle_schedule",
        family="schedules",
        kind="schedule",
        paper=("Super-Convergence: Very Fast Training of Neural Networks Using "
               "Large Learning Rates"),
        arxiv="1708.07120",
        factory=onecycle_schedule,
        test_hparams={"transition_steps": 300, "peak_value": 0.1},
        static_hparams=("transition_steps", "pct_start", "pct_final", "shape"),
        reference=("optax.linear_onecycle_schedule / cosine_onecycle_schedule; torch "
                   "OneCycleLR (tests/fixtures/reference/schedules_onecycle.npz)"),
        description="1cycle learning rate (linear three-phase or cosine), paper defaults.",
    ),
    Algorithm(
        name="onecycle_momentum_schedule",
        family="schedules",
        kind="schedule",
        paper=("Super-Convergence: Very Fast Training of Neural Networks Using "
               "Large Learning Rates"),
        arxiv="1708.07120",
        factory=onecycle_momentum_schedule,
        test_hparams={"transition_steps": 300},
        static_hparams=("transition_steps", "pct_start", "pct_final", "shape"),
        reference="torch OneCycleLR cycle_momentum (tests/fixtures/reference/schedules_onecycle.npz)",
        description="Cyclical momentum mirroring the 1cycle learning rate.",
    ),
    Algorithm(
        name="lr_range_test",
        family="schedules",
        kind="schedule",
        paper=("Super-Convergence: Very Fast Training of Neural Networks Using "
               "Large Learning Rates"),
        arxiv="1708.07120",
        factory=lr_range_test,
        test_hparams={"init_value": 1e-4, "end_value": 1.0, "num_steps": 300},
        static_hparams=("num_steps",),
        reference="optax.linear_schedule",
        description="LR range test ramp; lr_range_test_peak picks the peak lr from losses.",
    ),
    Algorithm(
        name="linear_decay_schedule",
        family="schedules",
        kind="schedule",
        paper=("When, Why and How Much? Adaptive Learning Rate Scheduling by "
               "Refinement"),
        arxiv="2310.07831",
        factory=linear_decay_schedule,
        test_hparams={"peak_value": 0.1, "total_steps": 300, "warmup_steps": 20},
        static_hparams=("total_steps", "warmup_steps"),
        reference="optax.linear_schedule + join_schedules",
        description="Worst-case optimal linear decay (alias warmup_linear_decay_schedule).",
    ),
    Algorithm(
        name="refined_schedule",
        family="schedules",
        kind="schedule",
        paper=("When, Why and How Much? Adaptive Learning Rate Scheduling by "
               "Refinement"),
        arxiv="2310.07831",
        factory=refined_schedule,
        test_hparams={"grad_norms": tuple(float(4.0 - 3.0 * min(i, 50) / 50)
                                          for i in range(200)),
                      "peak_value": 0.1, "total_steps": 300},
        static_hparams=("grad_norms", "smoothing", "norm", "total_steps"),
        reference=("closed form of facebookresearch/adaptive_scheduling "
                   "find_closed_form_schedule (read only, CC-BY-NC)"),
        description="Schedule refined from a logged gradient-norm sequence (l2 or l1).",
    ),
    Algorithm(
        name="array_schedule",
        family="schedules",
        kind="schedule",
        paper=("When, Why and How Much? Adaptive Learning Rate Scheduling by "
               "Refinement"),
        arxiv="2310.07831",
        factory=array_schedule,
        test_hparams={"values": (0.0, 0.1, 0.05, 0.0), "total_steps": 300},
        static_hparams=("values", "total_steps"),
        reference=None,
        description="Piecewise-linear schedule from an array, stretched to a run length.",
    ),
    Algorithm(
        name="shift_robust_schedule",
        family="schedules",
        kind="schedule",
        paper="Learning Rate Schedules in the Presence of Distribution Shift",
        arxiv="2303.15634",
        factory=shift_robust_schedule,
        test_hparams={"total_steps": 300, "drift_rate": 0.05, "noise_level": 1.0,
                      "base_lr": 0.5},
        static_hparams=("total_steps", "drift_rate", "noise_level", "base_lr", "model",
                        "curvature"),
        reference=None,
        description="Optimal online least-squares schedule with a drifting optimum (floor > 0).",
    ),
    Algorithm(
        name="lanczos_lr_momentum",
        family="schedules",
        kind="optimizer",
        paper=("Learning Rates as a Function of Batch Size: A Random Matrix Theory "
               "Approach to Neural Network Training"),
        arxiv="2006.09092",
        factory=lanczos_lr_momentum,
        extra_args=("value_fn",),
        test_hparams={"num_lanczos_steps": 10, "every": 50},
        static_hparams=("num_lanczos_steps", "every", "seed"),
        problems=("quadratic", "ill_conditioned_quadratic"),
        reference=None,
        description=("Heavy-ball SGD with lr and momentum from a Lanczos curvature "
                     "estimate; helper scale_lr_by_batch_size."),
    ),
    Algorithm(
        name="adagrad_norm",
        family="schedules",
        kind="optimizer",
        paper="AdAdaGrad: Adaptive Batch Size Schemes for Adaptive Gradient Methods",
        arxiv="2402.11215",
        factory=adagrad_norm,
        direction=scale_by_adagrad_norm,
        test_hparams={"learning_rate": 1.0},
        problems=("quadratic", "logistic_regression"),
        reference=None,
        description=("Scalar AdaGrad (AdaGrad-Norm); helper adaptive_batch_size_test "
                     "(norm / inner-product tests)."),
    ),
)
