"""SANIA (arXiv:2312.17369).

References: ``optax.polyak_sgd`` for the identity preconditioner with the
linear constraint (f_min = 0, eps = 0, no cap; tolerance rtol 1e-6 over 10
closed-loop steps); a float64 re-derivation of the quadratic-constraint rule
with AdaGrad-SQR (the rule of the public SANIA_AdagradSQR code: tau = 1 when
2 f > s, else 1 - sqrt(1 - 2 f / s); tolerance rtol 1e-10). The defining
property, feature-scale invariance of AdaGrad-SQR, is checked with plain
Polyak SGD (identity preconditioner) as the negative control.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
sania_mod = importlib.import_module("optkit.curvature.sania")


def _run(tx, loss, params, steps):
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p, value=loss(p)))
  out = []
  for _ in range(steps):
    u, state = step(params, state)
    params = optax.apply_updates(params, u)
    out.append(params)
  return out


def test_identity_linear_equals_optax_polyak_sgd():
  a = jnp.array([1.0, 3.0, 10.0])
  loss = lambda p: 0.5 * jnp.sum(a * p["x"] ** 2)
  p0 = {"x": jnp.array([1.0, -2.0, 0.5])}
  ours = _run(optkit.sania(1.0, constraint="linear"), loss, p0, 10)
  ref = _run(optax.polyak_sgd(max_learning_rate=1e10, f_min=0.0, eps=0.0), loss, p0, 10)
  for x, y in zip(ours, ref):
    np.testing.assert_allclose(x["x"], y["x"], rtol=1e-6, atol=1e-7)
  assert float(loss(ours[-1])) < 1e-2 * float(loss(p0))


def test_quadratic_rule_matches_float64_rederivation_adagrad_sqr():
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    x_data, y_data = rng.standard_normal((20, 3)), rng.standard_normal(20)
    loss = lambda p: 0.5 * jnp.mean((jnp.asarray(x_data) @ p["w"] - jnp.asarray(y_data)) ** 2)
    w = np.array([2.0, -1.0, 0.5])
    eps = 0.1
    acc = np.zeros(3)
    expected = []
    for _ in range(8):
      r = x_data @ w - y_data
      f, g = 0.5 * np.mean(r ** 2), x_data.T @ r / len(r)
      acc += g * g
      pg = g / np.maximum(acc, eps)
      s = g @ pg
      tau = 1.0
      if 2 * f <= s and 1 - 2 * f / s > 0:
        tau = 1 - np.sqrt(1 - 2 * f / s)
      w = w - tau * pg
      expected.append(w.copy())
    ours = _run(optkit.sania(1.0, eps=eps, preconditioner="adagrad_sqr"), loss,
                {"w": jnp.array([2.0, -1.0, 0.5])}, 8)
    for x, y in zip(ours, expected):
      np.testing.assert_allclose(x["w"], y, rtol=1e-10, atol=1e-12)


def test_hand_computed_first_step():
  """f = 1, g = (1, 2): identity s = 5, c = 0.2, tau = 1 - sqrt(0.6);
  AdaGrad-SQR: B = max(g^2, 0.1) = (1, 4), s = 2, c = 0.5, tau = 1 - 0 = 1."""
  p = jnp.zeros(2)
  g = jnp.array([1.0, 2.0])
  tx = optkit.scale_by_sania()
  u, _ = tx.update(g, tx.init(p), p, value=1.0)
  np.testing.assert_allclose(u, (1 - np.sqrt(0.6)) * np.array([1.0, 2.0]), rtol=1e-6)
  tx = optkit.scale_by_sania(preconditioner="adagrad_sqr")
  u, state = tx.update(g, tx.init(p), p, value=1.0)
  np.testing.assert_allclose(u, [1.0, 0.5], rtol=1e-6)
  np.testing.assert_allclose(state.nu, [1.0, 4.0])
  # Adam-SQR, t = 1: bias-corrected EMA = g^2, the same numbers.
  tx = optkit.scale_by_sania(preconditioner="adam_sqr")
  u, _ = tx.update(g, tx.init(p), p, value=1.0)
  np.testing.assert_allclose(u, [1.0, 0.5], rtol=1e-5)


def _linear_model_predictions(pc, scale):
  """Least squares on features whose column 1 is multiplied by ``scale``."""
  rng = np.random.default_rng(1)
  x_data = rng.standard_normal((30, 3)).astype(np.float32)
  y_data = (x_data @ np.array([1.0, -2.0, 0.5]) + 0.1).astype(np.float32)
  x_scaled = x_data * np.array([1.0, scale, 1.0], np.float32)
  loss = lambda p: 0.5 * jnp.mean((jnp.asarray(x_scaled) @ p["w"] - y_data) ** 2)
  # The same starting predictions: the scaled weight is divided by the scale.
  w0 = jnp.array([0.3, 0.2 / scale, -0.1])
  tx = optkit.sania(1.0, eps=1e-20, preconditioner=pc, constraint="linear")
  traj = _run(tx, loss, {"w": w0}, 15)
  return np.array([x_scaled @ np.asarray(p["w"]) for p in traj])


def test_feature_scaling_invariance_with_adagrad_sqr():
  base = _linear_model_predictions("adagrad_sqr", 1.0)
  scaled = _linear_model_predictions("adagrad_sqr", 100.0)
  np.testing.assert_allclose(scaled, base, rtol=1e-4, atol=1e-4)
  # Negative control: plain (identity) Polyak SGD sees a different problem.
  base_id = _linear_model_predictions("identity", 1.0)
  scaled_id = _linear_model_predictions("identity", 100.0)
  assert np.max(np.abs(scaled_id - base_id)) > 1e-2


def test_loss_scaling_invariance_with_adagrad_sqr():
  """f -> 10 f leaves the PSPS trajectory unchanged (eps negligible; float64)."""
  with jax.enable_x64(True):
    a = jnp.array([1.0, 4.0, 9.0])
    p0 = {"x": jnp.array([1.0, 1.0, -1.0])}
    tx = optkit.sania(1.0, eps=1e-30, preconditioner="adagrad_sqr", constraint="linear")
    one = _run(tx, lambda p: jnp.sum(a * p["x"] ** 2), p0, 10)
    ten = _run(tx, lambda p: 10 * jnp.sum(a * p["x"] ** 2), p0, 10)
    for x, y in zip(one, ten):
      np.testing.assert_allclose(x["x"], y["x"], rtol=1e-12, atol=1e-14)
    # Negative control: SGD with a fixed step is not invariant.
    sgd_one = _run(optax.sgd(0.01), lambda p: jnp.sum(a * p["x"] ** 2), p0, 3)
    sgd_ten = _run(optax.sgd(0.01), lambda p: 10 * jnp.sum(a * p["x"] ** 2), p0, 3)
    assert np.max(np.abs(sgd_one[-1]["x"] - sgd_ten[-1]["x"])) > 1e-2


def test_quadratic_rule_step_is_at_most_one():
  c = jnp.concatenate([jnp.linspace(0.0, 2.0, 201), jnp.array([1e-8, 0.5, 1e8])])
  tau = sania_mod.polyak_step_size(c, "quadratic")
  assert bool(jnp.all((tau >= 0) & (tau <= 1)))
  np.testing.assert_allclose(tau[c > 0.5], 1.0)
  # Below 1/2 it is the smallest root of 1/2 tau^2 - tau + c = 0 ...
  small = c <= 0.5
  np.testing.assert_allclose((0.5 * tau ** 2 - tau + c)[small], 0.0, atol=1e-6)
  # ... which is smaller than the linear (PSPS) step c.
  assert bool(jnp.all(tau[small] >= c[small] - 1e-7))
  tx = optkit.scale_by_sania(preconditioner="adagrad_sqr")
  p = jnp.zeros(3)
  g = jnp.array([1.0, -2.0, 3.0])
  u, _ = tx.update(g, tx.init(p), p, value=1e6)  # far above f*: tau = 1 (capped)
  np.testing.assert_allclose(u, g / jnp.maximum(g * g, 0.1), rtol=1e-6)


def test_loss_below_f_star_does_not_step():
  tx = optkit.scale_by_sania(f_star=1.0, constraint="linear")
  p = jnp.zeros(2)
  u, _ = tx.update(jnp.array([1.0, 1.0]), tx.init(p), p, value=0.5)
  np.testing.assert_array_equal(u, [0.0, 0.0])


def test_hutchinson_preconditioner_on_diagonal_quadratic():
  """B = diag(A) exactly (Rademacher probes, diagonal A): one step with
  tau = 1 is a Newton step."""
  a = jnp.array([1.0, 100.0])
  loss = lambda p: 0.5 * jnp.sum(a * p ** 2)
  p = jnp.array([1.0, 1.0])
  tx = optkit.scale_by_sania(preconditioner="hutchinson", eps=1e-6)
  u, _ = tx.update(jax.grad(loss)(p), tx.init(p), p, value=loss(p), value_fn=loss)
  # s = g' A^-1 g = 101, f = 50.5: c = 0.5, tau = 1.
  np.testing.assert_allclose(u, p, rtol=1e-5)


def test_bad_hyperparameters_and_missing_extra_args():
  with pytest.raises(ValueError, match="sania.*preconditioner"):
    optkit.sania(1.0, preconditioner="adam")
  with pytest.raises(ValueError, match="sania.*constraint"):
    optkit.scale_by_sania(constraint="cubic")
  with pytest.raises(ValueError, match="sania.*eps"):
    optkit.scale_by_sania(eps=0.0)
  with pytest.raises(ValueError, match="sania.*b2"):
    optkit.scale_by_sania(b2=1.0)
  with pytest.raises(ValueError, match="sania.*max_step"):
    optkit.scale_by_sania(max_step=-1.0)
  p = jnp.ones(2)
  tx = optkit.sania(1.0)
  with pytest.raises(ValueError, match="sania.*value"):
    tx.update(p, tx.init(p), p)
  tx = optkit.sania(1.0, preconditioner="hutchinson")
  with pytest.raises(ValueError, match="sania.*value_fn"):
    tx.update(p, tx.init(p), p, value=1.0)
