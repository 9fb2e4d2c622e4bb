"""optkit: optimizers from recent papers as composable Optax transformations.

Every public optimizer, direction, schedule, estimator, aggregator and wrapper
is available flat (``optkit.lion``, ``optkit.scale_by_adahessian``,
``optkit.wsd_schedule``) and described by a record in ``optkit.registry``.
"""

from optkit import core
from optkit import flax  # noqa: F401  (helpers; imports flax only when called)
from optkit import registry
from optkit import sharding
from optkit.adaptive import *  # noqa: F401,F403
from optkit.clipping import *  # noqa: F401,F403
from optkit.constraints import *  # noqa: F401,F403
from optkit.curvature import *  # noqa: F401,F403
from optkit.memory import *  # noqa: F401,F403
from optkit.momentum import *  # noqa: F401,F403
from optkit.multi_objective import *  # noqa: F401,F403
from optkit.orthogonal import *  # noqa: F401,F403
from optkit.parameter_free import *  # noqa: F401,F403
from optkit.perturbation import *  # noqa: F401,F403
from optkit.robust import apply_if_finite  # noqa: F401
from optkit.schedules import *  # noqa: F401,F403
from optkit.sign import *  # noqa: F401,F403
from optkit.zeroth_order import *  # noqa: F401,F403

__version__ = "0.1.0"
