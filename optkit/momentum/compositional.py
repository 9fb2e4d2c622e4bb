"""Moving-average estimator for compositional objectives (a helper).

Wang, Qiu, Liu, Yang et al., "Learning Unnormalized Statistical Models via
Compositional Optimization", arXiv:2306.07485 (ICML 2023).

For F(theta) = f(E_xi[g(theta; xi)]) (f outer, g inner and vector valued) the
plug-in gradient J_g(theta; xi)^T grad f(g(theta; xi)) is biased because f is
nonlinear. The estimator keeps a moving average u of the inner value::

  u_t = (1 - gamma) u_{t-1} + gamma g(theta_t; xi_t)     # u_1 = g(theta_1; xi_1)
  G_t = J_g(theta_t; xi_t)^T grad f(u_t)                  # one VJP

and G_t is fed to any optimizer (``optax.sgd``, ``optax.adam``, ...).

Unnormalized models (the paper's instance): an energy E_theta with
p_theta(x) = exp(-E_theta(x)) / Z_theta and the negative log-likelihood

  l(theta) = E_data[E_theta(x)] + log Z_theta,
  Z_theta  = E_{x' ~ q}[exp(-E_theta(x')) / q(x')]    (q: a noise distribution)

so g = exp(-E_theta(x')) / q(x'), f = log, and
G = mean_i grad E(x_i) + (1/u_t) mean_j grad_theta[exp(-E(x'_j)) / q(x'_j)].
Z under- or overflows for large energies, so ``log_domain=True`` keeps
ell = log u instead: ``inner_fn`` returns s = log g (e.g. a log-mean-exp over
the noise batch), ``outer_fn`` receives ell, and::

  ell_t = logaddexp(log(1 - gamma) + ell_{t-1}, log(gamma) + s_t)
  G_t   = J_s^T [exp(s_t - ell_t) * grad f~(ell_t)]      # = J_g^T grad f(u_t)

Paper -> code: u -> ``state.u`` (log u with ``log_domain``); gamma ->
``gamma``; g -> ``inner_fn``; f -> ``outer_fn``; theta -> ``params``.

UNSURE (catalog), decided:
* gamma default 0.1 (the catalog's suggestion; the paper tunes it).
* No extra momentum on G inside the helper: chain any momentum optimizer
  (e.g. ``optax.adam``) after it.
* Initialization: u_1 = g(theta_1; xi_1) (the first update uses gamma = 1),
  so u is not biased toward 0 early on (u_0 = 0 would give u_1 = gamma g).
* The data term E_data[grad E] is not part of the helper (it is an ordinary
  gradient): add it to G.

Not a registered transformation: it needs the loss split into inner and outer
functions, which ``value_fn`` (params -> scalar) cannot express.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from optkit.core import validate

_NAME = "compositional_moving_average"


class CompositionalState(NamedTuple):
  count: jax.Array  # int32, shape (): number of updates so far
  u: jax.Array      # u_t (or log u_t), shape and dtype of inner_fn's output (>= float32)


class CompositionalEstimator(NamedTuple):
  init: Callable[..., CompositionalState]
  update: Callable[..., tuple[Any, CompositionalState]]


def compositional_moving_average(
    inner_fn: Callable[..., jax.Array],
    outer_fn: Callable[[jax.Array], jax.Array],
    gamma: float = 0.1,
    *,
    log_domain: bool = False,
) -> CompositionalEstimator:
  r"""The moving-average gradient estimator of f(E[g(theta; xi)]).

  .. math::
    u_t = (1-\gamma) u_{t-1} + \gamma\, g(\theta_t;\xi_t), \qquad
    G_t = J_g(\theta_t;\xi_t)^\top \nabla f(u_t).

  Args:
    inner_fn: g, ``(params, *args) -> array`` (the minibatch estimate of the
      inner expectation; with ``log_domain``, its log).
    outer_fn: f, ``u -> scalar`` (with ``log_domain``, a function of log u).
    gamma: moving-average weight in (0, 1]; 1 gives the plug-in gradient.
    log_domain: keep log u (stable for partition functions).

  Returns:
    ``CompositionalEstimator(init, update)``: ``init(params, *args)`` gives
    the state (args only fix the inner output's shape); ``update(params,
    state, *args)`` returns ``(G, new_state)`` with G shaped like params.

  Example:
    >>> import jax.numpy as jnp
    >>> from optkit.momentum import compositional_moving_average
    >>> inner = lambda p, xi: p * xi            # E[xi] = 1: F(p) = (p)^2 / 2
    >>> est = compositional_moving_average(inner, lambda u: 0.5 * u ** 2, gamma=0.5)
    >>> p = jnp.array(2.0)
    >>> state = est.init(p, 1.0)
    >>> g, state = est.update(p, state, 3.0)    # u_1 = g = 6: G = 3 * 6
    >>> float(g), float(state.u)
    (18.0, 6.0)
    >>> g, state = est.update(p, state, 1.0)    # u_2 = 0.5 * 6 + 0.5 * 2 = 4
    >>> float(g), float(state.u)
    (4.0, 4.0)

  References:
    Learning Unnormalized Statistical Models via Compositional Optimization,
    https://arxiv.org/abs/2306.07485
  """
  validate.positive(_NAME, gamma=gamma)
  validate.closed_unit_interval(_NAME, gamma=gamma)
  validate.callable_or_none(_NAME, inner_fn=inner_fn, outer_fn=outer_fn)

  def init_fn(params, *args):
    out = jax.eval_shape(lambda p: inner_fn(p, *args), params)
    dtype = jnp.promote_types(out.dtype, jnp.float32)
    return CompositionalState(count=jnp.zeros([], jnp.int32),
                              u=jnp.zeros(out.shape, dtype))

  def update_fn(params, state, *args):
    s, vjp = jax.vjp(lambda p: inner_fn(p, *args), params)
    if jnp.shape(s) != state.u.shape:
      raise ValueError(f"{_NAME}: inner_fn returned shape {jnp.shape(s)}, but the "
                       f"state holds shape {state.u.shape}.")
    s32 = s.astype(state.u.dtype)
    g = jnp.asarray(gamma, state.u.dtype)
    first = state.count == 0
    if log_domain:
      # log((1 - gamma) u + gamma g); gamma = 1 gives log(0) = -inf + ... = s.
      mixed = jnp.logaddexp(jnp.log1p(-g) + state.u, jnp.log(g) + s32)
      u = jnp.where(first, s32, mixed)
      cot = jnp.exp(s32 - u) * jax.grad(outer_fn)(u)
    else:
      u = jnp.where(first, s32, (1 - g) * state.u + g * s32)
      cot = jax.grad(outer_fn)(u)
    (grad,) = vjp(cot.astype(jnp.result_type(s)))
    return grad, CompositionalState(count=state.count + 1, u=u)

  return CompositionalEstimator(init_fn, update_fn)
