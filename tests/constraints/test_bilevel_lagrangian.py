"""LV-HBA (Yao, Yu, Zeng & Zhang, arXiv:2401.16164) on bilevel toys with known solutions.

Toy: F(x, y) = (x - 2)^2 / 2 + y^2 / 2, f(x, theta) = (theta - x)^2 / 2.
With the lower-level constraint theta <= 1: y*(x) = min(x, 1), solution
(x, y) = (2, 1), lower multiplier 1 (the constraint is active and the upper
level pulls y towards 0, so only lower-level optimality holds y at 1).
Without it: y*(x) = x, solution (1, 1).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optkit.constraints import bilevel_lagrangian as bl

F = lambda x, y: 0.5 * (x - 2.0) ** 2 + 0.5 * y ** 2
f = lambda x, th: 0.5 * (th - x) ** 2
g_active = lambda x, th: jnp.array([th - 1.0])
g_inactive = lambda x, th: jnp.array([th - 10.0])


def _solve(g, bound, steps, **kw):
  solver = bl.lv_hba(F, f, g, project_xy=lambda x, y: (x, jnp.minimum(y, bound)), **kw)
  params = (jnp.asarray(0.0), jnp.asarray(0.0))
  run = jax.jit(lambda p, s: jax.lax.fori_loop(0, steps, lambda i, c: solver.step(*c), (p, s)))
  return run(params, solver.init(params))


def test_constrained_bilevel_toy_converges_to_the_known_solution():
  (x, y), state = _solve(g_active, 1.0, 6000)
  np.testing.assert_allclose([x, y], [2.0, 1.0], atol=1e-3)
  np.testing.assert_allclose(state.theta, 1.0, atol=1e-3)     # inner solution
  np.testing.assert_allclose(state.lam, [1.0], atol=1e-2)     # lower-level multiplier
  assert int(state.count) == 6000


def test_without_the_lower_constraint_matches_the_unconstrained_bilevel_solution():
  (x, y), state = _solve(g_inactive, 10.0, 20000, c0=10.0)
  np.testing.assert_allclose([x, y], [1.0, 1.0], atol=1e-2)
  np.testing.assert_allclose(state.lam, [0.0], atol=1e-6)
  # negative control: the constrained problem's solution is far from it
  (xc, _), _ = _solve(g_active, 1.0, 6000)
  assert abs(float(xc) - float(x)) > 0.9


def test_ignoring_the_lower_level_gives_another_point():
  # Negative control: minimizing F alone over {y <= 1} gives (2, 0), not (2, 1).
  x, y = jnp.asarray(0.0), jnp.asarray(0.0)
  for _ in range(500):
    gx, gy = jax.grad(F, argnums=(0, 1))(x, y)
    x, y = x - 0.1 * gx, jnp.minimum(y - 0.1 * gy, 1.0)
  assert abs(float(y) - 1.0) > 0.9


def test_danskin_step_is_hessian_free_and_pytrees_work():
  # (x, y) as pytrees; one step from a hand-checkable point.
  upper = lambda x, y: 0.5 * jnp.sum((x["a"] - 2.0) ** 2) + 0.5 * jnp.sum(y["b"] ** 2)
  lower = lambda x, th: 0.5 * jnp.sum((th["b"] - x["a"]) ** 2)
  cons = lambda x, th: th["b"] - 1.0
  solver = bl.lv_hba(upper, lower, cons, alpha=0.1, beta=0.1, eta=0.1)
  params = ({"a": jnp.array([0.5, 0.5])}, {"b": jnp.array([0.0, 0.0])})
  state = solver.init(params)
  (x, y), state = solver.step(params, state)
  # theta = y - eta (theta - x + (theta - y)/gamma1) = 0.05; lambda = max(0 + eta g, 0) = 0
  np.testing.assert_allclose(state.theta["b"], [0.05, 0.05], rtol=1e-6)
  np.testing.assert_allclose(state.lam, [0.0, 0.0])
  # d_x = (x - 2)/c0 + (x - y) - (x - theta) = -1.5 + 0.5 - 0.45
  np.testing.assert_allclose(x["a"], 0.5 + 0.1 * 1.45, rtol=1e-6)
  # d_y = y/c0 + (y - x) - (y - theta)/gamma1 = 0 - 0.5 + 0.05
  np.testing.assert_allclose(y["b"], 0.0 + 0.1 * 0.45, rtol=1e-6)


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="lv_hba"):
    bl.lv_hba(F, None, g_active)
  with pytest.raises(ValueError, match="lv_hba"):
    bl.lv_hba(F, f, g_active, alpha=0.0)
  with pytest.raises(ValueError, match="lv_hba"):
    bl.lv_hba(F, f, g_active, gamma2=-1.0)
