"""What makes ScaledGD(lambda) itself.

* the defining property: on overparameterized low-rank matrix factorization
  (true rank 2, factor rank 4, small random init) ScaledGD reaches relative
  error 1e-4 in about the same number of steps whether the target's
  condition number is 1 or 100, while plain GD on the same factors (negative
  control) slows down by more than 10x;
* exact reparametrization invariance with lambda = 0 (catalog test 1);
* a hand-computed step (asymmetric pair, lambda > 0) and the plain-GD fallback
  of leaves in no pair;
* bad pairings and missing params raise ValueErrors naming scaled_gd.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit

N, TRUE_RANK, RANK, INIT = 10, 2, 4, 1e-3


def _problem(kappa, seed=0):
  rng = np.random.default_rng(seed)
  u = np.linalg.qr(rng.standard_normal((N, TRUE_RANK)))[0]
  target = (u * np.geomspace(1.0, 1.0 / kappa, TRUE_RANK)) @ u.T   # sigma_max = 1
  x0 = INIT * rng.standard_normal((N, RANK))
  return jnp.asarray(target, jnp.float32), jnp.asarray(x0, jnp.float32)


def _steps_to(tx, kappa, tol=1e-4, steps=300):
  """Steps until ||X X^T - M*||_F / ||M*||_F < tol (None if never)."""
  target, x0 = _problem(kappa)
  loss = lambda p: 0.25 * jnp.sum((p["X"] @ p["X"].T - target) ** 2)
  rel = lambda p: jnp.linalg.norm(p["X"] @ p["X"].T - target) / jnp.linalg.norm(target)

  def body(carry, _):
    p, s = carry
    u, s = tx.update(jax.grad(loss)(p), s, p)
    p = optax.apply_updates(p, u)
    return (p, s), rel(p)

  p = {"X": x0}
  _, errs = jax.jit(lambda p, s: jax.lax.scan(body, (p, s), None, length=steps))(
      p, tx.init(p))
  errs = np.asarray(errs)
  assert np.all(np.isfinite(errs))
  hit = np.nonzero(errs < tol)[0]
  return int(hit[0]) + 1 if hit.size else None


def test_convergence_does_not_depend_on_condition_number():
  # lambda = 0.01 sigma_min(M*), eta = 0.5 (sigma_max = 1).
  scaled = {k: _steps_to(optkit.scaled_gd(0.5, [("X", "X")], damping=0.01 / k), k)
            for k in (1, 100)}
  assert scaled[1] is not None and scaled[100] is not None, scaled
  assert scaled[1] <= 30 and scaled[100] <= 30, scaled
  assert abs(scaled[100] - scaled[1]) <= 5, scaled
  # Negative control: plain GD on the same factors, same eta.
  gd = {k: _steps_to(optax.sgd(0.5), k) for k in (1, 100)}
  assert gd[1] is not None and gd[1] <= 60, gd
  assert gd[100] is None, gd        # > 300 steps, i.e. over 10x slower than kappa = 1
  assert scaled[100] < gd[1]


def test_reparametrization_invariance_without_damping():
  with jax.enable_x64(True):
    rng = np.random.default_rng(1)
    left = jnp.asarray(rng.standard_normal((5, 3)))
    right = jnp.asarray(rng.standard_normal((4, 3)))
    s = jnp.asarray(rng.standard_normal((3, 3)) + 3 * np.eye(3))
    a = jnp.asarray(rng.standard_normal((5, 4)))
    b = jnp.asarray(rng.standard_normal((5, 4)))
    loss = lambda p: 0.5 * jnp.sum((a * (p["L"] @ p["R"].T) - b) ** 2)
    opt = optkit.scaled_gd(0.1, [("L", "R")], damping=0.0)

    @jax.jit
    def product_after_step(p):
      u, _ = opt.update(jax.grad(loss)(p), opt.init(p), p)
      q = optax.apply_updates(p, u)
      return q["L"] @ q["R"].T, u

    m1, u1 = product_after_step({"L": left, "R": right})
    m2, u2 = product_after_step({"L": left @ s, "R": right @ jnp.linalg.inv(s).T})
    np.testing.assert_allclose(m2, m1, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(u2["L"], u1["L"] @ s, rtol=1e-9, atol=1e-10)
    # Negative control: plain GD steps are not invariant.
    gd = jax.jit(lambda p: optax.apply_updates(p, jax.tree.map(lambda g: -0.1 * g,
                                                               jax.grad(loss)(p))))
    q1 = gd({"L": left, "R": right})
    q2 = gd({"L": left @ s, "R": right @ jnp.linalg.inv(s).T})
    assert np.max(np.abs(q2["L"] @ q2["R"].T - q1["L"] @ q1["R"].T)) > 1e-2


def test_hand_computed_step_and_fallback():
  p = {"L": jnp.array([[1.0, 0.0], [0.0, 2.0]]),
       "R": jnp.array([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]),
       "b": jnp.array([1.0, -1.0])}
  g = {"L": jnp.array([[2.0, 4.0], [1.0, 0.0]]),
       "R": jnp.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]),
       "b": jnp.array([0.5, -3.0])}
  lam, eta = 0.5, 0.1
  # R^T R + lam I = [[1.5, 1], [1, 2.5]], det = 2.75; L^T L + lam I = diag(1.5, 4.5).
  inv_r = np.array([[2.5, -1.0], [-1.0, 1.5]]) / 2.75
  inv_l = np.diag([1 / 1.5, 1 / 4.5])
  opt = optkit.scaled_gd(eta, {"L": "R"}, damping=lam)
  u, _ = jax.jit(opt.update)(g, opt.init(p), p)
  np.testing.assert_allclose(u["L"], -eta * np.asarray(g["L"]) @ inv_r, rtol=1e-6)
  np.testing.assert_allclose(u["R"], -eta * np.asarray(g["R"]) @ inv_l, rtol=1e-6)
  np.testing.assert_allclose(u["b"], -eta * np.asarray(g["b"]), rtol=1e-7)


def test_nested_names_and_zero_factors_are_finite():
  p = {"layer": {"a": jnp.zeros((3, 2)), "b": jnp.zeros((4, 2))}, "bias": jnp.zeros(3)}
  g = jax.tree.map(jnp.ones_like, p)
  tx = optkit.scale_by_scaled_gd([("layer/a", "layer/b")], damping=0.0)
  u, _ = jax.jit(tx.update)(g, tx.init(p), p)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(u))
  np.testing.assert_array_equal(u["bias"], g["bias"])


def test_bad_pairings_raise():
  p = {"L": jnp.ones((3, 2)), "R": jnp.ones((4, 2)), "S": jnp.ones((4, 3)),
       "v": jnp.ones(3)}
  with pytest.raises(ValueError, match=r"scaled_gd.*'L'.*paired with both"):
    optkit.scaled_gd(0.1, [("L", "R"), ("L", "S")])
  with pytest.raises(ValueError, match="scaled_gd.*`pairs`"):
    optkit.scaled_gd(0.1, [("L", "R", "S")])
  with pytest.raises(ValueError, match="scaled_gd.*`pairs` is empty"):
    optkit.scaled_gd(0.1, [])
  with pytest.raises(ValueError, match="scaled_gd.*`pairs`"):
    optkit.scaled_gd(0.1, "L")
  with pytest.raises(ValueError, match="scaled_gd.*'W'.*not a leaf"):
    optkit.scaled_gd(0.1, [("L", "W")]).init(p)
  with pytest.raises(ValueError, match="scaled_gd.*'L'.*'S'.*share the rank"):
    optkit.scaled_gd(0.1, [("L", "S")]).init(p)
  with pytest.raises(ValueError, match="scaled_gd.*'v'.*2-D"):
    optkit.scaled_gd(0.1, [("v", "v")]).init(p)
  with pytest.raises(ValueError, match="scaled_gd.*damping"):
    optkit.scaled_gd(0.1, [("L", "R")], damping=-1.0)
  with pytest.raises(ValueError, match="scaled_gd.*learning_rate"):
    optkit.scaled_gd(-0.1, [("L", "R")])
  tx = optkit.scaled_gd(0.1, [("L", "R")])
  with pytest.raises(ValueError, match="scaled_gd.*params"):
    tx.update(p, tx.init(p))
