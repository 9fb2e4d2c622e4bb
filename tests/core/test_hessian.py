"""optkit.core.hessian: HVPs and Hutchinson diagonal estimates."""

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from optkit.core import hessian


def _mlp_loss(params):
  x = jnp.linspace(-1.0, 1.0, 12).reshape(6, 2)
  y = jnp.sin(3 * x[:, :1])
  h = jnp.tanh(x @ params["w1"] + params["b1"])
  return jnp.mean((h @ params["w2"] - y) ** 2)


def _mlp_params():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  return {"w1": jax.random.normal(k1, (2, 5)), "b1": 0.1 * jax.random.normal(k2, (5,)),
          "w2": jax.random.normal(k3, (5, 1))}


def test_hvp_matches_dense_hessian():
  params = _mlp_params()
  flat, unravel = jax.flatten_util.ravel_pytree(params)
  dense = jax.hessian(lambda f: _mlp_loss(unravel(f)))(flat)
  v = jax.random.normal(jax.random.key(1), flat.shape)
  ours, _ = jax.flatten_util.ravel_pytree(hessian.hvp(_mlp_loss, params, unravel(v)))
  np.testing.assert_allclose(ours, dense @ v, rtol=1e-4, atol=1e-5)
  g, hv = hessian.grad_and_hvp(_mlp_loss, params, unravel(v))
  np.testing.assert_allclose(jax.flatten_util.ravel_pytree(hv)[0], dense @ v, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(jax.flatten_util.ravel_pytree(g)[0],
                             jax.grad(lambda f: _mlp_loss(unravel(f)))(flat), rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hutchinson_exact_on_diagonal_hessian_for_any_probe(seed):
  a = {"x": jnp.array([1.0, -2.0, 3.0]), "y": jnp.array([[0.5, 4.0]])}
  f = lambda p: 0.5 * (jnp.sum(a["x"] * p["x"] ** 2) + jnp.sum(a["y"] * p["y"] ** 2))
  p = {"x": jnp.ones(3), "y": jnp.ones((1, 2))}
  est = hessian.hutchinson_diag(f, p, jax.random.key(seed), num_samples=2)
  for k in a:
    np.testing.assert_allclose(est[k], a[k], rtol=1e-6)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_unbiased_on_mlp(distribution):
  params = _mlp_params()
  exact = jax.flatten_util.ravel_pytree(hessian.exact_diag(_mlp_loss, params))[0]
  n = 4000
  est = hessian.hutchinson_diag(_mlp_loss, params, jax.random.key(3), num_samples=n,
                                distribution=distribution)
  est = jax.flatten_util.ravel_pytree(est)[0]
  err = np.linalg.norm(est - exact) / np.linalg.norm(exact)
  assert err < 0.15, err
  # Negative control: a single probe is far off (the off-diagonal terms leak in).
  one = jax.flatten_util.ravel_pytree(
      hessian.hutchinson_diag(_mlp_loss, params, jax.random.key(3), num_samples=1,
                              distribution=distribution))[0]
  assert np.linalg.norm(one - exact) / np.linalg.norm(exact) > 2 * err


def test_hutchinson_is_deterministic_given_key_and_rejects_bad_args():
  params = _mlp_params()
  a = hessian.hutchinson_diag(_mlp_loss, params, jax.random.key(5))
  b = hessian.hutchinson_diag(_mlp_loss, params, jax.random.key(5))
  jax.tree.map(np.testing.assert_array_equal, a, b)
  with pytest.raises(ValueError, match="distribution"):
    hessian.hutchinson_diag(_mlp_loss, params, jax.random.key(5), distribution="uniform")
  with pytest.raises(ValueError, match="num_samples"):
    hessian.hutchinson_diag(_mlp_loss, params, jax.random.key(5), num_samples=0)
