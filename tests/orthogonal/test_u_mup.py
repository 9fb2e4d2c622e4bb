"""u-muP: hand-checked tables (unit-scaling's lr_scale_func_adam/sgd),
independent weight decay, and the coordinate check on a unit-scaled MLP with
plain Adam as negative control."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests.orthogonal.test_mup import (
    D_IN,
    ROLES,
    WIDTHS,
    first_step_feature_change,
    mlp_params,
    mlp_shapes_tree,
)


def test_hand_checked_adam_table():
  # n = 256: fan_in from the Flax layout (w1: D_IN, w2/w3: n).
  m = optkit.u_mup_multipliers(mlp_shapes_tree(256), ROLES)
  assert m.lr == pytest.approx(
      {"w1": D_IN ** -0.5, "b1": 1.0, "w2": 1 / 16, "b2": 1.0, "w3": 1.0})
  assert m.init_std == {k: 1.0 for k in ROLES}
  assert m.param == pytest.approx(
      {"w1": 1.0, "b1": 1.0, "w2": 1 / 16, "b2": 1.0, "w3": 1 / 256})
  for k in ROLES:  # independent decay: unit-scaling's wd / lr_param
    assert m.weight_decay[k] * m.lr[k] == pytest.approx(1.0)
  # Embedding table (vocab 1000, hidden 64): fan_in given as the hidden size.
  emb = optkit.u_mup_multipliers({"e": jnp.zeros((1000, 64))}, "input", {"e": 64})
  assert emb.lr == {"e": 0.125}
  # Residual-branch leaves: x depth^(-1/2).
  dep = optkit.u_mup_multipliers(mlp_shapes_tree(256), ROLES,
                                 residual_depth={"w1": 1, "b1": 1, "w2": 4, "b2": 4, "w3": 1})
  assert dep.lr["w2"] == pytest.approx(1 / 32) and dep.lr["b2"] == pytest.approx(0.5)


def test_hand_checked_sgd_table():
  m = optkit.u_mup_multipliers(mlp_shapes_tree(256), ROLES, optimizer="sgd")
  assert m.lr == pytest.approx(
      {"w1": D_IN ** -0.5, "b1": 256.0, "w2": 1 / 16, "b2": 256.0, "w3": 1.0})
  c = optkit.u_mup_multipliers(mlp_shapes_tree(256), ROLES, optimizer="sgd",
                               readout_constraint="to_output_scale")
  assert c.lr["w2"] == pytest.approx(16.0) and c.lr["w3"] == 1.0


def test_independent_weight_decay_factor_does_not_depend_on_lr():
  p = mlp_params(8, {"w1": 1.0, "w2": 1.0, "w3": 1.0})
  p["b1"] = p["b1"] + 1.0
  zeros = jax.tree.map(jnp.zeros_like, p)
  for lr in (0.1, 3.0):
    tx = optkit.scale_by_u_mup(ROLES, inner=optax.adam(lr), weight_decay=0.01)
    u, _ = jax.jit(tx.update)(zeros, tx.init(p), p)
    new = optax.apply_updates(p, u)
    for k in p:
      np.testing.assert_allclose(new[k], 0.99 * p[k], rtol=1e-6)


def test_scale_by_u_mup_scales_the_inner_update():
  p = mlp_params(8, {"w1": 1.0, "w2": 1.0, "w3": 1.0})
  g = jax.tree.map(lambda x: 0.1 * jnp.ones_like(x), p)
  tx = optkit.scale_by_u_mup(ROLES)
  u, _ = jax.jit(tx.update)(g, tx.init(p), p)
  d, _ = jax.jit(optax.scale_by_adam().update)(g, optax.scale_by_adam().init(p))
  m = optkit.u_mup_multipliers(p, ROLES).lr
  for k in p:
    np.testing.assert_allclose(u[k], m[k] * d[k], rtol=1e-6)


def _unit(n):
  """Unit-scaled init (std 1 for every weight) and u-muP forward multipliers."""
  m = optkit.u_mup_multipliers(mlp_shapes_tree(n), ROLES)
  return (lambda seed: mlp_params(n, {"w1": 1.0, "w2": 1.0, "w3": 1.0}, seed)), m.param


def test_coordinate_check():
  """Defining property on a unit-scaled MLP (weights std 1, forward multipliers
  fan_in^-1/2 / 1/fan_in): u-muP's Adam step changes the hidden pre-activations
  by a width-independent RMS; plain Adam (same model, no multipliers) grows
  ~ sqrt(width)."""
  lr = 0.01
  umup, plain = [], []
  for n in WIDTHS:
    params_fn, mult = _unit(n)
    umup.append(first_step_feature_change(
        optkit.scale_by_u_mup(ROLES, inner=optax.adam(lr)), params_fn, mult))
    plain.append(first_step_feature_change(optax.adam(lr), params_fn, mult))
  umup, plain = np.array(umup), np.array(plain)
  np.testing.assert_allclose(umup / umup[0], 1.0, atol=0.15)
  # Negative control: the hidden-weight part of the change grows as sqrt(16) = 4
  # (the input-layer and bias parts stay Theta(1)): more than 2x in total.
  assert plain[-1] / plain[0] > 2.0, plain


@pytest.mark.parametrize("fn", ["u_mup_multipliers", "scale_by_u_mup"])
def test_bad_metadata_raises(fn):
  p = {"w": jnp.zeros((4, 4)), "b": jnp.zeros(4)}

  def call(roles, fan_in=None, depth=None):
    if fn == "u_mup_multipliers":
      return optkit.u_mup_multipliers(p, roles, fan_in, residual_depth=depth)
    return optkit.scale_by_u_mup(roles, fan_in, residual_depth=depth).init(p)

  with pytest.raises(ValueError, match=rf"{fn}.*unknown role 'embedding'.*\['w'\]"):
    call({"w": "embedding", "b": "bias"})
  with pytest.raises(ValueError, match=rf"{fn}.*fan_in.*\['w'\].*positive"):
    call({"w": "hidden", "b": "bias"}, {"w": 0, "b": 4})
  with pytest.raises(ValueError, match=rf"{fn}.*residual_depth.*\['b'\].*positive"):
    call({"w": "hidden", "b": "bias"}, None, {"w": 2, "b": -1})
  with pytest.raises(ValueError, match=rf"{fn}.*roles.*no entry.*\['b'\]"):
    call({"w": "hidden"})


def test_bad_modes_raise():
  with pytest.raises(ValueError, match="scale_by_u_mup.*weight_decay"):
    optkit.scale_by_u_mup(weight_decay=-0.1)
  with pytest.raises(ValueError, match="u_mup_multipliers.*readout_constraint"):
    optkit.u_mup_multipliers({"w": jnp.zeros((2, 2))}, readout_constraint="to_output_scale")
  with pytest.raises(ValueError, match="scale_by_u_mup.*optimizer"):
    optkit.scale_by_u_mup(optimizer="lamb")
  p = {"w": jnp.ones((2, 2))}
  tx = optkit.scale_by_u_mup(weight_decay=0.1)
  with pytest.raises(ValueError, match="scale_by_u_mup.*params"):
    tx.update(p, tx.init(p))
