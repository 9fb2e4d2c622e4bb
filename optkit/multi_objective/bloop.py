"""Bloop, dynamic barrier and PCGrad with an EMA: gradient surgery for a main
loss plus an auxiliary loss.

Hsieh, Thornton, Ndiaye, Klein, Cuturi & Ablin, "Careful with that Scalpel: Improving Gradient
Surgery with an EMA", arXiv:2402.02998. Reference implementation apple/ml-bloop
``src/bloop/optim.py`` (``bloop_direction``, ``dynamic_barrier_direction``,
``pcgrad_direction``) and ``src/bloop/utils.py`` (``tree_proj``, ``update_ema``);
read through the code index, formulas restated, nothing copied.

The three directions (row 0 of ``updates`` is the main-loss gradient g, row 1 the
auxiliary-loss gradient g_aux; inner products over the whole pytree)::

  m <- m + ema·(g - m)                        (init='grad': m_1 = g_1)
  ratio = <g_aux, m> / (||m||² + eps)
  dynamic_barrier:  ratio <- min(ratio, 1/λ)
  π = g_aux - ratio·m                          (g_aux with the EMA direction removed)
  d = s·(g + λ·π),   s = 1/(1 + λ) if rescale else 1

  pcgrad_ema: m <- EMA(g), a <- EMA(g_aux) (both updated first);
  π_aux = g_aux - min(<g_aux, m>/(||m||²+eps), 0)·m
  π_main = g - min(<g, a>/(||a||²+eps), 0)·a     (only conflicting parts removed)
  d = s·(π_main + λ·π_aux)

Paper -> code: λ -> ``lbda``; the EMA weight (1 - β, the reference's ``ema``)
-> ``ema``; g̃ (EMA of the main gradient) -> ``main_ema``; the auxiliary EMA
of PCGrad-EMA -> ``aux_ema``. The output is a direction (no learning rate):
chain it with any optimizer, ``optax.chain(optkit.bloop(), optax.sgd(lr))``.

Defaults (reference ``BloopState`` / ``init_bloop``): ema = 0.1 (β = 0.9),
lbda = 0.1, eps = 1e-7, rescale False, init 'grad'.

Decisions (the catalog lists no UNSURE point; these are where optkit and the
reference differ or the reference is silent):

* ``rescale``: the reference's Bloop and dynamic-barrier path computes
  ``1.0 / 1.0 + lbda`` (= 1 + λ, an operator-precedence slip) while its PCGrad
  uses 1/(1 + λ); optkit uses 1/(1 + λ) everywhere (irrelevant with the default
  rescale=False). The fixture compares rescale=True only for PCGrad-EMA.
* ``init='grad'``: the reference's ``init_*`` functions take a tree to copy
  (its examples pass the params). A transformation does not see the first
  gradient at ``init``, so optkit starts the EMA at zero and, at the first
  update (``count == 0``), replaces it by the gradient itself: m_1 = g_1,
  exactly what ``init_bloop(grad_main=g_1)`` followed by ``update_ema`` gives.
  For PCGrad-EMA each EMA starts at its own first gradient (a_1 = g_aux,1);
  the reference's ``init_pcgrad`` copies the main tree into both EMAs, which
  has no counterpart here. ``init='zeros'`` is identical to the reference.
* The reference's ``init='random'`` and ``use_ratio_only`` options are not
  offered (not part of the method as published).
* The EMAs are kept in float32 (float64 for float64 gradients); the output is
  cast to each leaf's dtype.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_INITS = ("grad", "zeros")
_HIGHEST = jax.lax.Precision.HIGHEST


class BloopState(NamedTuple):
  """State of :func:`bloop` and :func:`dynamic_barrier`."""
  count: jax.Array          # int32, shape (): updates taken (0: EMA not yet set)
  main_ema: optax.Updates   # m, EMA of the main gradient; params' shapes, float32


class PCGradEMAState(NamedTuple):
  """State of :func:`pcgrad_ema`."""
  count: jax.Array          # int32, shape ()
  main_ema: optax.Updates   # EMA of the main gradient; params' shapes, float32
  aux_ema: optax.Updates    # EMA of the auxiliary gradient; params' shapes, float32


def _split_rows(name: str, updates: Any, params: Any, ema_tree: Any):
  """(g_main, g_aux) from a tree whose leaves have a leading axis of size 2."""
  tree_lib.check_floating_tree(name, updates)
  m = tree_lib.leading_axis_size(name, updates)
  if m != 2:
    raise ValueError(
        f"{name}: `updates` must have a leading axis of size 2 on every leaf (row 0: "
        f"main-loss gradient, row 1: auxiliary-loss gradient); got size {m}.")
  main = jax.tree.map(lambda x: x[0], updates)
  aux = jax.tree.map(lambda x: x[1], updates)
  tree_lib.check_same_structure(name, main, ema_tree)
  if params is not None:
    tree_lib.check_same_structure(name, main, params, what="the params")
  return main, aux


def _vdot(a: Any, b: Any) -> jax.Array:
  parts = [jnp.vdot(x.astype(numerics.stat_dtype(x)), y.astype(numerics.stat_dtype(x)), precision=_HIGHEST)
           for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))]
  return sum(parts[1:], parts[0])


def _ema(grad: Any, ema_tree: Any, ema: Any, first: jax.Array, init: str) -> Any:
  """m + ema·(g - m); at the first step with init='grad', m = g."""
  def one(g, m):
    new = m + jnp.asarray(ema, m.dtype) * (g.astype(m.dtype) - m)
    if init == "grad":
      new = jnp.where(first, g.astype(m.dtype), new)
    return new
  return jax.tree.map(one, grad, ema_tree)


def _project_out(v: Any, u: Any, eps: Any, upper: Any = None):
  """v - ratio·u with ratio = <v, u>/(||u||² + eps), clipped above at ``upper``."""
  ratio = _vdot(v, u) / (_vdot(u, u) + eps)
  if upper is not None:
    ratio = jnp.minimum(ratio, upper)
  return jax.tree.map(lambda a, b: a.astype(b.dtype) - ratio.astype(b.dtype) * b, v, u)


def _validate(name, lbda, ema, eps, init):
  validate.non_negative(name, lbda=lbda)
  validate.closed_unit_interval(name, ema=ema)
  validate.positive(name, eps=eps)
  validate.one_of(name, "init", init, _INITS)


def _surgery(name: str, lbda, ema, init, rescale, eps, barrier: bool):
  _validate(name, lbda, ema, eps, init)

  def init_fn(params):
    zeros = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), numerics.stat_dtype(p)), params)
    return BloopState(jnp.zeros([], jnp.int32), zeros)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args  # `values` (the two losses) is accepted and unused.
    g, g_aux = _split_rows(name, updates, params, state.main_ema)
    first = state.count == 0
    m = _ema(g, state.main_ema, ema, first, init)
    upper = None
    if barrier:
      lb = jnp.asarray(lbda, jnp.float32)
      upper = jnp.where(lb > 0, 1.0 / jnp.where(lb > 0, lb, 1.0), jnp.inf)
    pi = _project_out(g_aux, m, eps, upper)
    scale = jnp.where(rescale, 1.0 / (1.0 + jnp.asarray(lbda, jnp.float32)), 1.0)
    d = jax.tree.map(lambda a, p: (scale * (a.astype(p.dtype) + lbda * p)).astype(a.dtype),
                     g, pi)
    return d, BloopState(optax.safe_increment(state.count), m)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def bloop(lbda: Any = 0.1, ema: Any = 0.1, *, init: str = "grad", rescale: bool = False,
          eps: Any = 1e-7) -> optax.GradientTransformationExtraArgs:
  r"""Bloop: the auxiliary gradient with the main gradient's EMA projected out.

  .. math::
    \tilde g \leftarrow \tilde g + \mathrm{ema}(g - \tilde g),\quad
    \pi = g_{aux} - \frac{\langle g_{aux}, \tilde g\rangle}{\|\tilde g\|^2 + \epsilon}\tilde g,
    \quad d = g + \lambda \pi

  ``updates`` has a leading axis of size 2 on every leaf: row 0 the main-loss
  gradient g, row 1 the auxiliary-loss gradient g_aux (``jax.jacrev`` of
  ``lambda p: jnp.stack([main(p), aux(p)])``). The output has the params'
  shapes; chain it with an optimizer.

  Args:
    lbda: λ >= 0, weight of the auxiliary loss (default 0.1, reference).
    ema: EMA weight in [0, 1] (1 - β; default 0.1, reference).
    init: ``'grad'`` (the EMA starts at the first main gradient) or ``'zeros'``.
    rescale: multiply the direction by 1/(1 + λ).
    eps: added to ||g̃||² in the projection (default 1e-7, reference).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (state :class:`BloopState`).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> g = jnp.array([[1.0, 0.0], [1.0, 2.0]])   # rows: main, auxiliary
    >>> tx = optkit.bloop(lbda=0.5)
    >>> d, _ = tx.update(g, tx.init(jnp.zeros(2)))
    >>> d  # g + 0.5·(g_aux without its component along g)
    Array([1., 1.], dtype=float32)

  References:
    Careful with that Scalpel: Improving Gradient Surgery with an EMA,
    https://arxiv.org/abs/2402.02998
  """
  return _surgery("bloop", lbda, ema, init, rescale, eps, barrier=False)


def dynamic_barrier(lbda: Any = 0.1, ema: Any = 0.1, *, init: str = "grad",
                    rescale: bool = False,
                    eps: Any = 1e-7) -> optax.GradientTransformationExtraArgs:
  r"""Dynamic barrier (EMA variant): Bloop with the ratio clipped at 1/λ.

  As :func:`bloop` but ``ratio = min(<g_aux, g̃>/(||g̃||² + eps), 1/λ)``, so the
  component of the auxiliary gradient along g̃ is removed only up to 1/λ
  (λ = 0: no clipping).

  Args:
    lbda: λ >= 0 (default 0.1).
    ema: EMA weight in [0, 1] (default 0.1).
    init: ``'grad'`` or ``'zeros'``.
    rescale: multiply the direction by 1/(1 + λ).
    eps: added to ||g̃||² (default 1e-7).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> g = jnp.array([[1.0, 0.0], [30.0, 1.0]])   # ratio 30 > 1/λ = 10
    >>> tx = optkit.dynamic_barrier(lbda=0.1)
    >>> d, _ = tx.update(g, tx.init(jnp.zeros(2)))
    >>> d.round(4)  # g + 0.1·(g_aux - 10·g)
    Array([3. , 0.1], dtype=float32)

  References:
    Careful with that Scalpel: Improving Gradient Surgery with an EMA,
    https://arxiv.org/abs/2402.02998
  """
  return _surgery("dynamic_barrier", lbda, ema, init, rescale, eps, barrier=True)


def pcgrad_ema(lbda: Any = 0.1, ema: Any = 0.1, *, init: str = "grad",
               rescale: bool = False,
               eps: Any = 1e-7) -> optax.GradientTransformationExtraArgs:
  r"""PCGrad with EMAs: each gradient loses its conflicting part along the
  other gradient's EMA.

  .. math::
    \pi_{aux} = g_{aux} - \min\Big(\frac{\langle g_{aux}, \tilde g\rangle}
      {\|\tilde g\|^2+\epsilon}, 0\Big)\tilde g,\quad
    \pi = g - \min\Big(\frac{\langle g, \tilde a\rangle}{\|\tilde a\|^2+\epsilon},
      0\Big)\tilde a,\quad d = s(\pi + \lambda\pi_{aux})

  Args:
    lbda: λ >= 0 (default 0.1).
    ema: EMA weight in [0, 1] for both EMAs (default 0.1).
    init: ``'grad'`` (each EMA starts at its own first gradient) or ``'zeros'``.
    rescale: s = 1/(1 + λ) instead of 1.
    eps: added to the squared norms (default 1e-7).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> g = jnp.array([[1.0, 0.0], [-1.0, 1.0]])   # conflicting rows
    >>> tx = optkit.pcgrad_ema(lbda=1.0)
    >>> d, _ = tx.update(g, tx.init(jnp.zeros(2)))
    >>> d.round(4)  # [0.5, 0.5] + [0, 1]
    Array([0.5, 1.5], dtype=float32)

  References:
    Careful with that Scalpel: Improving Gradient Surgery with an EMA,
    https://arxiv.org/abs/2402.02998; PCGrad: Yu et al., Gradient Surgery for
    Multi-Task Learning, https://arxiv.org/abs/2001.06782
  """
  name = "pcgrad_ema"
  _validate(name, lbda, ema, eps, init)

  def init_fn(params):
    zeros = lambda: jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), numerics.stat_dtype(p)), params)
    return PCGradEMAState(jnp.zeros([], jnp.int32), zeros(), zeros())

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    g, g_aux = _split_rows(name, updates, params, state.main_ema)
    first = state.count == 0
    m = _ema(g, state.main_ema, ema, first, init)
    a = _ema(g_aux, state.aux_ema, ema, first, init)
    pi_aux = _project_out(g_aux, m, eps, 0.0)
    pi_main = _project_out(g, a, eps, 0.0)
    scale = jnp.where(rescale, 1.0 / (1.0 + jnp.asarray(lbda, jnp.float32)), 1.0)
    d = jax.tree.map(lambda x, pm, pa: (scale * (pm + lbda * pa)).astype(x.dtype),
                     g, pi_main, pi_aux)
    return d, PCGradEMAState(optax.safe_increment(state.count), m, a)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
