"""Small float32-careful numerics shared by several optimizer families.

* `bias_correction(decay, count)`: Adam-style ``1 - decay ** count`` without
  float32 cancellation.
* `stat_zeros(params)`: zero statistics (second moments and the like) shaped
  like ``params`` in float32 or wider.
* `safe_div(num, den)`: ``num / den`` where ``den > 0``, else 0, with no NaN in
  either branch (so it is also safe under ``jax.grad``).
"""

from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["bias_correction", "safe_div", "stat_zeros"]


def bias_correction(decay: Any, count: Any) -> jax.Array:
  r"""Adam's bias correction :math:`1 - \beta^t`, accurate in float32.

  Computed as :math:`-\mathrm{expm1}(t\,\mathrm{log1p}(-(1 - \beta)))`, with
  :math:`1 - \beta` formed in Python double precision when ``decay`` is a
  Python number (and only then rounded to the working dtype).

  Why not ``1 - decay ** count`` in float32, as optax does: 0.999 is not a
  float32 number. ``float32(0.999)`` is ``0.99900001287...``, so
  ``1 - float32(0.999)`` is ``0.00099998712...`` instead of ``0.001``: 1.3e-5
  relative error at ``t = 1``, which the bias-corrected step inherits (PyTorch
  forms the correction in float64 and does not have it). Rounding ``1 - b``
  rather than ``b`` keeps the relative error at float32's 6e-8, and
  ``expm1``/``log1p`` avoid the cancellation in ``1 - b**t`` for every t.

  Tracer-safe: ``decay`` may be a jnp array or a tracer (e.g. under
  ``optax.inject_hyperparams``), then ``1 - decay`` is taken in its dtype.
  ``decay = 0`` gives 1 for every ``count >= 1``.

  Args:
    decay: the EMA decay :math:`\beta`, in [0, 1); Python number or array.
    count: the step :math:`t \ge 1`; an integer array (e.g. the state's int32
      count) is converted to the default float dtype (float32, float64 under
      x64), a float array keeps its dtype.

  Returns:
    :math:`1 - \beta^t`, with the dtype of the (floating) ``count``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.core import numerics
    >>> bc = numerics.bias_correction(0.999, jnp.asarray(1, jnp.int32))
    >>> print(f"{float(bc) / 0.001 - 1:.1e}")  # relative error, float32
    -6.9e-08
    >>> naive = 1 - jnp.float32(0.999) ** 1     # optax's float32 form
    >>> print(f"{float(naive) / 0.001 - 1:.1e}")
    -1.3e-05
  """
  t = jnp.asarray(count)
  if not jnp.issubdtype(t.dtype, jnp.inexact):
    t = t.astype(jnp.result_type(float))
  one_minus = 1 - decay
  if isinstance(one_minus, (int, float)):  # exact double, then one rounding
    one_minus = jnp.asarray(one_minus, t.dtype)
  return -jnp.expm1(t * jnp.log1p(-one_minus))


def stat_dtype(tree: Any) -> Any:
  """The dtype for statistics of ``tree`` (an array, a dtype or a pytree of them).

  float32, or the widest floating dtype among the leaves when that is wider
  (float64 params under x64 keep float64 statistics); bf16/f16 give float32.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.core import numerics
    >>> numerics.stat_dtype(jnp.ones(2, jnp.bfloat16))
    dtype('float32')
  """
  dtype = jnp.dtype(jnp.float32)
  for leaf in jax.tree.leaves(tree):
    dtype = jnp.promote_types(dtype, jnp.result_type(leaf))
  return dtype


def stat_zeros(params: Any) -> Any:
  """Zeros shaped like each leaf of ``params``, dtype float32 or wider.

  The usual storage for second-moment statistics: bf16/f16 params get float32
  statistics, float32 and float64 params keep their dtype.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.core import numerics
    >>> numerics.stat_zeros({"w": jnp.ones(2, jnp.bfloat16)})["w"].dtype
    dtype('float32')
  """
  return jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), stat_dtype(p)), params)


def safe_div(num: Any, den: Any) -> jax.Array:
  """``num / den`` where ``den > 0``, else 0; no NaN or inf in either branch.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.core import numerics
    >>> numerics.safe_div(jnp.array([1.0, 1.0]), jnp.array([2.0, 0.0]))
    Array([0.5, 0. ], dtype=float32)
  """
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1), 0)
