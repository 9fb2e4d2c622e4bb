"""What makes the compositional moving-average estimator itself (arXiv:2306.07485).

Problem from the paper's setting: maximum likelihood of a 1-D unnormalized
Gaussian energy model E(x) = a x^2 + b x with the log-partition estimated by
importance sampling from a noise distribution q = N(0, 2^2). Exact answers:
log Z = (1/2) log(pi / a) + b^2 / (4a); the MLE is a = 1 / (2 var), b = -mean / var.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.momentum import compositional_moving_average

SQ = 2.0


def _energy(p, x):
  return jnp.exp(p["log_a"]) * x ** 2 + p["b"] * x


def _log_q(x):
  return -0.5 * (x / SQ) ** 2 - jnp.log(SQ * jnp.sqrt(2 * jnp.pi))


def _log_z_hat(p, noise):
  """log of the importance-sampling estimate mean_j exp(-E(x'_j)) / q(x'_j)."""
  return jax.nn.logsumexp(-_energy(p, noise) - _log_q(noise)) - jnp.log(noise.shape[0])


def _log_z(p):
  a = jnp.exp(p["log_a"])
  return 0.5 * jnp.log(jnp.pi / a) + p["b"] ** 2 / (4 * a)


def _data():
  return jnp.asarray(1.0 + 0.5 * np.random.default_rng(0).standard_normal(1000), jnp.float32)


def _mle(data):
  m, v = float(jnp.mean(data)), float(jnp.var(data))
  return {"log_a": np.log(1 / (2 * v)), "b": -m / v}


def test_gamma_one_is_the_plug_in_gradient():
  p = {"log_a": jnp.array(0.3), "b": jnp.array(-1.0)}
  noise = SQ * jax.random.normal(jax.random.key(0), (8,))
  plug_in = jax.grad(lambda p: _log_z_hat(p, noise))(p)
  est = compositional_moving_average(_log_z_hat, lambda l: l, 1.0, log_domain=True)
  state = est.init(p, noise)
  state = est.update(p, state, SQ * jax.random.normal(jax.random.key(1), (8,)))[1]
  g, _ = est.update(p, state, noise)  # gamma = 1: u is this step's value only
  chex.assert_trees_all_close(g, plug_in, rtol=1e-6)
  # Linear domain: inner g = Z-hat, outer log.
  lin = compositional_moving_average(lambda p, n: jnp.exp(_log_z_hat(p, n)), jnp.log, 1.0)
  g_lin, _ = lin.update(p, lin.init(p, noise), noise)
  chex.assert_trees_all_close(g_lin, plug_in, rtol=1e-5)


def test_log_domain_equals_linear_domain():
  p = {"log_a": jnp.array(0.3), "b": jnp.array(-1.0)}
  keys = jax.random.split(jax.random.key(2), 5)
  log_est = compositional_moving_average(_log_z_hat, lambda l: l, 0.3, log_domain=True)
  lin_est = compositional_moving_average(lambda p, n: jnp.exp(_log_z_hat(p, n)), jnp.log, 0.3)
  s_log = log_est.init(p, jnp.zeros(8))
  s_lin = lin_est.init(p, jnp.zeros(8))
  log_update, lin_update = jax.jit(log_est.update), jax.jit(lin_est.update)
  z_and_grad = jax.jit(jax.value_and_grad(lambda p, n: jnp.exp(_log_z_hat(p, n))))
  u = None
  for k in keys:
    noise = SQ * jax.random.normal(k, (8,))
    z, grad_z = z_and_grad(p, noise)
    u = float(z) if u is None else 0.7 * u + 0.3 * float(z)  # hand-computed average
    g_log, s_log = log_update(p, s_log, noise)
    g_lin, s_lin = lin_update(p, s_lin, noise)
    chex.assert_trees_all_close(g_log, g_lin, rtol=1e-5)
    np.testing.assert_allclose(jnp.exp(s_log.u), u, rtol=1e-5)
    np.testing.assert_allclose(s_lin.u, u, rtol=1e-5)
    # G = (1/u) grad Z-hat: the moving average, not this step's value, divides.
    chex.assert_trees_all_close(g_lin, jax.tree.map(lambda a: a / u, grad_z), rtol=1e-5)


def test_tracks_the_log_partition_function():
  """At fixed theta, log u converges to the true log Z; the plug-in estimate
  (gamma = 1, 2 noise samples) is biased low by Jensen's inequality."""
  p = {"log_a": jnp.array(np.log(2.0), jnp.float32), "b": jnp.array(-4.0)}

  @jax.jit
  def run(gamma):
    est = compositional_moving_average(_log_z_hat, lambda l: l, gamma, log_domain=True)

    def step(s, key):
      s = est.update(p, s, SQ * jax.random.normal(key, (2,)))[1]
      return s, s.u

    keys = jax.random.split(jax.random.key(1), 3000)
    return jax.lax.scan(step, est.init(p, jnp.zeros(2)), keys)[1]

  true = float(_log_z(p))
  assert abs(float(jnp.mean(run(0.02)[1000:])) - true) < 0.1
  assert float(jnp.mean(run(1.0)[1000:])) < true - 1.0


def test_learns_the_maximum_likelihood_energy_model():
  data = _data()
  mle = _mle(data)

  @jax.jit
  def train(gamma):
    est = compositional_moving_average(_log_z_hat, lambda l: l, gamma, log_domain=True)
    opt = optax.adam(optax.cosine_decay_schedule(0.05, 4000))
    p = {"log_a": jnp.array(0.0), "b": jnp.array(0.0)}

    def step(carry, key):
      p, s, o = carry
      k1, k2 = jax.random.split(key)
      g_z, s = est.update(p, s, SQ * jax.random.normal(k1, (16,)))
      batch = jax.random.choice(k2, data, (32,))
      g_data = jax.grad(lambda p: jnp.mean(_energy(p, batch)))(p)
      u, o = opt.update(jax.tree.map(jnp.add, g_data, g_z), o, p)
      return (optax.apply_updates(p, u), s, o), None

    carry = (p, est.init(p, jnp.zeros(16)), opt.init(p))
    return jax.lax.scan(step, carry, jax.random.split(jax.random.key(0), 4000))[0][0]

  p = train(0.05)
  np.testing.assert_allclose(p["log_a"], mle["log_a"], atol=0.05)
  np.testing.assert_allclose(p["b"], mle["b"], atol=0.05)
  # Negative control: the plug-in gradient (gamma = 1) converges elsewhere.
  p_plug = train(1.0)
  assert abs(float(p_plug["b"]) - mle["b"]) > 0.3


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="compositional_moving_average.*gamma"):
    compositional_moving_average(_log_z_hat, jnp.log, 0.0)
  with pytest.raises(ValueError, match="compositional_moving_average.*gamma"):
    compositional_moving_average(_log_z_hat, jnp.log, 1.5)
  est = compositional_moving_average(lambda p, n: p * n, lambda u: jnp.sum(u), 0.5)
  state = est.init(jnp.array(1.0), jnp.zeros(3))
  with pytest.raises(ValueError, match="compositional_moving_average.*shape"):
    est.update(jnp.array(1.0), state, jnp.zeros(4))
