"""muP for second-order optimizers (K-FAC, Shampoo): width scaling of the
per-layer learning rates, damping terms and initialization.

Satoki Ishikawa and Ryo Karakida, "On the Parameterization of Second-Order
Optimization Effective Towards the Infinite Width", arXiv:2312.12226 (ICLR
2024). Reference implementation: none found.

Metadata follows the convention of ``optkit.orthogonal.mup`` (roles input /
hidden / output / bias and width multipliers ``r = n / n_base``, as trees,
prefix trees, callables or single values).

The paper's one-step analysis, restated for a weight ``W`` of shape
``(fan_in, fan_out)`` (Flax layout, ``h = x W``) and one example (gradient
``G = x delta^T``), under the muP initialization (input variance Theta(1),
hidden 1/n, output 1/n^2, so ``|x|^2 ~ fan_in`` for hidden/output inputs and
``|delta|^2 ~ 1/n`` for input/hidden pre-activations, Theta(1) at the output):

* K-FAC: ``dW = (A + rho_A I)^(-1) G (B + rho_B I)^(-1)`` with ``A = x x^T``
  (fan-in side) and ``B = delta delta^T`` (fan-out side) gives
  ``x delta^T / ((|x|^2 + rho_A)(|delta|^2 + rho_B))``: the update is the same
  for every parametrization (natural gradient), so the learning rate is
  Theta(1) for every layer, and a damping that keeps its relative effect must
  scale like ``|x|^2`` and ``|delta|^2``:
  ``rho_A`` x {input 1, hidden r, output r}, ``rho_B`` x {input 1/r,
  hidden 1/r, output 1} (the paper's "rescaled damping"; a damping of the form
  ``rho' * tr(A) / fan_in`` has it automatically).
* Shampoo: ``dW = (G G^T + rho I)^(-1/4) G (G^T G + rho I)^(-1/4)`` is
  ``u v^T`` (unit spectral norm) without damping; muP needs
  ``||dW||_2 ~ sqrt(fan_out / fan_in)``, so lr x {input r^(1/2), hidden 1,
  output r^(-1/2)}, and both dampings scale like the factors' eigenvalue
  ``|x|^2 |delta|^2``: x {input 1/r, hidden 1, output r}.
* Biases behave as input-layer rows (``x = 1``): the input column of each rule.
* Init: the muP initialization (``init_std`` x {input 1, hidden r^(-1/2),
  output 1/r, bias 1}), the model's job.

The damping multipliers and the lr multipliers move in opposite directions for
the input and output layers of Shampoo: apply each to the right
hyperparameter. The result is plain data: multiply each leaf's preconditioned
update by ``lr`` (``jax.tree.map`` after the preconditioner, before
``optax.scale_by_learning_rate``), and give each role group its own damping
(``optax.multi_transform`` with one preconditioner per group, e.g.
``scale_by_shampoo`` with the group's damping). ``scale_by_mup`` carries the
first-order (Adam/SGD) tables only. Symbols: layer width -> ``n``,
``r = n / n_base`` -> ``width_mults``, rho_A / rho_B -> ``damping_in`` /
``damping_out``.

UNSURE, decided: the exponents above are re-derived from the paper's one-step
argument (its Table 1 could not be re-read here); they reproduce its stated
conclusions (K-FAC: width-independent learning rates with rescaled damping;
Shampoo: width-dependent learning rates), and ``tests/orthogonal/
test_mup_second_order.py`` checks the defining property (width-independent
one-step feature change) on a real one-step Shampoo and K-FAC computation.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from optkit.core import validate
from optkit.orthogonal.mup import Metadata, resolve_positive, resolve_roles, unflatten_like


class SecondOrderMultipliers(NamedTuple):
  """Per-leaf multipliers for a second-order method (trees like the params).

  Attributes:
    lr: multiplies the leaf's learning rate.
    init_std: multiplies the base model's init standard deviation (muP init).
    damping_in: multiplies the damping of the fan-in-side factor (K-FAC's
      activation factor ``A``; Shampoo's left factor in ``(in, out)`` layout).
    damping_out: multiplies the damping of the fan-out-side factor (K-FAC's
      gradient factor ``B``; Shampoo's right factor).
  """

  lr: Any
  init_std: Any
  damping_in: Any
  damping_out: Any


def _leaf(role, r, method):
  init_std = {"input": 1.0, "hidden": r ** -0.5, "output": 1.0 / r, "bias": 1.0}[role]
  if method == "kfac":
    lr = 1.0
    d_in = {"input": 1.0, "hidden": r, "output": r, "bias": 1.0}[role]
    d_out = {"input": 1.0 / r, "hidden": 1.0 / r, "output": 1.0, "bias": 1.0 / r}[role]
  else:  # shampoo
    lr = {"input": r ** 0.5, "hidden": 1.0, "output": r ** -0.5, "bias": r ** 0.5}[role]
    d_in = d_out = {"input": 1.0 / r, "hidden": 1.0, "output": r, "bias": 1.0 / r}[role]
  return lr, init_std, d_in, d_out


def mup_second_order_scaling(params: Any, roles: Metadata = None,
                             width_mults: Metadata = 1.0, *,
                             method: str = "shampoo") -> SecondOrderMultipliers:
  """muP multipliers of the learning rate, init and damping for K-FAC / Shampoo.

  Per leaf with role and width multiplier ``r`` (see the module docstring for
  the derivation):

  ======== ========== =========== ================ ================ ===========
  method   role       lr          damping_in       damping_out      init_std
  ======== ========== =========== ================ ================ ===========
  kfac     input      1           1                1/r              1
  kfac     hidden     1           r                1/r              r^(-1/2)
  kfac     output     1           r                1                1/r
  shampoo  input      r^(1/2)     1/r              1/r              1
  shampoo  hidden     1           1                1                r^(-1/2)
  shampoo  output     r^(-1/2)    r                r                1/r
  ======== ========== =========== ================ ================ ===========

  Biases use the input row.

  Args:
    params: the params (structure and shapes are read).
    roles: per-leaf roles (``optkit.orthogonal.mup`` convention).
    width_mults: per-leaf width multipliers r > 0.
    method: ``"kfac"`` or ``"shampoo"``.

  Returns:
    ``SecondOrderMultipliers`` of trees shaped like ``params``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> p = {"w_in": jnp.zeros((3, 8)), "w_h": jnp.zeros((8, 8)), "w_out": jnp.zeros((8, 2))}
    >>> m = optkit.mup_second_order_scaling(
    ...     p, {"w_in": "input", "w_h": "hidden", "w_out": "output"}, width_mults=4.0)
    >>> m.lr
    {'w_h': 1.0, 'w_in': 2.0, 'w_out': 0.5}
    >>> m.damping_in
    {'w_h': 1.0, 'w_in': 0.25, 'w_out': 4.0}

  References:
    Ishikawa & Karakida, 2024, https://arxiv.org/abs/2312.12226
  """
  name = "mup_second_order_scaling"
  validate.one_of(name, "method", method, ("kfac", "shampoo"))
  role_list = resolve_roles(name, params, roles)
  r_list = resolve_positive(name, "width_mults", params, width_mults, lambda _: 1.0)
  rows = [_leaf(role, r, method) for role, r in zip(role_list, r_list)]
  return SecondOrderMultipliers(*(unflatten_like(params, [row[i] for row in rows])
                                  for i in range(4)))
