"""FZooS (tier C): the GP surrogate gradient and the federated driver."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optkit.zeroth_order.fzoos import fzoos, gp_surrogate_zo_gradient

A = jnp.asarray([[2.0, 0.5], [0.5, 1.0]])


def quad(x):
  return 0.5 * x @ A @ x


def test_surrogate_gradient_of_a_2d_quadratic_within_5_percent():
  x = jnp.asarray([0.3, -0.4])
  xs = x + 0.3 * jax.random.normal(jax.random.key(0), (60, 2))
  ys = jax.vmap(quad)(xs)
  g = gp_surrogate_zo_gradient(x, xs, ys, lengthscale=1.0, noise=1e-5)
  true = A @ x
  assert float(jnp.linalg.norm(g - true)) <= 0.05 * float(jnp.linalg.norm(true)), (g, true)
  # Empty slots are ignored; negative control: too few queries are far off.
  pad = jnp.concatenate([xs, jnp.full((5, 2), 9.0)])
  g_pad = gp_surrogate_zo_gradient(x, pad, jnp.concatenate([ys, jnp.full((5,), 1e3)]),
                                   lengthscale=1.0, noise=1e-5,
                                   valid=jnp.arange(65) < 60)
  np.testing.assert_allclose(g_pad, g, rtol=1e-3, atol=1e-4)
  g_few = gp_surrogate_zo_gradient(x, xs[:1], ys[:1], lengthscale=1.0, noise=1e-5)
  assert float(jnp.linalg.norm(g_few - true)) > 0.05 * float(jnp.linalg.norm(true))


def _run(solver, x, rounds):
  state = solver.init(x)
  step = jax.jit(solver.step)
  for _ in range(rounds):
    x, state = step(x, state)
  return x


def test_one_client_reduces_to_gp_surrogate_descent():
  x0 = jnp.asarray([1.5, -1.0])
  a = _run(fzoos([quad], 0.3, correction=True), x0, 4)
  b = _run(fzoos([quad], 0.3, correction=False), x0, 4)
  np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)   # c_i = 0 for one client
  assert float(quad(a)) < 0.05 * float(quad(x0))


def test_two_clients_reach_the_minimizer_of_the_average():
  fs = [lambda x: jnp.sum((x - 1.0) ** 2), lambda x: 2.0 * jnp.sum((x + 1.0) ** 2)]
  x = _run(fzoos(fs, 0.1, local_steps=3), jnp.asarray([2.0, -1.5]), 12)
  np.testing.assert_allclose(x, -1.0 / 3.0 * jnp.ones(2), atol=0.1)


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="fzoos"):
    fzoos([], 0.1)
  with pytest.raises(ValueError, match="fzoos"):
    fzoos([quad], 0.1, lengthscale=0.0)
