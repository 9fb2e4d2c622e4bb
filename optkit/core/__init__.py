"""Shared numerics and infrastructure used by several optkit families.

Nothing here is specific to one paper: the `Algorithm` record, hyperparameter
validation, the extra-args protocol, tree helpers that optax.tree lacks, and
linear-algebra / Hessian kernels (Newton-Schulz, inverse p-th roots, power
iteration, Hessian-vector products, Hutchinson estimates).
"""

from optkit.core import extra_args, hessian, linalg, numerics, tree, validate
from optkit.core.algorithm import KINDS, Algorithm

__all__ = [
    "Algorithm",
    "KINDS",
    "extra_args",
    "hessian",
    "linalg",
    "numerics",
    "tree",
    "validate",
]
