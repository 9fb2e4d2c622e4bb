"""Muon: momentum orthogonalized by Newton-Schulz (re-used from optax.contrib).

Registered from the catalog entry "Understanding Gradient Orthogonalization
for Deep Learning via Non-Euclidean Trust-Region Optimization" (which says
to re-export optax's Muon); the method is Keller Jordan's Muon and the
spectral case of steepest descent in Bernstein & Newhouse, "Old Optimizer,
New Norm: An Anthology", arXiv:2409.20325. optax 0.2.8's
``optax.contrib.muon`` / ``optax.contrib.scale_by_muon`` are faithful, so
optkit calls them unchanged and only adds construction-time validation
(errors name ``muon``) and the registry record. What optax computes, for a
2-D leaf ``W`` of shape ``(fan_in, fan_out)``::

    m_t   = beta m_{t-1} + (1 - beta) g_t
    x_t   = beta m_t / (1 - beta^(t+1)) + (1 - beta) g_t / (1 - beta^t)   (nesterov=True)
            m_t / (1 - beta^t)                                           (nesterov=False)
    O_t   = NewtonSchulz_5(x_t / (||x_t||_F + eps))    coefficients (3.4445, -4.7750, 2.0315)
    u_t   = -lr (sqrt(max(1, fan_out / fan_in)) O_t + weight_decay W)

and every leaf that is not 2-D (or that ``muon_weight_dimension_numbers`` maps
to None) goes to AdamW with ``adam_b1``, ``adam_b2``, ``eps``,
``adam_weight_decay`` and ``adam_learning_rate`` (default: ``learning_rate``).

Differences from :func:`optkit.spectral_descent`: Nesterov and bias-corrected
momentum, eps 1e-8 instead of 1e-7, the ``sqrt(max(1, fan_out/fan_in))`` shape
factor, AdamW instead of a dualizer for non-matrix leaves, and Newton-Schulz in
the leaf's dtype (optax does not upcast bf16).

``ns_steps`` must stay a Python int (it is a loop count): it is listed in the
record's ``static_hparams``, as are the callables ``weight_decay_mask`` and
``muon_weight_dimension_numbers``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np
import jax
import optax
import optax.contrib

from optkit.core import tree as tree_lib
from optkit.core import validate
from optkit.core.linalg import MUON_COEFFS

_NAME = "muon"
_PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")
_NS_PRESETS = ("standard", "dion")  # the string presets optax.contrib.muon accepts


def _check(ns_coeffs, ns_steps, beta, eps, preconditioning, *, allow_preset: bool):
  validate.integer_at_least(_NAME, 1, ns_steps=ns_steps)
  validate.unit_interval(_NAME, beta=beta)
  validate.non_negative(_NAME, eps=eps)
  validate.one_of(_NAME, "preconditioning", preconditioning, _PRECONDITIONINGS)
  if isinstance(ns_coeffs, str):
    if not allow_preset:
      raise ValueError(f"{_NAME}: `ns_coeffs` presets are only accepted by `muon`, got "
                       f"{ns_coeffs!r}.")
    validate.one_of(_NAME, "ns_coeffs", ns_coeffs, _NS_PRESETS)
    return
  shape = np.shape(ns_coeffs)
  if not (shape == (3,) or (len(shape) == 2 and shape[1] == 3 and 1 <= shape[0] <= ns_steps)):
    raise ValueError(
        f"{_NAME}: `ns_coeffs` must be (a, b, c) or at most `ns_steps` ({ns_steps}) "
        f"triples, got shape {shape}.")


def scale_by_muon(ns_coeffs=MUON_COEFFS,
                  ns_steps: int = 5,
                  beta: float = 0.95,
                  eps: float = 1e-8,
                  mu_dtype=None,
                  *,
                  nesterov: bool = True,
                  adaptive: bool = False,
                  preconditioning: str = "frobenius",
                  weight_dimension_numbers=None) -> optax.GradientTransformation:
  """Muon's direction: ``optax.contrib.scale_by_muon`` with optkit validation.

  Orthogonalizes the (Nesterov, bias-corrected) momentum of every leaf by
  ``ns_steps`` quintic Newton-Schulz iterations; no shape factor, no learning
  rate. Arguments are optax's. With ``weight_dimension_numbers=None`` optax
  0.2.8 accepts a single 2-D array only; for a tree of params pass a matching
  tree of ``optax.contrib.MuonDimensionNumbers`` (or a callable returning
  one), which also says how to reshape non-2-D leaves.

  Args:
    ns_coeffs: Newton-Schulz ``(a, b, c)`` or one triple per step.
    ns_steps: number of iterations (static Python int, >= 1).
    beta: momentum decay in [0, 1).
    eps: added to the Frobenius norm before Newton-Schulz.
    mu_dtype: dtype of the momentum.
    nesterov: Nesterov momentum (optax default True).
    adaptive: scale by the dual (nuclear) norm of the momentum.
    preconditioning: ``'frobenius'``, ``'spectral'``, ``'aol'`` or ``'schatten'``.
    weight_dimension_numbers: reshaping of non-2-D leaves.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_muon(beta=0.0)
    >>> g = jnp.array([[3.0, 0.0], [0.0, -3.0]])
    >>> tx.update(g, tx.init(g))[0]
    Array([[ 1.1,  0. ],
           [ 0. , -1.1]], dtype=float32)

  References:
    Jordan, Muon (https://github.com/KellerJordan/Muon), 2024; Bernstein &
    Newhouse, `Old Optimizer, New Norm: An Anthology
    <https://arxiv.org/abs/2409.20325>`_, 2024.
  """
  _check(ns_coeffs, ns_steps, beta, eps, preconditioning, allow_preset=False)
  return optax.contrib.scale_by_muon(
      ns_coeffs=ns_coeffs, ns_steps=ns_steps, beta=beta, eps=eps, mu_dtype=mu_dtype,
      nesterov=nesterov, adaptive=adaptive, preconditioning=preconditioning,
      weight_dimension_numbers=weight_dimension_numbers)


def _default_dimension_numbers(params):
  """optax's default rule (2-D leaves are Muon leaves), minus size-0 matrices.

  optax's shape factor divides by the leaf's dimensions, so an empty (0, n)
  matrix would raise ZeroDivisionError; it goes to the AdamW branch instead
  (its update is empty either way).
  """
  return jax.tree.map(
      lambda x: optax.contrib.MuonDimensionNumbers() if x.ndim == 2 and x.size else None,
      params)


def muon(learning_rate: optax.ScalarOrSchedule,
         ns_coeffs=MUON_COEFFS,
         ns_steps: int = 5,
         beta: float = 0.95,
         eps: float = 1e-8,
         weight_decay: float = 0.0,
         weight_decay_mask: Optional[Union[Any, Callable[[Any], Any]]] = None,
         mu_dtype=None,
         *,
         nesterov: bool = True,
         adaptive: bool = False,
         preconditioning: str = "frobenius",
         adam_b1: float = 0.9,
         adam_b2: float = 0.999,
         adam_eps_root: float = 0.0,
         adam_weight_decay: float = 0.0,
         adam_learning_rate: Optional[optax.ScalarOrSchedule] = None,
         muon_weight_dimension_numbers=None,
         consistent_rms: Optional[float] = None) -> optax.GradientTransformation:
  """Muon optimizer: ``optax.contrib.muon`` with optkit validation.

  2-D leaves: ``-lr (sqrt(max(1, fan_out/fan_in)) NS(nesterov momentum) +
  weight_decay W)``; other leaves: AdamW. The arguments and their defaults are
  optax's (lr has no default; ``beta = 0.95``, 5 Newton-Schulz steps with
  coefficients (3.4445, -4.7750, 2.0315), ``eps = 1e-8``).

  Args:
    learning_rate: a float or an optax schedule.
    ns_coeffs: Newton-Schulz ``(a, b, c)``, one triple per step, or the preset
      ``'standard'`` / ``'dion'``.
    ns_steps: Newton-Schulz iterations (static Python int, >= 1).
    beta: momentum decay in [0, 1).
    eps: Newton-Schulz pre-scaling eps, also AdamW's eps.
    weight_decay: decoupled weight decay of the Muon leaves (times lr).
    weight_decay_mask: mask (tree or callable) for ``weight_decay``.
    mu_dtype: dtype of the momenta.
    nesterov: Nesterov momentum (Muon and AdamW branches).
    adaptive: scale the Muon update by the dual norm of the momentum.
    preconditioning: pre-scaling before Newton-Schulz.
    adam_b1, adam_b2, adam_eps_root, adam_weight_decay: AdamW branch.
    adam_learning_rate: AdamW learning rate (default ``learning_rate``).
    muon_weight_dimension_numbers: which leaves are Muon leaves and how
      non-2-D ones are reshaped (``optax.contrib.MuonDimensionNumbers``).
    consistent_rms: if set, the shape factor becomes
      ``sqrt(max(fan_in, fan_out)) * consistent_rms``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.muon(learning_rate=0.1)
    >>> p = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
    >>> u, _ = opt.update(p, opt.init(p), p)
    >>> u["b"]
    Array([-0.1, -0.1], dtype=float32)

  References:
    Jordan, Muon (https://github.com/KellerJordan/Muon), 2024; Bernstein &
    Newhouse, `Old Optimizer, New Norm: An Anthology
    <https://arxiv.org/abs/2409.20325>`_, 2024.
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, adam_learning_rate=adam_learning_rate)  # skips None/schedules
  _check(ns_coeffs, ns_steps, beta, eps, preconditioning, allow_preset=True)
  validate.non_negative(_NAME, weight_decay=weight_decay, adam_eps_root=adam_eps_root,
                        adam_weight_decay=adam_weight_decay)
  validate.unit_interval(_NAME, adam_b1=adam_b1, adam_b2=adam_b2)
  if consistent_rms is not None:
    validate.positive(_NAME, consistent_rms=consistent_rms)
  if muon_weight_dimension_numbers is None:
    muon_weight_dimension_numbers = _default_dimension_numbers
  return tree_lib.floating_only(_NAME, optax.contrib.muon(
      learning_rate=learning_rate, ns_coeffs=ns_coeffs, ns_steps=ns_steps, beta=beta,
      eps=eps, weight_decay=weight_decay, weight_decay_mask=weight_decay_mask,
      mu_dtype=mu_dtype, nesterov=nesterov, adaptive=adaptive,
      preconditioning=preconditioning, adam_b1=adam_b1, adam_b2=adam_b2,
      adam_eps_root=adam_eps_root, adam_weight_decay=adam_weight_decay,
      adam_learning_rate=adam_learning_rate,
      muon_weight_dimension_numbers=muon_weight_dimension_numbers,
      consistent_rms=consistent_rms))

