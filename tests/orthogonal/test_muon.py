"""optkit.muon re-uses optax.contrib.muon: equality with it, the update rule it
implements, and optkit's validation.

References and tolerances: optax.contrib.muon / scale_by_muon (bitwise equal
over 4 jitted steps); a hand-written Nesterov + bias-corrected momentum fed to
optkit's Newton-Schulz dualizer (1e-6).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import optkit

RNG = np.random.default_rng(0)
SHAPES = {"w": (6, 4), "b": (4,), "k": (3, 3, 2, 4)}


def _grads(n):
  return [{k: jnp.asarray(RNG.standard_normal(s), jnp.float32) for k, s in SHAPES.items()}
          for _ in range(n)]


def _run(tx, params, grads):
  state = tx.init(params)
  step = jax.jit(tx.update)
  out = []
  for g in grads:
    u, state = step(g, state, params)
    params = optax.apply_updates(params, u)
    out.append(u)
  return params, state, out


@pytest.mark.parametrize("kwargs", [
    {},
    {"beta": 0.9, "nesterov": False, "weight_decay": 0.1, "adam_b1": 0.8, "ns_steps": 3,
     "consistent_rms": 0.2, "adam_learning_rate": 0.01, "eps": 1e-7,
     "muon_weight_dimension_numbers": {
         "w": optax.contrib.MuonDimensionNumbers(),
         "b": None,
         "k": optax.contrib.MuonDimensionNumbers(reduction_axis=(0, 1, 2), output_axis=3)}},
])
def test_muon_equals_optax_contrib_muon(kwargs):
  params = {k: jnp.ones(s, jnp.float32) for k, s in SHAPES.items()}
  grads = _grads(4)
  p1, s1, u1 = _run(optkit.muon(0.02, **kwargs), params, grads)
  p2, s2, u2 = _run(optax.contrib.muon(0.02, **kwargs), params, grads)
  chex.assert_trees_all_equal(u1, u2)
  chex.assert_trees_all_equal(p1, p2)
  chex.assert_trees_all_equal(s1, s2)


def test_scale_by_muon_equals_optax_contrib():
  # A single matrix (optax's default dimension numbers) ...
  g = [gi["w"] for gi in _grads(4)]
  _, _, u1 = _run(optkit.scale_by_muon(beta=0.9), jnp.zeros((6, 4)), g)
  _, _, u2 = _run(optax.contrib.scale_by_muon(beta=0.9), jnp.zeros((6, 4)), g)
  chex.assert_trees_all_equal(u1, u2)
  # ... and a tree, which needs a tree of dimension numbers.
  dims = {"w": optax.contrib.MuonDimensionNumbers(),
          "k": optax.contrib.MuonDimensionNumbers(reduction_axis=(0, 1, 2), output_axis=3)}
  g = [{k: gi[k] for k in dims} for gi in _grads(3)]
  params = jax.tree.map(jnp.zeros_like, g[0])
  _, _, u1 = _run(optkit.scale_by_muon(weight_dimension_numbers=dims, nesterov=False),
                  params, g)
  _, _, u2 = _run(optax.contrib.scale_by_muon(weight_dimension_numbers=dims, nesterov=False),
                  params, g)
  chex.assert_trees_all_equal(u1, u2)


def test_muon_update_rule_on_a_matrix():
  """2-D leaf: -lr sqrt(max(1, fan_out/fan_in)) NS(Nesterov bias-corrected m)."""
  beta, lr = 0.9, 0.05
  w = jnp.zeros((3, 5))  # fan_in 3, fan_out 5: shape factor sqrt(5/3)
  tx = optkit.muon(lr, beta=beta)
  state = tx.init({"w": w})
  ns = jax.jit(lambda x: optkit.dualize_spectral(x, eps=1e-8))
  m = np.zeros((3, 5))
  for t in range(1, 4):
    g = RNG.standard_normal((3, 5)).astype(np.float32)
    u, state = jax.jit(tx.update)({"w": jnp.asarray(g)}, state, {"w": w})
    m = beta * m + (1 - beta) * g
    x = beta * m / (1 - beta ** (t + 1)) + (1 - beta) * g / (1 - beta ** t)
    expected = -lr * np.sqrt(5 / 3) * np.asarray(ns(jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(u["w"], expected, atol=1e-6)
  # Negative control: without the Nesterov term (plain bias-corrected m) the
  # last update is different.
  plain = -lr * np.sqrt(5 / 3) * np.asarray(ns(jnp.asarray(m / (1 - beta ** 3), jnp.float32)))
  assert np.abs(np.asarray(u["w"]) - plain).max() > 1e-3


def test_muon_matrix_updates_are_near_orthogonal_adam_ones_are_not():
  params = {"w": jnp.zeros((16, 16)), "b": jnp.zeros((16,))}
  g = {"w": jnp.asarray(np.diag(np.logspace(0, 1, 16)) @ np.linalg.qr(
      RNG.standard_normal((16, 16)))[0], jnp.float32), "b": jnp.ones((16,))}
  tx = optkit.muon(1.0, beta=0.0)
  u, _ = jax.jit(tx.update)(g, tx.init(params), params)
  s = np.linalg.svd(np.asarray(u["w"]), compute_uv=False)
  assert s.min() >= 0.68 and s.max() <= 1.2
  # Negative control: Adam's first step (sign-like) on the same matrix.
  adam = optax.adam(1.0)
  ua, _ = jax.jit(adam.update)(g, adam.init(params), params)
  sa = np.linalg.svd(np.asarray(ua["w"]), compute_uv=False)
  assert sa.min() < 0.68 or sa.max() > 1.2


@pytest.mark.parametrize("make", [
    lambda: optkit.muon(-0.1),
    lambda: optkit.muon(0.1, beta=1.0),
    lambda: optkit.muon(0.1, beta=-0.5),
    lambda: optkit.muon(0.1, ns_steps=0),
    lambda: optkit.muon(0.1, ns_steps=2.5),
    lambda: optkit.muon(0.1, eps=-1.0),
    lambda: optkit.muon(0.1, weight_decay=-0.1),
    lambda: optkit.muon(0.1, adam_b2=1.0),
    lambda: optkit.muon(0.1, adam_learning_rate=-1.0),
    lambda: optkit.muon(0.1, preconditioning="newton"),
    lambda: optkit.muon(0.1, ns_coeffs=(1.0, 2.0)),
    lambda: optkit.muon(0.1, ns_coeffs="polar"),
    lambda: optkit.muon(0.1, ns_coeffs=((3.0, -4.0, 2.0),) * 6, ns_steps=5),
    lambda: optkit.scale_by_muon(beta=1.5),
    lambda: optkit.scale_by_muon(ns_steps=0),
    lambda: optkit.scale_by_muon(ns_coeffs="dion"),
])
def test_bad_hyperparameters_raise(make):
  with pytest.raises(ValueError, match="muon"):
    make()


def test_ns_steps_is_static_under_inject_hyperparams():
  rec = optkit.registry.get("muon")
  assert "ns_steps" in rec.static_hparams
  params = {"w": jnp.ones((4, 3)), "b": jnp.ones((3,))}
  g = _grads(1)[0]
  g = {"w": g["w"][:4, :3], "b": g["b"][:3]}
  tx = optax.inject_hyperparams(optkit.muon, static_args=rec.static_hparams)(
      learning_rate=0.05, beta=0.9, ns_steps=3)
  u, _ = jax.jit(tx.update)(g, tx.init(params), params)
  ref_tx = optax.contrib.muon(0.05, beta=0.9, ns_steps=3)
  ref, _ = jax.jit(ref_tx.update)(g, ref_tx.init(params), params)
  np.testing.assert_allclose(u["w"], ref["w"], rtol=1e-6, atol=1e-7)
  # The AdamW leaf sees b2 = 0.999 rounded to float32 once injected:
  # 1 - b2 is off by 1.3e-5 relative, hence the looser tolerance.
  np.testing.assert_allclose(u["b"], ref["b"], rtol=2e-5)
