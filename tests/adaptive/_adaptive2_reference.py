"""Replays the pytorch_optimizer fixtures made by tools/make_adaptive2_fixtures.py
(AdaBound/AMSBound, AdamP/SGDP, DiffGrad) with an optkit transformation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tests import helpers

PROBLEMS = ("quadratic", "normnet")


def load(name: str):
  return np.load(helpers.fixture(f"adaptive_{name}.npz"))


def hparams(data, config: str) -> dict:
  key = f"hparam__{config}__"
  return {k[len(key):]: float(data[k]) for k in data.files if k.startswith(key)}


def loss_fn(data, prefix: str):
  """The fixture problem ``prefix`` in JAX (same data, PyTorch layout)."""
  if prefix == "quadratic":
    a, b_mat = jnp.asarray(data["quadratic__data__A"]), jnp.asarray(data["quadratic__data__B"])
    h, b = jnp.asarray(data["quadratic__data__H"]), jnp.asarray(data["quadratic__data__b"])

    def loss(p):
      r = a @ p["W"] - b_mat
      return 0.5 * jnp.sum(r * r) / 5 + 0.5 * p["x"] @ (h @ p["x"]) - b @ p["x"]

    return loss
  x, y = jnp.asarray(data["normnet__data__X"]), jnp.asarray(data["normnet__data__y"])

  def loss(p):
    w1, w2 = p["W1"], p["W2"]
    hid = jnp.tanh((x @ w1.T) / jnp.linalg.norm(w1, axis=1))
    logits = 3.0 * (hid @ w2.T) / jnp.linalg.norm(w2) + p["c"]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(
        logits, y[:, None].astype(jnp.int32), axis=1)[:, 0])

  return loss


def trajectory(data, prefix: str, config: str):
  key = f"{prefix}__{config}__traj__"
  return {k[len(key):]: data[k] for k in data.files if k.startswith(key)}


def replay(data, prefix: str, config: str, tx, rtol=None, atol=None) -> float:
  """Runs ``tx`` from the fixture's start on its problem; returns the largest
  absolute deviation from the reference params over all steps (and asserts
  ``rtol``/``atol`` at every step when given)."""
  traj = trajectory(data, prefix, config)
  names = sorted(traj)
  loss = loss_fn(data, prefix)
  params = {k: jnp.asarray(traj[k][0]) for k in names}
  steps = traj[names[0]].shape[0] - 1

  def body(carry, _):
    p, s = carry
    u, s = tx.update(jax.grad(loss)(p), s, p)
    p = optax.apply_updates(p, u)
    return (p, s), p

  _, path = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), None, length=steps))(params)
  worst = 0.0
  for k in names:
    got, want = np.asarray(path[k]), traj[k][1:]
    worst = max(worst, float(np.max(np.abs(got - want))))
    if atol is not None:
      for t in range(steps):
        np.testing.assert_allclose(got[t], want[t], rtol=rtol, atol=atol,
                                   err_msg=f"{config}/{prefix}/{k} step {t + 1}")
  return worst
