"""The "surge" rule: optimal learning rate of Adam-style optimizers vs batch size.

Li, Zhao, Zhang, Sun, Wu, Jiao, Wang, Liu, Fang, Xue, Tao, Cui & Wang, "Surge
Phenomenon in Optimal Learning Rate and Batch Size Scaling", NeurIPS 2024,
arXiv:2405.14578.

For sign-like updates (Adam, Lion, ...) with Gaussian gradient noise the paper
approximates the loss-optimal learning rate at batch size B by

    eta_opt(B) = eta_max / ( (1/2) (sqrt(B_noise / B) + sqrt(B / B_noise)) )

It rises with B, peaks at B = B_noise with eta_opt = eta_max, and falls again
(the "surge"); it is symmetric in log B around log B_noise
(eta_opt(B_noise c) = eta_opt(B_noise / c)). B_noise (the gradient noise scale
of McCandlish et al. 2018) grows during training, so the peak moves to larger
batches: pass a tracked B_noise to get a schedule. For comparison,
``optimizer='sgd'`` gives the SGD rule of McCandlish et al. that the paper
contrasts with, eta_opt(B) = eta_max / (1 + B_noise / B) (monotone in B).

Paper -> code: B -> ``batch_size``; B_noise -> ``noise_batch_size``;
epsilon_max -> ``lr_max``.

UNSURE, decided: the closed form above is the paper's approximation (its
Theorem 3 "eq. (8)" form, as the catalog recalls it); the exact optimum of the
paper's model tends to a small non-zero value for B >> B_noise rather than
to 0, a correction that is not shipped.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from optkit.core import validate

OPTIMIZERS = ("adam", "sgd")


def surge_optimal_lr(batch_size, noise_batch_size, lr_max, *, optimizer: str = "adam"):
  """Optimal learning rate at ``batch_size`` under the surge rule (module docstring).

  Args:
    batch_size: B (> 0); a number or an array (elementwise).
    noise_batch_size: B_noise (> 0), where the Adam-style optimum peaks.
    lr_max: eta_max (>= 0), the optimum's value at B = B_noise.
    optimizer: ``'adam'`` (the surge rule) or ``'sgd'`` (McCandlish et al.'s
      eta_max / (1 + B_noise / B), for comparison).

  Returns:
    eta_opt(B) as a float array (jittable; traced inputs are not validated).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> optkit.surge_optimal_lr(jnp.array([64.0, 256.0, 1024.0]), 256.0, 1e-3)
    Array([0.0008, 0.001 , 0.0008], dtype=float32)

  References:
    Li et al., "Surge Phenomenon in Optimal Learning Rate and Batch Size
    Scaling", 2024. https://arxiv.org/abs/2405.14578
  """
  name = "surge_optimal_lr"
  validate.one_of(name, "optimizer", optimizer, OPTIMIZERS)
  validate.positive(name, noise_batch_size=noise_batch_size)
  validate.non_negative(name, lr_max=lr_max)
  b = jnp.asarray(batch_size, jnp.result_type(float))
  if not isinstance(batch_size, jax.core.Tracer) and np.any(np.asarray(batch_size) <= 0):
    raise ValueError(f"{name}: `batch_size` must be positive, got {batch_size!r}.")
  ratio = jnp.asarray(noise_batch_size, b.dtype) / b
  if optimizer == "adam":
    return lr_max / (0.5 * (jnp.sqrt(ratio) + 1.0 / jnp.sqrt(ratio)))
  return lr_max / (1.0 + ratio)
