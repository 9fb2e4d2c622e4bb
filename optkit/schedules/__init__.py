"""schedules family: step-indexed learning-rate schedules and the rules and
bounds used to choose them."""

from optkit.core.algorithm import Algorithm
from optkit.schedules.wsd import (
    schedule_bound,
    transfer_learning_rate,
    wsd_schedule,
)

__all__ = [
    "schedule_bound",
    "transfer_learning_rate",
    "wsd_schedule",
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
)
