"""What makes optimistic AMSGrad itself (arXiv:1903.01435); the contract suite
covers the rest. No public reference implementation was found: the steps are
checked against float64 NumPy derivations of Algorithm 1 (rtol 1e-5) and the
reduction to AMSGrad (rtol 1e-5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.adaptive import (
    amsgrad,
    optimistic_amsgrad,
    optimistic_amsgrad_eval_params,
    rmpe_extrapolate,
)


def _numpy_opt_amsgrad(grads_fn, w0, steps, lr_fn, b1, b2, eps, h_momentum="previous"):
  """Algorithm 1 in float64, gradients taken at the visible iterate."""
  w = np.asarray(w0, np.float64)
  w_half = w.copy()
  theta = v = v_hat = np.zeros_like(w)
  visible, halves = [], []
  for t in range(1, steps + 1):
    g = grads_fn(w)
    theta_prev = theta
    theta = b1 * theta + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    v_hat = np.maximum(v_hat, v)
    w_half = w_half - lr_fn(t - 1) * theta / (np.sqrt(v_hat) + eps)
    h = b1 * (theta_prev if h_momentum == "previous" else theta) + (1 - b1) * g
    w = w_half - lr_fn(t) * h / (np.sqrt(v_hat) + eps)
    visible.append(w)
    halves.append(w_half)
  return visible, halves


A = np.array([1.0, 10.0, 0.1])
_loss = lambda p: 0.5 * jnp.sum(jnp.asarray(A, jnp.float32) * (p - 1.0) ** 2)
_grad_np = lambda w: A * (w - 1.0)


def _run(tx, w0, steps, loss=_loss):
  p = jnp.asarray(w0, jnp.float32)
  s = tx.init(p)

  @jax.jit
  def step(p, s):
    u, s = tx.update(jax.grad(loss)(p), s, p)
    return optax.apply_updates(p, u), s

  visible, halves = [], []
  for _ in range(steps):
    p, s = step(p, s)
    visible.append(np.asarray(p))
    halves.append(np.asarray(optimistic_amsgrad_eval_params(s))
                  if isinstance(s, tuple) and hasattr(s, "w_half") else None)
  return visible, halves


@pytest.mark.parametrize("h_momentum", ["previous", "current"])
def test_matches_float64_derivation_with_schedule(h_momentum):
  """Hand-derived Algorithm 1 (eta_t at count, eta_{t+1} at count + 1)."""
  lr_fn = lambda c: 0.1 / (1.0 + c)
  w0 = np.array([3.0, -2.0, 0.5])
  b1, b2, eps = 0.7, 0.9, 1e-3
  expected, exp_halves = _numpy_opt_amsgrad(_grad_np, w0, 12, lr_fn, b1, b2, eps, h_momentum)
  tx = optimistic_amsgrad(lambda c: 0.1 / (1.0 + c), b1, b2, eps, h_momentum=h_momentum)
  visible, halves = _run(tx, w0, 12)
  for v, e, hh, eh in zip(visible, expected, halves, exp_halves):
    np.testing.assert_allclose(v, e, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hh, eh, rtol=1e-5, atol=1e-6)


def test_hand_computed_first_step():
  """t = 1: theta_1 = (1 - b1) g, v_hat_1 = (1 - b2) g^2, theta_0 = 0, so with
  'previous' h_2 = (1 - b1) g_1 and with 'current' h_2 = (1 - b1^2) g_1."""
  b1, b2, lr = 0.5, 0.75, 0.2
  g = np.array([0.5, -2.0, 4.0])
  p = jnp.zeros(3)
  step = lambda tx: tx.update(jnp.asarray(g, jnp.float32), tx.init(p), p)
  d = np.sqrt(1 - b2) * np.abs(g)
  u_prev, s = step(optimistic_amsgrad(lr, b1, b2, 0.0))
  half = -lr * (1 - b1) * g / d
  np.testing.assert_allclose(optimistic_amsgrad_eval_params(s), half, rtol=1e-6)
  np.testing.assert_allclose(u_prev, half - lr * (1 - b1) * g / d, rtol=1e-6)
  u_cur, _ = step(optimistic_amsgrad(lr, b1, b2, 0.0, h_momentum="current"))
  np.testing.assert_allclose(u_cur, half - lr * (1 - b1 ** 2) * g / d, rtol=1e-6)
  assert not np.allclose(u_prev, u_cur)


def test_zero_predictor_and_b1_zero_is_amsgrad():
  """Catalog test 1: with m_{t+1} = 0 and b1 = 0, h = 0, so w_{t+1} = w_{t+1/2}
  and the visible iterate is AMSGrad's (no bias correction, eps outside).
  Negative control: the 'last' predictor leaves AMSGrad's path."""
  w0 = np.array([3.0, -2.0, 0.5])
  ref, _ = _run(amsgrad(0.05, b1=0.0, b2=0.9, eps=1e-6, bias_correction_mu=False,
                        bias_correction_nu=False), w0, 20)
  mine, halves = _run(optimistic_amsgrad(0.05, 0.0, 0.9, 1e-6, predictor="zero"), w0, 20)
  for a, b, h in zip(mine, ref, halves):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, a, rtol=1e-6)
  last, _ = _run(optimistic_amsgrad(0.05, 0.0, 0.9, 1e-6, predictor="last"), w0, 20)
  assert not np.allclose(last[-1], ref[-1], rtol=1e-3)


def test_optimism_damps_oscillation_on_an_ill_conditioned_quadratic():
  """Catalog test 2 (the defining property): with a predictable gradient
  sequence, the optimistic step cancels AMSGrad's momentum overshoot. On
  0.5 sum a_i x_i^2 (a = 1, 10, 100), lr 0.1, b1 0.9, the path length over
  steps 50..150 is < 10% of AMSGrad's, which keeps oscillating (negative control)."""
  a = jnp.array([1.0, 10.0, 100.0])
  loss = lambda p: 0.5 * jnp.sum(a * p ** 2)
  w0 = np.ones(3)
  ams, _ = _run(amsgrad(0.1, b1=0.9, bias_correction_mu=False, bias_correction_nu=False),
                w0, 150, loss)
  opt, _ = _run(optimistic_amsgrad(0.1, b1=0.9), w0, 150, loss)
  path = lambda xs: float(np.sum(np.abs(np.diff(np.asarray(xs)[50:], axis=0))))
  assert path(ams) > 0.1
  assert path(opt) < 0.1 * path(ams)
  assert float(loss(opt[-1])) < float(loss(ams[-1]))


def test_rmpe_extrapolates_a_linearly_converging_sequence():
  """RMPE recovers the limit of x_k = x* + A^k e (two modes) from 5 terms;
  negative control: the last term ('last' predictor) is far from x*."""
  k = jnp.arange(5.0)[:, None]
  limit = jnp.array([3.0, -1.0, 0.5])
  seq = {"x": limit + 0.6 ** k * jnp.array([[1.0, -2.0, 0.3]])
              + (-0.4) ** k * jnp.array([[0.5, 1.0, -1.0]])}
  out = rmpe_extrapolate(seq, reg=1e-5)["x"]
  np.testing.assert_allclose(out, limit, atol=1e-3)
  assert np.max(np.abs(seq["x"][-1] - limit)) > 0.1


def test_rmpe_predictor_uses_last_until_the_window_is_full():
  w0 = np.array([3.0, -2.0, 0.5])
  last, _ = _run(optimistic_amsgrad(0.05, predictor="last"), w0, 6)
  rmpe, _ = _run(optimistic_amsgrad(0.05, predictor="rmpe", window=4), w0, 6)
  for i in range(3):   # steps 1..3: fewer than 4 gradients seen
    np.testing.assert_allclose(rmpe[i], last[i], rtol=1e-6)
  assert not np.allclose(rmpe[3], last[3], rtol=1e-6)
  assert np.all(np.isfinite(np.asarray(rmpe)))


def test_bad_arguments_and_missing_params_raise():
  for kwargs in ({"b1": 1.0}, {"eps": -1.0}, {"predictor": "magic"}, {"window": 2},
                 {"h_momentum": "next"}):
    with pytest.raises(ValueError, match="optimistic_amsgrad"):
      optimistic_amsgrad(0.1, **kwargs)
  with pytest.raises(ValueError, match="optimistic_amsgrad"):
    optimistic_amsgrad(-0.1)
  tx = optimistic_amsgrad(0.1)
  p = jnp.zeros(2)
  with pytest.raises(ValueError, match="optimistic_amsgrad"):
    tx.update(p, tx.init(p))
