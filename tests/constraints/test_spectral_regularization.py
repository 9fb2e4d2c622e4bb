"""Spectral and Wasserstein-to-init regularization (Lewandowski et al., arXiv:2406.06811)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.constraints import spectral_regularization as sr
from tests import helpers

SHAPES = {"b": (3,), "c": (), "k": (3, 3, 2, 4), "w": (4, 3)}


def _grad_term(tx, params, steps=1):
  zeros = jax.tree.map(jnp.zeros_like, params)
  state = tx.init(params)
  update = jax.jit(tx.update)
  for _ in range(steps):
    out, state = update(zeros, state, params)
  return out, state


@pytest.mark.parametrize("power", [1.0, 2.0, 3.0])
def test_spectral_gradient_matches_jax_grad_with_exact_svd(power):
  params = helpers.random_tree(0, shapes=SHAPES)
  init = helpers.random_tree(1, shapes=SHAPES)
  tx = sr.add_spectral_regularization(strength=0.7, power=power, num_power_iters=1000)
  state = tx.init(init)        # b_0 from init, power vectors persist from init
  zeros = jax.tree.map(jnp.zeros_like, params)
  got, _ = jax.jit(tx.update)(zeros, state, params)
  want = jax.jit(jax.grad(lambda p: sr.spectral_penalty(p, 0.7, power, init)))(params)
  for k in params:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4, err_msg=k)


def test_persistent_power_iteration_converges_across_steps():
  w = {"w": helpers.random_tree(2, shapes={"w": (30, 20)})["w"]}
  tx = sr.add_spectral_regularization(strength=1.0, num_power_iters=1)
  want = jax.grad(lambda p: sr.spectral_penalty(p, 1.0, 2.0))(w)["w"]
  first, _ = _grad_term(tx, w, 1)
  late, state = _grad_term(tx, w, 200)
  np.testing.assert_allclose(late["w"], want, rtol=1e-3, atol=1e-3)
  # one iteration from a random start is not yet accurate: the state carries the work
  assert float(jnp.max(jnp.abs(first["w"] - want))) > 1e-2
  s = jnp.linalg.svd(w["w"], compute_uv=False)[0]
  np.testing.assert_allclose(state.u["w"] @ w["w"] @ state.v["w"], s, rtol=1e-4)


def test_keeps_sigma_max_near_one_where_weight_decay_shrinks_it():
  rng = np.random.default_rng(3)
  w0 = {"w": jnp.asarray(0.5 * rng.standard_normal((6, 4)), jnp.float32)}
  zero = jax.tree.map(jnp.zeros_like, w0)

  def run(tx, steps=300):
    p, s = w0, tx.init(w0)
    step = jax.jit(lambda p, s: tx.update(zero, s, p))
    for _ in range(steps):
      u, s = step(p, s)
      p = optax.apply_updates(p, u)
    return p["w"]

  w = run(optax.chain(sr.add_spectral_regularization(0.5), optax.sgd(0.02)))
  sv = np.linalg.svd(np.asarray(w), compute_uv=False)
  np.testing.assert_allclose(sv[0], 1.0, atol=1e-3)
  assert sv[-1] > 0.05            # only the top singular value is constrained
  w = run(optax.chain(optax.add_decayed_weights(0.5), optax.sgd(0.02)))
  assert np.linalg.svd(np.asarray(w), compute_uv=False)[0] < 0.5


def test_vectors_are_pulled_to_their_initial_values():
  p0 = {"b": jnp.array([1.0, -2.0])}
  tx = sr.add_spectral_regularization(strength=0.5)
  state = tx.init(p0)
  out, _ = tx.update({"b": jnp.zeros(2)}, state, {"b": jnp.array([2.0, -2.0])})
  np.testing.assert_allclose(out["b"], [1.0, 0.0])   # 2 lambda (b - b0)


def test_zero_weights_stay_finite():
  tx = sr.add_spectral_regularization(1.0)
  w = {"w": jnp.zeros((3, 2))}
  out, state = _grad_term(tx, w, 3)
  assert bool(jnp.all(jnp.isfinite(out["w"])))
  np.testing.assert_allclose(jnp.linalg.norm(state.v["w"]), 1.0, rtol=1e-5)


def test_wasserstein_gradient_matches_jax_grad_and_is_zero_at_init():
  init = helpers.random_tree(4, shapes=SHAPES)
  params = helpers.random_tree(5, shapes=SHAPES)
  tx = sr.add_wasserstein_init_regularization(strength=0.3)
  state = tx.init(init)
  zeros = jax.tree.map(jnp.zeros_like, params)
  got, _ = tx.update(zeros, state, params)
  want = jax.jit(jax.grad(lambda p: sr.wasserstein_init_penalty(p, init, 0.3)))(params)
  for k in params:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)
  at_init, _ = tx.update(zeros, state, init)
  assert all(float(jnp.max(jnp.abs(x))) == 0.0 for x in jax.tree.leaves(at_init))


def test_wasserstein_allows_permutations_where_l2_init_does_not():
  init = {"w": jnp.arange(6.0).reshape(2, 3)}
  perm = {"w": init["w"].ravel()[::-1].reshape(2, 3)}
  tx = sr.add_wasserstein_init_regularization(1.0)
  out, _ = tx.update({"w": jnp.zeros((2, 3))}, tx.init(init), perm)
  np.testing.assert_array_equal(out["w"], 0.0)
  # negative control: L2-to-init (the spectral variant's vector rule) pulls back
  l2 = 2.0 * (perm["w"] - init["w"])
  assert float(jnp.max(jnp.abs(l2))) > 1.0


def test_bad_hyperparameters_and_missing_params_raise():
  with pytest.raises(ValueError, match="add_spectral_regularization"):
    sr.add_spectral_regularization(strength=-1.0)
  with pytest.raises(ValueError, match="add_spectral_regularization"):
    sr.add_spectral_regularization(power=0.0)
  with pytest.raises(ValueError, match="add_spectral_regularization"):
    sr.add_spectral_regularization(num_power_iters=0)
  with pytest.raises(ValueError, match="add_wasserstein_init_regularization"):
    sr.add_wasserstein_init_regularization(strength=-1.0)
  for tx in (sr.add_spectral_regularization(), sr.add_wasserstein_init_regularization()):
    with pytest.raises(ValueError, match="add_"):
      tx.update(jnp.ones(3), tx.init(jnp.ones(3)), None)
