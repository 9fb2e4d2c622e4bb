"""Forward gradients: gradient estimates from forward-mode JVPs along guesses.

Fournier, Rivaud, Belilovsky, Eickenberg & Oyallon, "Can Forward Gradient
Match Backpropagation?", ICML 2023, arXiv:2306.06968. The estimator (Sec. 3)::

    for k = 1..K:  v_k = guess  (N(0, I), or a direction from a guess function)
                   d_k = <grad L(theta), v_k> = jax.jvp(value_fn, (theta,), (v_k,))[1]
                   g_k = d_k v_k                  ('unbiased':   E[g_k] = grad L for v ~ N(0, I))
                   g_k = d_k v_k / ||v_k||^2      ('projection': the projection of grad L on v_k)
    g = (1/K) sum_k g_k

Paper -> code: K -> ``num_guesses``; the guess distribution / the local-loss
guess (the paper's best guesses are gradients of local auxiliary losses) ->
``guess`` (``'random'`` or a callable ``(params, key) -> tree``); theta ->
``params``; L -> ``value_fn``. The only derivative taken is forward mode:
``value_fn`` is evaluated K times under ``jax.jvp`` and never differentiated in
reverse mode.

The incoming ``updates`` are ignored (they may be zeros; only their tree
structure is checked against ``params``); the output is the gradient estimate
in the positive-gradient convention, so ``optax.chain(optkit.forward_gradient(),
optax.sgd(lr))`` is forward-gradient descent.

Scaling (the catalog's pitfall: document which is used). ``scaling='auto'``
(default) uses ``'unbiased'`` for random Gaussian guesses (the classical
forward gradient of Baydin et al.; unbiased, variance ``(||g||^2 + g_i^2)/K``
per coordinate) and ``'projection'`` for a guess function (the paper's
"projection of the gradient onto the guess": with the exact gradient as the
guess it returns the gradient exactly, and it does not depend on the guess's
norm). Either can be forced with ``scaling=``. For Gaussian guesses the
projection form is biased: its mean is grad L / d.

The JVP is computed at a float32 copy of the params (float64 for float64
params) with float32 guesses; the estimate is cast back to the update dtype.

UNSURE: none (catalog).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

from optkit.core import extra_args as _extra
from optkit.core import tree as _tree
from optkit.core import validate
from optkit.zeroth_order import _common as C

_NAME = "forward_gradient"
SCALINGS = ("auto", "unbiased", "projection")


class ForwardGradientState(NamedTuple):
  """State of :func:`forward_gradient`."""
  count: jax.Array   # int32, shape (): number of estimates so far
  key: jax.Array     # uint32 key data, shape (2,): split at every update


def forward_gradient(num_guesses: int = 1,
                     guess: Union[str, Callable[[Any, jax.Array], Any]] = "random",
                     seed: int = 0,
                     *,
                     scaling: str = "auto") -> optax.GradientTransformationExtraArgs:
  """Forward-gradient estimator ``g = mean_k <grad L, v_k> v_k (/ ||v_k||^2)``.

  Args:
    num_guesses: K, the number of guesses (JVPs) per estimate (static int >= 1).
    guess: ``'random'`` (v ~ N(0, I) over the whole tree) or a callable
      ``(params, key) -> tree shaped like params`` (e.g. the gradient of a local
      auxiliary loss); it receives the float32 params and a typed PRNG key.
    seed: seed of the PRNG key kept in the state.
    scaling: ``'unbiased'`` (d v), ``'projection'`` (d v / ||v||^2) or
      ``'auto'`` (unbiased for random guesses, projection for a guess function).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update`` requires
    ``params`` and the extra argument ``value_fn``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> f = lambda p: jnp.sum(p ** 2)             # gradient 2 p
    >>> tx = optkit.forward_gradient(guess=lambda p, key: p)   # guess along p
    >>> p = jnp.array([1.0, -2.0])
    >>> tx.update(jnp.zeros(2), tx.init(p), p, value_fn=f)[0]
    Array([ 2., -4.], dtype=float32)

  References:
    Fournier et al., `Can Forward Gradient Match Backpropagation?
    <https://arxiv.org/abs/2306.06968>`_, ICML 2023.
  """
  validate.integer_at_least(_NAME, 1, num_guesses=num_guesses)
  validate.one_of(_NAME, "scaling", scaling, SCALINGS)
  if isinstance(guess, str):
    validate.one_of(_NAME, "guess", guess, ("random",))
  elif not callable(guess):
    raise ValueError(f"{_NAME}: `guess` must be 'random' or a callable (params, key) -> "
                     f"tree, got {guess!r}.")
  if scaling == "auto":
    scaling = "unbiased" if isinstance(guess, str) else "projection"
  num_guesses = int(num_guesses)

  def init_fn(params):
    del params
    return ForwardGradientState(jnp.zeros([], jnp.int32), C.init_key(seed))

  def direction(x, key_data):
    if isinstance(guess, str):
      return C.gaussian_like(key_data, x)
    v = guess(x, jax.random.wrap_key_data(key_data))
    return jax.tree.map(lambda vi, xi: jnp.asarray(vi, xi.dtype), v, x)

  def update_fn(updates, state, params=None, **extra):
    value_fn = _extra.require(_NAME, extra, "value_fn")
    _extra.require_params(_NAME, params, "the JVPs are taken at params")
    _tree.check_same_structure(_NAME, updates, params, "the params")
    x = C.to_work(params)
    keys = C.split(state.key, num_guesses + 1)

    def one(acc, key_data):
      v = direction(x, key_data)
      _, d = jax.jvp(value_fn, (x,), (v,))          # d_k = <grad L, v_k>
      d = jnp.asarray(d, jnp.float32).reshape(())
      if scaling == "projection":                  # d_k v_k / ||v_k||^2
        d = d / jnp.maximum(C.tree_vdot(v, v), C.TINY)
      return C.axpy(d, v, acc), None

    total, _ = jax.lax.scan(one, C.zeros_work(x), keys[1:])
    g = jax.tree.map(lambda s: s / num_guesses, total)
    new_state = ForwardGradientState(optax.safe_increment(state.count), keys[0])
    return C.cast_like(g, updates), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
