"""U-DoG: the recursions (float64 NumPy re-derivation), acceleration, no tuning.

No reference implementation was found (catalog); the recursions implemented
are those written in optkit/parameter_free/udog.py's docstring, re-derived here
independently in float64 NumPy (tolerance: rtol 1e-4 / atol 1e-6 against the
float32 implementation over 25 steps).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.bench import problems
from tests import helpers

_A = np.diag([1.0, 3.0, 10.0, 30.0])
_C = np.array([1.0, -2.0, 0.5, 3.0])


def _loss(p):
  d = p["x"] - jnp.asarray(_C, p["x"].dtype)
  return 0.5 * d @ (jnp.asarray(_A, p["x"].dtype) @ d)


def _grad64(x):
  return _A @ (x - _C)


def _reference(x0, steps, reps_rel, eps=1e-8, c=1.0):
  """float64 NumPy U-DoG; returns xbar_1..xbar_steps."""
  x0 = np.asarray(x0, np.float64)
  y, xbar = x0.copy(), x0.copy()
  rbar = reps_rel * (1 + np.linalg.norm(x0))
  x_dist, sum_rbar, w_sum = 0.0, 0.0, 0.0
  m_prev, alpha_prev, g_sum = np.zeros_like(x0), 0.0, 0.0
  out = []
  for t in range(steps):
    g = _grad64(xbar)  # the gradient at the visible params: g_{t-1}
    if t == 0:
      g_sum = g @ g
    else:
      g_sum = g_sum + alpha_prev ** 2 * np.sum((g - m_prev) ** 2)
      y = y - alpha_prev * (c * rbar / np.sqrt(g_sum + eps)) * g
    rbar = max(rbar, np.linalg.norm(y - x0), x_dist)
    sum_rbar += rbar
    alpha = sum_rbar / rbar
    omega = alpha * rbar
    w_new = w_sum + omega
    xtil = (w_sum * xbar + omega * y) / w_new
    m = _grad64(xtil)
    x_new = y - alpha * (c * rbar / np.sqrt(g_sum + eps)) * m
    xbar = (w_sum * xbar + omega * x_new) / w_new
    w_sum = w_new
    x_dist = np.linalg.norm(x_new - x0)
    m_prev, alpha_prev = m, alpha
    out.append(xbar.copy())
  return np.stack(out)


def _run(tx, loss, params, steps):
  state = tx.init(params)

  @jax.jit
  def step(p, s):
    u, s = tx.update(jax.grad(loss)(p), s, p, value_fn=loss)
    return optax.apply_updates(p, u), s

  out = []
  for _ in range(steps):
    params, state = step(params, state)
    out.append(params)
  return out


def test_first_step_moves_r_eps_against_the_gradient():
  x0 = helpers.random_tree(0)
  loss = lambda p: sum(0.5 * jnp.sum(v ** 2) for v in jax.tree.leaves(p))
  reps_rel = 1e-2
  tx = optkit.u_dog(reps_rel=reps_rel)
  g = jax.grad(loss)(x0)
  u, s = tx.update(g, tx.init(x0), x0, value_fn=loss)
  norm = lambda t: np.sqrt(sum(np.sum(np.asarray(v, np.float64) ** 2) for v in jax.tree.leaves(t)))
  r_eps = reps_rel * (1 + norm(x0))
  for k in x0:  # alpha_0 = 1, eta_x0 = r_eps / ||g_0||, xbar_1 = x_1 = x_0 - r_eps g_0 / ||g_0||
    np.testing.assert_allclose(u[k], -r_eps * np.asarray(g[k]) / norm(g), rtol=1e-5, atol=1e-8)
  assert int(s.count) == 1 and float(s.alpha_prev) == 1.0


@pytest.mark.parametrize("reps_rel,c", [(1e-3, 1.0), (1e-1, 0.5)])
def test_matches_float64_rederivation(reps_rel, c):
  x0 = np.array([0.3, -1.0, 2.0, 0.0])
  ref = _reference(x0, 25, reps_rel, c=c)
  ours = _run(optkit.u_dog(c, reps_rel=reps_rel), _loss, {"x": jnp.asarray(x0, jnp.float32)}, 25)
  np.testing.assert_allclose(np.stack([p["x"] for p in ours]), ref, rtol=1e-4, atol=1e-6)


def test_converges_without_tuning_and_faster_than_dog():
  """From r_eps over four orders of magnitude U-DoG solves the ill-conditioned
  quadratic; DoG (no acceleration) and SGD with U-DoG's first step size
  (negative controls) do not get there in the same number of gradient steps."""
  prob = problems.ill_conditioned_quadratic
  x0 = prob.init(jnp.float32)
  start = float(prob.loss(x0))
  g0 = jax.grad(prob.loss)(x0)
  for reps_rel in (1e-6, 1e-4, 1e-2):
    final = float(prob.loss(_run(optkit.u_dog(reps_rel=reps_rel), prob.loss, x0, 150)[-1]))
    assert final < 1e-5 * start, (reps_rel, final)
  # DoG with twice the iterations (U-DoG takes two gradients per step).
  dog_final = float(prob.loss(helpers.run_closed_loop(optkit.dog(reps_rel=1e-4), prob.loss,
                                                      x0, 300)[-1][0]))
  assert dog_final > 1e-4 * start, dog_final
  eta0 = 1e-4 * (1 + float(jnp.linalg.norm(x0["x"]))) / float(jnp.linalg.norm(g0["x"]))
  sgd_final = float(prob.loss(helpers.run_closed_loop(optax.sgd(eta0), prob.loss, x0, 300)[-1][0]))
  assert sgd_final > 0.5 * start, sgd_final


def test_scale_invariance():
  x0 = {"x": jnp.asarray([0.3, -1.0, 2.0, 0.0], jnp.float32)}
  a = _run(optkit.u_dog(reps_rel=1e-3, eps=1e-30), _loss, x0, 30)[-1]
  b = _run(optkit.u_dog(reps_rel=1e-3, eps=1e-30), lambda p: 1e3 * _loss(p), x0, 30)[-1]
  np.testing.assert_allclose(a["x"], b["x"], rtol=1e-4, atol=1e-5)


def test_missing_value_fn_and_params_raise():
  x0 = helpers.random_tree(0)
  tx = optkit.u_dog()
  s = tx.init(x0)
  with pytest.raises(ValueError, match="u_dog.*value_fn"):
    tx.update(x0, s, x0)
  with pytest.raises(ValueError, match="u_dog"):
    tx.update(x0, s, None, value_fn=lambda p: 0.0)


@pytest.mark.parametrize("kwargs", [dict(reps_rel=0.0), dict(reps_rel=-1.0), dict(eps=0.0),
                                    dict(learning_rate=-1.0)])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="u_dog"):
    optkit.u_dog(**kwargs)
