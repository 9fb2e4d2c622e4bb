"""Nonconvex accelerated proximal gradient (SCAD / MCP) with the optimal damping sequence.

Yang, Asgharian & Bhatnagar, "Accelerated Gradient Methods for Sparse
Statistical Learning with Nonconvex Penalties", arXiv:2009.10629. The paper
applies Ghadimi & Lan's nonconvex accelerated gradient (AG) method to
min_x f(x) + p_lambda(x) with p = SCAD or MCP, and chooses the AG
hyperparameters by minimizing Ghadimi & Lan's complexity bound::

    x^md_k = (1 - alpha_k) x^ag_{k-1} + alpha_k x_{k-1}        # gradient evaluated here
    x_k    = prox_{lambda_k h}(x_{k-1} - lambda_k G(x^md_k))
    x^ag_k = prox_{beta_k h}(x^md_k - beta_k G(x^md_k))
    alpha_1 = 1,  alpha_{k+1} = 2 / (1 + sqrt(1 + 4 / alpha_k^2))   # optimal damping
    beta_k = beta (< 1/L),  lambda_k = beta_k / alpha_k

Ghadimi & Lan's composite analysis needs a convex h, so the penalty is split
(difference of convex functions, as in the paper and the authors' code,
github.com/Kaiyangshi-Ito/nonconvexAG): p_lambda(x) = lambda |x| + q(x) with q
concave and smooth (gradient Lipschitz with constant 1/(a-1) for SCAD, 1/gamma
for MCP); h = lambda ||x||_1 (prox: soft-thresholding) and G = grad f + grad q.
L is then max(L_f, 1/(a-1)) (SCAD) or max(L_f, 1/gamma) (MCP); the authors use
beta = 0.99 / L.

Paper -> code: beta -> ``learning_rate`` (a number or a schedule); lambda (the
penalty level) -> ``lam``; a (SCAD) -> ``a``; gamma (MCP) -> ``gamma``;
alpha_k -> the state's ``alpha``; x_{k-1}, x^ag_{k-1} -> ``x``, ``x_ag``.
Shifted-params convention (algorithms README): the visible params are the
evaluation point x^md_k; ``update`` returns x^md_{k+1} - x^md_k, and
:func:`nonconvex_accelerated_prox_eval_params` reads x^ag (Ghadimi & Lan's
output) from the state.

Signature: the catalog's ``nonconvex_accelerated_prox(learning_rates, penalty)``
is ``nonconvex_accelerated_prox(learning_rate, lam, *, penalty, a, gamma)``:
one step size beta (lambda_k is derived from it and alpha_k, as in the paper).

The exact (nonconvex) proximal operators of SCAD and MCP are also provided:
:func:`prox_scad` (Fan & Li's thresholding rule, requires a > 1 + step) and
:func:`prox_mcp` (firm thresholding, requires gamma > step).

UNSURE point of the catalog (the explicit alpha_k, lambda_k, beta_k), decided
from the authors' code (``UAG_LM_SCAD_MCP``): alpha_k by the recursion above
(alpha_1 = 1, alpha_k ~ 2/k), a constant beta_k = ``learning_rate`` and
lambda_k = beta_k / alpha_k. One detail differs: the authors' loop starts
from alpha = 1 but applies the recursion before its first step, so its first
step uses alpha = (sqrt(5) - 1) / 2; optkit starts at alpha_1 = 1 (Ghadimi &
Lan's condition, and the same first iterate since x_0 = x^ag_0 makes x^md_1
independent of alpha_1; only lambda_1 differs), and ``alpha1`` reproduces the
authors' sequence exactly. The adaptive restarts of the authors' loop
(alpha reset to 1 when the x^md speed drops) are not included. Defaults a = 3.7
(Fan & Li) and gamma = 2.0 (the authors' code).

Reference: the authors' package nonconvexAG 1.1.6 (``UAG_LM_SCAD_MCP``), run
as plain NumPy in float64 by tools/make_nonconvex_penalties_fixtures.py;
tests/constraints/test_nonconvex_penalties.py matches its x^md iterates up to
its first restart (rtol 1e-10, with ``alpha1`` set to the authors' first
alpha) and checks the prox operators against a brute-force
float64 minimization, their continuity at |z| = 2 lambda and a lambda and the
identity above a lambda, exact zeros against a smooth-penalty negative control,
a float64 NumPy re-derivation of the AG recursion, and support recovery with
unbiased large coefficients on a sparse linear regression (L1 shrinks them:
negative control).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optkit.core import tree as tree_lib, validate

_NAME = "nonconvex_accelerated_prox"
_PENALTIES = ("scad", "mcp", "l1")


def _greater_than(algo: str, bound: float, **kwargs) -> None:
  """ValueError unless value > bound (Python numbers only; arrays and tracers
  under inject_hyperparams are the caller's to check)."""
  for arg, value in kwargs.items():
    if isinstance(value, (int, float)) and not value > bound:
      raise ValueError(f"{algo}: `{arg}` must be > {bound}, got {value!r}.")


def soft_threshold(z: jax.Array, thresh: Any) -> jax.Array:
  """prox of thresh * |.|: sign(z) max(|z| - thresh, 0) (exact zeros).

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> optkit.soft_threshold(jnp.array([-2.0, 0.3, 1.5]), 0.5)
    Array([-1.5,  0. ,  1. ], dtype=float32)
  """
  return jnp.sign(z) * jnp.maximum(jnp.abs(z) - thresh, 0.0)


def scad_penalty(x: jax.Array, lam: Any, a: Any = 3.7) -> jax.Array:
  """Elementwise SCAD penalty p_lambda(x) (Fan & Li 2001).

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> optkit.scad_penalty(jnp.array([0.0, 0.5, 5.0]), lam=1.0)
    Array([0.  , 0.5 , 2.35], dtype=float32)
  """
  t = jnp.abs(x)
  return jnp.where(t <= lam, lam * t,
                   jnp.where(t <= a * lam, (2 * a * lam * t - t ** 2 - lam ** 2) / (2 * (a - 1)),
                             lam ** 2 * (a + 1) / 2))


def mcp_penalty(x: jax.Array, lam: Any, gamma: Any = 2.0) -> jax.Array:
  """Elementwise MCP penalty (Zhang 2010).

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> optkit.mcp_penalty(jnp.array([0.0, 0.5, 5.0]), lam=1.0, gamma=2.0)
    Array([0.    , 0.4375, 1.    ], dtype=float32)
  """
  t = jnp.abs(x)
  return jnp.where(t <= gamma * lam, lam * t - t ** 2 / (2 * gamma), gamma * lam ** 2 / 2)


def _concave_grad(x: jax.Array, penalty: str, lam: Any, a: Any, gamma: Any) -> jax.Array:
  """Gradient of q = p_lambda - lambda |x| (smooth, concave)."""
  t, s = jnp.abs(x), jnp.sign(x)
  if penalty == "scad":
    return jnp.where(t <= lam, 0.0, jnp.where(t <= a * lam, (lam * s - x) / (a - 1), -lam * s))
  if penalty == "mcp":
    return jnp.where(t < gamma * lam, -x / gamma, -lam * s)
  return jnp.zeros_like(x)


def prox_scad(lam: Any, a: Any = 3.7) -> Callable[..., Any]:
  r"""The proximal operator of the SCAD penalty, ``prox(z, step=1.0)``.

  :math:`\mathrm{prox}_{s p}(z) = \arg\min_x \tfrac12 (x - z)^2 + s\,p_{\lambda,a}(x)`;
  for a unit step (Fan & Li's thresholding rule)::

    |z| <= 2 lam:          sign(z) max(|z| - lam, 0)
    2 lam < |z| <= a lam:  ((a - 1) z - sign(z) a lam) / (a - 2)
    |z| > a lam:           z

  and for a step s (with a > 1 + s) the same with 2 lam -> (1 + s) lam,
  lam -> s lam in the soft threshold and ((a - 1) z - sign(z) a s lam) /
  (a - 1 - s) in the middle piece. Works on arrays or trees.

  Args:
    lam: the penalty level lambda, >= 0.
    a: SCAD's a, > 2 (3.7, Fan & Li's choice).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> prox = optkit.prox_scad(1.0, a=3.7)
    >>> prox(jnp.array([0.5, 1.5, 3.0, 5.0]))
    Array([0.       , 0.5      , 2.5882354, 5.       ], dtype=float32)

  References:
    Yang, Asgharian & Bhatnagar, 2020. https://arxiv.org/abs/2009.10629
  """
  validate.non_negative("prox_scad", lam=lam)
  _greater_than("prox_scad", 2.0, a=a)

  def prox(z, step=1.0):
    def one(x):
      t, s = jnp.abs(x), jnp.sign(x)
      soft = s * jnp.maximum(t - step * lam, 0.0)
      mid = ((a - 1) * x - s * a * step * lam) / (a - 1 - step)
      return jnp.where(t <= (1 + step) * lam, soft, jnp.where(t <= a * lam, mid, x))
    return jax.tree.map(one, z)

  return prox


def prox_mcp(lam: Any, gamma: Any = 2.0) -> Callable[..., Any]:
  r"""The proximal operator of the MCP penalty (firm thresholding), ``prox(z, step=1.0)``::

    |z| <= s lam:            0
    s lam < |z| <= gamma lam: sign(z) (|z| - s lam) / (1 - s / gamma)
    |z| > gamma lam:         z

  Requires gamma > step. Works on arrays or trees.

  Args:
    lam: the penalty level lambda, >= 0.
    gamma: MCP's gamma, > 1 for a unit step (2.0, the authors' code).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> optkit.prox_mcp(1.0, gamma=2.0)(jnp.array([0.5, 1.5, 3.0]))
    Array([0., 1., 3.], dtype=float32)

  References:
    Yang, Asgharian & Bhatnagar, 2020. https://arxiv.org/abs/2009.10629
  """
  validate.non_negative("prox_mcp", lam=lam)
  validate.positive("prox_mcp", gamma=gamma)

  def prox(z, step=1.0):
    def one(x):
      t, s = jnp.abs(x), jnp.sign(x)
      firm = s * jnp.maximum(t - step * lam, 0.0) / (1 - step / gamma)
      return jnp.where(t <= gamma * lam, firm, x)
    return jax.tree.map(one, z)

  return prox


class NonconvexAcceleratedProxState(NamedTuple):
  count: jax.Array   # int32, shape (): k - 1, steps taken
  alpha: jax.Array   # float32 (float64 for f64 params), shape (): alpha_k
  x: Any             # x_{k-1}, like params (float32 or wider)
  x_ag: Any          # x^ag_{k-1}, like params (float32 or wider)


def _wide(p):
  return p.astype(jnp.promote_types(jnp.result_type(p), jnp.float32))


def nonconvex_accelerated_prox(
    learning_rate: optax.ScalarOrSchedule,
    lam: float = 1e-3,
    *,
    penalty: str = "scad",
    a: float = 3.7,
    gamma: float = 2.0,
    alpha1: float = 1.0,
) -> optax.GradientTransformation:
  r"""Ghadimi-Lan accelerated proximal gradient for SCAD/MCP-penalized losses.

  .. math::
    x^{md}_k = (1-\alpha_k) x^{ag}_{k-1} + \alpha_k x_{k-1},\quad
    x_k = S_{\lambda_k\lambda}(x_{k-1} - \lambda_k G),\quad
    x^{ag}_k = S_{\beta\lambda}(x^{md}_k - \beta G)

  with :math:`G = \nabla f(x^{md}_k) + \nabla q(x^{md}_k)`, S the soft
  threshold, :math:`\lambda_k = \beta/\alpha_k` and the damping recursion
  :math:`\alpha_{k+1} = 2/(1+\sqrt{1+4/\alpha_k^2})`, :math:`\alpha_1 = 1`.
  The incoming ``updates`` are the gradient of the smooth loss f at the
  visible params (x^md); the returned update moves them to x^md_{k+1}.

  Args:
    learning_rate: beta, the step size (a number or a schedule); the paper
      uses 0.99 / L with L = max(L_f, 1/(a-1)) (SCAD) or max(L_f, 1/gamma) (MCP).
    lam: the penalty level lambda, >= 0.
    penalty: ``"scad"`` (default), ``"mcp"`` or ``"l1"`` (LASSO: q = 0).
    a: SCAD's a, > 2 (3.7, Fan & Li).
    gamma: MCP's gamma, > 0 (2.0, the authors' code).
    alpha1: the first damping value alpha_1, in (0, 1] (1.0, Ghadimi & Lan;
      the authors' code applies the recursion once before the first step,
      i.e. alpha1 = (sqrt(5) - 1) / 2; see the module docstring).

  Returns:
    An ``optax.GradientTransformation``; ``update`` needs ``params``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.nonconvex_accelerated_prox(0.5, lam=0.1, penalty="l1")
    >>> x = jnp.array([1.0, 0.05])
    >>> u, s = tx.update(x, tx.init(x), x)        # f = ||x||^2 / 2
    >>> x + u                                       # alpha_1 = 1: one prox step
    Array([0.45, 0.  ], dtype=float32)

  References:
    Yang, Asgharian & Bhatnagar, Accelerated Gradient Methods for Sparse
    Statistical Learning with Nonconvex Penalties, 2020.
    https://arxiv.org/abs/2009.10629
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, lam=lam)
  validate.one_of(_NAME, "penalty", penalty, _PENALTIES)
  _greater_than(_NAME, 2.0, a=a)
  validate.positive(_NAME, gamma=gamma, alpha1=alpha1)
  if isinstance(alpha1, (int, float)) and alpha1 > 1:
    raise ValueError(f"{_NAME}: `alpha1` must be in (0, 1], got {alpha1!r}.")

  def init_fn(params):
    # fresh buffers (never aliases of params: users donate params and state)
    copy = lambda p: jnp.array(_wide(p), copy=True)
    dtype = jnp.float32  # float64 when a params leaf is (x64 tests)
    for leaf in jax.tree.leaves(params):
      dtype = jnp.promote_types(dtype, jnp.result_type(leaf))
    return NonconvexAcceleratedProxState(
        count=jnp.zeros([], jnp.int32), alpha=jnp.asarray(alpha1, dtype),
        x=jax.tree.map(copy, params), x_ag=jax.tree.map(copy, params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(f"{_NAME}: update() requires `params` (the evaluation point "
                       "x^md); call `tx.update(updates, state, params)`.")
    tree_lib.check_same_structure(_NAME, updates, state.x)
    beta = learning_rate(state.count) if callable(learning_rate) else learning_rate
    alpha = state.alpha
    lam_k = beta / alpha

    def leaf(g, x, x_ag):
      md = (1 - alpha) * x_ag + alpha * x                      # x^md_k
      grad = g.astype(md.dtype) + _concave_grad(md, penalty, lam, a, gamma)
      x_new = soft_threshold(x - lam_k * grad, lam_k * lam)     # x_k
      ag_new = soft_threshold(md - beta * grad, beta * lam)     # x^ag_k
      return x_new.astype(x.dtype), ag_new.astype(x.dtype)

    g_leaves, treedef = jax.tree.flatten(updates)
    pairs = [leaf(g, x, ag) for g, x, ag in zip(
        g_leaves, treedef.flatten_up_to(state.x), treedef.flatten_up_to(state.x_ag))]
    x_new = jax.tree.unflatten(treedef, [p[0] for p in pairs])
    ag_new = jax.tree.unflatten(treedef, [p[1] for p in pairs])
    alpha_next = 2.0 / (1.0 + jnp.sqrt(1.0 + 4.0 / alpha ** 2))   # damping
    alpha_next = alpha_next.astype(state.alpha.dtype)
    out = jax.tree.map(
        lambda p, x, ag: ((1 - alpha_next) * ag + alpha_next * x - p.astype(x.dtype)
                          ).astype(jnp.result_type(p)),
        params, x_new, ag_new)
    return out, NonconvexAcceleratedProxState(optax.safe_increment(state.count),
                                              alpha_next, x_new, ag_new)

  return optax.GradientTransformation(init_fn, update_fn)


def nonconvex_accelerated_prox_eval_params(state: NonconvexAcceleratedProxState) -> Any:
  """x^ag, the sequence Ghadimi & Lan's analysis bounds (sparse: its entries
  are exact zeros where the soft threshold applies); cast to the params'
  dtype by the caller if needed.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.nonconvex_accelerated_prox(0.5, lam=0.1)
    >>> x = jnp.array([1.0, 0.05])
    >>> _, s = tx.update(x, tx.init(x), x)
    >>> optkit.nonconvex_accelerated_prox_eval_params(s)   # SCAD: no shrinkage of 1.0
    Array([0.5, 0. ], dtype=float32)
  """
  return state.x_ag
