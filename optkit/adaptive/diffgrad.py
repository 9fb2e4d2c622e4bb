"""diffGrad: Adam with a friction coefficient from the change of the gradient.

Dubey, Chakraborty, Roy, Mukherjee, Singh & Chaudhuri, "diffGrad: An
Optimization Method for Convolutional Neural Networks", arXiv:1909.11015
(IEEE TNNLS 2020), Sec. III (eqs. for Delta g_t, xi_t and the update).
With t = count + 1 and g_0 = 0 (``prev_grad`` starts at zero)::

  m_t   = b1 m_{t-1} + (1 - b1) g_t                      # first moment
  v_t   = b2 v_{t-1} + (1 - b2) g_t^2                    # second raw moment
  xi_t  = sigmoid(|g_{t-1} - g_t|)                       # diffGrad friction, in [0.5, 1)
  eps_placement='raw' (default; official code and pytorch_optimizer):
    u_t = (sqrt(1 - b2^t) / (1 - b1^t)) xi_t m_t / (sqrt(v_t + eps_root) + eps)
  eps_placement='adam' (the paper's equation, Adam's m_hat / (sqrt(v_hat) + eps)):
    u_t = xi_t (m_t / (1 - b1^t)) / (sqrt(v_t / (1 - b2^t) + eps_root) + eps)
  x_t = x_{t-1} - alpha (u_t + lambda x_{t-1})           # lambda = weight_decay

Paper -> code: alpha -> ``learning_rate``, beta_1 -> ``b1``, beta_2 -> ``b2``,
epsilon -> ``eps``, xi_t -> the friction (recomputed, not stored), m_t ->
``state.mu``, v_t -> ``state.nu``, g_{t-1} -> ``state.prev_grad``, t ->
``state.count`` + 1.

Defaults (paper Sec. IV, official code shivram1987/diffGrad): alpha = 1e-3
(``learning_rate`` is required, as for every optkit optimizer), b1 = 0.9,
b2 = 0.999, eps = 1e-8.

eps placement: the official code and pytorch_optimizer 4.1.0 ``DiffGrad`` add
eps to sqrt(v_t) BEFORE the bias correction (the "efficient" form,
``eps_placement='raw'``, the default here, as the catalog asks); the paper
writes Adam's m_hat / (sqrt(v_hat) + eps) (``eps_placement='adam'``). The two
are the same update with eps rescaled by sqrt(1 - b2^t). pytorch_optimizer
also adds 1e-15 to v_t inside the root: ``eps_root=1e-15`` reproduces it
exactly; the default ``eps_root=0`` is the official code.

Weight decay: decoupled (AdamW-style, ``x <- x - alpha lambda x``), as
pytorch_optimizer's default ``weight_decouple=True``; the official code adds
lambda x to the gradient instead (coupled L2): build that with
``optax.chain(optax.add_decayed_weights(lambda), optkit.scale_by_diffgrad(),
optax.scale_by_learning_rate(alpha))``.

Numerics: m_t keeps the params' dtype unless ``mu_dtype`` is given; v_t is
float32 (or wider); g_{t-1} is stored in the gradient's dtype (exact). The
bias corrections 1 - b^t are formed as -expm1(t log1p(-(1 - b))) with 1 - b
in double precision (float32(0.999) would put a 1.3e-5 relative error into
1 - b2^t); this matches the float64 corrections of the references to float32
rounding (over 30 steps at lr 0.05 the trajectories agree to 3e-7 without
weight decay). A zero
denominator (``eps = 0`` with v_t = 0) gives a zero direction instead of 0/0.

UNSURE (catalog): none. Decided here: pytorch_optimizer's ``rectify``
(RAdam-style) and ``ams_bound`` options are not part of the paper and are not
offered.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "diffgrad"
EPS_PLACEMENTS = ("raw", "adam")


class ScaleByDiffGradState(NamedTuple):
  """State of diffGrad."""
  count: jax.Array         # int32, shape (): t - 1
  mu: optax.Updates        # m_t, params-shaped; dtype mu_dtype or the params'
  nu: optax.Updates        # v_t, params-shaped; float32 (or wider)
  prev_grad: optax.Updates  # g_{t-1}, params-shaped; the gradient's dtype


def scale_by_diffgrad(b1: float = 0.9,
                      b2: float = 0.999,
                      eps: float = 1e-8,
                      *,
                      eps_root: float = 0.0,
                      eps_placement: str = "raw",
                      mu_dtype: Optional[Any] = None) -> optax.GradientTransformation:
  r"""diffGrad's direction (no learning rate), Sec. III of Dubey et al.

  .. math::
    \xi_t = \mathrm{sigmoid}(|g_{t-1} - g_t|),\quad
    u_t = \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,
          \frac{\xi_t\, m_t}{\sqrt{v_t} + \epsilon}\quad(\text{``raw''}).

  Args:
    b1: beta_1, first-moment decay (paper: 0.9).
    b2: beta_2, second-moment decay (paper: 0.999).
    eps: epsilon (paper: 1e-8); where it is added: ``eps_placement``.
    eps_root: added to v inside the root (0: official code; 1e-15:
      pytorch_optimizer).
    eps_placement: ``'raw'`` (default; official code, pytorch_optimizer:
      eps added to sqrt(v_t) before bias correction) or ``'adam'`` (the
      paper's equation and optax: eps added to sqrt(v_hat_t)).
    mu_dtype: dtype of the first-moment buffer; None keeps the params' dtype.

  Returns:
    An ``optax.GradientTransformation`` with state ``ScaleByDiffGradState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.adaptive.scale_by_diffgrad(eps=0.0)
    >>> g = jnp.array([0.0, 1.0, -3.0])
    >>> u, s = tx.update(g, tx.init(g))  # xi_1 = sigmoid(|g_1|)
    >>> u
    Array([ 0.   ,  0.731, -0.953], dtype=float32)
    >>> u, s = tx.update(g, s)  # same gradient again: xi_2 = 0.5
    >>> u
    Array([ 0. ,  0.5, -0.5], dtype=float32)

  References:
    Dubey et al., diffGrad: An Optimization Method for Convolutional Neural
    Networks, https://arxiv.org/abs/1909.11015
  """
  validate.unit_interval(_NAME, b1=b1, b2=b2)
  validate.non_negative(_NAME, eps=eps, eps_root=eps_root)
  validate.one_of(_NAME, "eps_placement", eps_placement, EPS_PLACEMENTS)
  mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

  def init_fn(params):
    mu = jax.tree.map(lambda p: jnp.zeros(
        jnp.shape(p), jnp.result_type(p) if mu_dtype is None else mu_dtype), params)
    prev = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.result_type(p)), params)
    return ScaleByDiffGradState(count=jnp.zeros([], jnp.int32), mu=mu,
                                nu=numerics.stat_zeros(params), prev_grad=prev)

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure(_NAME, updates, state.mu)
    count_inc = optax.safe_increment(state.count)
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(
        optax.tree.cast_like(updates, state.nu), state.nu, b2, 2)
    t = count_inc.astype(jnp.float32)
    bc1 = numerics.bias_correction(b1, t)
    bc2 = numerics.bias_correction(b2, t)

    def leaf(g, gp, m, v):
      g32, m32 = g.astype(v.dtype), m.astype(v.dtype)
      xi = jax.nn.sigmoid(jnp.abs(gp.astype(v.dtype) - g32))  # friction, in [0.5, 1)
      if eps_placement == "raw":
        return (jnp.sqrt(bc2) / bc1) * numerics.safe_div(xi * m32, jnp.sqrt(v + eps_root) + eps)
      return numerics.safe_div(xi * (m32 / bc1), jnp.sqrt(v / bc2 + eps_root) + eps)

    direction = jax.tree.map(leaf, updates, state.prev_grad, mu, nu)
    direction = optax.tree.cast_like(direction, updates)
    new_state = ScaleByDiffGradState(
        count=count_inc,
        mu=optax.tree.cast_like(mu, state.mu),
        nu=optax.tree.cast_like(nu, state.nu),
        prev_grad=optax.tree.cast_like(updates, state.prev_grad))
    return direction, new_state

  return optax.GradientTransformation(init_fn, update_fn)


def diffgrad(learning_rate: optax.ScalarOrSchedule,
             b1: float = 0.9,
             b2: float = 0.999,
             eps: float = 1e-8,
             weight_decay: optax.ScalarOrSchedule = 0.0,
             mask: Optional[Any] = None,
             *,
             eps_root: float = 0.0,
             eps_placement: str = "raw",
             mu_dtype: Optional[Any] = None) -> optax.GradientTransformationExtraArgs:
  r"""diffGrad, with optional decoupled weight decay.

  .. math::
    x_t = x_{t-1} - \alpha\Big(\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
    \frac{\xi_t m_t}{\sqrt{v_t} + \epsilon} + \lambda x_{t-1}\Big),\quad
    \xi_t = \mathrm{sigmoid}(|g_{t-1} - g_t|).

  With ``eps_root=1e-15`` it reproduces pytorch_optimizer 4.1.0
  ``DiffGrad(rectify=False)`` (decoupled decay).

  Args:
    learning_rate: alpha, a number or an optax schedule (paper: 1e-3).
    b1: beta_1 (paper: 0.9).
    b2: beta_2 (paper: 0.999).
    eps: epsilon (paper: 1e-8).
    weight_decay: lambda, decoupled decay (0: diffGrad itself).
    mask: optional tree or callable selecting the decayed params.
    eps_root: added to v inside the root (0; pytorch_optimizer: 1e-15).
    eps_placement: ``'raw'`` (official code) or ``'adam'`` (the paper's eq.).
    mu_dtype: dtype of the first-moment buffer.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.adaptive.diffgrad(learning_rate=0.1, eps=0.0)
    >>> p = jnp.zeros(2)
    >>> opt.update(jnp.array([0.0, -3.0]), opt.init(p), p)[0]
    Array([-0.     ,  0.0953], dtype=float32)

  References:
    Dubey et al., diffGrad: An Optimization Method for Convolutional Neural
    Networks, https://arxiv.org/abs/1909.11015
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_diffgrad(b1, b2, eps, eps_root=eps_root, eps_placement=eps_placement,
                        mu_dtype=mu_dtype),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
