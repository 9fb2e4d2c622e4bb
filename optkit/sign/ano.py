"""ANO and Anolog: sign of momentum, magnitude of the current gradient.

Kegreisz, "ANO : Faster is Better in Noisy Landscape", arXiv:2508.18258; the
rule below is the authors' code (Adrienkgz/ano-experiments,
``optimizers/ano.py`` and ``optimizers/anolog.py``), which the paper's
algorithm box describes.

Update (t from 1, gradient g_t, lr eta, decoupled weight decay lambda)::

  beta_{1,t} = beta_1              (Ano)
             = 1 - 1/ln(max(2, t)) (Anolog)
  m_t  = beta_{1,t} m_{t-1} + (1 - beta_{1,t}) g_t
  v_t  = beta_2 v_{t-1} + (1 - beta_2) sign(g_t^2 - v_{t-1}) g_t^2   # Yogi-style
  vh_t = v_t / (1 - beta_2^t)      (Anolog, official: vh_t = v_t)
  u_t  = |g_t| sign(m_t) / sqrt(vh_t + eps)       # official: eps INSIDE the root
  x_t  = x_{t-1} - eta u_t - eta lambda x_{t-1}

Paper -> code: beta_1 -> ``b1``, beta_2 -> ``b2``, epsilon -> ``eps``,
eta -> ``learning_rate``, lambda -> ``weight_decay``, m_t -> ``state.mu``,
v_t -> ``state.nu``, t -> ``state.count + 1``. m is not bias-corrected: only
its sign is used.

Defaults and their source: Ano lr 1e-4, (b1, b2) = (0.92, 0.99), eps 1e-8,
weight_decay 0 (official code and pytorch_optimizer 4.1.0); Anolog (b2 =
0.999, no bias correction on v) from the official ``anolog.py``. The
learning rate is a required argument (optkit convention); 1e-4 is the
paper's default.

Catalog points, decided:

* eps placement differs between the references: the official code divides by
  ``sqrt(vh + eps)``, pytorch_optimizer ``Ano`` by ``sqrt(vh) + eps``. optkit
  follows the official form by default (``eps_inside_sqrt=True``) and exposes
  the flag; ``eps_inside_sqrt=False`` reproduces pytorch_optimizer (tests:
  a NumPy port of the official rule and a pytorch_optimizer trajectory
  fixture, both to 1e-6).
* Anolog: official b2 = 0.999 and no bias correction (``bias_correction=
  False``); its beta_{1,t} is negative (1 - 1/ln 2 = -0.4427) at t = 1, 2 and
  0.0898 at t = 3, kept as in the official code. pytorch_optimizer's
  ``Ano(logarithmic_schedule=True)`` keeps b2 = 0.99 and the correction:
  ``scale_by_ano(logarithmic_schedule=True, b2=0.99, bias_correction=True,
  eps_inside_sqrt=False)`` is that variant.
* Weight decay: the references multiply p by (1 - eta lambda) before the step;
  the step does not depend on p, so this equals adding -eta lambda x (optax's
  ``add_decayed_weights`` then ``scale_by_learning_rate``).

Numerics: v stays non-negative in exact arithmetic for b2 >= 1/2
(v_t >= (2 b2 - 1) v_{t-1}); the root is taken of max(vh, 0) so that rounding
or b2 < 1/2 cannot produce NaN, and a zero denominator (eps = 0 with v = 0,
which implies g = 0) gives a zero update. Statistics are float32 for
low-precision params (``mu_dtype`` may override the momentum's dtype); the
update is cast to the gradient's dtype.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from optkit.core import numerics
from optkit.core import tree as tree_lib
from optkit.core import validate

_NAME = "ano"


class ScaleByAnoState(NamedTuple):
  count: jax.Array    # int32, shape (): number of steps taken (t - 1 before a step)
  mu: optax.Updates   # m_t, params-shaped momentum; dtype mu_dtype (default >= float32)
  nu: optax.Updates   # v_t, params-shaped signed second moment; float32 (or wider)


def scale_by_ano(b1: float = 0.92,
                 b2: float = 0.99,
                 eps: float = 1e-8,
                 *,
                 logarithmic_schedule: bool = False,
                 eps_inside_sqrt: bool = True,
                 bias_correction: bool = True,
                 mu_dtype: Optional[Any] = None) -> optax.GradientTransformation:
  r"""ANO direction :math:`|g_t|\,\mathrm{sign}(m_t) / \sqrt{\hat v_t + \epsilon}`.

  Args:
    b1: beta_1, momentum decay (official: 0.92); ignored when
      ``logarithmic_schedule`` (then beta_{1,t} = 1 - 1/ln(max(2, t))).
    b2: beta_2, decay of the Yogi-style signed second moment (0.99).
    eps: epsilon (1e-8), inside the root (official) or added to it.
    logarithmic_schedule: Anolog's beta_{1,t}. Static.
    eps_inside_sqrt: True: ``sqrt(vh + eps)`` (official code); False:
      ``sqrt(vh) + eps`` (pytorch_optimizer). Static.
    bias_correction: divide v by (1 - beta_2^t) (Ano: True; official Anolog:
      False). Static.
    mu_dtype: dtype of the momentum; None: the params' dtype promoted to
      float32.

  Returns:
    An ``optax.GradientTransformation`` with state ``ScaleByAnoState``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> tx = optkit.scale_by_ano(eps=0.0)
    >>> g = jnp.array([0.5, -2.0, 0.0])   # v_1 = 0.01 g^2, vh_1 = g^2
    >>> jnp.round(tx.update(g, tx.init(g))[0], 4)
    Array([ 1., -1.,  0.], dtype=float32)

  References:
    Kegreisz, ANO : Faster is Better in Noisy Landscape,
    https://arxiv.org/abs/2508.18258
  """
  return _scale_by_ano(_NAME, b1, b2, eps, logarithmic_schedule, eps_inside_sqrt,
                       bias_correction, mu_dtype)


def _scale_by_ano(_name, b1, b2, eps, logarithmic_schedule, eps_inside_sqrt,
                  bias_correction, mu_dtype):
  """``scale_by_ano`` whose errors name ``_name`` ('ano' or 'anolog')."""
  validate.unit_interval(_name, b1=b1, b2=b2)
  validate.non_negative(_name, eps=eps)
  validate.boolean(_name, logarithmic_schedule=logarithmic_schedule,
               eps_inside_sqrt=eps_inside_sqrt, bias_correction=bias_correction)

  def init_fn(params):
    mu = jax.tree.map(
        lambda p: jnp.zeros(jnp.shape(p), mu_dtype if mu_dtype is not None else numerics.stat_dtype(p)),
        params)
    nu = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), numerics.stat_dtype(p)), params)
    return ScaleByAnoState(count=jnp.zeros([], jnp.int32), mu=mu, nu=nu)

  def update_fn(updates, state, params=None):
    del params
    tree_lib.check_same_structure(_name, updates, state.mu)
    t = (state.count + 1).astype(jnp.result_type(float))   # float32 (float64 under x64)
    if logarithmic_schedule:
      beta1 = 1.0 - 1.0 / jnp.log(jnp.maximum(2.0, t))
    else:
      beta1 = b1
    # 1 - b2^t without float32 cancellation (see optkit.core.numerics);
    # pytorch_optimizer uses Python floats.
    bc2 = numerics.bias_correction(b2, t) if bias_correction else None

    def leaf(g, m, v):
      g = g.astype(v.dtype)
      m_new = beta1 * m.astype(v.dtype) + (1.0 - beta1) * g                  # m_t
      g2 = jnp.square(g)
      v_new = b2 * v + (1.0 - b2) * jnp.sign(g2 - v) * g2                    # v_t
      vh = jnp.maximum(v_new / bc2 if bias_correction else v_new, 0.0)       # vh_t
      denom = jnp.sqrt(vh + eps) if eps_inside_sqrt else jnp.sqrt(vh) + eps
      safe = jnp.where(denom > 0, denom, 1.0)
      u = jnp.where(denom > 0, jnp.abs(g) * jnp.sign(m_new) / safe, 0.0)     # u_t
      return u, m_new.astype(m.dtype), v_new.astype(v.dtype)

    out = jax.tree.map(leaf, updates, state.mu, state.nu)
    treedef = jax.tree.structure(updates)
    u, mu, nu = (jax.tree.unflatten(treedef, [o[i] for o in treedef.flatten_up_to(out)])
                 for i in range(3))
    return (optax.tree.cast_like(u, updates),
            ScaleByAnoState(count=optax.safe_increment(state.count), mu=mu, nu=nu))

  return optax.GradientTransformation(init_fn, update_fn)


def ano(learning_rate: optax.ScalarOrSchedule,
        b1: float = 0.92,
        b2: float = 0.99,
        eps: float = 1e-8,
        weight_decay: optax.ScalarOrSchedule = 0.0,
        mask: Optional[Any] = None,
        *,
        eps_inside_sqrt: bool = True,
        mu_dtype: Optional[Any] = None) -> optax.GradientTransformationExtraArgs:
  r"""ANO: the current gradient's magnitude, the momentum's sign, decoupled decay.

  .. math::
    x_t = x_{t-1} - \eta\,\frac{|g_t|\,\mathrm{sign}(m_t)}{\sqrt{\hat v_t + \epsilon}}
          - \eta\lambda x_{t-1}

  Args:
    learning_rate: eta, a number or an optax schedule (paper default 1e-4).
    b1: beta_1 (0.92).
    b2: beta_2 (0.99).
    eps: epsilon (1e-8).
    weight_decay: lambda, decoupled (0).
    mask: optional tree or callable selecting the decayed params.
    eps_inside_sqrt: official form (True) or pytorch_optimizer's (False).
    mu_dtype: dtype of the momentum.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.ano(learning_rate=0.1, eps=0.0)
    >>> p = jnp.zeros(2)
    >>> u, s = opt.update(jnp.array([1.0, -3.0]), opt.init(p), p)
    >>> u   # first step: -eta sign(g)
    Array([-0.1,  0.1], dtype=float32)

  References:
    Kegreisz, ANO : Faster is Better in Noisy Landscape,
    https://arxiv.org/abs/2508.18258
  """
  validate.learning_rate(_NAME, learning_rate)
  validate.non_negative(_NAME, weight_decay=weight_decay)
  return optax.chain(
      scale_by_ano(b1=b1, b2=b2, eps=eps, eps_inside_sqrt=eps_inside_sqrt, mu_dtype=mu_dtype),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )


def anolog(learning_rate: optax.ScalarOrSchedule,
           b2: float = 0.999,
           eps: float = 1e-8,
           weight_decay: optax.ScalarOrSchedule = 0.0,
           mask: Optional[Any] = None,
           *,
           eps_inside_sqrt: bool = True,
           bias_correction: bool = False,
           mu_dtype: Optional[Any] = None) -> optax.GradientTransformationExtraArgs:
  r"""Anolog: ANO with beta_{1,t} = 1 - 1/ln(max(2, t)) (official ``anolog.py``).

  .. math::
    m_t = \beta_{1,t} m_{t-1} + (1-\beta_{1,t}) g_t,\quad
    \beta_{1,t} = 1 - 1/\ln\max(2, t)

  The rest is ANO with the official Anolog defaults: b2 = 0.999 and no bias
  correction on v. beta_{1,t} is negative at t = 1, 2 (as in the official
  code).

  Args:
    learning_rate: eta, a number or an optax schedule (official default 1e-4).
    b2: beta_2 (official Anolog: 0.999).
    eps: epsilon (1e-8).
    weight_decay: lambda, decoupled (0).
    mask: optional tree or callable selecting the decayed params.
    eps_inside_sqrt: official form (True) or pytorch_optimizer's (False).
    bias_correction: divide v by (1 - beta_2^t) (official Anolog: False;
      pytorch_optimizer's logarithmic schedule: True).
    mu_dtype: dtype of the momentum.

  Returns:
    An ``optax.GradientTransformationExtraArgs``.

  Example:
    >>> import optkit
    >>> import jax.numpy as jnp
    >>> opt = optkit.anolog(learning_rate=0.1)
    >>> p = jnp.zeros(1)
    >>> u, s = opt.update(jnp.array([2.0]), opt.init(p), p)
    >>> s[0].mu   # beta_{1,1} = 1 - 1/ln 2 < 0: m_1 = (1/ln 2) g_1
    Array([2.885...], dtype=float32)

  References:
    Kegreisz, ANO : Faster is Better in Noisy Landscape,
    https://arxiv.org/abs/2508.18258
  """
  validate.learning_rate("anolog", learning_rate)
  validate.non_negative("anolog", weight_decay=weight_decay)
  return optax.chain(
      _scale_by_ano("anolog", 0.92, b2, eps, True, eps_inside_sqrt, bias_correction,
                    mu_dtype),
      optax.add_decayed_weights(weight_decay, mask),
      optax.scale_by_learning_rate(learning_rate),
  )
