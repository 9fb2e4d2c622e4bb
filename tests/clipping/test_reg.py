"""scale_by_racs, scale_by_reg and reg (Liu et al., 2510.03691; RACS reference:
pytorch_optimizer 4.1.0 ``RACS``, fixture made by tools/make_reg_fixtures.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers

LEAVES = ("a", "b", "k", "w")


def _racs_optimizer(lr, beta, alpha, gamma, weight_decay, eps):
  return optax.chain(optkit.scale_by_racs(beta, alpha, gamma, eps),
                     optax.add_decayed_weights(weight_decay),
                     optax.scale_by_learning_rate(lr))


@pytest.mark.parametrize("cfg", ["default", "tuned"])
def test_matches_pytorch_optimizer_racs_trajectory(cfg):
  """12 closed-loop steps vs pytorch_optimizer RACS in float64, every param at
  every step to rtol 1e-10 / atol 1e-12 (0-D, 1-D, 2-D and 3-D leaves)."""
  data = np.load(helpers.fixture("clipping_racs.npz"))
  hp = {k[len(f"{cfg}__hp__"):]: float(data[k]) for k in data.files
        if k.startswith(f"{cfg}__hp__")}
  traj = helpers.fixture_trajectory(data, f"{cfg}__traj__")
  assert sorted(traj) == list(LEAVES) and traj["w"].shape == (13, 4, 3)
  with jax.enable_x64(True):
    d = {k: jnp.asarray(data[f"data__d__{k}"]) for k in LEAVES}
    t = {k: jnp.asarray(data[f"data__t__{k}"]) for k in LEAVES}

    def loss(p):
      return sum(0.5 * jnp.sum(d[k] * (p[k] - t[k]) ** 2)
                 + 0.1 * jnp.sum(jnp.log(jnp.cosh(3.0 * p[k]))) for k in LEAVES)

    worst = helpers.replay_trajectory(_racs_optimizer(**hp), loss, traj, rtol=1e-10,
                                      atol=1e-12, label=cfg)
  assert worst < 1e-10


def test_first_step_by_hand():
  g = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
  tx = optkit.scale_by_racs()  # beta 0.9, alpha 0.05, eps 1e-8
  out, state = tx.update(jnp.asarray(g, jnp.float32), tx.init(jnp.zeros((2, 3))))
  s = 0.1 * np.mean(g ** 2, axis=1)
  q = 1.0 + 0.1 * (np.mean(g ** 2, axis=0) - 1.0)  # q_0 = 1 (reference)
  ghat = g / (np.sqrt(s + 1e-8)[:, None] * np.sqrt(q + 1e-8)[None, :])
  np.testing.assert_allclose(out, 0.05 * ghat, rtol=1e-5)  # r = 1 at step 1
  np.testing.assert_allclose(state.theta, np.linalg.norm(ghat), rtol=1e-5)


def test_rank_one_positive_matrix_is_balanced():
  """β = 0, G = a bᵀ > 0: D_r^{-1/2} G D_c^{-1/2} has all-equal entries
  1/(rms(a)·rms(b)); the raw G does not (negative control)."""
  a, b = np.array([0.1, 1.0, 7.0]), np.array([2.0, 0.01, 3.0, 0.5])
  g = np.outer(a, b)
  tx = optkit.scale_by_racs(beta=0.0, alpha=1.0, eps=1e-12)
  with jax.enable_x64(True):
    out, _ = tx.update(jnp.asarray(g), tx.init(jnp.zeros((3, 4))))
  rms = lambda v: np.sqrt(np.mean(v ** 2))
  np.testing.assert_allclose(out, np.full((3, 4), 1 / (rms(a) * rms(b))), rtol=1e-8)
  assert np.ptp(g) / np.mean(g) > 1


def test_update_norm_grows_at_most_by_gamma():
  """Gradient magnitudes alternating 1, 0.01, 1, ...: without the limiter (γ
  huge, negative control) ||Ĝ|| jumps ~40x after each small step; with it
  ||u_{t+1}|| <= γ·||u_t||."""
  grads = [np.random.default_rng(i).standard_normal((4, 3)) * (1e-2 if i % 2 else 1.0)
           for i in range(6)]

  def norms(gamma):
    tx = optkit.scale_by_racs(beta=0.99, gamma=gamma)
    state = tx.init(jnp.zeros((4, 3)))
    out = []
    for g in grads:
      u, state = tx.update(jnp.asarray(g, jnp.float32), state)
      out.append(float(jnp.linalg.norm(u)))
    return np.array(out)

  n = norms(1.01)
  assert np.all(n[1:] <= 1.01 * n[:-1] * (1 + 1e-5)), n
  free = norms(1e6)
  assert np.max(free[1:] / free[:-1]) > 10, free


def _reg_numpy(grads, b1, eps, rms_scale):
  """fp64 re-derivation of scale_by_reg on one 2-D leaf."""
  m = np.zeros_like(grads[0])
  outs = []
  for g in grads:
    m = b1 * m + g
    o = m / (np.sqrt(np.mean(m ** 2, 1) + eps)[:, None] * np.sqrt(np.mean(m ** 2, 0) + eps)[None])
    outs.append(rms_scale * o / np.sqrt(np.mean(o ** 2)))
  return outs


def test_reg_direction_matches_numpy_rederivation():
  rng = np.random.default_rng(5)
  grads = [rng.standard_normal((5, 3)) for _ in range(4)]
  expected = _reg_numpy(grads, 0.9, 1e-8, 0.2)
  tx = optkit.scale_by_reg()
  state = tx.init(jnp.zeros((5, 3)))
  for g, e in zip(grads, expected):
    u, state = tx.update(jnp.asarray(g, jnp.float32), state)
    np.testing.assert_allclose(u, e, rtol=1e-4, atol=1e-6)


def test_reg_update_rms_is_matched_per_leaf():
  g = helpers.random_tree(3, scale=1e3, shapes={"w": (6, 4), "k": (2, 3, 5), "b": (7,)})
  opt = optkit.reg(learning_rate=0.5)
  u, _ = opt.update(g, opt.init(g), g)
  for k in g:
    np.testing.assert_allclose(float(jnp.sqrt(jnp.mean(u[k] ** 2))), 0.5 * 0.2, rtol=1e-4)


def test_reg_with_weight_decay_equals_manual_chain():
  g = helpers.random_tree(4)
  p = helpers.random_tree(5)
  opt = optkit.reg(0.1, weight_decay=0.01)
  u, _ = opt.update(g, opt.init(p), p)
  d, _ = optkit.scale_by_reg().update(g, optkit.scale_by_reg().init(p))
  for k in g:
    np.testing.assert_allclose(u[k], -0.1 * (d[k] + 0.01 * p[k]), rtol=1e-5, atol=1e-7)


def test_zero_gradient_is_zero_update():
  tx = optkit.scale_by_reg()
  z = {"w": jnp.zeros((3, 2)), "c": jnp.zeros(())}
  u, _ = tx.update(z, tx.init(z))
  assert all(float(jnp.abs(x).max()) == 0.0 for x in jax.tree.leaves(u))


def test_bad_hyperparameters_raise():
  with pytest.raises(ValueError, match="reg"):
    optkit.reg(-1.0)
  with pytest.raises(ValueError, match="reg"):
    optkit.reg(0.1, b1=1.0)
  with pytest.raises(ValueError, match="racs"):
    optkit.scale_by_racs(beta=1.0)
  with pytest.raises(ValueError, match="racs"):
    optkit.scale_by_racs(gamma=0.0)
  with pytest.raises(ValueError, match="racs"):
    tx = optkit.scale_by_racs()
    tx.update({"w": jnp.zeros((3, 3))}, tx.init({"w": jnp.zeros((3, 2))}))
