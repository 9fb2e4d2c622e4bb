"""Fish: gradient matching across domains by a first-order meta step (a step function).

Shi, Seely, Torr, Siddharth, Hannun, Usunier & Synnaeve, "Gradient Matching for
Domain Generalization", ICLR 2022, arXiv:2104.09937, Algorithm 1 (Fish).

One outer step clones the parameters, takes one inner optimizer step per
training domain, in a random order, each on that domain's loss at the *updated*
clone, and moves the parameters part of the way towards the clone::

  θ̃ <- θ
  for d in a random permutation of the S domains:    θ̃ <- θ̃ - α ∇L_d(θ̃)   (inner optimizer)
  θ <- θ + ε (θ̃ - θ)

To second order in α (SGD inner steps, order d_1..d_S, g_d and H_d at θ)::

  θ̃ - θ = -α Σ_k g_{d_k} + α² Σ_{j<k} H_{d_k} g_{d_j} + O(α³)

and averaged over the random order the α² term is (α²/2) ∇ Σ_{i<j} <g_i, g_j>:
Fish ascends the inter-domain gradient inner product (GIP) without ever
forming second derivatives. :func:`fish_first_order_update` evaluates this
expansion (with Hessian-vector products) for tests and analysis.

Why a step function (tier C): the S inner gradients are taken at S different
points (each after the previous domain's step), which neither a gradient tree
nor one ``value_fn`` can express in an ``update``.

Paper -> code: θ -> ``params``; θ̃ -> the inner iterate; α -> the inner
optimizer's learning rate (``inner``, e.g. ``optax.sgd(α)``); ε ->
``meta_lr``; the S domains' losses -> ``domain_value_fns`` (and ``batches``).

Reference: YugeTen/fish and facebookresearch/DomainBed ``Fish`` (read through
the code index, not run): both clone the network, step an inner Adam once per
domain minibatch and set θ += meta_lr·(θ̃ - θ); DomainBed's ``meta_lr`` default
is 0.5.

UNSURE (catalog: meta_lr default) and other decisions:

* ``meta_lr`` default 0.5 (DomainBed's default; its random search draws from
  {0.05, 0.1, 0.5}). The paper starts from an ERM-pretrained model; that is the
  user's training script.
* Inner optimizer state: re-initialized at every outer step by default, as in
  the paper's Algorithm 1 (with SGD there is no state). DomainBed and
  YugeTen/fish save the inner Adam's state after the inner loop and load it
  into the next clone's optimizer: ``warm_start=True`` reproduces that.
* Domain order: a fresh random permutation every step from the key in the
  state (Algorithm 1); ``shuffle=False`` keeps the given order (DomainBed
  iterates its minibatches in domain order).
* ε = 1 is S sequential inner steps (not an average of per-domain steps).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from optkit.core import hessian
from optkit.core import validate

_NAME = "fish"


class FishState(NamedTuple):
  """State of :func:`fish`."""
  count: jax.Array              # int32, shape (): outer steps taken
  key: jax.Array                # uint32 key data: the domain permutations
  inner_state: optax.OptState   # inner optimizer state after the last inner loop


class FishStep(NamedTuple):
  """``init(params) -> FishState``; ``step(params, state, batches=None) ->
  (params, state)``; both pure and jittable."""
  init: Callable[..., Any]
  step: Callable[..., Any]


def _domain_losses(domain_value_fns, batches) -> list:
  """One ``theta -> scalar`` per domain."""
  if callable(domain_value_fns):
    if batches is None:
      raise ValueError(
          f"{_NAME}: with a single loss function, pass `batches` (a sequence of one "
          "batch per domain) to step().")
    return [lambda th, b=b: domain_value_fns(th, b) for b in batches]
  fns = list(domain_value_fns)
  if batches is None:
    return fns
  batches = list(batches)
  if len(batches) != len(fns):
    raise ValueError(
        f"{_NAME}: got {len(batches)} batches for {len(fns)} domain loss functions.")
  return [lambda th, f=f, b=b: f(th, b) for f, b in zip(fns, batches)]


def _check_fns(domain_value_fns):
  if callable(domain_value_fns):
    return
  try:
    fns = list(domain_value_fns)
  except TypeError:
    raise ValueError(
        f"{_NAME}: `domain_value_fns` must be a loss function or a sequence of them, "
        f"got {type(domain_value_fns).__name__}.") from None
  if not fns or not all(callable(f) for f in fns):
    raise ValueError(
        f"{_NAME}: `domain_value_fns` must be a non-empty sequence of loss functions.")


def fish(domain_value_fns: Any, inner: optax.GradientTransformation, meta_lr: Any = 0.5,
         *, seed: int = 0, shuffle: bool = True, warm_start: bool = False) -> FishStep:
  r"""Fish (Algorithm 1): sequential per-domain inner steps, then a meta step.

  .. math::
    \tilde\theta \leftarrow \theta;\quad \tilde\theta \leftarrow \tilde\theta -
    \alpha\nabla L_{d}(\tilde\theta)\ \text{for } d \in \mathrm{perm}(1..S);\quad
    \theta \leftarrow \theta + \epsilon(\tilde\theta - \theta)

  Args:
    domain_value_fns: a sequence of S loss functions, ``theta -> scalar`` (or
      ``(theta, batch) -> scalar`` when ``step`` gets ``batches``); or one
      ``(theta, batch) -> scalar`` used with S per-domain ``batches``.
    inner: the inner optimizer (its learning rate is α), e.g. ``optax.sgd(α)``;
      DomainBed uses Adam.
    meta_lr: ε > 0 (default 0.5, DomainBed).
    seed: seeds the key of the domain permutations.
    shuffle: draw a new domain order each step (Algorithm 1); False keeps the
      given order.
    warm_start: keep the inner state across outer steps (DomainBed, YugeTen);
      default False re-initializes it (paper).

  Returns:
    A :class:`FishStep`.

  Example:
    >>> import optkit, optax
    >>> import jax
    >>> import jax.numpy as jnp
    >>> centers = [jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])]
    >>> losses = [lambda th, c=c: 0.5 * jnp.sum((th - c) ** 2) for c in centers]
    >>> f = optkit.fish(losses, optax.sgd(0.1), meta_lr=0.5, shuffle=False)
    >>> theta = jnp.zeros(2)
    >>> state = f.init(theta)
    >>> step = jax.jit(f.step)
    >>> for _ in range(200):
    ...   theta, state = step(theta, state)
    >>> theta.round(4)  # fixed point of the fixed order: (0.9 c_0 + c_1) / 1.9
    Array([0.4737, 0.5263], dtype=float32)

  References:
    Shi et al., Gradient Matching for Domain Generalization,
    https://arxiv.org/abs/2104.09937
  """
  _check_fns(domain_value_fns)
  validate.transformation(_NAME, inner=inner)
  validate.positive(_NAME, meta_lr=meta_lr)
  validate.integer_at_least(_NAME, 0, seed=seed)
  inner_tx = optax.with_extra_args_support(inner)

  def init(params):
    key = jax.random.key_data(jax.random.key(seed))
    return FishState(jnp.zeros([], jnp.int32), key, inner_tx.init(params))

  def step(params, state, batches=None):
    losses = _domain_losses(domain_value_fns, batches)
    s = len(losses)
    grads = [jax.grad(f) for f in losses]
    key, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    order = jax.random.permutation(sub, s) if shuffle else jnp.arange(s)
    inner_state = state.inner_state if warm_start else inner_tx.init(params)

    def body(k, carry):
      theta, ist = carry
      g = jax.lax.switch(order[k], grads, theta)
      g = jax.tree.map(lambda a, p: a.astype(p.dtype), g, theta)
      u, ist = inner_tx.update(g, ist, theta)
      return optax.apply_updates(theta, u), ist

    theta, inner_state = jax.lax.fori_loop(0, s, body, (params, inner_state))
    def meta(p, t):  # θ + ε(θ̃ - θ), in float32 or wider
      dt = jnp.promote_types(p.dtype, jnp.float32)
      p32 = p.astype(dt)
      return (p32 + jnp.asarray(meta_lr, dt) * (t.astype(dt) - p32)).astype(p.dtype)

    new = jax.tree.map(meta, params, theta)
    new_state = FishState(optax.safe_increment(state.count), jax.random.key_data(key),
                          inner_state)
    return new, new_state

  return FishStep(init, step)


def fish_first_order_update(domain_value_fns: Any, params: Any, inner_lr: Any, *,
                            batches: Optional[Sequence[Any]] = None,
                            order: Optional[Sequence[int]] = None,
                            expected: bool = False) -> Any:
  r"""The second-order-in-α expansion of Fish's inner displacement θ̃ - θ.

  For SGD inner steps with step α in the order d_1..d_S (gradients g_d and
  Hessians H_d at θ)::

    θ̃ - θ ≈ -α Σ_k g_{d_k} + α² Σ_{j<k} H_{d_k} g_{d_j}

  ``expected=True`` averages over uniformly random orders:
  -α Σ_d g_d + (α²/2) Σ_{i≠j} H_i g_j = -α Σ_d g_d + (α²/2) ∇ Σ_{i<j} <g_i, g_j>,
  i.e. a step on S·mean loss minus (α/2)·GIP, the gradient-matching objective.
  The Fish meta step is ε times this. Costs S(S-1) Hessian-vector products:
  for tests and analysis, not training.

  Args:
    domain_value_fns: as in :func:`fish`.
    params: θ.
    inner_lr: α.
    batches: as in :func:`fish`'s ``step``.
    order: domain order (default 0..S-1); ignored when ``expected``.
    expected: average over random orders.

  Returns:
    A tree shaped like ``params`` (float32 or wider).

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> losses = [lambda th: jnp.sum(th), lambda th: 0.5 * jnp.sum(th ** 2)]
    >>> optkit.fish_first_order_update(losses, jnp.ones(2), 0.1)  # -0.1·(1+1) + 0.01·I·1
    Array([-0.19, -0.19], dtype=float32)

  References:
    Shi et al., Gradient Matching for Domain Generalization,
    https://arxiv.org/abs/2104.09937
  """
  _check_fns(domain_value_fns)
  losses = _domain_losses(domain_value_fns, batches)
  s = len(losses)
  order = list(range(s)) if order is None else [int(i) for i in order]
  if sorted(order) != list(range(s)):
    raise ValueError(f"{_NAME}: `order` must be a permutation of range({s}), got {order}.")
  grads = [jax.grad(f)(params) for f in losses]
  alpha = inner_lr
  total = jax.tree.map(lambda *g: -alpha * sum(g), *grads)
  if expected:
    pairs = [(i, j, 0.5) for i in range(s) for j in range(s) if i != j]
  else:
    pairs = [(order[k], order[j], 1.0) for k in range(s) for j in range(k)]
  for i, j, w in pairs:  # + w·α² H_i g_j
    hg = hessian.hvp(losses[i], params, grads[j])
    total = jax.tree.map(lambda t, h: t + w * alpha ** 2 * h, total, hg)
  return total
