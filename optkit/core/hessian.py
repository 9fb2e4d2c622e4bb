"""Hessian-vector products and stochastic Hessian-diagonal estimates.

All functions take ``value_fn: params -> scalar`` and pytrees of params, so they
work for any model; they are pure and jittable.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from optkit.core import tree as tree_lib

DISTRIBUTIONS = ("rademacher", "gaussian")


def hvp(value_fn: Callable[[Any], jax.Array], params: Any, v: Any) -> Any:
  """Hessian-vector product ``H(params) v`` by forward-over-reverse.

  Costs about one extra backward pass; ``v`` has the structure of ``params``.
  """
  return jax.jvp(jax.grad(value_fn), (params,), (v,))[1]


def grad_and_hvp(value_fn: Callable[[Any], jax.Array], params: Any, v: Any):
  """``(grad f(params), H(params) v)`` from one forward-over-reverse pass."""
  return jax.jvp(jax.grad(value_fn), (params,), (v,))


def hutchinson_diag(value_fn: Callable[[Any], jax.Array], params: Any,
                    key: jax.Array, num_samples: int = 1,
                    distribution: str = "rademacher") -> Any:
  """Hutchinson's estimate of the Hessian diagonal, ``mean_s z_s * (H z_s)``.

  Unbiased for both probe distributions (E[z z^T] = I). With Rademacher
  probes the estimate is exact when the Hessian is diagonal, for any draw.

  Args:
    value_fn: ``params -> scalar loss``.
    params: point at which the Hessian is taken.
    key: PRNG key; each sample and leaf uses its own subkey.
    num_samples: number of probes averaged (a static Python int >= 1).
    distribution: ``'rademacher'`` or ``'gaussian'``.

  Returns:
    A tree shaped like ``params`` (float32 or the params' float dtype).
  """
  if distribution not in DISTRIBUTIONS:
    raise ValueError(
        f"hutchinson_diag: `distribution` must be one of {DISTRIBUTIONS}, got "
        f"{distribution!r}.")
  if int(num_samples) != num_samples or num_samples < 1:
    raise ValueError(
        f"hutchinson_diag: `num_samples` must be an integer >= 1, got {num_samples!r}.")
  grad_fn = jax.grad(value_fn)

  def one(k):
    z = tree_lib.random_like(k, params, distribution)
    hz = jax.jvp(grad_fn, (params,), (z,))[1]
    return jax.tree.map(lambda a, b: a * b, z, hz)

  keys = jax.random.split(key, num_samples)
  if num_samples == 1:
    return one(keys[0])
  # Sequential over samples: memory stays at one HVP.
  def body(acc, k):
    est = one(k)
    return jax.tree.map(jnp.add, acc, est), None

  zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(one, keys[0]))
  total, _ = jax.lax.scan(body, zeros, keys)
  return jax.tree.map(lambda t: t / num_samples, total)


def exact_diag(value_fn: Callable[[Any], jax.Array], params: Any) -> Any:
  """The exact Hessian diagonal through n HVPs with unit vectors (small problems).

  Meant for tests and notebooks, not training: it costs one HVP per parameter.
  """
  flat, unravel = ravel_pytree(params)
  f = lambda x: value_fn(unravel(x))
  hess = jax.hessian(f)(flat)
  return unravel(jnp.diagonal(hess))
