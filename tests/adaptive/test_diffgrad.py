"""What makes diffGrad diffGrad (arXiv:1909.11015); the contract suite covers the rest."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.adaptive import diffgrad, scale_by_diffgrad
from tests import helpers
from tests.adaptive import _adaptive2_reference as ref

_sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))


def _numpy_diffgrad(grads, b1, b2, eps, placement):
  """float64 re-derivation of Sec. III (both eps placements)."""
  m = v = g_prev = 0.0
  out = []
  for t, g in enumerate(grads, start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    xi = _sigmoid(np.abs(g_prev - g))
    if placement == "raw":
      out.append(np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * xi * m / (np.sqrt(v) + eps))
    else:
      out.append(xi * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps))
    g_prev = g
  return out


# ---------------------------------------------------------------- hand-computed steps


def test_first_two_steps_by_hand():
  b1, b2, eps = 0.9, 0.99, 1e-3
  g1, g2 = np.array([2.0, -1.0, 0.0, 0.3]), np.array([2.0, 1.0, -4.0, 0.1])
  tx = scale_by_diffgrad(b1, b2, eps)
  s = tx.init(jnp.zeros(4))
  u1, s = tx.update(jnp.asarray(g1, jnp.float32), s)
  m1, v1 = (1 - b1) * g1, (1 - b2) * g1 ** 2
  np.testing.assert_allclose(
      u1, np.sqrt(1 - b2) / (1 - b1) * _sigmoid(np.abs(g1)) * m1 / (np.sqrt(v1) + eps), rtol=1e-5)
  np.testing.assert_allclose(s.prev_grad, g1)
  u2, s = tx.update(jnp.asarray(g2, jnp.float32), s)
  m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2 ** 2
  xi2 = _sigmoid(np.abs(g1 - g2))  # [0.5, sigmoid(2), sigmoid(4), sigmoid(0.2)]
  np.testing.assert_allclose(
      u2, np.sqrt(1 - b2 ** 2) / (1 - b1 ** 2) * xi2 * m2 / (np.sqrt(v2) + eps), rtol=1e-5)


@pytest.mark.parametrize("placement", ["raw", "adam"])
def test_matches_float64_numpy_rederivation(placement):
  rng = np.random.default_rng(4)
  grads = [rng.standard_normal(6) * (1 + 3 * (t % 3 == 0)) for t in range(25)]
  expected = _numpy_diffgrad(grads, 0.8, 0.95, 1e-2, placement)
  tx = scale_by_diffgrad(0.8, 0.95, 1e-2, eps_placement=placement)
  outs = helpers.run_open_loop(tx, jnp.zeros(6), [jnp.asarray(g, jnp.float32) for g in grads])
  for (u, _), e in zip(outs, expected):
    np.testing.assert_allclose(u, e, rtol=2e-5, atol=1e-7)


def test_eps_placements_differ_and_agree_for_zero_eps():
  grads = helpers.gradient_sequence(5, seed=3, decay=3.0)
  run = lambda **kw: helpers.run_open_loop(scale_by_diffgrad(eps=0.1, **kw), helpers.random_tree(0),
                                           grads)
  raw, adam = run(eps_placement="raw")[-1][0], run(eps_placement="adam")[-1][0]
  assert not np.allclose(raw["a"], adam["a"], rtol=1e-3)
  run0 = lambda **kw: helpers.run_open_loop(scale_by_diffgrad(eps=0.0, **kw),
                                            helpers.random_tree(0), grads)
  for a, b in zip(jax.tree.leaves(run0(eps_placement="raw")[-1][0]),
                  jax.tree.leaves(run0(eps_placement="adam")[-1][0])):
    np.testing.assert_allclose(a, b, rtol=1e-5)


# ---------------------------------------------------------------- the friction (catalog test 2)


def test_constant_gradient_halves_adam_from_step_two():
  """Catalog test 2: with a constant gradient Adam's bias-corrected step is
  exactly sign(g) (m_t = (1 - b1^t) g, v_t = (1 - b2^t) g^2, eps = 0), and
  xi = sigmoid(0) = 0.5 from step 2 on, so diffGrad's update is 0.5 sign(g)
  (half of Adam's); at step 1 it is sigmoid(|g|) sign(g) (g_0 = 0).
  Negative control: with changing gradients the ratio to Adam lies strictly
  between 0.5 and 1 and is not 0.5."""
  g = helpers.random_tree(5, scale=2.0)
  params = helpers.random_tree(0)
  mine = helpers.run_open_loop(scale_by_diffgrad(eps=0.0), params, [g] * 8)
  for a, b in zip(jax.tree.leaves(mine[0][0]), jax.tree.leaves(g)):
    np.testing.assert_allclose(a, _sigmoid(np.abs(b)) * np.sign(b), rtol=1e-5)
  for t in range(1, 8):
    for a, b in zip(jax.tree.leaves(mine[t][0]), jax.tree.leaves(g)):
      np.testing.assert_allclose(a, 0.5 * np.sign(b), rtol=1e-5)
  grads = helpers.gradient_sequence(8, seed=6)
  mine = helpers.run_open_loop(scale_by_diffgrad(eps=0.0), params, grads)
  adam = helpers.run_open_loop(optax.scale_by_adam(eps=0.0), params, grads)
  for t in range(1, 8):
    ratio = np.asarray(mine[t][0]["a"]) / np.asarray(adam[t][0]["a"])
    assert np.all(ratio > 0.5) and np.all(ratio < 1.0)
    assert not np.allclose(ratio, 0.5, atol=1e-2)


# ---------------------------------------------------------------- pytorch_optimizer fixture


def _make(hp):
  return diffgrad(hp["lr"], b1=hp.get("b1", 0.9), b2=hp.get("b2", 0.999),
                  weight_decay=hp.get("weight_decay", 0.0), eps_root=1e-15)


@pytest.mark.parametrize("prefix", ref.PROBLEMS)
@pytest.mark.parametrize("config,atol", [
    ("diffgrad_default", 1e-6), ("diffgrad", 1e-5), ("diffgrad_wd", 2e-6)])
def test_reproduces_pytorch_optimizer(config, atol, prefix):
  """pytorch_optimizer 4.1.0 DiffGrad (rectify=False, float32), 20-30 steps,
  every step, params O(1): the defaults (lr 1e-3) to 1e-6 (catalog test 1);
  lr 0.05 with b2 = 0.999 to 1e-5 (largest seen 5.6e-6: optkit forms
  1 - b2^t from the float32 b2, 1.3e-5 relative off, torch in float64);
  b2 = 0.99 with decoupled decay to 2e-6 (largest seen 2.4e-6 -> 1e-6 rtol)."""
  data = ref.load("diffgrad")
  ref.replay(data, prefix, config, _make(ref.hparams(data, config)), rtol=1e-6, atol=atol)


def test_fixture_distinguishes_diffgrad_from_adam():
  """Negative control for the fixture: Adam (efficient eps form) with the same
  hyperparameters drifts far from the DiffGrad trajectory."""
  data = ref.load("diffgrad")
  hp = ref.hparams(data, "diffgrad")
  adam_eff = optax.chain(optax.scale_by_adam(eps=0.0), optax.scale_by_learning_rate(hp["lr"]))
  assert ref.replay(data, "quadratic", "diffgrad", adam_eff) > 1e-2


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs,match", [
    ({"learning_rate": -1.0}, "diffgrad: `learning_rate`"),
    ({"learning_rate": 1e-3, "b1": 1.0}, "diffgrad: `b1`"),
    ({"learning_rate": 1e-3, "b2": -0.5}, "diffgrad: `b2`"),
    ({"learning_rate": 1e-3, "eps": -1e-8}, "diffgrad: `eps`"),
    ({"learning_rate": 1e-3, "weight_decay": -1.0}, "diffgrad: `weight_decay`"),
    ({"learning_rate": 1e-3, "eps_placement": "inside"}, "diffgrad: `eps_placement`"),
])
def test_bad_hyperparameters_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    diffgrad(**kwargs)


def test_mismatched_tree_raises():
  tx = scale_by_diffgrad()
  state = tx.init({"a": jnp.zeros(2), "b": jnp.zeros(3)})
  with pytest.raises(ValueError, match="diffgrad"):
    tx.update({"a": jnp.zeros(2)}, state)
