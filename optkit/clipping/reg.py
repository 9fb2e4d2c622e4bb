"""REG: momentum balanced by Row-and-Column Scaling (RACS) instead of Muon's sign.

Liu, Wu, Fu, Liu, Han, Zhong & Yuan, "REG: A Regularization Optimizer for
Robust Training Dynamics", arXiv:2510.03691. The RACS operator comes from
Gong et al. 2025 (arXiv:2502.07752), where it is a stand-alone optimizer.

Every leaf is viewed as a matrix G (n × m): 0-D leaves as (1, 1), 1-D leaves of
length n as (n, 1), k-D leaves as (shape[0], prod(shape[1:])), the reshape of
the reference (pytorch_optimizer ``RACS``).

RACS, as in pytorch_optimizer 4.1.0 ``RACS`` (`scale_by_racs`):

    s ← β·s + (1−β)·mean_cols(G²)        (row statistics, s_0 = 0)
    q ← β·q + (1−β)·mean_rows(G²)        (column statistics, q_0 = 1)
    Ĝ = G / (sqrt(s + eps) · sqrt(q + eps)ᵀ)  = D_r^{-1/2} G D_c^{-1/2}
    r = 1 at the first step, else γ / max(||Ĝ||_F / (θ + eps), γ)
    θ ← r·||Ĝ||_F
    output α·r·Ĝ                          (the optimizer steps −η·α·r·Ĝ)

The limiter r caps the growth of the update norm: r·||Ĝ|| ≤ γ·(θ + eps), so
consecutive update norms grow by at most a factor γ (per leaf).

REG (`scale_by_reg`, `reg`): Muon's step is
M_t = μ M_{t−1} + G_t, O_t = msign(M_t), scaled so that its RMS matches AdamW's;
REG replaces msign by the RACS balancing of M_t:

    M_t = b1·M_{t−1} + G_t
    O_t = D_r^{-1/2} M_t D_c^{-1/2},  D_r = diag(mean_cols(M_t²)) + eps,
                                     D_c = diag(mean_rows(M_t²)) + eps
    output rms_scale · O_t / RMS(O_t)     (RMS over the leaf's entries)

Paper/reference -> code: β -> ``beta``; α -> ``alpha``; γ -> ``gamma``;
s, q, θ -> ``state.s``, ``state.q``, ``state.theta``; μ -> ``b1``; the
AdamW-matching RMS -> ``rms_scale``.

Decisions (catalog UNSURE: how REG uses RACS; the text of the paper's
algorithm was not available in this pass, only its abstract and summaries,
which describe "row and column normalization of the momentum matrix, combined
with RMS normalization and weight decay, using only the first-moment term"):

* REG balances the current momentum matrix with its own row/column mean
  squares (no EMA of the statistics, no limiter: RACS with β = 0 and no r),
  the drop-in replacement of Muon's msign(M_t).
* Momentum: heavy-ball M_t = b1·M_{t−1} + G_t (Muon's / optax.contrib.muon's
  form without Nesterov), b1 = 0.9.
* RMS matching: the update is rescaled to RMS ``rms_scale`` = 0.2 per leaf,
  the AdamW-matching constant of Moonlight's Muon that REG compares against;
  a zero momentum gives a zero update (no division by zero).
* Non-matrix leaves get the same treatment through the reference's reshape
  (a 1-D leaf's balanced update is ≈ sign(M)); use ``optax.multi_transform``
  to give them AdamW instead, as Muon users do.
* pytorch_optimizer initializes the column statistic q at 1 (not 0) and
  applies the limiter only after the first step; `scale_by_racs` does the same
  (matched step by step to the reference, see tests).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

__all__ = [
    "ScaleByRACSState",
    "ScaleByREGState",
    "reg",
    "scale_by_racs",
    "scale_by_reg",
]


class ScaleByRACSState(NamedTuple):
  count: jax.Array     # int32, shape (): number of steps
  s: optax.Updates     # row statistics, per leaf shape (n,), float32
  q: optax.Updates     # column statistics, per leaf shape (m,), float32
  theta: optax.Updates  # previous scaled-update norm, per leaf shape (), float32


class ScaleByREGState(NamedTuple):
  count: jax.Array     # int32, shape (): number of steps
  mu: optax.Updates    # momentum M_t, params' shapes, float32 (or wider)


def _matrix_shape(shape) -> tuple[int, int]:
  """The reference's 2-D view: () -> (1, 1), (n,) -> (n, 1), (n, ...) -> (n, rest)."""
  shape = tuple(shape)
  if len(shape) == 0:
    return (1, 1)
  if len(shape) == 1:
    return (shape[0], 1)
  return (shape[0], int(np.prod(shape[1:], dtype=np.int64)))


def _row_col_mean_sq(mat):
  """Means of mat² over columns (per row) and over rows (per column); 0 for empty."""
  sq = jnp.square(mat)
  n, m = mat.shape
  return jnp.sum(sq, axis=1) / max(m, 1), jnp.sum(sq, axis=0) / max(n, 1)


def _balance(mat, s, q, eps):
  return mat / (jnp.sqrt(s + eps)[:, None] * jnp.sqrt(q + eps)[None, :])


def _check_racs_tree(name: str, updates: Any, state: ScaleByRACSState) -> None:
  """Structure from ``theta``, the 2-D view's shape from ``s`` and ``q``."""
  s_u, s_r = jax.tree.structure(updates), jax.tree.structure(state.theta)
  if s_u != s_r:
    raise ValueError(
        f"{name}: the gradient tree does not match the optimizer state: got structure "
        f"{s_u}, expected {s_r}. Was the state initialized with other params?")
  tree_lib.check_floating_tree(name, updates)
  for (path, u), s, q in zip(jax.tree_util.tree_leaves_with_path(updates),
                             jax.tree.leaves(state.s), jax.tree.leaves(state.q)):
    if _matrix_shape(jnp.shape(u)) != (s.shape[0], q.shape[0]):
      raise ValueError(
          f"{name}: the gradient leaf at {jax.tree_util.keystr(path)} has shape "
          f"{jnp.shape(u)}, which does not match the optimizer state "
          f"(a {s.shape[0]} x {q.shape[0]} matrix view).")


def scale_by_racs(beta=0.9, alpha=0.05, gamma=1.01, eps=1e-8
                  ) -> optax.GradientTransformation:
  r"""Row-and-Column Scaling with a norm-growth limiter (RACS direction).

  .. math::
    s \leftarrow \beta s + (1-\beta)\,\overline{G^2}^{\,\mathrm{cols}},\quad
    q \leftarrow \beta q + (1-\beta)\,\overline{G^2}^{\,\mathrm{rows}},\quad
    \hat G = \frac{G}{\sqrt{s+\epsilon}\,\sqrt{q+\epsilon}^\top},\quad
    u = \alpha\, r\, \hat G

  with r = 1 at the first step and r = γ / max(||Ĝ||/(θ + ε), γ) after it,
  θ ← r||Ĝ|| (per leaf; leaves viewed as matrices, see the module docstring).

  Args:
    beta: β, decay of the row/column statistics (reference default 0.9).
    alpha: α, update scale (reference default 0.05).
    gamma: γ >= 1 in practice, the largest growth factor of the update norm
      per step (reference default 1.01).
    eps: ε in the roots and the limiter (reference default 1e-8).

  Returns:
    An ``optax.GradientTransformation``; statistics in float32.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_racs(beta=0.0, alpha=1.0)
    >>> g = jnp.array([[1.0, 2.0], [2.0, 4.0]])  # rank one: balanced to ±c
    >>> out, _ = tx.update(g, tx.init(g))
    >>> print(jnp.round(out, 4))
    [[0.4 0.4]
     [0.4 0.4]]

  References:
    Liu et al., REG: A Regularization Optimizer for Robust Training Dynamics,
    https://arxiv.org/abs/2510.03691; Gong et al., arXiv:2502.07752 (RACS).
  """
  name = "scale_by_racs"
  validate.unit_interval(name, beta=beta)
  validate.non_negative(name, alpha=alpha, eps=eps)
  validate.positive(name, gamma=gamma)

  def init_fn(params):
    def rows(p):
      return jnp.zeros((_matrix_shape(jnp.shape(p))[0],), numerics.stat_dtype(p))

    def cols(p):
      return jnp.ones((_matrix_shape(jnp.shape(p))[1],), numerics.stat_dtype(p))

    return ScaleByRACSState(
        jnp.zeros([], jnp.int32),
        jax.tree.map(rows, params),
        jax.tree.map(cols, params),
        jax.tree.map(lambda p: jnp.zeros([], numerics.stat_dtype(p)), params))

  def update_fn(updates, state, params=None):
    del params
    _check_racs_tree(name, updates, state)
    first = state.count == 0

    def leaf(g, s, q, theta):
      dt = s.dtype
      mat = jnp.reshape(g.astype(dt), _matrix_shape(jnp.shape(g)))
      row_ms, col_ms = _row_col_mean_sq(mat)
      w = jnp.asarray(1 - beta, dt)
      s = s + w * (row_ms - s)                                    # lerp, as the reference
      q = q + w * (col_ms - q)
      ghat = _balance(mat, s, q, eps)
      norm = jnp.sqrt(jnp.sum(jnp.square(ghat)))
      gam = jnp.asarray(gamma, dt)
      r = jnp.where(first, 1, gam / jnp.maximum(norm / (theta + eps), gam))
      theta = norm * r
      u = jnp.reshape(alpha * r * ghat, jnp.shape(g)).astype(jnp.result_type(g))
      return u, s, q, theta

    out = jax.tree.map(leaf, updates, state.s, state.q, state.theta)
    u, s, q, theta = (jax.tree.map(lambda _, o, i=i: o[i], updates, out) for i in range(4))
    return u, ScaleByRACSState(optax.safe_increment(state.count), s, q, theta)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_reg(b1=0.9, eps=1e-8, rms_scale=0.2) -> optax.GradientTransformation:
  r"""REG direction: RMS-normalized RACS balancing of the momentum.

  .. math::
    M_t = b_1 M_{t-1} + G_t,\quad
    O_t = D_r^{-1/2} M_t D_c^{-1/2},\quad
    u_t = \mathrm{rms\_scale}\cdot O_t / \mathrm{RMS}(O_t)

  with D_r, D_c the row and column mean squares of M_t plus eps (per leaf,
  leaves viewed as matrices as in `scale_by_racs`).

  Args:
    b1: μ, heavy-ball momentum (default 0.9).
    eps: ε added to the row/column mean squares.
    rms_scale: RMS of each leaf's update (0.2, the AdamW-matching value).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_reg()
    >>> g = jnp.array([[1.0, -2.0], [3.0, 0.5]])
    >>> out, _ = tx.update(g, tx.init(g))
    >>> print(round(float(jnp.sqrt(jnp.mean(out ** 2))), 4))
    0.2

  References:
    Liu et al., REG: A Regularization Optimizer for Robust Training Dynamics,
    https://arxiv.org/abs/2510.03691
  """
  name = "scale_by_reg"
  validate.unit_interval(name, b1=b1)
  validate.non_negative(name, eps=eps, rms_scale=rms_scale)

  def init_fn(params):
    return ScaleByREGState(jnp.zeros([], jnp.int32), numerics.stat_zeros(params))

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure(name, updates, state.mu)
    mu = jax.tree.map(lambda g, m: b1 * m + g.astype(m.dtype), updates, state.mu)

    def leaf(m, g):
      mat = jnp.reshape(m, _matrix_shape(jnp.shape(m)))
      row_ms, col_ms = _row_col_mean_sq(mat)
      o = _balance(mat, row_ms, col_ms, eps)
      rms = jnp.sqrt(jnp.mean(jnp.square(o))) if o.size else jnp.zeros([], o.dtype)
      o = rms_scale * numerics.safe_div(o, rms)
      return jnp.reshape(o, jnp.shape(g)).astype(jnp.result_type(g))

    out = jax.tree.map(leaf, mu, updates)
    mu = jax.tree.map(lambda m, r: m.astype(r.dtype), mu, state.mu)
    return out, ScaleByREGState(optax.safe_increment(state.count), mu)

  return optax.GradientTransformation(init_fn, update_fn)


def reg(learning_rate: optax.ScalarOrSchedule, b1=0.9, eps=1e-8, rms_scale=0.2,
        weight_decay=0.0, *, mask: Optional[Any] = None) -> optax.GradientTransformation:
  r"""REG optimizer: RACS-balanced momentum with AdamW-matched RMS and decoupled decay.

  .. math::
    \theta_{t+1} = \theta_t - \eta\,\big(u_t + \lambda\,\theta_t\big)

  with u_t from `scale_by_reg`.

  Args:
    learning_rate: η, a number or an optax schedule.
    b1: momentum μ (default 0.9).
    eps: ε in the balancing.
    rms_scale: RMS of each leaf's direction (default 0.2).
    weight_decay: λ, decoupled weight decay (AdamW-style).
    mask: weight-decay mask (as in ``optax.add_decayed_weights``).

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> loss = lambda p: jnp.sum((p["w"] - 1.0) ** 2)
    >>> opt = optkit.reg(learning_rate=0.1)
    >>> params = {"w": jnp.zeros((3, 2))}
    >>> state = opt.init(params)
    >>> for _ in range(50):
    ...   u, state = opt.update(jax.grad(loss)(params), state, params)
    ...   params = jax.tree.map(jnp.add, params, u)
    >>> bool(loss(params) < 0.1 * 6.0)
    True

  References:
    Liu et al., REG: A Regularization Optimizer for Robust Training Dynamics,
    https://arxiv.org/abs/2510.03691
  """
  name = "reg"
  validate.learning_rate(name, learning_rate)
  validate.non_negative(name, weight_decay=weight_decay)
  return optax.chain(
      scale_by_reg(b1, eps, rms_scale),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
