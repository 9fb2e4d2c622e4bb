"""Sketched Newton-KKT with an exact augmented Lagrangian (Hong et al., arXiv:2305.18379)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.constraints import augmented_lagrangian as al


def _qp(seed, n=8, m=3):
  rng = np.random.default_rng(seed)
  a = rng.standard_normal((n, n))
  q = 0.5 * a @ a.T / n + 2.0 * np.eye(n)        # well conditioned: the sketch solver's
  b = rng.standard_normal(n)                       # rate degrades like 1 / cond(K)^2
  g = np.linalg.qr(rng.standard_normal((n, m)))[0].T * 2.0 + 0.3 * rng.standard_normal((m, n))
  d = rng.standard_normal(m)
  kkt = np.block([[q, g.T], [g, np.zeros((m, m))]])
  sol = np.linalg.solve(kkt, np.concatenate([-b, d]))
  return q, b, g, d, sol[:n], sol[n:]


def _run(solver, x, steps, lam=None):
  state = solver.init(x, lam)
  step = jax.jit(solver.step)
  for _ in range(steps):
    x, state = step(x, state)
  return x, state


def test_equality_constrained_qp_matches_kkt_solution():
  """float64: x and lambda equal the KKT solution to 1e-8."""
  with jax.enable_x64(True):
    q, b, g, d, x_star, lam_star = _qp(0)
    f = lambda x: 0.5 * x @ q @ x + b @ x
    c = lambda x: g @ x - d
    solver = al.sketched_newton_augmented_lagrangian(f, c, sketch_size=4, max_sketch_iters=2000)
    x, state = _run(solver, jnp.zeros(8), 30)
    np.testing.assert_allclose(x, x_star, atol=1e-8)
    np.testing.assert_allclose(state.lam, lam_star, atol=1e-8)
    np.testing.assert_allclose(c(x), 0.0, atol=1e-8)
    # negative control: gradient descent on f alone leaves the constraint violated
    y = jnp.zeros(8)
    for _ in range(300):
      y = y - 0.02 * jax.grad(f)(y)
    assert float(jnp.linalg.norm(c(y))) > 0.1


def test_nonlinear_constraint_on_a_pytree():
  """min x1 + x2 on the circle x1^2 + x2^2 = 2: x* = (-1, -1), lambda* = 1/2."""
  with jax.enable_x64(True):
    f = lambda p: p["a"] + p["b"]
    c = lambda p: jnp.array([p["a"] ** 2 + p["b"] ** 2 - 2.0])
    solver = al.sketched_newton_augmented_lagrangian(f, c, sketch_size=2)
    p, state = _run(solver, {"a": jnp.asarray(-0.5), "b": jnp.asarray(-1.5)}, 40)
    np.testing.assert_allclose([p["a"], p["b"]], [-1.0, -1.0], atol=1e-8)
    np.testing.assert_allclose(state.lam, [0.5], atol=1e-8)
    assert int(state.count) == 40


def test_sketch_and_project_converges_on_indefinite_kkt_and_spd_systems():
  with jax.enable_x64(True):
    q, b, g, d, _, _ = _qp(1, n=10, m=4)
    assert np.linalg.cond(np.block([[q, g.T], [g, np.zeros((4, 4))]])) < 20
    kkt = jnp.asarray(np.block([[q, g.T], [g, np.zeros((4, 4))]]))
    rng = np.random.default_rng(2)
    a = rng.standard_normal((14, 14))
    spd = jnp.asarray(a @ a.T / 14 + np.eye(14))
    for k_mat in (kkt, spd):
      r = jnp.asarray(rng.standard_normal(14))
      z, iters, res = al.sketch_and_project_solve(k_mat, r, jax.random.key(0), 4, 1e-10, 5000)
      np.testing.assert_allclose(z, np.linalg.solve(np.asarray(k_mat), np.asarray(r)),
                                 rtol=1e-8, atol=1e-8)
      assert float(res) <= 1e-10 and 1 < int(iters) < 5000
      # negative control: a handful of iterations is far from the solution
      z3, _, res3 = al.sketch_and_project_solve(k_mat, r, jax.random.key(0), 4, 0.0, 3)
      assert float(res3) > 1e-3


def test_adaptive_accuracy_tightens_and_penalty_never_decreases():
  with jax.enable_x64(True):
    q, b, g, d, _, _ = _qp(3)
    f = lambda x: 0.5 * x @ q @ x + b @ x + 0.1 * jnp.sum(x ** 4)
    c = lambda x: g @ x - d
    solver = al.sketched_newton_augmented_lagrangian(f, c, sketch_size=4, max_sketch_iters=2000)
    x, state = jnp.zeros(8), solver.init(jnp.zeros(8))
    step = jax.jit(solver.step)
    res, mus = [], []
    for _ in range(15):
      x, state = step(x, state)
      res.append(float(state.kkt_residual))
      mus.append(float(state.mu))
    assert res[-1] < 1e-8 * res[0]
    assert all(b_ >= a_ for a_, b_ in zip(mus, mus[1:]))


def test_same_seed_same_result_and_keys_split():
  f = lambda x: jnp.sum((x - 2.0) ** 2)
  c = lambda x: jnp.array([x[0] + x[1] - 1.0])
  s1 = al.sketched_newton_augmented_lagrangian(f, c, sketch_size=1, seed=3)
  a, sa = _run(s1, jnp.zeros(3), 3)
  b, sb = _run(s1, jnp.zeros(3), 3)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(np.asarray(sa.key), np.asarray(s1.init(jnp.zeros(3)).key))


def test_bad_arguments_raise():
  f = lambda x: jnp.sum(x ** 2)
  c = lambda x: x[:1]
  with pytest.raises(ValueError, match="sketched_newton_augmented_lagrangian"):
    al.sketched_newton_augmented_lagrangian(None, c)
  with pytest.raises(ValueError, match="sketched_newton_augmented_lagrangian"):
    al.sketched_newton_augmented_lagrangian(f, c, mu=-1.0)
  with pytest.raises(ValueError, match="sketched_newton_augmented_lagrangian"):
    al.sketched_newton_augmented_lagrangian(f, c, armijo=0.7 + 0.5)
  with pytest.raises(ValueError, match="sketched_newton_augmented_lagrangian"):
    al.sketched_newton_augmented_lagrangian(f, c, sketch_size=0)
