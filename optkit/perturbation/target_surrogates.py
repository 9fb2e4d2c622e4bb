"""SSO: target-based surrogates for stochastic optimization (a step function).

Lavington, Vaswani, Babanezhad, Schmidt & Le Roux, "Target-based Surrogates
for Stochastic Optimization", ICML 2023, arXiv:2302.02607, the SSO algorithm
(Sec. 4, Algorithm 1).

The loss is split into a model ``z = f(theta; X)`` (the *targets*, e.g. the
logits of a batch) and a loss on the targets ``l(z)``, whose gradient is the
expensive part (an RL return, an imitation-learning expert, ...). One outer
step t spends exactly one target-loss gradient and builds the surrogate::

    z_t = f(theta_t; X_t);   g_z = grad_z l(z_t; X_t)                 # expensive
    q_t(theta) = l(z_t) + <g_z, f(theta; X_t) - z_t>
                        + 1/(2 eta) ||f(theta; X_t) - z_t||^2
    omega_0 = theta_t;  omega_{k+1} = inner step on q_t      (k < m)  # cheap
    theta_{t+1} = omega_m

q_t only calls the model (forward and backward through ``f``), never ``l``.
Completing the square, q_t(theta) = 1/(2 eta) ||f(theta) - z^+||^2 + const with
z^+ = z_t - eta g_z: SSO is projected SGD in target space, and m -> infinity
inner steps give theta_{t+1} = argmin_theta ||f(theta; X_t) - z^+||^2 (for a
linear model f = X theta, the least-squares projection of z^+ on range(X)).
At omega_0 = theta_t the surrogate's gradient is J^T g_z = grad_theta l(f(theta_t)),
so m = 1 inner step of ``optax.sgd(alpha)`` is exactly one (S)GD step with
step alpha on l(f(theta)).

Paper -> code: theta -> ``params``; f(theta; X) -> ``model_fn(params, batch)``;
l (the target-space loss) -> ``target_loss_fn(z, batch)``; eta (target-space
step) -> ``eta``; m (inner iterations) -> ``inner_steps``; the inner GD with
Armijo line search and its step alpha -> ``inner``; i_t / X_t -> ``batch`` (the
same batch for the target gradient and all m inner steps).

Defaults and their source: ``inner_steps=10`` and ``eta=1.0`` are the
catalog's signature (the paper tunes both per problem; see UNSURE below);
``inner=None`` is the paper's inner solver, gradient descent with an Armijo
backtracking line search: ``optax.chain(optax.sgd(1.0),
optax.scale_by_backtracking_linesearch(max_backtracking_steps=30))`` (optax's
sufficient-decrease constant 1e-4, decrease factor 0.8, step at most 1,
warm-started at 1.5x the last accepted step within one outer step). Its
sufficient-decrease test compares surrogate values, so in float32 the step it
accepts shrinks towards 0 once the decrease falls below their rounding; pass
``optax.sgd(alpha)`` (alpha = eta / ||J||^2 for a model with Jacobian J) where
that matters.

UNSURE (catalog: defaults for m and eta), decided:

* m = 10, eta = 1. The surrogate majorizes l(f(theta)) when eta <= 1/L_z, with
  L_z the smoothness of ``target_loss_fn`` in z. ||.|| is the plain Euclidean
  norm over every element of the target tree: if ``target_loss_fn`` is a
  *mean* over b examples, L_z = L/b and eta should scale like b (the tests'
  logistic regression uses eta = 4 b, i.e. 1/L_z).
* The inner solver starts afresh on every surrogate (its state is re-initialized
  from theta_t each outer step), since every q_t is a new deterministic problem;
  ``warm_start=True`` carries the inner state across outer steps instead (a
  momentum or line-search step size then persists). The final inner state is
  kept in the state either way, so the state's structure never changes.
* The inner optimizer's ``update`` receives ``value``, ``grad`` and
  ``value_fn`` (the surrogate's) as extra arguments, which is what optax's
  line search needs; other inner optimizers ignore them.
* The batch is passed unchanged to ``model_fn`` and ``target_loss_fn`` (``None``
  included); the step is jittable with ``model_fn``, ``target_loss_fn``,
  ``inner`` and ``inner_steps`` static (closed over).

Reference: none found (pytorch_optimizer's ``sso.py`` is an unrelated spectral
method). tests/perturbation/test_target_surrogates.py checks the m = 1 GD
reduction, the m -> infinity least-squares projection and a float64
re-derivation of the inner loop, each in float64.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import numerics
from optkit.core import validate

_NAME = "target_surrogate"


class StepFunction(NamedTuple):
  """A tier-C solver step: ``init(params) -> state`` and
  ``step(params, state, ...) -> (params, state)``, both pure and jittable."""
  init: Callable[..., Any]
  step: Callable[..., Any]


class TargetSurrogateState(NamedTuple):
  """State of :func:`target_surrogate`."""
  count: jax.Array              # int32, shape (): outer steps taken, t
  value: jax.Array              # float32 (float64 for f64 params), (): l(z_t) of the last step
  inner_state: optax.OptState   # the inner optimizer's state after the last inner step


def default_inner() -> optax.GradientTransformationExtraArgs:
  """Gradient descent with an Armijo backtracking line search (the papers' inner
  solver): ``chain(sgd(1), scale_by_backtracking_linesearch(30))``."""
  return optax.chain(optax.sgd(1.0),
                     optax.scale_by_backtracking_linesearch(max_backtracking_steps=30))


def require_callable(algo: str, **kwargs) -> None:
  """ValueError naming ``algo`` and the argument for a missing (None) function,
  TypeError for one that is not callable."""
  for arg, fn in kwargs.items():
    if fn is None:
      raise ValueError(f"{algo}: `{arg}` is required (a function), got None.")
    if not callable(fn):
      raise TypeError(f"{algo}: `{arg}` must be callable, got {type(fn).__name__}.")


def minimize_with(inner: optax.GradientTransformationExtraArgs,
                  objective: Callable[[Any], jax.Array], params: Any,
                  inner_state: optax.OptState, steps: int) -> tuple[Any, optax.OptState]:
  """``steps`` (a static int >= 1) updates of ``inner`` on ``objective`` from
  ``params`` in a ``lax.fori_loop``; ``update`` gets ``value``, ``grad`` and
  ``value_fn`` as extra arguments (for line searches). Returns
  ``(params, inner_state)``."""
  value_and_grad = jax.value_and_grad(objective)

  def body(_, carry):
    p, s = carry
    v, g = value_and_grad(p)
    u, s = inner.update(g, s, p, value=v, grad=g, value_fn=objective)
    return optax.apply_updates(p, u), s

  return jax.lax.fori_loop(0, steps, body, (params, inner_state))


def tree_vdot(a: Any, b: Any, dtype) -> jax.Array:
  """sum over leaves of <a, b>, computed in ``dtype``."""
  leaves = jax.tree.leaves(jax.tree.map(
      lambda x, y: jnp.sum(x.astype(dtype) * y.astype(dtype)), a, b))
  return sum(leaves, jnp.zeros((), dtype))


def target_surrogate(
    model_fn: Callable[[Any, Any], Any],
    target_loss_fn: Callable[[Any, Any], jax.Array],
    inner: Optional[optax.GradientTransformation] = None,
    inner_steps: int = 10,
    eta: float = 1.0,
    *,
    warm_start: bool = False,
) -> StepFunction:
  r"""SSO: one target-gradient per step, ``inner_steps`` steps on its surrogate.

  .. math::
    z_t = f(\theta_t),\ g_z = \nabla_z \ell(z_t),\quad
    q_t(\theta) = \ell(z_t) + \langle g_z, f(\theta) - z_t\rangle
      + \tfrac{1}{2\eta}\|f(\theta) - z_t\|^2,\quad
    \theta_{t+1} \approx \arg\min_\theta q_t(\theta)

  (``inner_steps`` updates of ``inner`` on q_t from theta_t, same batch).

  Args:
    model_fn: ``(params, batch) -> z``, the targets (any pytree of arrays),
      e.g. the logits of the batch; differentiable in params.
    target_loss_fn: ``(z, batch) -> scalar``, the (expensive) loss on targets;
      its gradient in z is taken once per step.
    inner: the optax optimizer that minimizes the surrogate (it includes its
      learning rate). ``None``: GD with an Armijo line search (the paper's
      solver, see :func:`default_inner`).
    inner_steps: m, inner updates per step (a static Python int >= 1). Default
      10 (catalog).
    eta: target-space step eta (> 0). Default 1 (catalog); the surrogate is an
      upper bound for eta <= 1 / L_z.
    warm_start: keep the inner state across steps (default False: a fresh
      inner state on every surrogate).

  Returns:
    A :class:`StepFunction`: ``init(params) -> TargetSurrogateState`` and
    ``step(params, state, batch=None) -> (params, state)`` (pure, jittable).

  Example:
    >>> import optkit
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optax
    >>> x = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> y = jnp.array([1.0, 2.0, 2.0])
    >>> model = lambda w, batch: x @ w                      # targets z = X w
    >>> loss = lambda z, batch: 0.5 * jnp.sum((z - y) ** 2)
    >>> sso = optkit.target_surrogate(model, loss, optax.sgd(0.2), 50, eta=1.0)
    >>> w, state = jnp.zeros(2), sso.init(jnp.zeros(2))
    >>> step = jax.jit(sso.step)
    >>> for _ in range(20):
    ...   w, state = step(w, state)
    >>> w.round(4)  # the least-squares solution [1, 1]
    Array([1., 1.], dtype=float32)

  References:
    Lavington, Vaswani, Babanezhad, Schmidt & Le Roux, "Target-based
    Surrogates for Stochastic Optimization", ICML 2023.
    https://arxiv.org/abs/2302.02607
  """
  require_callable(_NAME, model_fn=model_fn, target_loss_fn=target_loss_fn)
  inner = default_inner() if inner is None else inner
  validate.transformation(_NAME, inner=inner)
  validate.integer_at_least(_NAME, 1, inner_steps=inner_steps)
  validate.positive(_NAME, eta=eta)
  inner_steps = int(inner_steps)
  inner_tx = optax.with_extra_args_support(inner)

  def init(params):
    return TargetSurrogateState(count=jnp.zeros((), jnp.int32),
                                value=jnp.zeros((), numerics.stat_dtype(params)),
                                inner_state=inner_tx.init(params))

  def step(params, state, batch=None):
    dtype = numerics.stat_dtype(params)
    z_t = jax.lax.stop_gradient(model_fn(params, batch))
    value, g_z = jax.value_and_grad(target_loss_fn)(z_t, batch)  # the one target gradient
    eta_ = jnp.asarray(eta, dtype)

    def surrogate(theta):  # q_t(theta)
      d = jax.tree.map(lambda zi, z0: zi - z0, model_fn(theta, batch), z_t)
      return (value.astype(dtype) + tree_vdot(g_z, d, dtype)
              + 0.5 / eta_ * tree_vdot(d, d, dtype))

    inner_state = state.inner_state if warm_start else inner_tx.init(params)
    new_params, inner_state = minimize_with(inner_tx, surrogate, params, inner_state,
                                            inner_steps)
    new_params = optax.tree.cast_like(new_params, params)
    return new_params, TargetSurrogateState(
        count=optax.safe_increment(state.count),
        value=jnp.asarray(value, dtype),
        inner_state=inner_state)

  return StepFunction(init, step)


sso = target_surrogate
