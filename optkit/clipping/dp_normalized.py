"""max{1, ||g||}-Normalized Gradient Perturbation (m-NGP).

Kang, Liu, Li, Wang, "Sharper Utility Bounds for Differentially Private
Models", arXiv:2204.10536, the m-NGP algorithm::

  g~_t = grad L_S(theta_t) / max(1, ||grad L_S(theta_t)||) + b_t,
         b_t ~ N(0, sigma^2 I_p)
  theta_{t+1} = theta_t - eta g~_t

Paper -> code: sigma -> ``noise_multiplier`` (the noise standard deviation;
the normalized gradient has norm <= 1, so sigma is the multiplier of that
unit bound, as DP-SGD's sigma C with C = 1), eta -> the learning rate of a
following ``optax.scale_by_learning_rate``, b_t -> Gaussian noise drawn from
the key in the state (split every step; one flat float32 draw for the whole
tree via ``optkit.core.tree.random_like``, so every coordinate of every leaf
gets independent noise). The norm is the L2 norm over the whole pytree, in
float32 for low-precision leaves.

This is full-batch gradient perturbation: feed it the gradient of the
empirical risk L_S on the whole data set. Per-example clipping with noise
(DP-SGD) is a different algorithm (``optax.contrib.dpsgd``).

Catalog UNSURE point, decided: the constants of sigma(epsilon, delta, n, T)
(the paper's Gaussian-mechanism / moments-accountant calibration) are not
fixed here: optkit takes sigma itself as ``noise_multiplier`` and ships no
calibration helper (``ngp_noise_multiplier`` of the catalog is not
implemented), because a wrong constant would silently void the privacy
guarantee; calibrate sigma with a DP accountant for the sensitivity of the
normalized full-batch gradient (2/n for replace-one neighbours).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optkit.clipping.global_norm import check_tree, leaf_norm_tree
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "dp_normalized_gradient_perturbation"


class DpNormalizedGradientPerturbationState(NamedTuple):
  key: jax.Array     # uint32 key data: the PRNG key, split every step
  norm: jax.Array    # float32, shape (): the last pre-normalization global norm
  leaf_norms: Any    # float32 () per leaf: the last pre-normalization leaf norms


def _work(x):
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def dp_normalized_gradient_perturbation(noise_multiplier: float = 1.0,
                                        seed: int = 0) -> optax.GradientTransformation:
  r"""m-NGP: normalize the gradient by max(1, ||g||), then add Gaussian noise.

  .. math::
    \tilde g = \frac{g}{\max(1, \|g\|_2)} + b, \qquad b \sim N(0, \sigma^2 I_p)

  Chain a learning rate after it
  (``optax.chain(dp_normalized_gradient_perturbation(s), optax.sgd(lr))``).

  Args:
    noise_multiplier: sigma >= 0, the standard deviation of the noise added to
      every coordinate (default 1.0).
    seed: seeds the PRNG key kept in the state; same seed, same noise.

  Returns:
    An ``optax.GradientTransformation`` with state
    ``DpNormalizedGradientPerturbationState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.dp_normalized_gradient_perturbation(noise_multiplier=0.0)
    >>> g = jnp.array([3.0, 4.0])
    >>> tx.update(g, tx.init(g))[0]       # sigma = 0: g / max(1, 5)
    Array([0.6, 0.8], dtype=float32)

  References:
    Kang, Liu, Li, Wang, Sharper Utility Bounds for Differentially Private
    Models, https://arxiv.org/abs/2204.10536
  """
  validate.non_negative(_NAME, noise_multiplier=noise_multiplier)
  validate.integer_at_least(_NAME, 0, seed=seed)

  def init_fn(params):
    return DpNormalizedGradientPerturbationState(
        key=jax.random.key_data(jax.random.key(seed)),
        norm=jnp.zeros([], jnp.float32),
        leaf_norms=jax.tree.map(lambda _: jnp.zeros([], jnp.float32), params))

  def update_fn(updates, state, params=None):
    del params
    check_tree(_NAME, updates, state.leaf_norms)
    work = jax.tree.map(_work, updates)
    norm = optax.tree.norm(work)
    scale = 1.0 / jnp.maximum(1.0, norm)
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    noise = tree_lib.random_like(sub, work, "gaussian")
    out = jax.tree.map(lambda g, b: g * scale.astype(g.dtype) + noise_multiplier * b,
                       work, noise)
    new_state = DpNormalizedGradientPerturbationState(
        jax.random.key_data(key), norm.astype(jnp.float32), leaf_norm_tree(work))
    return optax.tree.cast_like(out, updates), new_state

  return optax.GradientTransformation(init_fn, update_fn)
