"""AdaGrad-Norm and the adaptive batch-size tests of AdAdaGrad.

Lau, Liu & Kolar, "AdAdaGrad: Adaptive Batch Size Schemes for Adaptive
Gradient Methods", arXiv:2402.11215. AdaGrad-Norm itself: Ward, Wu & Bottou,
"AdaGrad stepsizes: sharp convergence over nonconvex landscapes" (2019).

**AdaGrad-Norm** (``scale_by_adagrad_norm``, ``adagrad_norm``): one scalar
accumulator of squared global gradient norms,

    b_t^2 = b_{t-1}^2 + ||g_t||^2          (b_0 = ``b0``; global l2 norm over the tree)
    x_{t+1} = x_t - eta g_t / b_t

so the effective step eta / b_t never increases. The direction returns
g_t / b_t; ``adagrad_norm`` chains it with ``optax.add_decayed_weights`` and
``optax.scale_by_learning_rate``. b_t^2 is accumulated in float32.

**Adaptive batch-size tests** (``adaptive_batch_size_test``, host-side or
jitted helper): from the per-example gradients g_i (i in B, a leading axis on
every leaf, e.g. ``jax.vmap(jax.grad(loss), (None, 0))(params, batch)``) with
mean g = (1/|B|) sum_i g_i:

  * ``'norm'`` test (Byrd et al. 2012; AdAdaGrad's norm test):
    Var = 1/(|B| - 1) sum_i ||g_i - g||^2; it passes if Var / |B| <= eta^2 ||g||^2,
    otherwise the suggested size is ceil(Var / (eta^2 ||g||^2)).
  * ``'inner_product'`` (augmented inner-product test, Bollapragada, Byrd &
    Nocedal 2018): Var_ip = 1/(|B| - 1) sum_i (<g_i, g> - ||g||^2)^2 must satisfy
    Var_ip / |B| <= theta^2 ||g||^4 (theta = ``eta``), and the orthogonality part
    Var_orth = 1/(|B| - 1) sum_i ||g_i - (<g_i, g> / ||g||^2) g||^2 must satisfy
    Var_orth / |B| <= nu^2 ||g||^2; the suggested size is the larger of
    ceil(Var_ip / (theta^2 ||g||^4)) and ceil(Var_orth / (nu^2 ||g||^2)).

The next batch size is max(|B|, suggested), capped at ``b_max``: batch sizes
never decrease. With ||g|| = 0 and Var > 0 the suggestion is ``b_max``.

Paper -> code: b_0 -> ``b0``; eta (AdaGrad-Norm) -> ``learning_rate``; eta
(norm test) / theta (inner-product test) -> ``eta``; nu -> ``nu``; |B_k| ->
the leading axis size of ``per_example_grads``; b_max -> ``b_max``.

UNSURE, decided:
  * ``b0`` default 1e-8: only guards the division at t = 1 (the method is
    insensitive to it; Ward et al. use small b_0).
  * Thresholds: ``eta`` has no default (the paper tunes it per task); ``nu``
    defaults to tan(80 deg) ~ 5.84, Bollapragada et al.'s value.
  * Default test: ``'norm'`` (one threshold, the catalog's first choice);
    ``'inner_product'`` is available.
  * The coordinate-wise test for full AdaGrad is not shipped: its exact form
    could not be settled from the sources available here.
  * JAX's static shapes: changing the batch size re-jits the train step;
    round the suggestion up to a bucket (e.g. a power of two) or pad with a
    mask. ``adaptive_batch_size_test`` itself is jittable (its result is an
    int32 array).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "adagrad_norm"
TESTS = ("norm", "inner_product")
_NU_DEFAULT = 5.84  # tan(80 degrees), Bollapragada, Byrd & Nocedal (2018)


class ScaleByAdaGradNormState(NamedTuple):
  count: jax.Array     # int32, shape (): t
  sum_sq: jax.Array    # float32, shape (): b_t^2 = b_0^2 + sum_s ||g_s||^2


def _global_sq_norm(tree) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.zeros([], jnp.float32)
  return sum(jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))) for x in leaves)


def scale_by_adagrad_norm(b0=1e-8) -> optax.GradientTransformation:
  """AdaGrad-Norm direction g_t / b_t, b_t^2 = b_{t-1}^2 + ||g_t||^2.

  Args:
    b0: b_0 > 0, the initial accumulator (guards the first division).

  Returns:
    An optax ``GradientTransformation`` (no learning rate).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_adagrad_norm()
    >>> g = jnp.array([3.0, 4.0])
    >>> tx.update(g, tx.init(g))[0]        # g / ||g||
    Array([0.6, 0.8], dtype=float32)

  References:
    Lau, Liu & Kolar 2024, https://arxiv.org/abs/2402.11215; Ward, Wu &
    Bottou 2019, https://arxiv.org/abs/1806.01811
  """
  validate.positive(_NAME, b0=b0)

  def init_fn(params):
    del params
    return ScaleByAdaGradNormState(
        jnp.zeros([], jnp.int32), jnp.square(jnp.asarray(b0, jnp.float32)))

  def update_fn(updates, state, params=None):
    if params is not None:
      tree_lib.check_same_structure(_NAME, updates, params, "the params")
    else:
      tree_lib.check_floating_tree(_NAME, updates)
    sum_sq = state.sum_sq + _global_sq_norm(updates)          # b_t^2
    inv_b = jax.lax.rsqrt(jnp.maximum(sum_sq, jnp.finfo(jnp.float32).tiny))
    d = jax.tree.map(lambda g: jnp.asarray(g, jnp.float32) * inv_b, updates)
    d = optax.tree.cast_like(d, updates)
    return d, ScaleByAdaGradNormState(optax.safe_increment(state.count),
                                      sum_sq.astype(jnp.float32))

  return optax.GradientTransformation(init_fn, update_fn)


def adagrad_norm(learning_rate: optax.ScalarOrSchedule, b0=1e-8,
                 weight_decay=0.0, *, mask=None) -> optax.GradientTransformation:
  """AdaGrad-Norm: x_{t+1} = x_t - eta g_t / b_t with one scalar accumulator.

  Args:
    learning_rate: eta (a number or an optax schedule).
    b0: b_0 > 0 (UNSURE default 1e-8, module docstring).
    weight_decay: decoupled weight decay (0 in the paper).
    mask: optional weight-decay mask.

  Returns:
    An optax ``GradientTransformation``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.adagrad_norm(learning_rate=0.5)
    >>> p = jnp.array([3.0, 4.0])
    >>> opt.update(p, opt.init(p), p)[0]
    Array([-0.3, -0.4], dtype=float32)

  References:
    Lau, Liu & Kolar, "AdAdaGrad: Adaptive Batch Size Schemes for Adaptive
    Gradient Methods", 2024. https://arxiv.org/abs/2402.11215
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(scale_by_adagrad_norm(b0),
                     optax.add_decayed_weights(weight_decay, mask),
                     optax.scale_by_learning_rate(learning_rate))


def _ceil_ratio(num, den, b_max):
  """ceil(num / den), b_max where den == 0 < num, 0 where num == 0."""
  safe = jnp.where(den > 0, den, 1.0)
  q = jnp.where(den > 0, jnp.ceil(num / safe), jnp.where(num > 0, b_max, 0.0))
  return jnp.minimum(q, b_max)


def adaptive_batch_size_test(per_example_grads, eta, b_max: int,
                             test: str = "norm", *, nu=_NU_DEFAULT) -> jax.Array:
  """Suggested next batch size from per-example gradients (module docstring).

  Args:
    per_example_grads: a tree whose every leaf has the leading batch axis
      |B| >= 2 (e.g. from ``jax.vmap(jax.grad(loss))``), or a (|B|, n) array.
    eta: the test's threshold (eta of the norm test, theta of the
      inner-product test), > 0.
    b_max: the largest batch size allowed (>= 1).
    test: ``'norm'`` or ``'inner_product'`` (augmented, with orthogonality).
    nu: the orthogonality threshold of the inner-product test.

  Returns:
    The next batch size, an int32 array: |B| if the test passes, else the
    size that would pass it (never below |B|, capped at ``b_max``).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> same = jnp.ones((8, 3))                       # no noise: keep |B|
    >>> int(optkit.adaptive_batch_size_test(same, eta=0.5, b_max=1024))
    8
    >>> noisy = jnp.array([[1.0, 0.0], [-1.0, 0.0], [1.2, 0.0], [-1.0, 0.0]])
    >>> int(optkit.adaptive_batch_size_test(noisy, eta=0.5, b_max=1024))
    1024

  References:
    Lau, Liu & Kolar 2024, https://arxiv.org/abs/2402.11215; Bollapragada,
    Byrd & Nocedal 2018, https://arxiv.org/abs/1710.11258
  """
  name = "adaptive_batch_size_test"
  validate.one_of(name, "test", test, TESTS)
  validate.positive(name, eta=eta, nu=nu)
  validate.integer_at_least(name, 1, b_max=b_max)
  if isinstance(per_example_grads, jax.Array) or hasattr(per_example_grads, "shape"):
    rows = jnp.reshape(jnp.asarray(per_example_grads), (jnp.shape(per_example_grads)[0], -1))
  else:
    tree_lib.leading_axis_size(name, per_example_grads)
    rows = tree_lib.flatten_rows(per_example_grads)
  rows = rows.astype(jnp.promote_types(rows.dtype, jnp.float32))
  n = rows.shape[0]
  if n < 2:
    raise ValueError(f"{name}: needs at least 2 per-example gradients (the leading "
                     f"axis), got {n}.")
  b_max_f = jnp.asarray(float(int(b_max)), rows.dtype)
  mean = jnp.mean(rows, axis=0)
  mean_sq = jnp.sum(jnp.square(mean))                                  # ||g||^2
  if test == "norm":
    var = jnp.sum(jnp.square(rows - mean)) / (n - 1)
    need = _ceil_ratio(var, eta ** 2 * mean_sq, b_max_f)
  else:
    ip = rows @ mean                                                   # <g_i, g>
    var_ip = jnp.sum(jnp.square(ip - mean_sq)) / (n - 1)
    coef = jnp.where(mean_sq > 0, ip / jnp.where(mean_sq > 0, mean_sq, 1.0), 0.0)
    resid = rows - coef[:, None] * mean
    var_orth = jnp.sum(jnp.square(resid)) / (n - 1)
    need = jnp.maximum(_ceil_ratio(var_ip, eta ** 2 * mean_sq ** 2, b_max_f),
                       _ceil_ratio(var_orth, nu ** 2 * mean_sq, b_max_f))
  # A passing test gives need <= |B|: the size is kept (batch sizes never shrink).
  nxt = jnp.minimum(jnp.maximum(need, float(n)), b_max_f)
  return nxt.astype(jnp.int32)
