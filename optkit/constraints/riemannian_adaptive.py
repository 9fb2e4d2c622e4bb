"""Riemannian adaptive methods: RAdam, RAMSGrad, RAdagrad on product manifolds.

Bécigneul & Ganea, "Riemannian Adaptive Optimization Methods", ICLR 2019,
arXiv:1810.00760, Sec. 3-4: RAMSGRAD (Algorithm 1), RADAM (the same without
the max) and RADAGRAD.

Each params leaf is a product of manifold components (rows of an embedding
table on the Poincaré ball, unit vectors on the sphere, one Stiefel matrix,
or single coordinates of a Euclidean leaf). Per component i::

    g_t^i   = egrad2rgrad(x_t^i, grad_E)            # Poincaré: ((1 - c||x||^2)^2 / 4) grad_E
    m_t^i   = b1 tau_{t-1}^i + (1 - b1) g_t^i
    v_t^i   = b2 v_{t-1}^i + (1 - b2) ||g_t^i||^2_{x_t^i}   # ONE scalar per component
    vhat_t^i = max(vhat_{t-1}^i, v_t^i)                        # RAMSGrad; RAdam: vhat = v
    x_{t+1}^i = exp_{x_t^i}(-alpha m_t^i / (sqrt(vhat_t^i) + eps))
    tau_t^i  = P_{x_t^i -> x_{t+1}^i}(m_t^i)                 # parallel transport
    RAdagrad: v_t^i = v_{t-1}^i + ||g_t^i||^2_{x_t^i},  x_{t+1}^i = exp(-alpha g_t^i / (sqrt(v_t^i) + eps))

The returned update is ``x_{t+1} - x_t`` in ambient coordinates, so
``optax.apply_updates`` lands on the new manifold point (up to one float
rounding). The learning rate lives inside the direction (the exponential map
is not linear in its argument), so there is no ``scale_by_...`` split and the
step is not followed by ``optax.scale_by_learning_rate``.

Paper -> code: alpha -> ``learning_rate`` (schedule evaluated at ``count``);
beta_1, beta_2 -> ``b1``, ``b2``; m -> ``state.mu`` (stored already
transported, i.e. tau); v -> ``state.nu``; vhat -> ``state.nu_max``; the
manifolds M_i -> ``manifolds`` (a :class:`Manifold`, or a tree of them that is
a prefix of the params; ``None`` means Euclidean with one component per
coordinate).

Manifolds shipped (ambient coordinates, ``ndim`` trailing axes form one
component): :func:`euclidean` (ndim 0 by default), :func:`sphere` (unit
vectors, last axis), :func:`poincare_ball` (curvature -c, last axis),
:func:`stiefel` (orthonormal columns, last two axes). Euclidean, sphere and
Poincaré use the exact exponential map and parallel transport (Poincaré:
Ganea et al.'s gyration formula, P = (lambda_x / lambda_y) gyr[y, -x] v).
The Stiefel manifold uses the QR retraction and projection vector transport
(as geoopt does): an approximation of the paper's exp / parallel transport.

Defaults and their source: b1 = 0.9, b2 = 0.999, eps = 1e-8 (the paper's
experiments and geoopt's ``RiemannianAdam``); eps is added to sqrt(vhat)
(geoopt's placement; the paper has no eps).

UNSURE (catalog: bias correction; geoopt adds one, the paper does not),
decided: ``bias_correction=False`` by default (the paper's algorithms; then
the Euclidean case with one component per coordinate is AMSGrad / Adam
without bias correction, checked against ``optax.amsgrad`` with both
corrections off); ``bias_correction=True`` gives geoopt's form
(m / (1 - b1^t) / (sqrt(vhat / (1 - b2^t)) + eps), the max taken over the
uncorrected v, then corrected), checked against ``optax.adam`` and a geoopt
fixture (``optax.amsgrad`` differs: it takes the max of the corrected v). Points are projected back onto the manifold after
each exponential map (Poincaré: into the ball of radius (1 - 4e-3)/sqrt(c) in
float32, (1 - 1e-5)/sqrt(c) in float64, geoopt's margins), which keeps
float32 iterates on the manifold near the boundary. The params must start on
the manifold (``Manifold.proj`` puts them there).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import numerics, tree as tree_lib, validate


def _dot(u, v, ndim):
  """Sum of u * v over the last ``ndim`` axes (kept for broadcasting)."""
  if ndim == 0:
    return u * v
  return jnp.sum(u * v, axis=tuple(range(-ndim, 0)), keepdims=True)


def _boundary_eps(dtype):
  return 1e-5 if jnp.finfo(dtype).bits >= 64 else 4e-3


@dataclasses.dataclass(frozen=True)
class Manifold:
  """A Riemannian manifold in ambient coordinates; ``ndim`` trailing axes of a
  leaf form one component (one point). Subclasses give the geometry.

  Methods (``x`` a point, ``u``/``v`` tangent vectors at ``x``, all with the
  leaf's shape; ``inner`` keeps the reduced axes with size 1):
  ``proj(x)``, ``egrad2rgrad(x, g)``, ``inner(x, u, v)``, ``expmap(x, u)``,
  ``transp(x, u, v)`` (transport of v from x along the geodesic
  t -> exp_x(t u) to exp_x(u)).
  """
  ndim: int = 0

  def proj(self, x):
    return x

  def egrad2rgrad(self, x, g):
    del x
    return g

  def inner(self, x, u, v):
    del x
    return _dot(u, v, self.ndim)

  def expmap(self, x, u):
    return x + u

  def transp(self, x, u, v):
    del x, u
    return v


@dataclasses.dataclass(frozen=True)
class Euclidean(Manifold):
  """R^n; with ``ndim=0`` every coordinate is its own component."""


@dataclasses.dataclass(frozen=True)
class Sphere(Manifold):
  """Unit sphere {x : ||x|| = 1} along the last axis; ``transport`` is
  ``"parallel"`` (exact, along the geodesic) or ``"projection"`` (onto the
  tangent space at the new point, geoopt's ``SphereExact``)."""
  ndim: int = 1
  transport: str = "parallel"

  def proj(self, x):
    n = jnp.sqrt(_dot(x, x, 1))
    return x / jnp.maximum(n, jnp.finfo(x.dtype).tiny)

  def egrad2rgrad(self, x, g):
    return g - _dot(x, g, 1) * x

  def expmap(self, x, u):
    theta = jnp.sqrt(_dot(u, u, 1))
    y = jnp.cos(theta) * x + jnp.sinc(theta / jnp.pi) * u   # sin(theta)/theta u
    return self.proj(y)

  def transp(self, x, u, v):
    if self.transport == "projection":
      y = self.expmap(x, u)
      return v - _dot(y, v, 1) * y
    theta = jnp.sqrt(_dot(u, u, 1))
    e = u / jnp.where(theta > 0, theta, 1.0)
    pv = v + _dot(e, v, 1) * ((jnp.cos(theta) - 1.0) * e - jnp.sin(theta) * x)
    y = self.expmap(x, u)
    return pv - _dot(y, pv, 1) * y   # remove rounding drift off T_y


@dataclasses.dataclass(frozen=True)
class PoincareBall(Manifold):
  """Poincaré ball {||x|| < 1/sqrt(c)} of curvature -c along the last axis."""
  ndim: int = 1
  c: float = 1.0

  def _lambda(self, x):
    return 2.0 / jnp.maximum(1.0 - self.c * _dot(x, x, 1), 1e-15)

  def proj(self, x):
    n = jnp.sqrt(_dot(x, x, 1))
    maxnorm = (1.0 - _boundary_eps(x.dtype)) / jnp.sqrt(self.c)
    return jnp.where(n > maxnorm, x / jnp.maximum(n, 1e-30) * maxnorm, x)

  def egrad2rgrad(self, x, g):
    return g / self._lambda(x) ** 2

  def inner(self, x, u, v):
    return self._lambda(x) ** 2 * _dot(u, v, 1)

  def mobius_add(self, x, y):
    c = self.c
    xy, x2, y2 = _dot(x, y, 1), _dot(x, x, 1), _dot(y, y, 1)
    num = (1.0 + 2.0 * c * xy + c * y2) * x + (1.0 - c * x2) * y
    return num / jnp.maximum(1.0 + 2.0 * c * xy + c ** 2 * x2 * y2, 1e-15)

  def gyration(self, a, b, w):
    """gyr[a, b] w (Ungar's closed form), an isometry of R^n."""
    c = self.c
    ab, aw, bw = _dot(a, b, 1), _dot(a, w, 1), _dot(b, w, 1)
    a2, b2 = _dot(a, a, 1), _dot(b, b, 1)
    big_a = -c ** 2 * aw * b2 + c * bw + 2.0 * c ** 2 * ab * bw
    big_b = -c ** 2 * bw * a2 - c * aw
    d = 1.0 + 2.0 * c * ab + c ** 2 * a2 * b2
    return w + 2.0 * (big_a * a + big_b * b) / jnp.maximum(d, 1e-15)

  def expmap(self, x, u):
    sc = jnp.sqrt(self.c)
    un = jnp.sqrt(_dot(u, u, 1))
    safe = jnp.where(un > 0, un, 1.0)
    second = jnp.where(un > 0, jnp.tanh(sc * self._lambda(x) * safe / 2.0) * u / (sc * safe), 0.0)
    return self.proj(self.mobius_add(x, second))

  def transp(self, x, u, v):
    y = self.expmap(x, u)
    return self._lambda(x) / self._lambda(y) * self.gyration(y, -x, v)


@dataclasses.dataclass(frozen=True)
class Stiefel(Manifold):
  """Stiefel manifold {X in R^(n x p) : X^T X = I} on the last two axes (n >= p);
  QR retraction and projection transport (not the exact exp map)."""
  ndim: int = 2

  def proj(self, x):
    q, r = jnp.linalg.qr(x)
    s = jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))
    s = jnp.where(s == 0, 1.0, s)
    return q * s[..., None, :]

  def _tangent(self, x, v):
    xtv = jnp.swapaxes(x, -1, -2) @ v
    return v - x @ (0.5 * (xtv + jnp.swapaxes(xtv, -1, -2)))

  def egrad2rgrad(self, x, g):
    return self._tangent(x, g)

  def expmap(self, x, u):
    return self.proj(x + u)

  def transp(self, x, u, v):
    return self._tangent(self.expmap(x, u), v)


def euclidean(ndim: int = 0) -> Manifold:
  """Euclidean space; ``ndim`` trailing axes per component (0: per coordinate).

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> opt = optkit.riemannian_adam(0.1, manifolds=optkit.euclidean())
    >>> p = jnp.array([1.0, -2.0])
    >>> u, _ = opt.update(2 * p, opt.init(p), p)
    >>> u.round(3)   # no bias correction by default: lr (1 - b1) / sqrt(1 - b2) sign(g)
    Array([-0.316,  0.316], dtype=float32)
  """
  return Euclidean(ndim=int(ndim))


def sphere(transport: str = "parallel") -> Manifold:
  """The unit sphere along the last axis (each row a point); ``transport``:
  ``"parallel"`` (the paper's) or ``"projection"`` (geoopt's).

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> opt = optkit.riemannian_adam(0.1, manifolds=optkit.sphere())
    >>> p = jnp.array([[0.6, 0.8]])                  # one point on the unit circle
    >>> u, _ = opt.update(jnp.array([[1.0, 0.0]]), opt.init(p), p)
    >>> float(jnp.linalg.norm(p + u)).__round__(5)   # the step stays on the sphere
    1.0
  """
  validate.one_of("sphere", "transport", transport, ("parallel", "projection"))
  return Sphere(transport=transport)


def poincare_ball(c: float = 1.0) -> Manifold:
  """The Poincaré ball of curvature -c along the last axis (each row a point).

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> opt = optkit.riemannian_adam(0.1, manifolds=optkit.poincare_ball())
    >>> p = jnp.array([[0.5, 0.0]])
    >>> u, _ = opt.update(jnp.array([[-10.0, 0.0]]), opt.init(p), p)
    >>> bool(jnp.linalg.norm(p + u) < 1.0)           # still inside the unit ball
    True
  """
  if not c > 0:
    raise ValueError(f"poincare_ball: `c` must be positive, got {c!r}.")
  return PoincareBall(c=float(c))


def stiefel() -> Manifold:
  """The Stiefel manifold of the last two axes (each (n, p) matrix a point).

  Example:
    >>> import jax.numpy as jnp
    >>> import optkit
    >>> opt = optkit.riemannian_adam(0.05, manifolds=optkit.stiefel())
    >>> p = jnp.eye(3)[:, :2]                        # a 3x2 matrix with orthonormal columns
    >>> u, _ = opt.update(jnp.ones((3, 2)), opt.init(p), p)
    >>> q = p + u
    >>> bool(jnp.allclose(q.T @ q, jnp.eye(2), atol=1e-5))
    True
  """
  return Stiefel()


class RiemannianAdamState(NamedTuple):
  """State of :func:`riemannian_adam` / :func:`riemannian_amsgrad`."""
  count: jax.Array   # int32, shape (): t
  mu: optax.Updates  # tau_{t-1}: transported momentum, leaf shape, float32
  nu: optax.Updates  # v_t: one scalar per component, leaf.shape[:-ndim], float32
  nu_max: optax.Updates  # vhat_t (RAMSGrad), as nu


class RiemannianAdagradState(NamedTuple):
  """State of :func:`riemannian_adagrad`."""
  count: jax.Array   # int32, shape (): t
  nu: optax.Updates  # v_t: one scalar per component, leaf.shape[:-ndim], float32


def _leaf_manifolds(name, manifolds, params):
  """A list of Manifold objects, one per params leaf."""
  if manifolds is None:
    manifolds = euclidean()
  if isinstance(manifolds, Manifold):
    ms = [manifolds] * len(jax.tree.leaves(params))
  else:
    try:
      full = jax.tree.map(lambda m, x: jax.tree.map(lambda _: m, x), manifolds, params)
    except (ValueError, TypeError) as e:
      raise ValueError(f"{name}: `manifolds` must be a Manifold or a tree of them that "
                       f"is a prefix of the params tree ({e}).") from e
    ms = jax.tree.leaves(full, is_leaf=lambda m: isinstance(m, Manifold))
  for (path, x), m in zip(jax.tree_util.tree_leaves_with_path(params), ms):
    if not isinstance(m, Manifold):
      raise ValueError(f"{name}: `manifolds` leaf for {jax.tree_util.keystr(path)} is "
                       f"{m!r}, not a Manifold.")
    if jnp.ndim(x) < m.ndim:
      raise ValueError(f"{name}: the leaf at {jax.tree_util.keystr(path)} has rank "
                       f"{jnp.ndim(x)}, below the {m.ndim} axes one {type(m).__name__} "
                       "component needs.")
  return ms


def _stat_shape(x, m):
  shape = jnp.shape(x)
  return shape[:len(shape) - m.ndim]


def _work(x):
  return x.astype(jnp.promote_types(jnp.result_type(x), jnp.float32))


def _expand(s, m):
  return s.reshape(s.shape + (1,) * m.ndim)


def _riemannian(name, learning_rate, manifolds, b1, b2, eps, amsgrad, bias_correction,
                adagrad):
  validate.learning_rate(name, learning_rate)
  validate.positive(name, eps=eps)
  if not adagrad:
    validate.unit_interval(name, b1=b1, b2=b2)
  # b1, b2 as arrays of the default float dtype, as optax.inject_hyperparams passes
  # them: 1 - b is then rounded the same way whether or not they are injected
  # (float32 0.999 is 0.99900001, so 1 - b2 carries a 1.3e-5 relative error
  # either way; in float64 it is exact to 1e-16).
  b1 = jnp.asarray(b1, jnp.result_type(float))
  b2 = jnp.asarray(b2, jnp.result_type(float))

  def lr_at(count):
    return learning_rate(count) if callable(learning_rate) else learning_rate

  def init_fn(params):
    ms = _leaf_manifolds(name, manifolds, params)
    leaves, treedef = jax.tree.flatten(params)
    nu = jax.tree.unflatten(treedef, [jnp.zeros(_stat_shape(x, m), jnp.promote_types(
        jnp.result_type(x), jnp.float32)) for x, m in zip(leaves, ms)])
    count = jnp.zeros([], jnp.int32)
    if adagrad:
      return RiemannianAdagradState(count, nu)
    return RiemannianAdamState(count, numerics.stat_zeros(params), nu,
                               jax.tree.map(jnp.copy, nu))

  def update_fn(updates, state, params=None, **extra):
    del extra
    if params is None:
      raise ValueError(f"{name}: update() requires `params` (the current manifold "
                       "points); call `tx.update(updates, state, params)`.")
    tree_lib.check_same_structure(name, updates, params, what="the params")
    ms = _leaf_manifolds(name, manifolds, params)
    t = optax.safe_increment(state.count)
    lr = lr_at(state.count)
    leaves_g, treedef = jax.tree.flatten(updates)
    leaves_x = jax.tree.leaves(params)
    leaves_nu = jax.tree.leaves(state.nu)
    if adagrad:
      leaves_mu = leaves_nu_max = [None] * len(leaves_g)
    else:
      leaves_mu, leaves_nu_max = jax.tree.leaves(state.mu), jax.tree.leaves(state.nu_max)
    out, mus, nus, nu_maxs = [], [], [], []
    for g, x, m, mu, nu, nu_max in zip(leaves_g, leaves_x, ms, leaves_mu, leaves_nu,
                                       leaves_nu_max):
      xw = _work(x)
      rg = m.egrad2rgrad(xw, _work(g))
      sq = m.inner(xw, rg, rg).reshape(nu.shape).astype(nu.dtype)
      if adagrad:
        nu = nu + sq
        d = rg / (jnp.sqrt(_expand(nu, m)) + eps)
        u = -lr * d
        x_new = m.expmap(xw, u)
      else:
        mu = b1 * mu.astype(rg.dtype) + (1.0 - b1) * rg
        nu = b2 * nu + (1.0 - b2) * sq
        nu_max = jnp.maximum(nu_max, nu) if amsgrad else nu
        if bias_correction:
          den = jnp.sqrt(nu_max / numerics.bias_correction(b2, t)) + eps
          d = mu / numerics.bias_correction(b1, t) / _expand(den, m)
        else:
          d = mu / (jnp.sqrt(_expand(nu_max, m)) + eps)
        u = -lr * d
        x_new = m.expmap(xw, u)
        mu = m.transp(xw, u, mu)
        mus.append(mu)
        nu_maxs.append(nu_max)
      nus.append(nu)
      out.append((x_new - xw).astype(jnp.result_type(g)))
    unflat = lambda xs: jax.tree.unflatten(treedef, xs)
    if adagrad:
      return unflat(out), RiemannianAdagradState(t, unflat(nus))
    return unflat(out), RiemannianAdamState(t, unflat(mus), unflat(nus), unflat(nu_maxs))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def riemannian_adam(learning_rate: optax.ScalarOrSchedule, manifolds: Optional[Any] = None,
                    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *,
                    amsgrad: bool = False,
                    bias_correction: bool = False) -> optax.GradientTransformationExtraArgs:
  r"""Riemannian Adam (RADAM): one second-moment scalar per manifold component.

  .. math::
    m_t = \beta_1\tau_{t-1} + (1-\beta_1) g_t,\quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2)\|g_t\|^2_{x_t},\quad
    x_{t+1} = \exp_{x_t}\!\big(-\alpha\, m_t / (\sqrt{v_t} + \epsilon)\big),\quad
    \tau_t = P_{x_t\to x_{t+1}} m_t

  Args:
    learning_rate: alpha, a number or an optax schedule.
    manifolds: a :class:`Manifold` for every leaf, or a tree of them that is
      a prefix of the params; ``None``: Euclidean, one component per coordinate.
    b1: beta_1 (0.9). b2: beta_2 (0.999). eps: added to sqrt(v) (1e-8).
    amsgrad: use vhat = max(vhat, v) (RAMSGrad, Alg. 1).
    bias_correction: geoopt's Adam bias correction (default False: the paper).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose update is
    ``x_{t+1} - x_t``; ``update`` needs ``params`` (points on the manifolds).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.riemannian_adam(0.1, optkit.constraints.riemannian_adaptive.sphere())
    >>> x = jnp.array([1.0, 0.0, 0.0])
    >>> u, _ = opt.update(jnp.array([0.0, -1.0, 0.0]), opt.init(x), x)
    >>> y = x + u
    >>> float(jnp.linalg.norm(y)), bool(y[1] > 0)
    (1.0, True)

  References:
    Bécigneul & Ganea, Riemannian Adaptive Optimization Methods, ICLR 2019.
    https://arxiv.org/abs/1810.00760
  """
  return _riemannian("riemannian_adam", learning_rate, manifolds, b1, b2, eps, amsgrad,
                     bias_correction, adagrad=False)


def riemannian_amsgrad(learning_rate: optax.ScalarOrSchedule, manifolds: Optional[Any] = None,
                       b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8, *,
                       bias_correction: bool = False) -> optax.GradientTransformationExtraArgs:
  r"""Riemannian AMSGrad (RAMSGRAD, Alg. 1): :func:`riemannian_adam` with
  :math:`\hat v_t = \max(\hat v_{t-1}, v_t)`.

  Args: as :func:`riemannian_adam`.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> ball = optkit.constraints.riemannian_adaptive.poincare_ball()
    >>> opt = optkit.riemannian_amsgrad(0.5, ball)
    >>> x = jnp.array([[0.9, 0.0]])
    >>> u, _ = opt.update(jnp.array([[-10.0, 0.0]]), opt.init(x), x)
    >>> bool(jnp.linalg.norm(x + u) < 1.0)    # stays inside the ball
    True

  References:
    Bécigneul & Ganea, Riemannian Adaptive Optimization Methods, ICLR 2019.
    https://arxiv.org/abs/1810.00760
  """
  return _riemannian("riemannian_amsgrad", learning_rate, manifolds, b1, b2, eps, True,
                     bias_correction, adagrad=False)


def riemannian_adagrad(learning_rate: optax.ScalarOrSchedule, manifolds: Optional[Any] = None,
                       eps: float = 1e-8) -> optax.GradientTransformationExtraArgs:
  r"""Riemannian AdaGrad (RADAGRAD, Sec. 3):
  :math:`v_t = v_{t-1} + \|g_t\|^2_{x_t}`,
  :math:`x_{t+1} = \exp_{x_t}(-\alpha g_t / (\sqrt{v_t} + \epsilon))`.

  Args:
    learning_rate: alpha, a number or an optax schedule.
    manifolds: as :func:`riemannian_adam`.
    eps: added to sqrt(v) (1e-8).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.riemannian_adagrad(0.1)          # Euclidean: AdaGrad
    >>> x = jnp.array([1.0, -2.0])
    >>> opt.update(jnp.array([3.0, -4.0]), opt.init(x), x)[0]
    Array([-0.1,  0.1], dtype=float32)

  References:
    Bécigneul & Ganea, Riemannian Adaptive Optimization Methods, ICLR 2019.
    https://arxiv.org/abs/1810.00760
  """
  return _riemannian("riemannian_adagrad", learning_rate, manifolds, 0.0, 0.0, eps, False,
                     False, adagrad=True)
