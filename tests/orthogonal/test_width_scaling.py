"""Width-scaled AdamW (Fan et al.): hand-checked multipliers, equality with
optax.adamw / optax.adam per leaf, and the steady-state property (the paper's
width-invariant weight-scale diagnostic) with plain AdamW and muP-lr-only
AdamW as negative controls."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests.orthogonal.test_mup import ROLES, mlp_params, mlp_shapes_tree

WIDTHS = (64, 256, 1024)
D_BASE = 64


def test_hand_checked_multipliers():
  m = optkit.width_scaling_multipliers(mlp_shapes_tree(256), ROLES, 4.0)
  assert m.lr == {"w1": 1.0, "b1": 1.0, "w2": 0.25, "b2": 1.0, "w3": 0.25}
  assert m.weight_decay == {"w1": 0.0, "b1": 0.0, "w2": 2.0, "b2": 0.0, "w3": 2.0}
  # eta_2 * lambda_2 = eta * lambda / sqrt(r): not width-invariant (paper: lambda ~ sqrt(d)).
  for r in (1.0, 4.0, 16.0):
    m = optkit.width_scaling_multipliers(mlp_shapes_tree(64), ROLES, r)
    assert m.lr["w2"] * m.weight_decay["w2"] == pytest.approx(r ** -0.5)
    assert m.weight_decay["b1"] == 0.0 and m.lr["b1"] == 1.0
  base = optkit.width_scaling_multipliers(mlp_shapes_tree(64), ROLES, 1.0)
  assert base.lr == {k: 1.0 for k in ROLES}


def test_equals_optax_adamw_per_leaf():
  """Matrix-like leaves: optax.adamw(eta / r, weight_decay=lambda sqrt(r));
  vector-like leaves: optax.adam(eta) (no decay)."""
  r, lr, wd = 4.0, 0.05, 0.3
  params = mlp_params(16, {"w1": 1.0, "w2": 1.0, "w3": 1.0})
  params = jax.tree.map(lambda p: p + 0.5, params)
  tx = optkit.width_scaled_adamw(lr, wd, ROLES, r)
  mats = {"w2": None, "w3": None}
  refs = {k: (optax.adamw(lr / r, weight_decay=wd * r ** 0.5) if k in mats else optax.adam(lr))
          for k in params}

  @jax.jit  # one compilation (eager ops compile one by one)
  def both(params):
    state = tx.init(params)
    ref_states = {k: refs[k].init(params[k]) for k in params}
    p, q = params, dict(params)
    for i in range(3):
      g = jax.tree.map(lambda x: jnp.sin(x * (i + 1.0)), p)
      u, state = tx.update(g, state, p)
      p = optax.apply_updates(p, u)
      for k in params:
        uk, ref_states[k] = refs[k].update(jnp.sin(q[k] * (i + 1.0)), ref_states[k], q[k])
        q[k] = optax.apply_updates(q[k], uk)
    return p, q

  p, q = both(params)
  for k in params:
    np.testing.assert_allclose(p[k], q[k], rtol=1e-6, atol=1e-7)


PROBE = (64, 64)  # stands for a d x d hidden matrix: see _steady_rms
LR, WD, STEPS = 0.01, 10.0, 600


def _steady_rms(make_tx, *hparams):
  """RMS of a hidden matrix after STEPS steps of ``make_tx(*hparams)`` on
  pure-noise gradients (the optimizer-governed steady state: updates
  independent of the weights). ``hparams`` are traced (one compilation per
  ``make_tx``).

  The width enters only through the optimizer's hyperparameters: under
  coordinate-wise noise the steady state is per coordinate, so a fixed 64 x 64
  probe stands for the d x d matrix (its RMS is the d x d matrix's) and keeps
  the test cheap.
  """
  return float(_run(make_tx, *(jnp.float32(h) for h in hparams)))


@functools.partial(jax.jit, static_argnums=0)
def _run(make_tx, *hparams):
  tx = make_tx(*hparams)
  w = jnp.zeros(PROBE)

  def body(carry, key):
    w, s = carry
    u, s = tx.update(jax.random.normal(key, PROBE), s, w)
    return (w + u, s), None

  keys = jax.random.split(jax.random.key(0), STEPS)
  (w, _), _ = jax.lax.scan(body, (w, tx.init(w)), keys)
  return jnp.sqrt(jnp.mean(w ** 2))


def _width_scaled(r):
  return optkit.width_scaled_adamw(LR, WD, "hidden", r, b1=0.0)


def _adamw(lr, wd):
  return optax.adamw(lr, b1=0.0, weight_decay=wd)


def test_steady_state_weight_scale_is_width_invariant():
  """The paper's diagnostic: in the steady state the weight scale goes as
  sqrt(eta / lambda) and the top singular value as sqrt(eta / lambda) d^0.75.
  (1) The measured steady-state RMS follows the sqrt(eta_2 / lambda_2) law at
  every width (rms^2 lambda_2 / eta_2 constant to 10%). (2) The diagnostic
  rms * d^0.75 is then width-invariant (10%) under width_scaled_adamw, and
  drifts with width under plain AdamW (x 16^0.75 = 8) and under muP-lr-only
  AdamW (eta / r, constant lambda: x 16^0.25 = 2).

  b1 = 0: with momentum, the steady state also depends on how the momentum
  time 1 / (1 - b1) compares with the decay time 1 / (eta lambda), which varies
  with width; without it the random-walk law is exact up to O(eta lambda).
  """
  d = np.array(WIDTHS)
  r = d / D_BASE
  scaled = np.array([_steady_rms(_width_scaled, ri) for ri in r])
  law = scaled ** 2 * (WD * r ** 0.5) / (LR / r)
  np.testing.assert_allclose(law / law[0], 1.0, atol=0.1)
  diag = scaled * d ** 0.75
  np.testing.assert_allclose(diag / diag[0], 1.0, atol=0.1)
  plain = np.array([_steady_rms(_adamw, LR, WD) for _ in r])
  diag_plain = plain * d ** 0.75
  assert diag_plain[-1] / diag_plain[0] > 6.0, diag_plain
  mup_only = np.array([_steady_rms(_adamw, LR / ri, WD) for ri in r])
  diag_mup = mup_only * d ** 0.75
  assert diag_mup[-1] / diag_mup[0] > 1.6, diag_mup


@pytest.mark.parametrize("fn", ["width_scaling_multipliers", "width_scaled_adamw"])
def test_bad_metadata_raises(fn):
  p = {"w": jnp.zeros((4, 4)), "b": jnp.zeros(4)}

  def call(roles, widths):
    if fn == "width_scaling_multipliers":
      return optkit.width_scaling_multipliers(p, roles, widths)
    return optkit.width_scaled_adamw(0.1, 0.1, roles, widths).init(p)

  with pytest.raises(ValueError, match=rf"{fn}.*unknown role 'vector'.*\['b'\]"):
    call({"w": "hidden", "b": "vector"}, 1.0)
  with pytest.raises(ValueError, match=rf"{fn}.*width_mults.*\['w'\].*positive"):
    call(None, {"w": 0.0, "b": 2.0})
  with pytest.raises(ValueError, match=rf"{fn}.*roles.*no entry.*\['b'\]"):
    call({"w": "hidden"}, 1.0)


def test_bad_hyperparameters_raise():
  with pytest.raises(ValueError, match="width_scaled_adamw.*weight_decay"):
    optkit.width_scaled_adamw(0.1, weight_decay=-1.0)
  with pytest.raises(ValueError, match="width_scaled_adamw.*learning_rate"):
    optkit.width_scaled_adamw(-0.1)
  with pytest.raises(ValueError, match="width_scaled_adamw.*b1"):
    optkit.width_scaled_adamw(0.1, b1=1.0)
