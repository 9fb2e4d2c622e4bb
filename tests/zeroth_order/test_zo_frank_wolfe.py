"""Zeroth-order Frank-Wolfe and the classical Frank-Wolfe transformation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.zeroth_order import zo_frank_wolfe as zfw

CENTER = {"a": jnp.asarray([3.0, -4.0, 1.0]), "m": jnp.asarray([[2.0, 0.0], [1.0, -2.0]])}


def loss(p):
  return sum(0.5 * jnp.sum((p[k] - CENTER[k]) ** 2) for k in p)


def params():
  return {"a": jnp.asarray([0.1, 0.2, -0.1]), "m": jnp.asarray([[0.0, 0.3], [0.0, 0.0]])}


def _run(tx, p, steps, with_grad=False):
  state = tx.init(p)

  @jax.jit
  def step(p, s):
    g = jax.grad(loss)(p) if with_grad else jax.tree.map(jnp.zeros_like, p)
    u, s = tx.update(g, s, p, value_fn=loss)
    return optax.apply_updates(p, u), s

  traj = [p]
  for _ in range(steps):
    p, state = step(p, state)
    traj.append(p)
  return traj


@pytest.mark.parametrize("lmo,norm", [
    ("l2", lambda x: np.linalg.norm(x)),
    (optkit.lmo_sign, lambda x: np.max(np.abs(x))),
    (optkit.lmo_spectral(method="svd"),
     lambda x: np.linalg.norm(x, 2) if x.ndim == 2 else np.linalg.norm(x)),
])
def test_iterates_stay_in_the_constraint_set(lmo, norm):
  r = 1.0   # every leaf's minimizer (CENTER) lies outside the ball
  traj = _run(optkit.zeroth_order_frank_wolfe(lmo, radius=r), params(), 40)
  for p in traj:
    for x in p.values():
      assert norm(np.asarray(x, np.float64)) <= r * (1 + 1e-5)
  # Negative control: ZO-SGD with the same kind of estimate leaves the ball.
  sgd = optax.chain(optkit.zo_random_gradient(num_queries=4), optax.sgd(0.2))
  last = _run(sgd, params(), 40)[-1]
  assert any(norm(np.asarray(x)) > r * 1.1 for x in last.values())


def test_exact_gradients_and_rho_one_is_classical_frank_wolfe():
  exact = lambda value_fn, x, key, c: jax.grad(value_fn)(x)
  zo = zfw._zo_frank_wolfe("zeroth_order_frank_wolfe", "l2", 1.0, 1, 0,
                           None, lambda t: 1.0, None, estimate=exact)
  fw = optkit.frank_wolfe("l2", radius=1.0, step_schedule=lambda t: 2.0 / (t + 8.0))
  a = _run(zo, params(), 10)
  b = _run(fw, params(), 10, with_grad=True)
  for pa, pb in zip(a, b):
    for k in pa:
      np.testing.assert_allclose(pa[k], pb[k], rtol=1e-6, atol=1e-6)
  # Negative control: the paper's averaging rho_t < 1 changes the trajectory.
  zo_avg = zfw._zo_frank_wolfe("zeroth_order_frank_wolfe", "l2", 1.0, 1, 0,
                               None, None, None, estimate=exact)
  c = _run(zo_avg, params(), 10)
  assert not np.allclose(c[-1]["a"], b[-1]["a"], atol=1e-4)


def test_frank_wolfe_matches_a_numpy_rederivation():
  """x_{t+1} = x_t + gamma_t (v_t - x_t), v_t = -r g/||g|| per leaf, gamma_t = 2/(t+2)."""
  r = 1.5
  traj = _run(optkit.frank_wolfe("l2", radius=r), params(), 8, with_grad=True)
  x = {k: np.asarray(v, np.float64) for k, v in params().items()}
  c = {k: np.asarray(v, np.float64) for k, v in CENTER.items()}
  for t in range(8):
    gamma = 2.0 / (t + 2.0)
    for k in x:
      g = x[k] - c[k]
      x[k] = x[k] + gamma * (-r * g / np.linalg.norm(g) - x[k])
      np.testing.assert_allclose(traj[t + 1][k], x[k], rtol=1e-5, atol=1e-5)


def test_zo_frank_wolfe_converges_to_the_constrained_minimum():
  """Each leaf's constrained minimizer on the l2 ball is r c / ||c||."""
  r = 1.0
  traj = _run(optkit.zeroth_order_frank_wolfe("l2", radius=r, num_directions=4), params(), 300)
  star = {k: r * v / jnp.linalg.norm(v) for k, v in CENTER.items()}
  gap0 = float(loss(params()) - loss(star))
  gap = float(loss(traj[-1]) - loss(star))
  assert 0 <= gap + 1e-5 and gap < 0.05 * gap0, (gap, gap0)


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="zeroth_order_frank_wolfe"):
    optkit.zeroth_order_frank_wolfe(radius=-1.0)
  with pytest.raises(ValueError, match="zeroth_order_frank_wolfe"):
    optkit.zeroth_order_frank_wolfe(lmo="nuclear")
  with pytest.raises(ValueError, match="frank_wolfe"):
    optkit.frank_wolfe(radius=0.0)
  tx = optkit.zeroth_order_frank_wolfe()
  p = params()
  with pytest.raises(ValueError, match="zeroth_order_frank_wolfe.*value_fn"):
    tx.update(p, tx.init(p), p)
