"""AuON: cosh-brake normalized momentum, a linear-time alternative to Muon.

"AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates",
arXiv:2509.24320; reference code ryyzn9/AuON ``auon/optimizer.py`` (classes
``AuON`` and ``HybridAuON``, read at commit bba2e82; the formulas below are
restated, not copied).

Per tensor, with gradient ``g_t`` (released code)::

    m_t = beta m_{t-1} + (1 - beta) g_t                 (momentum, EMA form)
    G_t = (1 - beta) g_t + beta m_t                     (Nesterov-style lerp)
    hybrid, rank >= 2:  G_t <- NS_5(G_t / (||G_t||_F + 1e-7))   (quintic Newton-Schulz)
    Ghat = G_t / (||G_t||_F + 1e-7)
    r_t  = sqrt(mean(cosh(gamma Ghat)^2))               (the "cosh brake", r_t >= 1)
    d_t  = G_t / (r_t + 1e-8)                           (direction returned here)
    x_{t+1} = (1 - eta lambda) x_t - eta d_t            (decoupled decay first)

Paper/code -> optkit: momentum -> ``beta`` (0.95), gamma -> ``gamma`` (1.5),
lr -> ``learning_rate`` (0.24 in the code's signature; the README's example uses
0.08), weight_decay -> ``weight_decay`` (0.0), ns_steps -> ``ns_steps`` (5). The
``1e-7`` and ``1e-8`` guards are the code's. ``auon`` / ``hybrid_auon`` are
``chain(scale_by_auon(...), add_decayed_weights(weight_decay, mask),
scale_by_learning_rate(learning_rate))``: ``x - eta (d + lambda x) = (1 - eta
lambda) x - eta d``, the code's decay-then-step order.

The brake is nearly inactive on realistic layers. Since ``Ghat`` has unit
Frobenius norm, ``mean(Ghat^2) = 1/N`` for a tensor of ``N`` entries, and
``cosh(z)^2 = 1 + z^2 + O(z^4)`` gives ``r_t ~ sqrt(1 + gamma^2 / N)``: for a
512x512 matrix ``r_t - 1 ~ 4e-6``. The released AuON update is therefore
essentially Nesterov momentum in the EMA form (its step is NOT unit-norm); the
brake only acts when the update is concentrated on a few entries (a spike),
where ``r_t`` grows like ``cosh(gamma)`` for a single dominant entry. This
module implements the code faithfully and documents it (catalog pitfall).

Decisions on the catalog's UNSURE points:

* Normalization: the released code's ``G / r`` (no unit-norm rescaling), as
  read in ``auon/optimizer.py``; the paper's description of a unit-norm update
  inside a spectral trust region is not what the code does. Kept as the code.
* Hybrid-AuON: the paper's v1 abstract says "a single Newton-Schulz
  iteration"; the released ``HybridAuON`` runs ``ns_steps=5`` quintic
  iterations with Muon's coefficients (3.4445, -4.7750, 2.0315) on the
  Frobenius-normalized ``G`` (``eps`` 1e-7), transposing wide/tall as Muon
  does, then applies the brake to the Newton-Schulz output. optkit follows the
  code (default 5; ``ns_steps=1`` gives the paper's single iteration), via
  ``optkit.core.linalg.newton_schulz`` (float32, float64 for float64 leaves).
* Zero updates: the code skips a tensor whose ``G`` is zero (after decay).
  Here ``G = 0`` gives ``Ghat = 0``, ``r = 1`` and ``d = 0`` without a branch:
  the same result, so such a leaf only receives the weight decay.

Rank handling (ARCHITECTURE.md item 7). The plain AuON direction is defined
for any rank (Frobenius norm and mean over all entries). Hybrid-AuON
orthogonalizes leaves of rank >= 2: 2-D leaves as they are, higher-rank leaves
in Flax's kernel layout ``(..., in, out)`` viewed as ``(prod(...), out)`` (or by
``dimension_numbers=(row_axes, col_axes)``; a callable ``shape ->
(row_axes, col_axes) | None`` applies to every leaf of rank >= 2). The
reference instead batches Newton-Schulz over the leading axes of a torch
tensor (its last two axes are the matrix); optkit uses the matrix view that
``optax.contrib.muon`` and ``optkit.spectral_descent`` use. 0-D and 1-D leaves
get only the brake, as in the code. ``dimension_numbers`` that do not
partition a leaf's axes raise ValueError naming the leaf's path.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import linalg
from optkit.core import tree as _tree
from optkit.core import validate
from optkit.orthogonal.steepest_descent import _with_lr

# Guards of the released code: added to ||G||_F before normalizing, and to r.
NORM_EPS = 1e-7
BRAKE_EPS = 1e-8


class ScaleByAuonState(NamedTuple):
  """State of :func:`scale_by_auon`."""
  count: jax.Array     # int32, shape (): number of updates so far
  mu: optax.Updates    # m_t, EMA of gradients, shaped like the params; dtype mu_dtype


def _work(x):
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def cosh_brake(g: jax.Array, gamma=1.5) -> jax.Array:
  """The AuON brake ``r = sqrt(mean(cosh(gamma G / (||G||_F + 1e-7))^2))``.

  ``r >= 1`` always (``cosh >= 1``), and ``r ~ sqrt(1 + gamma^2 / N)`` for a
  tensor of ``N`` spread-out entries. Computed in float32 (float64 kept).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> from optkit.orthogonal.auon import cosh_brake
    >>> cosh_brake(jnp.array([1.0, 0.0, 0.0, 0.0]), 1.5)  # sqrt((cosh(1.5)^2 + 3) / 4)
    Array(1.4606..., dtype=float32)
  """
  g = _work(g)
  ghat = g / (jnp.sqrt(jnp.sum(g * g)) + NORM_EPS)
  return jnp.sqrt(jnp.mean(jnp.cosh(gamma * ghat) ** 2))




def _check_dims_arg(algo, dimension_numbers):
  if dimension_numbers is None or callable(dimension_numbers):
    return
  try:
    _rows, _cols = dimension_numbers
  except (TypeError, ValueError):
    raise ValueError(
        f"{algo}: `dimension_numbers` must be (row_axes, col_axes), a callable "
        f"shape -> (row_axes, col_axes) | None, or None, got {dimension_numbers!r}."
    ) from None


def _auon(algo: str, beta, gamma, *, hybrid: bool, ns_steps: int, ns_coeffs,
          dimension_numbers, mu_dtype):
  validate.unit_interval(algo, beta=beta)
  validate.positive(algo, gamma=gamma)
  if hybrid:
    validate.integer_at_least(algo, 1, ns_steps=ns_steps)
  _check_dims_arg(algo, dimension_numbers)
  mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

  def orthogonalize(path, x):
    if not hybrid or x.ndim < 2 or x.size == 0:
      return x
    dims = linalg.leaf_dimension_numbers(algo, path, x.shape, dimension_numbers)
    m, unflatten = linalg.as_matrix(x, dims)
    return unflatten(linalg.newton_schulz(m, steps=ns_steps, coeffs=ns_coeffs,
                                          eps=NORM_EPS))

  def direction(path, g, mu):
    big_g = (1 - beta) * g + beta * mu                      # Nesterov-style lerp
    big_g = orthogonalize(path, big_g)
    return big_g / (cosh_brake(big_g, gamma) + BRAKE_EPS)   # cosh brake

  def init_fn(params):
    if hybrid:  # rank / dimension_numbers errors at init, naming the leaf
      for path, p in jax.tree_util.tree_leaves_with_path(params):
        if jnp.ndim(p) >= 2:
          linalg.leaf_dimension_numbers(algo, path, jnp.shape(p), dimension_numbers)
    return ScaleByAuonState(count=jnp.zeros([], jnp.int32),
                            mu=optax.tree.zeros_like(params, dtype=mu_dtype))

  def update_fn(updates, state, params=None):
    del params
    _tree.check_same_structure(algo, updates, state.mu)
    g = jax.tree.map(_work, updates)
    mu = jax.tree.map(lambda gi, mi: beta * _work(mi) + (1 - beta) * gi, g, state.mu)
    d = jax.tree_util.tree_map_with_path(direction, g, mu)
    d = optax.tree.cast_like(d, updates)
    mu = optax.tree.cast_like(mu, state.mu)
    return d, ScaleByAuonState(optax.safe_increment(state.count), mu)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_auon(beta: float = 0.95,
                  gamma: float = 1.5,
                  *,
                  hybrid: bool = False,
                  ns_steps: int = 5,
                  ns_coeffs=linalg.MUON_COEFFS,
                  dimension_numbers=None,
                  mu_dtype=None) -> optax.GradientTransformation:
  """AuON direction: Nesterov-lerped momentum divided by the cosh brake.

  ::

    m_t = beta m_{t-1} + (1 - beta) g_t,     G_t = (1 - beta) g_t + beta m_t
    (hybrid, rank >= 2: G_t <- NewtonSchulz(G_t))
    d_t = G_t / (sqrt(mean(cosh(gamma G_t / (||G_t||_F + 1e-7))^2)) + 1e-8)

  Args:
    beta: momentum coefficient (code default 0.95), in [0, 1).
    gamma: scale inside the cosh (code default 1.5), > 0.
    hybrid: Hybrid-AuON: orthogonalize rank >= 2 leaves by ``ns_steps``
      quintic Newton-Schulz iterations before the brake (static).
    ns_steps: Newton-Schulz iterations (static Python int; code default 5).
    ns_coeffs: Newton-Schulz ``(a, b, c)`` (default Muon's) or one per step.
    dimension_numbers: matrix view of the leaves for the hybrid (see module
      docstring).
    mu_dtype: dtype of the momentum buffer (default: the params' dtype).

  Returns:
    An ``optax.GradientTransformation``; updates keep the gradients' dtypes.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_auon(beta=0.5)
    >>> g = jnp.array([3.0, -4.0])
    >>> d, _ = tx.update(g, tx.init(g))
    >>> d
    Array([ 1.3779..., -1.8373...], dtype=float32)

  References:
    `AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates
    <https://arxiv.org/abs/2509.24320>`_, 2025.
  """
  if not isinstance(hybrid, bool):
    raise ValueError(f"auon: `hybrid` must be a bool, got {hybrid!r}.")
  return _auon("hybrid_auon" if hybrid else "auon", beta, gamma, hybrid=hybrid,
               ns_steps=ns_steps, ns_coeffs=ns_coeffs,
               dimension_numbers=dimension_numbers, mu_dtype=mu_dtype)



def auon(learning_rate: optax.ScalarOrSchedule,
         beta: float = 0.95,
         gamma: float = 1.5,
         weight_decay: float = 0.0,
         *,
         mask: Optional[Any] = None,
         mu_dtype=None) -> optax.GradientTransformation:
  """AuON optimizer: ``x <- (1 - eta lambda) x - eta G / r`` (see module docstring).

  Args:
    learning_rate: eta, a float or an optax schedule (code default 0.24).
    beta: momentum coefficient (0.95).
    gamma: cosh-brake scale (1.5).
    weight_decay: decoupled weight decay lambda, multiplied by eta (0.0).
    mask: weight-decay mask, as in ``optax.add_decayed_weights``.
    mu_dtype: dtype of the momentum buffer.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.auon(learning_rate=0.1, beta=0.0)
    >>> p = jnp.array([3.0, -4.0])
    >>> opt.update(p, opt.init(p), p)[0]
    Array([-0.1837...,  0.2449...], dtype=float32)

  References:
    `AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates
    <https://arxiv.org/abs/2509.24320>`_, 2025.
  """
  algo = "auon"
  direction = _auon(algo, beta, gamma, hybrid=False, ns_steps=5,
                    ns_coeffs=linalg.MUON_COEFFS, dimension_numbers=None,
                    mu_dtype=mu_dtype)
  return _with_lr(algo, direction, learning_rate, weight_decay, mask)


def hybrid_auon(learning_rate: optax.ScalarOrSchedule,
                beta: float = 0.95,
                gamma: float = 1.5,
                weight_decay: float = 0.0,
                ns_steps: int = 5,
                *,
                ns_coeffs=linalg.MUON_COEFFS,
                mask: Optional[Any] = None,
                dimension_numbers=None,
                mu_dtype=None) -> optax.GradientTransformation:
  """Hybrid-AuON: Newton-Schulz on rank >= 2 leaves, then the cosh brake.

  ``G_t`` (the Nesterov-lerped momentum) of every leaf of rank >= 2 is
  replaced by ``ns_steps`` quintic Newton-Schulz iterations of
  ``G_t / (||G_t||_F + 1e-7)`` (singular values pushed into about [0.7, 1.2]),
  then divided by the cosh brake; 0-D/1-D leaves get the brake only.

  Args:
    learning_rate: eta, a float or an optax schedule.
    beta, gamma: as in :func:`auon`.
    weight_decay: decoupled weight decay (multiplied by eta).
    ns_steps: Newton-Schulz iterations (static; code default 5).
    ns_coeffs: Newton-Schulz coefficients (default Muon's).
    mask: weight-decay mask.
    dimension_numbers: matrix view of rank >= 3 leaves (see module docstring).
    mu_dtype: dtype of the momentum buffer.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.hybrid_auon(learning_rate=1.0, beta=0.0)
    >>> p = {"w": jnp.array([[2.0, 0.0], [0.0, 2.0]])}
    >>> u, _ = opt.update(p, opt.init(p), p)
    >>> jnp.round(u["w"], 2)
    Array([[-0.82, -0.  ],
           [-0.  , -0.82]], dtype=float32)

  References:
    `AuON: A Linear-time Alternative to Semi-Orthogonal Momentum Updates
    <https://arxiv.org/abs/2509.24320>`_, 2025.
  """
  algo = "hybrid_auon"
  direction = _auon(algo, beta, gamma, hybrid=True, ns_steps=ns_steps, ns_coeffs=ns_coeffs,
                    dimension_numbers=dimension_numbers, mu_dtype=mu_dtype)
  return _with_lr(algo, direction, learning_rate, weight_decay, mask)
