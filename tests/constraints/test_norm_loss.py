"""Norm loss (Georgiou et al., arXiv:2103.06583; Ranger21's norm-loss term)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.constraints import norm_loss as nl
from tests import helpers

SHAPES = {"b": (3,), "c": (), "k": (3, 3, 2, 4), "w": (4, 3), "t": (2, 3, 5)}


@pytest.mark.parametrize("layout", ["torch", "flax"])
def test_gradient_equals_jax_grad_of_the_norm_loss(layout):
  params = helpers.random_tree(0, shapes=SHAPES)
  tx = nl.add_norm_loss(strength=0.3, eps=0.0, layout=layout)
  zeros = jax.tree.map(jnp.zeros_like, params)
  got, _ = tx.update(zeros, tx.init(params), params)
  want = jax.jit(jax.grad(lambda p: nl.norm_loss(p, 0.3, layout)))(params)
  for k in params:
    np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_unit_axes_follow_the_reference_layout():
  # torch (pytorch_optimizer's unit_norm): whole leaf for <= 1-D, axis 1 for 2-D/3-D,
  # all axes but 0 for >= 4-D; flax: all axes but the last.
  x = jnp.ones((2, 3, 4, 5))
  assert nl.unit_norms(x, "torch").shape == (2, 1, 1, 1)
  assert nl.unit_norms(x, "flax").shape == (1, 1, 1, 5)
  assert nl.unit_norms(jnp.ones((2, 3, 4)), "torch").shape == (2, 1, 4)
  assert nl.unit_norms(jnp.ones(3), "torch").shape == (1,)
  assert nl.unit_norms(jnp.ones(()), "flax").shape == ()


def test_zero_when_every_unit_has_unit_norm_and_adds_to_the_gradient():
  w = jnp.asarray(np.linalg.qr(np.random.default_rng(0).standard_normal((4, 4)))[0], jnp.float32)
  g = jnp.arange(16.0).reshape(4, 4)
  tx = nl.add_norm_loss(strength=1.0)
  out, _ = tx.update(g, tx.init(w), w)
  np.testing.assert_allclose(out, g, atol=1e-5)
  # negative control: plain L2 weight decay does not vanish on unit-norm rows
  wd, _ = optax.add_decayed_weights(1.0).update(g, None, w)
  assert float(jnp.max(jnp.abs(wd - g))) > 0.1


def test_drives_unit_norms_to_one_where_weight_decay_drives_them_to_zero():
  w0 = {"w": 3.0 * helpers.random_tree(1, shapes={"w": (5, 4)})["w"]}
  zero_grads = jax.tree.map(jnp.zeros_like, w0)

  def run(tx, steps=300):
    p, s = w0, tx.init(w0)
    update = jax.jit(tx.update)
    for _ in range(steps):
      u, s = update(zero_grads, s, p)
      p = optax.apply_updates(p, u)
    return p

  p = run(optax.chain(nl.add_norm_loss(0.5), optax.sgd(0.1)))
  np.testing.assert_allclose(nl.unit_norms(p["w"]), 1.0, atol=1e-4)
  q = run(optax.chain(optax.add_decayed_weights(0.5), optax.sgd(0.1)))
  assert float(jnp.max(nl.unit_norms(q["w"]))) < 0.1


def test_matches_ranger21_multiplicative_step():
  """Ranger21: w <- w (1 - lr 2 lambda (1 - 1/(||w_i|| + eps))); equal to adding the
  term and scaling by lr (float32, rtol 1e-6)."""
  params = helpers.random_tree(3, shapes=SHAPES)
  lr, lam, eps = 0.1, 1e-2, 1e-8
  tx = optax.chain(nl.add_norm_loss(lam, eps), optax.sgd(lr))
  u, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  new = optax.apply_updates(params, u)
  for k, w in params.items():
    corr = 2.0 * lam * (1.0 - 1.0 / (nl.unit_norms(w) + eps))
    np.testing.assert_allclose(new[k], w * (1.0 - lr * corr), rtol=1e-6, atol=1e-7)


def test_zero_rows_are_finite_and_bf16_keeps_dtype():
  w = jnp.zeros((3, 2), jnp.bfloat16)
  tx = nl.add_norm_loss(1.0)
  out, _ = tx.update(jnp.ones_like(w), tx.init(w), w)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(out, np.float32), 1.0)
  out, _ = nl.add_norm_loss(1.0, eps=0.0).update(jnp.ones((3, 2)), None, jnp.zeros((3, 2)))
  assert bool(jnp.all(jnp.isfinite(out)))


def test_bad_hyperparameters_and_missing_params_raise():
  with pytest.raises(ValueError, match="add_norm_loss"):
    nl.add_norm_loss(strength=-1.0)
  with pytest.raises(ValueError, match="add_norm_loss"):
    nl.add_norm_loss(layout="jax")
  tx = nl.add_norm_loss()
  with pytest.raises(ValueError, match="add_norm_loss"):
    tx.update(jnp.ones(3), tx.init(jnp.ones(3)), None)


def test_matches_pytorch_optimizer_ranger21_fixture():
  """pytorch_optimizer 4.1.0 Ranger21 norm-loss step with its own unit_norm, float64:
  chain(add_norm_loss, sgd(lr)) gives the same new params to rtol 1e-12."""
  data = np.load(helpers.fixture("constraints_norm_loss.npz"))
  lr, lam, eps = float(data["lr"]), float(data["lam"]), float(data["eps"])
  with jax.enable_x64(True):
    params = {k: jnp.asarray(data[f"{k}_p"]) for k in ("s", "v", "m", "t", "k")}
    tx = optax.chain(nl.add_norm_loss(lam, eps), optax.sgd(lr))
    u, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    new = optax.apply_updates(params, u)
    for k in params:
      np.testing.assert_allclose(new[k], data[f"{k}_new"], rtol=1e-12, atol=1e-14, err_msg=k)
    # negative control: the Flax layout normalizes other axes and disagrees
    tx = optax.chain(nl.add_norm_loss(lam, eps, layout="flax"), optax.sgd(lr))
    u, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    assert np.max(np.abs(optax.apply_updates(params, u)["k"] - data["k_new"])) > 1e-4
