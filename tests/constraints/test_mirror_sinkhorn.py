"""mirror_sinkhorn: Mirror Sinkhorn on transport polytopes (Ballu & Berthet 2023)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit


def _x0(seed=0, shape=(4, 3)):
  return jnp.asarray(np.random.default_rng(seed).uniform(0.1, 1.0, shape), jnp.float32)


A = jnp.array([0.1, 0.2, 0.3, 0.4])
B = jnp.array([0.5, 0.25, 0.25])


def test_first_step_by_hand():
  x = _x0()
  g = jnp.asarray(np.random.default_rng(1).standard_normal((4, 3)), jnp.float32)
  tx = optkit.mirror_sinkhorn(0.3, A, B)
  u, s = tx.update(g, tx.init(x), x)
  half = np.asarray(x, np.float64) * np.exp(-0.3 * np.asarray(g, np.float64))
  expect = half * (np.asarray(A, np.float64) / half.sum(1))[:, None]     # t = 1: rows
  np.testing.assert_allclose(x + u, expect, rtol=2e-6)
  assert int(s.count) == 1


def test_zero_gradient_is_sinkhorn_scaling_float64():
  """grad f = 0: Mirror Sinkhorn is Sinkhorn's alternating scaling of X_0;
  compared step by step with a float64 NumPy loop, and at the end X is the
  matrix scaling diag(u) X_0 diag(v) with both marginals."""
  x0 = _x0(2)
  a, b = np.asarray(A, np.float64), np.asarray(B, np.float64)
  ref = np.asarray(x0, np.float64)
  with jax.enable_x64(True):
    x = jnp.asarray(x0, jnp.float64)
    tx = optkit.mirror_sinkhorn(0.7, jnp.asarray(a), jnp.asarray(b))
    s = tx.init(x)
    step = jax.jit(lambda x, s: tx.update(jnp.zeros_like(x), s, x))
    for t in range(1, 61):
      u, s = step(x, s)
      x = x + u
      ref = ref * (a / ref.sum(1))[:, None] if t % 2 == 1 else ref * (b / ref.sum(0))[None, :]
      np.testing.assert_allclose(x, ref, rtol=1e-12)
    x = np.asarray(x)
  np.testing.assert_allclose(x.sum(1), a, atol=1e-10)
  np.testing.assert_allclose(x.sum(0), b, atol=1e-10)
  log_ratio = np.log(x) - np.log(np.asarray(x0, np.float64))
  # additive in (i, j): log u_i + log v_j, i.e. rank-2 "double centering" is zero
  centred = log_ratio - log_ratio.mean(0) - log_ratio.mean(1)[:, None] + log_ratio.mean()
  np.testing.assert_allclose(centred, 0.0, atol=1e-6)


def test_marginals_after_odd_and_even_steps_and_negative_control():
  x = _x0(3)
  rng = np.random.default_rng(4)
  tx = optkit.mirror_sinkhorn(0.5, A, B)
  s = tx.init(x)
  eg = x / x.sum() * A.sum()    # negative control: exponentiated gradient, total mass only
  for t in range(1, 9):
    g = jnp.asarray(rng.standard_normal((4, 3)), jnp.float32)
    u, s = tx.update(g, s, x)
    x = x + u
    if t % 2 == 1:
      np.testing.assert_allclose(x.sum(1), A, rtol=1e-5)
    else:
      np.testing.assert_allclose(x.sum(0), B, rtol=1e-5)
    assert bool(jnp.all(x > 0))
    eg = eg * jnp.exp(-0.5 * g)
    eg = eg / eg.sum() * A.sum()
  assert not np.allclose(eg.sum(1), A, rtol=1e-2)
  assert not np.allclose(eg.sum(0), B, rtol=1e-2)


def test_rounding_and_average_output():
  m = jnp.asarray(np.random.default_rng(5).uniform(0.0, 1.0, (4, 3)), jnp.float32)
  r = optkit.round_to_transport_polytope(m, A, B)
  np.testing.assert_allclose(r.sum(1), A, rtol=1e-5)
  np.testing.assert_allclose(r.sum(0), B, rtol=1e-5)
  assert bool(jnp.all(r >= 0))
  # the state's average is the mean of the iterates
  x = _x0(6)
  tx = optkit.mirror_sinkhorn(0.2, A, B)
  s = tx.init(x)
  its = []
  for t in range(3):
    u, s = tx.update(jnp.full((4, 3), float(t)), s, x)
    x = x + u
    its.append(x)
  np.testing.assert_allclose(s.average, sum(its) / 3, rtol=1e-5)
  out = optkit.mirror_sinkhorn_output(s)
  np.testing.assert_allclose(out.sum(1), A, rtol=1e-5)
  np.testing.assert_allclose(out.sum(0), B, rtol=1e-5)


def test_solves_a_small_linear_ot_problem():
  """f(X) = <C, X> on U(1/3, 1/3): the optimum is a permutation / 3 (Birkhoff);
  the rounded average of the iterates with eta_t = eta_0 / sqrt(t) gets close."""
  c = jnp.asarray(np.random.default_rng(7).uniform(0.0, 1.0, (3, 3)), jnp.float32)
  best = min(sum(float(c[i, p[i]]) for i in range(3)) / 3
             for p in itertools.permutations(range(3)))
  u3 = jnp.full((3,), 1.0 / 3)
  x = jnp.full((3, 3), 1.0 / 9)
  start = float(jnp.sum(c * x))
  tx = optkit.mirror_sinkhorn(optkit.mirror_sinkhorn_schedule(5.0), u3, u3)
  s = tx.init(x)
  step = jax.jit(lambda x, s: tx.update(c, s, x))
  for _ in range(400):
    u, s = step(x, s)
    x = x + u
  out = optkit.mirror_sinkhorn_output(s)
  gap = float(jnp.sum(c * out)) - best
  assert 0 <= gap + 1e-6 and gap < 0.1 * (start - best)
  assert float(jnp.sum(c * x)) - best < 0.01 * (start - best)   # last iterate too


def test_default_marginals_mask_and_fallback_leaves():
  params = {"x": _x0(8), "v": jnp.array([1.0, -2.0])}
  g = {"x": jnp.ones((4, 3)), "v": jnp.array([0.5, 0.5])}
  tx = optkit.mirror_sinkhorn(0.1)
  s = tx.init(params)
  np.testing.assert_allclose(s.a["x"], params["x"].sum(1), rtol=1e-6)
  np.testing.assert_allclose(s.b["x"], params["x"].sum(0), rtol=1e-6)
  u, s = tx.update(g, s, params)
  np.testing.assert_allclose(u["v"], -0.1 * g["v"], rtol=1e-6)        # plain step
  np.testing.assert_allclose((params["x"] + u["x"]).sum(1), s.a["x"], rtol=1e-5)
  # a leaf masked out of the polytope is a plain step too
  tx = optkit.mirror_sinkhorn(0.1, mask={"x": False, "v": False})
  u, _ = tx.update(g, tx.init(params), params)
  np.testing.assert_allclose(u["x"], -0.1 * g["x"], rtol=1e-6)


def test_bad_arguments_and_missing_params():
  with pytest.raises(ValueError, match="mirror_sinkhorn.*learning_rate"):
    optkit.mirror_sinkhorn(-0.1)
  with pytest.raises(ValueError, match="mirror_sinkhorn.*mass"):
    optkit.mirror_sinkhorn(0.1, A, B * 2)
  with pytest.raises(ValueError, match="mirror_sinkhorn.*`a`"):
    optkit.mirror_sinkhorn(0.1, -A, -A)
  tx = optkit.mirror_sinkhorn(0.1, A, B)
  with pytest.raises(ValueError, match="mirror_sinkhorn.*shape"):
    tx.init(jnp.ones((3, 3)))
  with pytest.raises(ValueError, match="mirror_sinkhorn.*2-D"):
    optkit.mirror_sinkhorn(0.1, mask=lambda p: True).init(jnp.ones(3))
  x = _x0()
  with pytest.raises(ValueError, match="mirror_sinkhorn.*params"):
    tx.update(x, tx.init(x))
