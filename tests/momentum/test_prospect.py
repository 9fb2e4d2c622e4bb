"""What makes Prospect Prospect (arXiv:2310.13863).

Problems: least-squares regression on 20 examples, whose spectral risk
(CVaR / superquantile, and its chi^2-smoothed version) is minimized, compared
with direct solves in float64.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optkit.momentum import prospect, spectral_risk_weights
from tests import helpers

N, D, MU = 20, 3, 0.1


def _cvar_spectrum(n, alpha):
  k = int(round(alpha * n))
  s = np.zeros(n)
  s[n - k:] = 1.0 / k
  return s


def _data():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((N, D))
  y = x @ np.array([1.0, -2.0, 0.5]) + 0.5 * rng.standard_normal(N)
  y[:3] += 4.0  # a few hard examples
  return x, y


def _loss(w, ex):
  return 0.5 * (ex[0] @ w - ex[1]) ** 2


def _pav_nondecreasing(y):
  """Pool-adjacent-violators (sequential; independent of the min-max formula)."""
  blocks = []  # [sum, count]
  for v in y:
    blocks.append([v, 1])
    while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
      s, c = blocks.pop()
      blocks[-1][0] += s
      blocks[-1][1] += c
  return np.concatenate([np.full(c, s / c) for s, c in blocks])


def _weights_numpy(losses, sigma, nu):
  n = len(losses)
  perm = np.argsort(losses, kind="stable")
  s = losses[perm] / (n * nu)
  q = s - _pav_nondecreasing(s + 1.0 / n - sigma) + 1.0 / n
  out = np.empty(n)
  out[perm] = q
  return out


# ---------------------------------------------------------------- weights


def test_cvar_weights_put_one_over_alpha_n_on_the_top_losses():
  rng = np.random.default_rng(1)
  losses = rng.standard_normal(N)
  for alpha in (0.1, 0.25, 0.5):
    q = np.asarray(spectral_risk_weights(jnp.asarray(losses), _cvar_spectrum(N, alpha)))
    k = int(round(alpha * N))
    top = np.argsort(losses)[N - k:]
    np.testing.assert_allclose(q[top], 1.0 / (alpha * N), rtol=1e-6)
    assert np.all(np.delete(q, top) == 0.0)


def test_ties_are_broken_deterministically():
  q = spectral_risk_weights(jnp.array([1.0, 1.0, 1.0, 0.0]), _cvar_spectrum(4, 0.5))
  np.testing.assert_array_equal(q, [0.0, 0.5, 0.5, 0.0])  # stable sort: later index ranks higher


def test_smoothed_weights_match_pool_adjacent_violators_and_maximize():
  rng = np.random.default_rng(2)
  sigma = _cvar_spectrum(N, 0.25)
  with jax.enable_x64(True):
    for nu in (0.01, 0.1, 1.0):
      losses = rng.standard_normal(N)
      q = np.asarray(spectral_risk_weights(jnp.asarray(losses), jnp.asarray(sigma), nu))
      np.testing.assert_allclose(q, _weights_numpy(losses, sigma, nu), atol=1e-12)
      np.testing.assert_allclose(q.sum(), 1.0, atol=1e-12)
      # q maximizes q.l - nu (n/2)||q - 1/n||^2 over P(sigma): beat random members.
      obj = lambda r: r @ losses - nu * N / 2 * np.sum((r - 1.0 / N) ** 2)
      for _ in range(200):
        lam = rng.dirichlet(np.ones(4))
        r = sum(l * sigma[rng.permutation(N)] for l in lam)
        assert obj(q) >= obj(r) - 1e-12
      if nu < 1.0:
        continue  # small nu and well-separated losses: q is the hard assignment
      # Negative control: the unsmoothed weights are not the maximizer here.
      hard = np.asarray(spectral_risk_weights(jnp.asarray(losses), jnp.asarray(sigma)))
      assert obj(q) > obj(hard) + 1e-6


def test_uniform_spectrum_gives_uniform_weights():
  losses = jnp.asarray(np.random.default_rng(3).standard_normal(N), jnp.float32)
  for nu in (0.0, 0.5):
    np.testing.assert_allclose(spectral_risk_weights(losses, jnp.full(N, 1.0 / N), nu),
                               np.full(N, 1.0 / N), rtol=1e-5)


# ---------------------------------------------------------------- solver


def _cvar_optimum(x, y, k, mu, steps=500):
  """The exact CVaR optimum value, by the dual: max over q in the CVaR
  polytope {0 <= q <= 1/k, sum q = 1} of min_w sum q_i l_i(w) + mu/2||w||^2
  (concave in q; projected gradient ascent). Returns (dual value, primal value
  at the dual's w): equal values certify optimality (weak duality)."""
  n, d = x.shape

  def inner(q):
    w = np.linalg.solve((x.T * q) @ x + mu * np.eye(d), (x.T * q) @ y)
    l = 0.5 * (x @ w - y) ** 2
    return q @ l + mu / 2 * w @ w, l, w

  def project(z):
    lo, hi = z.min() - 1.0, z.max() + 1.0
    for _ in range(60):
      t = (lo + hi) / 2
      lo, hi = (t, hi) if np.clip(z - t, 0, 1 / k).sum() > 1 else (lo, t)
    return np.clip(z - (lo + hi) / 2, 0, 1 / k)

  q, best = np.full(n, 1.0 / n), -np.inf
  for _ in range(steps):
    val, l, w = inner(q)
    best = max(best, val)
    q = project(q + 0.01 * l)
  return best, _cvar_value(x, y, k, mu, w)


def _cvar_value(x, y, k, mu, w):
  return np.sort(0.5 * (x @ w - y) ** 2)[-k:].mean() + mu / 2 * w @ w


def _smoothed_objective(xj, yj, sigma):
  def objective(w, nu):  # the max over q, differentiated by Danskin's theorem
    l = 0.5 * (xj @ w - yj) ** 2
    q = jax.lax.stop_gradient(spectral_risk_weights(l, sigma, nu))
    return q @ l - nu * N / 2 * jnp.sum((q - 1 / N) ** 2) + MU / 2 * w @ w
  return objective


def test_converges_to_the_superquantile_risk_minimizer():
  """CVaR_0.25 (superquantile) spectrum with chi^2 shift cost nu: Prospect
  reaches the minimizer of a direct full-batch solve to 1e-9; plain SGD with
  the same step and the same unbiased estimate at the current weights does not."""
  x, y = _data()
  k = 5
  sigma = jnp.asarray(_cvar_spectrum(N, k / N))
  with jax.enable_x64(True):
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    objective = _smoothed_objective(xj, yj, sigma)
    grad = jax.grad(objective)
    direct = jax.jit(lambda nu: jax.lax.fori_loop(
        0, 3000, lambda _, w: w - 0.05 * grad(w, nu), jnp.zeros(D)))
    solve = jax.jit(lambda nu: prospect(_loss, jnp.zeros(D), (xj, yj), sigma, 0.01, 6000,
                                        l2_reg=MU, nu=nu))

    def sgd(nu):
      def body(w, i):
        q = spectral_risk_weights(0.5 * (xj @ w - yj) ** 2, sigma, nu)
        return (w - 0.01 * N * q[i] * (xj[i] @ w - yj[i]) * xj[i]) / (1 + 0.01 * MU), None
      return jax.lax.scan(body, jnp.zeros(D),
                          jax.random.randint(jax.random.key(0), (6000,), 0, N))[0]

    sgd = jax.jit(sgd)
    for nu in (0.2, 1.0):
      w_star = direct(nu)
      assert float(jnp.linalg.norm(grad(w_star, nu))) < 1e-10
      w = solve(nu)
      np.testing.assert_allclose(w, w_star, atol=1e-9)
      assert np.max(np.abs(np.asarray(sgd(nu)) - np.asarray(w_star))) > 1e-3
  # Its CVaR (nu = 0) value is within nu * max_q (n/2)||q - 1/n||^2 of the
  # exact CVaR optimum (certified by the dual).
  dual, primal = _cvar_optimum(x, y, k, MU)
  assert abs(primal - dual) < 1e-9
  gap = _cvar_value(x, y, k, MU, np.asarray(w)) - dual  # Prospect's nu = 1 output
  bound = 1.0 * N / 2 * (np.sum(np.asarray(sigma) ** 2) - 1.0 / N)
  assert 0.0 < gap <= bound, (gap, bound)


def test_trajectory_matches_the_authors_code():
  """Fixture: the authors' Prospect (ronakdm/prospect, torch float64, run by
  tools/make_prospect_fixtures.py) with its own sampled indices; CVaR_0.25,
  nu in {0.2, 1}. Tolerance 1e-10 (float64)."""
  ref = np.load(helpers.fixture("momentum_prospect.npz"))
  x, y = _data()
  np.testing.assert_array_equal(ref["x"], x)
  with jax.enable_x64(True):
    data = (jnp.asarray(x), jnp.asarray(y))
    run = jax.jit(lambda nu, idx, steps=300: prospect(
        _loss, jnp.zeros(D), data, jnp.asarray(ref["sigma"]), float(ref["lr"]), steps,
        l2_reg=float(ref["mu"]), nu=nu, indices=idx))
    for tag in ("nu02", "nu1"):
      w = run(float(ref[f"{tag}_nu"]), jnp.asarray(ref[f"{tag}_indices"]))
      np.testing.assert_allclose(w, ref[f"{tag}_iterates"][-1], rtol=1e-10, atol=1e-10)
    w1 = prospect(_loss, jnp.zeros(D), data, jnp.asarray(ref["sigma"]), float(ref["lr"]), 1,
                  l2_reg=float(ref["mu"]), nu=1.0, indices=jnp.asarray(ref["nu1_indices"][:1]))
    np.testing.assert_allclose(w1, ref["nu1_iterates"][0], rtol=1e-12, atol=1e-14)


def test_uniform_spectrum_is_ridge_regression_and_float32_runs():
  x, y = _data()
  w_star = np.linalg.solve(x.T @ x / N + MU * np.eye(D), x.T @ y / N)
  w = prospect(lambda p, ex: _loss(p["w"], ex), {"w": jnp.zeros(D, jnp.float32)},
               (jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)),
               jnp.full(N, 1.0 / N), 0.02, 3000, l2_reg=MU,
               indices=jnp.arange(3000) % N)
  assert w["w"].dtype == jnp.float32
  np.testing.assert_allclose(w["w"], w_star, atol=1e-4)


def test_jittable_and_seeded():
  x, y = _data()
  data = (jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
  sigma = jnp.asarray(_cvar_spectrum(N, 0.25), jnp.float32)
  run = lambda lr, seed: prospect(_loss, jnp.zeros(D), data, sigma, lr, 50, seed=seed)
  jitted = jax.jit(run)  # learning rate and seed traced
  a = jitted(0.01, 3)
  np.testing.assert_array_equal(a, jitted(0.01, 3))
  assert not np.allclose(a, jitted(0.01, 4))


def test_bad_arguments_raise():
  x, y = _data()
  data = (jnp.asarray(x), jnp.asarray(y))
  sigma = _cvar_spectrum(N, 0.25)
  with pytest.raises(ValueError, match="prospect.*learning_rate"):
    prospect(_loss, jnp.zeros(D), data, sigma, -1.0, 10)
  with pytest.raises(ValueError, match="prospect.*nu"):
    prospect(_loss, jnp.zeros(D), data, sigma, 0.1, 10, nu=-1.0)
  with pytest.raises(ValueError, match="prospect.*spectrum"):
    prospect(_loss, jnp.zeros(D), data, sigma[::-1], 0.1, 10)
  with pytest.raises(ValueError, match="prospect.*spectrum"):
    prospect(_loss, jnp.zeros(D), data, np.full(4, 0.25), 0.1, 10)
  with pytest.raises(ValueError, match="spectral_risk_weights.*spectrum"):
    spectral_risk_weights(jnp.zeros(3), jnp.array([0.5, 0.5, 0.5]))
