"""muP for K-FAC / Shampoo: hand-checked tables and the coordinate check on an
exact one-step K-FAC and Shampoo computation (float64 NumPy), with the
unscaled hyperparameters (base-width lr and damping at every width) as
negative control."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optkit
from tests.orthogonal.test_mup import (
    D_IN,
    N_BASE,
    WIDTHS,
    data,
    mlp_params,
    mlp_shapes_tree,
    mup_std,
)

ROLES = {"w1": "input", "b1": "bias", "w2": "hidden", "b2": "bias", "w3": "output"}
WEIGHTS = ("w1", "w2", "w3")
SEEDS = 4
LR = 0.1


def test_multipliers_are_one_at_base_width():
  for method in ("kfac", "shampoo"):
    m = optkit.mup_second_order_scaling(mlp_shapes_tree(64), ROLES, 1.0, method=method)
    for tree in m:
      assert set(jax.tree.leaves(tree)) == {1.0}


def test_hand_checked_tables():
  p = mlp_shapes_tree(256)
  k = optkit.mup_second_order_scaling(p, ROLES, 4.0, method="kfac")
  assert k.lr == {key: 1.0 for key in ROLES}
  assert k.damping_in == {"w1": 1.0, "b1": 1.0, "w2": 4.0, "b2": 1.0, "w3": 4.0}
  assert k.damping_out == {"w1": 0.25, "b1": 0.25, "w2": 0.25, "b2": 0.25, "w3": 1.0}
  assert k.init_std == {"w1": 1.0, "b1": 1.0, "w2": 0.5, "b2": 1.0, "w3": 0.25}
  s = optkit.mup_second_order_scaling(p, ROLES, 4.0, method="shampoo")
  assert s.lr == {"w1": 2.0, "b1": 2.0, "w2": 1.0, "b2": 2.0, "w3": 0.5}
  assert s.damping_in == s.damping_out == {"w1": 0.25, "b1": 0.25, "w2": 1.0, "b2": 0.25,
                                           "w3": 4.0}
  # lr and damping move in opposite directions on the input and output layers.
  assert s.lr["w1"] > 1 > s.damping_in["w1"] and s.lr["w3"] < 1 < s.damping_in["w3"]


@functools.lru_cache(maxsize=None)
def _pieces(n):
  """Jitted (per width): layer inputs X_l (B, fan_in) and pre-activation
  gradients D_l (B, fan_out) of the mean loss."""

  def loss_and_h2(params, eps, x, y):
    h1 = x @ params["w1"] + eps[0]
    a1 = jax.nn.relu(h1)
    h2 = a1 @ params["w2"] + eps[1]
    a2 = jax.nn.relu(h2)
    f = a2 @ params["w3"] + eps[2]
    return jnp.mean((f - y) ** 2), (x, a1, a2)

  @jax.jit
  def pieces(params, x, y):
    b = x.shape[0]
    eps = (jnp.zeros((b, n)), jnp.zeros((b, n)), jnp.zeros((b, y.shape[1])))
    grads, acts = jax.grad(loss_and_h2, argnums=1, has_aux=True)(params, eps, x, y)
    return acts, grads, None

  return pieces


def _features(params, x):
  """(h1, h2, f): both hidden pre-activations and the output."""
  h1 = x @ params["w1"]
  h2 = np.maximum(h1, 0) @ params["w2"]
  return h1, h2, np.maximum(h2, 0) @ params["w3"]


def _step(method, xs, ds, rho_in, rho_out):
  """Exact one-example-batch K-FAC / Shampoo direction for G = X^T D, through thin
  QR bases (G's row and column spaces have dimension <= batch size)."""
  q1, r1 = np.linalg.qr(xs.T)  # X^T = Q1 R1
  q2, r2 = np.linalg.qr(ds.T)  # D^T = Q2 R2
  m = r1 @ r2.T  # G = Q1 M Q2^T
  b = xs.shape[0]
  if method == "kfac":  # A = X^T X / B, S = B D^T D; (A + rho_A)^-1 G (S + rho_B)^-1
    k1 = r1 @ r1.T / b + rho_in * np.eye(len(r1))
    k2 = b * r2 @ r2.T + rho_out * np.eye(len(r2))
    core = np.linalg.solve(k1, m) @ np.linalg.inv(k2)
  else:  # Shampoo: (G G^T + rho)^-1/4 G (G^T G + rho)^-1/4 = U diag(...) V^T
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    core = u @ np.diag(s * (s ** 2 + rho_in) ** -0.25 * (s ** 2 + rho_out) ** -0.25) @ vt
  return q1 @ core @ q2.T


def _scale(method, xs, ds):
  """Base damping: the scale of each factor's non-zero eigenvalues at base width."""
  g = xs.T @ ds
  if method == "shampoo":
    s2 = np.sum(g ** 2) / xs.shape[0]
    return s2, s2
  b = xs.shape[0]
  return np.sum(xs ** 2) / b / b, b * np.sum(ds ** 2) / b


def second_order_feature_change(method, n, scaled, base_damping):
  """RMS changes of (h1, h2, f) after one K-FAC / Shampoo step on the
  muP-initialized MLP, averaged over SEEDS seeds. ``scaled``: lr and damping
  times the muP multipliers; else the base-width values at every width."""
  m = optkit.mup_second_order_scaling(mlp_shapes_tree(n), ROLES, n / N_BASE, method=method)
  pieces = _pieces(n)
  out = []
  for seed in range(SEEDS):
    params = mlp_params(n, mup_std(n), seed)
    x, y = data(100 + seed)
    inputs, deltas, h2 = pieces(params, x, y)
    p64 = {k: np.asarray(v, np.float64) for k, v in params.items()}
    new = dict(p64)
    for k, xs, ds in zip(WEIGHTS, inputs, deltas):
      rho_in, rho_out = base_damping[k]
      lr = LR
      if scaled:
        rho_in, rho_out, lr = rho_in * m.damping_in[k], rho_out * m.damping_out[k], LR * m.lr[k]
      new[k] = p64[k] - lr * _step(method, np.asarray(xs, np.float64),
                                   np.asarray(ds, np.float64), rho_in, rho_out)
    x64 = np.asarray(x, np.float64)
    out.append([np.sqrt(np.mean((a - b) ** 2))
                for a, b in zip(_features(new, x64), _features(p64, x64))])
  return np.mean(out, axis=0)


def _base_damping(method):
  """Damping of each layer tuned at the base width (seed 0): the factor scale."""
  params = mlp_params(N_BASE, mup_std(N_BASE), 0)
  x, y = data(100)
  inputs, deltas, _ = _pieces(N_BASE)(params, x, y)
  return {k: _scale(method, np.asarray(xs, np.float64), np.asarray(ds, np.float64))
          for k, xs, ds in zip(WEIGHTS, inputs, deltas)}


@pytest.mark.parametrize("method", ["shampoo", "kfac"])
def test_coordinate_check(method):
  """Defining property: with the muP lr/damping multipliers (and muP init) the
  one-step changes of both hidden pre-activations and of the output are
  width-independent; with the base-width hyperparameters used at every width,
  some layer's change drifts by more than 2x from width 64 to 1024."""
  base = _base_damping(method)
  scaled = np.array([second_order_feature_change(method, n, True, base) for n in WIDTHS])
  plain = np.array([second_order_feature_change(method, n, False, base) for n in WIDTHS])
  np.testing.assert_allclose(scaled / scaled[0], 1.0, atol=0.15)
  drift = np.abs(np.log(plain[-1] / plain[0]))
  assert drift.max() > np.log(2.0), plain


@pytest.mark.parametrize("bad", ["role", "width", "missing"])
def test_bad_metadata_raises(bad):
  p = {"w": jnp.zeros((4, 4)), "b": jnp.zeros(4)}
  name = "mup_second_order_scaling"
  if bad == "role":
    with pytest.raises(ValueError, match=rf"{name}.*unknown role 'readout'.*\['w'\]"):
      optkit.mup_second_order_scaling(p, {"w": "readout", "b": "bias"})
  elif bad == "width":
    with pytest.raises(ValueError, match=rf"{name}.*width_mults.*\['w'\].*positive"):
      optkit.mup_second_order_scaling(p, None, {"w": 0.0, "b": 1.0})
  else:
    with pytest.raises(ValueError, match=rf"{name}.*roles.*no entry.*\['w'\]"):
      optkit.mup_second_order_scaling(p, {"b": "bias"})
  with pytest.raises(ValueError, match=rf"{name}.*method"):
    optkit.mup_second_order_scaling(p, method="adam")
