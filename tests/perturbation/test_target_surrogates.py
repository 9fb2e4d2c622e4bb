"""What makes SSO (target-based surrogates, arXiv:2302.02607) itself.

* m = 1 inner ``sgd(alpha)`` step is exactly (S)GD with step alpha on
  l(f(theta)) (the surrogate's gradient at theta_t is the loss gradient);
* m -> infinity inner steps on a linear model f = X theta give the
  least-squares projection of z^+ = z_t - eta grad_z l onto range(X);
* a float64 NumPy re-derivation of the surrogate's inner loop on a nonlinear
  model (tanh(X w)), several outer steps;
* the defining property: per target-gradient evaluation, SSO reaches a lower
  logistic loss than gradient descent at every step size of a grid (negative
  control), on the ill-conditioned logistic regression below;
* one target-loss evaluation per step; default line-search inner solver; bad
  input.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.perturbation import TargetSurrogateState, sso, target_surrogate

NAME = "target_surrogate"


def _logreg(n=60, d=5, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, d)) * np.array([1.0, 0.5, 0.2, 0.1, 0.05])[:d]
  w_true = rng.standard_normal(d) * 3.0
  y = (rng.random(n) < 1.0 / (1.0 + np.exp(-x @ (w_true / np.array([1.0, 0.5, 0.2, 0.1, 0.05])[:d])))
       ).astype(np.float64)
  return x, y


def _logistic_target_loss(y):
  return lambda z, batch: jnp.mean(jax.nn.softplus(z) - y * z)


def _run(solver, params, steps, batch=None):
  step = jax.jit(solver.step)
  state = solver.init(params)
  out = []
  for _ in range(steps):
    params, state = step(params, state, batch)
    out.append(params)
  return out, state


def test_one_inner_step_is_gradient_descent_f64():
  with jax.enable_x64(True):
    x, y = _logreg()
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    model = lambda w, batch: xj @ w
    loss_z = _logistic_target_loss(yj)
    alpha = 3.0
    solver = target_surrogate(model, loss_z, optax.sgd(alpha), inner_steps=1, eta=7.0)
    w0 = jnp.zeros(5)
    traj, state = _run(solver, w0, 10)
    w = np.zeros(5)
    loss = lambda w: np.mean(np.logaddexp(0.0, x @ w) - y * (x @ w))
    for t in range(10):
      p = 1.0 / (1.0 + np.exp(-x @ w))
      w = w - alpha * x.T @ (p - y) / len(y)
      np.testing.assert_allclose(np.asarray(traj[t]), w, rtol=0, atol=1e-12)
    assert int(state.count) == 10
    # the state keeps l(z_t) of the last step, at theta_9
    np.testing.assert_allclose(float(state.value), loss(np.asarray(traj[8])), atol=1e-12)


def test_one_inner_step_on_minibatches_is_sgd_f64():
  with jax.enable_x64(True):
    x, y = _logreg()
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    model = lambda w, idx: xj[idx] @ w  # targets of the sampled rows only
    loss_z = lambda z, idx: jnp.mean(jax.nn.softplus(z) - yj[idx] * z)
    alpha = 2.0
    solver = target_surrogate(model, loss_z, optax.sgd(alpha), inner_steps=1, eta=1.0)
    rng = np.random.default_rng(7)
    batches = [rng.choice(len(y), 8, replace=False) for _ in range(6)]
    step = jax.jit(solver.step)
    w_j, state, w = jnp.zeros(5), solver.init(jnp.zeros(5)), np.zeros(5)
    for idx in batches:
      w_j, state = step(w_j, state, jnp.asarray(idx))
      p = 1.0 / (1.0 + np.exp(-x[idx] @ w))
      w = w - alpha * x[idx].T @ (p - y[idx]) / len(idx)
      np.testing.assert_allclose(np.asarray(w_j), w, rtol=0, atol=1e-12)


def test_many_inner_steps_project_target_step_onto_range_f64():
  with jax.enable_x64(True):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 3))
    y = rng.standard_normal(8)
    xj = jnp.asarray(x)
    model = lambda w, batch: xj @ w
    loss_z = lambda z, batch: jnp.sum(jnp.cosh(z - jnp.asarray(y)))  # non-quadratic in z
    eta = 0.3
    lam = np.linalg.eigvalsh(x.T @ x)
    solver = target_surrogate(model, loss_z, optax.sgd(eta / lam[-1]), inner_steps=3000,
                              eta=eta)
    w0 = jnp.asarray(rng.standard_normal(3))
    w1, _ = jax.jit(solver.step)(w0, solver.init(w0))
    z0 = x @ np.asarray(w0)
    z_plus = z0 - eta * np.sinh(z0 - y)
    expected = np.linalg.lstsq(x, z_plus, rcond=None)[0]
    np.testing.assert_allclose(np.asarray(w1), expected, rtol=0, atol=1e-10)
    # negative control: a few inner steps do not reach the projection
    short = target_surrogate(model, loss_z, optax.sgd(eta / lam[-1]), inner_steps=3, eta=eta)
    w_short, _ = short.step(w0, short.init(w0))
    assert np.max(np.abs(np.asarray(w_short) - expected)) > 1e-3


def test_inner_loop_matches_numpy_rederivation_nonlinear_model_f64():
  with jax.enable_x64(True):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3))
    y = rng.standard_normal(6) * 0.5
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    model = lambda p, batch: {"z": jnp.tanh(xj @ p["w"] + p["b"])}
    loss_z = lambda z, batch: 0.5 * jnp.mean((z["z"] - yj) ** 2)
    eta, alpha, m = 2.0, 0.4, 4
    solver = target_surrogate(model, loss_z, optax.sgd(alpha), inner_steps=m, eta=eta)
    params = {"w": jnp.asarray(rng.standard_normal(3)), "b": jnp.asarray(0.3)}
    traj, _ = _run(solver, params, 3)

    w, b = np.asarray(params["w"]), float(params["b"])
    for t in range(3):
      z_t = np.tanh(x @ w + b)
      g_z = (z_t - y) / len(y)
      for _ in range(m):  # grad q = J^T (g_z + (f(theta) - z_t) / eta)
        z = np.tanh(x @ w + b)
        r = (g_z + (z - z_t) / eta) * (1.0 - z ** 2)
        w, b = w - alpha * x.T @ r, b - alpha * np.sum(r)
      np.testing.assert_allclose(np.asarray(traj[t]["w"]), w, rtol=0, atol=1e-12)
      np.testing.assert_allclose(float(traj[t]["b"]), b, rtol=0, atol=1e-12)


def _logreg_optimum(x, y):
  w = np.zeros(x.shape[1])
  for _ in range(100):  # Newton
    p = 1.0 / (1.0 + np.exp(-x @ w))
    h = x.T @ (x * (p * (1 - p))[:, None]) / len(y)
    w = w - np.linalg.solve(h, x.T @ (p - y) / len(y))
  return w


def test_fewer_target_gradients_than_gradient_descent():
  """T target gradients: SSO (m = 100) vs the best GD step size of a grid."""
  x, y = _logreg()
  n = len(y)
  loss = lambda w: float(np.mean(np.logaddexp(0.0, x @ w) - y * (x @ w)))
  l_star = loss(_logreg_optimum(x, y))
  xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  eta = 4.0 * n  # 1 / L_z for the mean logistic loss
  lam_max = float(np.linalg.eigvalsh(x.T @ x)[-1])
  alpha = eta / lam_max  # 1 / (smoothness of the surrogate)
  steps = 30
  solver = target_surrogate(lambda w, b: xj @ w, _logistic_target_loss(yj),
                            optax.sgd(alpha), inner_steps=100, eta=eta)
  traj, _ = _run(solver, jnp.zeros(5), steps)
  gap_sso = loss(np.asarray(traj[-1], np.float64)) - l_star

  gd_gaps = []
  for scale in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0):  # GD step sizes around alpha
    w = np.zeros(5)
    for _ in range(steps):
      p = 1.0 / (1.0 + np.exp(-x @ w))
      w = w - scale * alpha * x.T @ (p - y) / n
    gap = loss(w) - l_star
    gd_gaps.append(gap if np.isfinite(gap) else np.inf)
  # measured: SSO 0.044, best GD (8 alpha) 0.19, GD at alpha 0.37
  assert gap_sso < 0.3 * min(gd_gaps), (gap_sso, gd_gaps)
  # m = 1 is GD at step alpha: no better than the GD grid point with scale 1
  one = target_surrogate(lambda w, b: xj @ w, _logistic_target_loss(yj),
                         optax.sgd(alpha), inner_steps=1, eta=eta)
  traj1, _ = _run(one, jnp.zeros(5), steps)
  np.testing.assert_allclose(loss(np.asarray(traj1[-1], np.float64)) - l_star, gd_gaps[1],
                             rtol=1e-3)


def test_one_target_loss_evaluation_per_step():
  calls = {"model": 0, "target": 0}

  def model(w, batch):
    calls["model"] += 1
    return batch @ w

  def target(z, batch):
    calls["target"] += 1
    return 0.5 * jnp.sum(z ** 2)

  solver = target_surrogate(model, target, optax.sgd(0.1), inner_steps=5)
  w = jnp.ones(2)
  solver.step(w, solver.init(w), jnp.eye(2))
  assert calls["target"] == 1  # the inner loop calls only the model
  assert calls["model"] >= 2


def test_default_line_search_inner_and_warm_start():
  x = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
  y = jnp.array([1.0, 2.0, 2.0])
  model = lambda w, batch: x @ w
  loss_z = lambda z, batch: 0.5 * jnp.sum((z - y) ** 2)
  solver = sso(model, loss_z)  # Armijo GD, the paper's inner solver
  traj, state = _run(solver, jnp.zeros(2), 15)
  np.testing.assert_allclose(np.asarray(traj[-1]), [1.0, 1.0], atol=1e-4)
  assert isinstance(state, TargetSurrogateState)

  warm = target_surrogate(model, loss_z, optax.adam(0.05), inner_steps=3, warm_start=True)
  cold = target_surrogate(model, loss_z, optax.adam(0.05), inner_steps=3)
  _, s_warm = _run(warm, jnp.zeros(2), 4)
  _, s_cold = _run(cold, jnp.zeros(2), 4)
  assert int(s_warm.inner_state[0].count) == 12  # Adam's count runs on across steps
  assert int(s_cold.inner_state[0].count) == 3   # fresh Adam on every surrogate
  assert jax.tree.structure(s_warm) == jax.tree.structure(warm.init(jnp.zeros(2)))


def test_jit_equals_no_jit_and_bf16_params_keep_dtype():
  x = jnp.array([[1.0, 0.5], [0.2, 2.0], [1.0, -1.0]])
  model = lambda p, batch: x @ p["w"].astype(jnp.float32)
  loss_z = lambda z, batch: jnp.mean(jax.nn.softplus(z) - z * jnp.array([1.0, 0.0, 1.0]))
  solver = target_surrogate(model, loss_z, optax.sgd(0.5), inner_steps=3, eta=4.0)
  p = {"w": jnp.array([0.1, -0.2])}
  a, sa = solver.step(p, solver.init(p))
  b, sb = jax.jit(solver.step)(p, solver.init(p))
  np.testing.assert_allclose(a["w"], b["w"], rtol=1e-6)
  pb = {"w": p["w"].astype(jnp.bfloat16)}
  nb, s = jax.jit(solver.step)(pb, solver.init(pb))
  assert nb["w"].dtype == jnp.bfloat16
  assert s.value.dtype == jnp.float32


def test_bad_input_raises():
  model = lambda w, b: w
  loss_z = lambda z, b: jnp.sum(z ** 2)
  with pytest.raises(ValueError, match=f"{NAME}.*`eta`"):
    target_surrogate(model, loss_z, optax.sgd(0.1), eta=0.0)
  with pytest.raises(ValueError, match=f"{NAME}.*`eta`"):
    target_surrogate(model, loss_z, optax.sgd(0.1), eta=-1.0)
  with pytest.raises(ValueError, match=f"{NAME}.*`inner_steps`"):
    target_surrogate(model, loss_z, optax.sgd(0.1), inner_steps=0)
  with pytest.raises(ValueError, match=f"{NAME}.*`model_fn`"):
    target_surrogate(None, loss_z)
  with pytest.raises(ValueError, match=f"{NAME}.*`target_loss_fn`"):
    target_surrogate(model, None)
  assert optkit.sso is optkit.target_surrogate
