"""What makes XGrad itself (arXiv:2305.18240); the contract suite covers the rest."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.momentum import xgrad, xgrad_eval_params
from tests import helpers

_CURV = np.array([1.0, 4.0, 0.5, 2.0])
_CENTER = np.array([0.5, -1.0, 2.0, 0.0])
_X0 = np.array([3.0, 2.0, -1.0, 4.0])


def _grad_np(w):
  return _CURV * (w - _CENTER)


def _loss(p):
  a = p["a"]
  return 0.5 * jnp.sum(jnp.asarray(_CURV, a.dtype) * (a - jnp.asarray(_CENTER, a.dtype)) ** 2)


def _run(tx, steps, dtype=jnp.float32):
  """Closed loop: the gradient is taken at the visible (predicted) params."""
  return helpers.run_closed_loop(tx, _loss, {"a": jnp.asarray(_X0, dtype)}, steps)


def test_hand_computed_first_step():
  """theta_1 = theta_0 - lr g_0 (SGD inner); visible = theta_1 - s lr g_0."""
  lr, s = 0.1, 2.0
  opt = xgrad(optax.identity(), lr, steps_ahead=s)
  p = jnp.array([1.0, -2.0])
  g = jnp.array([0.5, 1.5])
  u, state = opt.update(g, opt.init(p), p)
  np.testing.assert_allclose(xgrad_eval_params(state), [0.95, -2.15], rtol=1e-6)
  np.testing.assert_allclose(u, [-0.15, -0.45], rtol=1e-6)


@pytest.mark.parametrize("inner", [optax.scale_by_adam(), optax.trace(0.9),
                                   optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(0.1))],
                         ids=["adam", "sgdm", "adamw"])
def test_zero_steps_ahead_is_the_inner_optimizer(inner):
  """Test (1): s = 0 reproduces chain(inner, scale_by_learning_rate) (to 1 float32
  ulp: XLA fuses the two jitted graphs differently)."""
  mine = _run(xgrad(inner, 0.05, steps_ahead=0.0), 15)
  ref = _run(optax.chain(inner, optax.scale_by_learning_rate(0.05)), 15)
  for (p, s, _), (pr, _, _) in zip(mine, ref):
    chex.assert_trees_all_close(p, pr, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(xgrad_eval_params(s), pr, rtol=1e-6, atol=1e-7)


def test_sgd_inner_one_step_ahead():
  """Test (2): with SGD and s = 1 the visible params are one SGD step ahead of theta."""
  lr = 0.05
  outs = _run(xgrad(optax.identity(), lr, steps_ahead=1.0), 10)
  for params, state, g in outs:
    theta = xgrad_eval_params(state)["a"]
    np.testing.assert_allclose(params["a"], theta - lr * np.asarray(g["a"]), rtol=1e-6, atol=1e-6)


def test_adam_trajectory_matches_numpy_float64_and_differs_from_adam():
  """Defining property: Adam's gradients are taken at theta - s lr m-hat / (sqrt(v-hat) + eps)
  from the latest state. Float64 re-derivation; negative control: plain Adam."""
  lr, b1, b2, eps, s = 0.05, 0.9, 0.999, 1e-8, 2.0
  with jax.enable_x64(True):
    outs = _run(xgrad(optax.scale_by_adam(b1, b2, eps), lr, steps_ahead=s), 25, jnp.float64)
    plain = _run(optax.adam(lr, b1, b2, eps), 25, jnp.float64)
  theta, visible = _X0.copy(), _X0.copy()
  m, v = np.zeros(4), np.zeros(4)
  for t, (params, state, _) in enumerate(outs, start=1):
    g = _grad_np(visible)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    d = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    theta = theta - lr * d
    visible = theta - s * lr * d
    np.testing.assert_allclose(xgrad_eval_params(state)["a"], theta, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(params["a"], visible, rtol=1e-12, atol=1e-12)
  gap = np.abs(np.asarray(plain[-1][0]["a"]) - theta).max()
  assert gap > 1e-3, gap


def test_prediction_does_not_advance_the_inner_state():
  outs = _run(xgrad(optax.scale_by_adam(), 0.05), 7)
  inner = outs[-1][1].inner_state
  assert int(optax.tree.get(inner, "count")) == 7


def test_prediction_uses_the_next_steps_learning_rate():
  sched = lambda t: 0.1 / (1.0 + t)
  outs = _run(xgrad(optax.identity(), sched), 5)
  for t, (params, state, g) in enumerate(outs):
    theta = xgrad_eval_params(state)["a"]
    np.testing.assert_allclose(params["a"], theta - sched(t + 1) * np.asarray(g["a"]),
                               rtol=1e-6, atol=1e-6)


def test_eval_params_inside_a_chain_and_errors():
  tx = optax.chain(optax.clip_by_global_norm(1.0), xgrad(optax.identity(), 0.1))
  p = {"a": jnp.ones(2)}
  state = tx.init(p)
  np.testing.assert_allclose(xgrad_eval_params(state)["a"], [1.0, 1.0])
  with pytest.raises(ValueError, match="xgrad_eval_params"):
    xgrad_eval_params((state, state))


@pytest.mark.parametrize("kwargs", [{"learning_rate": -0.1}, {"learning_rate": 0.1, "steps_ahead": -1.0}])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="xgrad"):
    xgrad(optax.identity(), **kwargs)
  with pytest.raises(TypeError, match="xgrad"):
    xgrad("adam", 0.1)


def test_params_are_required():
  tx = xgrad(optax.identity(), 0.1)
  w = jnp.ones(3)
  with pytest.raises(ValueError, match="xgrad"):
    tx.update(w, tx.init(w))
