"""nonconvex_accelerated_prox, prox_scad, prox_mcp (Yang, Asgharian & Bhatnagar 2020)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit


def _np_scad(x, lam, a):
  t = np.abs(x)
  return np.where(t <= lam, lam * t, np.where(t <= a * lam,
                  (2 * a * lam * t - t ** 2 - lam ** 2) / (2 * (a - 1)), lam ** 2 * (a + 1) / 2))


def _np_mcp(x, lam, gamma):
  t = np.abs(x)
  return np.where(t <= gamma * lam, lam * t - t ** 2 / (2 * gamma), gamma * lam ** 2 / 2)


def _brute_prox(pen, z, step):
  grid = np.linspace(-6.0, 6.0, 120001)          # spacing 1e-4
  obj = 0.5 * (grid[None, :] - z[:, None]) ** 2 + step * pen(grid)[None, :]
  return grid[np.argmin(obj, axis=1)]


@pytest.mark.parametrize("step", [1.0, 0.5])
def test_prox_scad_is_the_argmin_float64(step):
  lam, a = 1.0, 3.7
  z = np.linspace(-5.0, 5.0, 101)
  with jax.enable_x64(True):
    got = np.asarray(optkit.prox_scad(lam, a)(jnp.asarray(z), step))
  np.testing.assert_allclose(got, _brute_prox(lambda x: _np_scad(x, lam, a), z, step),
                             atol=2e-4)
  assert np.all(got[np.abs(z) <= step * lam] == 0.0)             # exact zeros


@pytest.mark.parametrize("step", [1.0, 0.5])
def test_prox_mcp_is_the_argmin_float64(step):
  lam, gamma = 1.0, 2.0
  z = np.linspace(-5.0, 5.0, 101)
  with jax.enable_x64(True):
    got = np.asarray(optkit.prox_mcp(lam, gamma)(jnp.asarray(z), step))
  np.testing.assert_allclose(got, _brute_prox(lambda x: _np_mcp(x, lam, gamma), z, step),
                             atol=2e-4)


def test_prox_scad_continuity_identity_and_exact_zeros():
  lam, a = 0.7, 3.7
  prox = optkit.prox_scad(lam, a)
  with jax.enable_x64(True):
    for knot in (2 * lam, a * lam):
      lo, hi = prox(jnp.asarray([knot - 1e-9, knot + 1e-9]))
      assert abs(float(hi) - float(lo)) < 1e-8
    big = jnp.asarray([a * lam + 1e-6, 3.0, -10.0])
    np.testing.assert_array_equal(prox(big), big)                 # identity above a lam
    small = jnp.asarray([0.0, 0.3, -0.69])
    np.testing.assert_array_equal(prox(small), 0.0)                # exact zeros
  # negative control: a gradient step on the (smooth away from 0) SCAD penalty
  # never lands on exact zeros
  x = jnp.asarray([0.3, -0.5, 0.1], jnp.float32)
  g = jax.grad(lambda x: jnp.sum(optkit.scad_penalty(x, lam, a)))(x)
  assert np.all(np.asarray(x - 0.1 * g) != 0.0)


def test_damping_sequence_is_fista_and_first_step_by_hand():
  tx = optkit.nonconvex_accelerated_prox(0.1, lam=0.0, penalty="l1")
  x = jnp.ones(2)
  s = tx.init(x)
  alphas = [float(s.alpha)]
  for _ in range(5):
    _, s = tx.update(jnp.zeros(2), s, x)
    alphas.append(float(s.alpha))
  t = [1.0]
  for _ in range(5):
    t.append((1 + np.sqrt(1 + 4 * t[-1] ** 2)) / 2)
  np.testing.assert_allclose(alphas, 1 / np.array(t), rtol=1e-6)
  # first step, alpha_1 = 1: x^md = x_0, x_1 = x^ag_1 = S(x_0 - beta G)
  tx = optkit.nonconvex_accelerated_prox(0.5, lam=0.2, penalty="mcp", gamma=2.0)
  x0 = jnp.array([1.0, 0.3, -0.1])
  g = jnp.array([0.4, -0.2, 0.0])
  u, s = tx.update(g, tx.init(x0), x0)
  q = np.where(np.abs(x0) < 0.4, -np.asarray(x0) / 2.0, -0.2 * np.sign(x0))   # MCP concave grad
  z = np.asarray(x0) - 0.5 * (np.asarray(g) + q)
  expect = np.sign(z) * np.maximum(np.abs(z) - 0.1, 0.0)
  np.testing.assert_allclose(s.x, expect, rtol=1e-6)
  np.testing.assert_allclose(s.x_ag, expect, rtol=1e-6)
  np.testing.assert_allclose(x0 + u, expect, rtol=1e-6)   # alpha_2 mixes equal x, x^ag


def _np_ag(x0, grad_f, beta, lam, a, steps):
  """Float64 re-derivation of the authors' UAG loop (no restarts)."""
  def q_grad(x):
    t, s = np.abs(x), np.sign(x)
    return np.where(t <= lam, 0.0, np.where(t <= a * lam, (lam * s - x) / (a - 1), -lam * s))
  soft = lambda z, th: np.sign(z) * np.maximum(np.abs(z) - th, 0.0)
  x, ag, alpha = x0.copy(), x0.copy(), 1.0
  mds = []
  for k in range(steps):
    if k > 0:
      alpha = 2 / (1 + np.sqrt(1 + 4 / alpha ** 2))
    md = (1 - alpha) * ag + alpha * x
    mds.append(md)
    g = grad_f(md) + q_grad(md)
    x = soft(x - beta / alpha * g, beta / alpha * lam)
    ag = soft(md - beta * g, beta * lam)
  return np.array(mds), ag


def _sparse_regression(seed=0, n=100, p=20):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, p))
  beta = np.zeros(p)
  beta[[1, 4, 7]] = [3.0, -2.0, 2.5]
  y = x @ beta + 0.01 * rng.standard_normal(n)
  return x, y, beta


def test_matches_float64_numpy_rederivation():
  xm, y, _ = _sparse_regression()
  n = xm.shape[0]
  grad_f = lambda b: xm.T @ (xm @ b - y) / n
  lf = np.linalg.eigvalsh(xm.T @ xm / n)[-1]
  lam, a = 0.1, 3.7
  beta = 0.99 / max(lf, 1 / (a - 1))
  ref_md, ref_ag = _np_ag(np.zeros(20), grad_f, beta, lam, a, 30)
  with jax.enable_x64(True):
    xj, yj = jnp.asarray(xm), jnp.asarray(y)
    loss = lambda b: 0.5 * jnp.mean((xj @ b - yj) ** 2)
    tx = optkit.nonconvex_accelerated_prox(beta, lam=lam, penalty="scad", a=a)
    b = jnp.zeros(20, jnp.float64)
    s = tx.init(b)
    step = jax.jit(lambda b, s: tx.update(jax.grad(loss)(b), s, b))
    for k in range(30):
      np.testing.assert_allclose(b, ref_md[k], rtol=1e-10, atol=1e-12)   # visible = x^md
      u, s = step(b, s)
      b = b + u
    np.testing.assert_allclose(optkit.nonconvex_accelerated_prox_eval_params(s), ref_ag,
                               rtol=1e-10, atol=1e-12)


def test_recovers_support_unbiased_scad_vs_biased_lasso():
  xm, y, truth = _sparse_regression(1)
  xj, yj = jnp.asarray(xm, jnp.float32), jnp.asarray(y, jnp.float32)
  loss = lambda b: 0.5 * jnp.mean((xj @ b - yj) ** 2)
  lf = float(np.linalg.eigvalsh(xm.T @ xm / xm.shape[0])[-1])
  lam = 0.3

  def fit(penalty):
    beta = 0.99 / max(lf, 1 / 2.7)
    tx = optkit.nonconvex_accelerated_prox(beta, lam=lam, penalty=penalty)
    b = jnp.zeros(20)
    s = tx.init(b)
    step = jax.jit(lambda b, s: tx.update(jax.grad(loss)(b), s, b))
    for _ in range(300):
      u, s = step(b, s)
      b = optax.apply_updates(b, u)
    return np.asarray(optkit.nonconvex_accelerated_prox_eval_params(s))

  scad = fit("scad")
  support = truth != 0
  np.testing.assert_array_equal(scad != 0, support)               # exact zeros off-support
  np.testing.assert_allclose(scad[support], truth[support], atol=0.02)   # unbiased
  lasso = fit("l1")
  np.testing.assert_array_equal(lasso != 0, support)
  # negative control: the L1 estimate is shrunk by about lam on the support
  assert np.all(np.abs(lasso[support]) < np.abs(truth[support]) - 0.2)


def test_bad_hyperparameters_and_missing_params():
  with pytest.raises(ValueError, match="nonconvex_accelerated_prox.*learning_rate"):
    optkit.nonconvex_accelerated_prox(-1.0)
  with pytest.raises(ValueError, match="nonconvex_accelerated_prox.*`a`"):
    optkit.nonconvex_accelerated_prox(0.1, a=2.0)
  with pytest.raises(ValueError, match="nonconvex_accelerated_prox.*penalty"):
    optkit.nonconvex_accelerated_prox(0.1, penalty="lq")
  with pytest.raises(ValueError, match="nonconvex_accelerated_prox.*lam"):
    optkit.nonconvex_accelerated_prox(0.1, lam=-0.1)
  with pytest.raises(ValueError, match="prox_scad.*`a`"):
    optkit.prox_scad(1.0, a=1.5)
  with pytest.raises(ValueError, match="prox_mcp.*gamma"):
    optkit.prox_mcp(1.0, gamma=0.0)
  tx = optkit.nonconvex_accelerated_prox(0.1)
  x = jnp.ones(2)
  with pytest.raises(ValueError, match="nonconvex_accelerated_prox.*params"):
    tx.update(x, tx.init(x))


@pytest.mark.parametrize("pen", ["scad", "mcp"])
def test_matches_authors_nonconvexAG_trajectory(pen):
  """tests/fixtures/reference/constraints_nonconvex_ag.npz: x^md iterates of the
  authors' ``UAG_LM_SCAD_MCP`` (nonconvexAG 1.1.6, run as plain NumPy in
  float64 by tools/make_nonconvex_penalties_fixtures.py) up to its first
  adaptive restart. optkit with ``alpha1 = (sqrt 5 - 1) / 2`` (the authors'
  first alpha) and an unpenalized intercept leaf; tolerance 1e-10 relative."""
  from tests import helpers
  data = np.load(helpers.fixture("constraints_nonconvex_ag.npz"))
  md = data[f"{pen}__md"]
  lam, a, gamma, _, beta = data[f"{pen}__hparams"]
  assert md.shape[0] >= 5
  alpha1 = (np.sqrt(5.0) - 1.0) / 2.0
  with jax.enable_x64(True):
    x, y = jnp.asarray(data["X"]), jnp.asarray(data["y"])
    n = x.shape[0]
    loss = lambda p: 0.5 * jnp.sum((x[:, 0] * p["b0"] + x[:, 1:] @ p["w"] - y) ** 2) / n
    make = lambda lam_, pen_: optkit.nonconvex_accelerated_prox(
        float(beta), lam=lam_, penalty=pen_, a=float(a), gamma=float(gamma), alpha1=alpha1)
    tx = optax.multi_transform({"free": make(0.0, "l1"), "pen": make(float(lam), pen)},
                               {"b0": "free", "w": "pen"})
    b0 = data["beta0"]
    p = {"b0": jnp.asarray(b0[0]), "w": jnp.asarray(b0[1:])}
    s = tx.init(p)
    for k in range(md.shape[0]):
      got = np.concatenate([np.atleast_1d(np.asarray(p["b0"])), np.asarray(p["w"])])
      np.testing.assert_allclose(got, md[k], rtol=1e-10, atol=1e-12, err_msg=f"step {k}")
      u, s = tx.update(jax.grad(loss)(p), s, p)
      p = optax.apply_updates(p, u)
  # negative control: optkit's default alpha_1 = 1 gives another second iterate
  with jax.enable_x64(True):
    tx1 = optax.multi_transform(
        {"free": optkit.nonconvex_accelerated_prox(float(beta), lam=0.0, penalty="l1"),
         "pen": optkit.nonconvex_accelerated_prox(float(beta), lam=float(lam), penalty=pen,
                                                  a=float(a), gamma=float(gamma))},
        {"b0": "free", "w": "pen"})
    p = {"b0": jnp.asarray(b0[0]), "w": jnp.asarray(b0[1:])}
    s = tx1.init(p)
    for _ in range(2):
      u, s = tx1.update(jax.grad(loss)(p), s, p)
      p = optax.apply_updates(p, u)
    got = np.concatenate([np.atleast_1d(np.asarray(p["b0"])), np.asarray(p["w"])])
    assert not np.allclose(got, md[2], rtol=1e-6)
