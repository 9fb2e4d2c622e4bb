"""Small helpers shared by the per-algorithm tests."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

SMALL_TREE = {"a": (5,), "b": (2, 3), "c": ()}
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "reference")


def fixture(name: str) -> str:
  """Path of a reference fixture made by a script in tools/."""
  return os.path.join(FIXTURES, name)


def random_tree(seed: int, scale: float = 1.0, shapes=None):
  """A float32 tree of standard normals (times ``scale``) with ``shapes``."""
  rng = np.random.default_rng(seed)
  shapes = SMALL_TREE if shapes is None else shapes
  return {k: jnp.asarray(scale * rng.standard_normal(s), jnp.float32) for k, s in shapes.items()}


def gradient_sequence(n: int, seed: int = 0, decay: float = 0.0, shapes=None):
  """``n`` random gradient trees; the i-th is scaled by 1 / (1 + decay * i)."""
  return [random_tree(1000 * seed + i + 1, 1.0 / (1 + decay * i), shapes) for i in range(n)]


def run_open_loop(tx, params, grads):
  """Feeds the given gradients to a jitted ``tx.update`` (params move with the
  updates); returns the per-step ``(updates, state)``."""
  state = tx.init(params)
  update = jax.jit(tx.update)
  outs = []
  for g in grads:
    u, state = update(g, state, params)
    params = optax.apply_updates(params, u)
    outs.append((u, state))
  return outs


def run_closed_loop(tx, loss, params, steps):
  """Closed loop: each gradient is ``jax.grad(loss)`` at the current params, fed
  to a jitted ``tx.update``; returns the per-step ``(params after, state,
  gradient)``."""
  state = tx.init(params)

  @jax.jit
  def step(p, s):
    g = jax.grad(loss)(p)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s, g

  out = []
  for _ in range(steps):
    params, state, g = step(params, state)
    out.append((params, state, g))
  return out


def fixture_loss(data, problem: str):
  """The loss of a reference fixture's problem: ``"quadratic"`` is
  0.5 x'Ax - b'x on ``p["x"]`` (arrays ``quadratic__data__A``/``__b``), anything
  else logistic regression on ``p["w"]``, ``p["b"]`` (``logreg__data__X``/``__y``)."""
  if problem == "quadratic":
    a, b = jnp.asarray(data["quadratic__data__A"]), jnp.asarray(data["quadratic__data__b"])
    return lambda p: 0.5 * p["x"] @ (a @ p["x"]) - b @ p["x"]
  x, y = jnp.asarray(data["logreg__data__X"]), jnp.asarray(data["logreg__data__y"])

  def loss(p):
    z = x @ p["w"] + p["b"]
    return jnp.mean(jax.nn.softplus(z) - y * z)

  return loss


def fixture_trajectory(data, key: str):
  """``{name: data[key + name]}`` over the fixture arrays whose key starts with
  ``key`` (e.g. ``"quadratic__traj__"``); each is (steps + 1, ...) params."""
  return {k[len(key):]: data[k] for k in sorted(data.files) if k.startswith(key)}


def replay_trajectory(tx, loss, traj, rtol, atol, label: str = ""):
  """Replays a stored reference trajectory in closed loop: starts at every
  ``traj[name][0]``, steps with ``jax.grad(loss)`` and a jitted ``tx.update``,
  and checks every param at every step with ``assert_allclose(rtol, atol)``
  (no check when ``rtol`` is None). Returns the largest absolute deviation."""
  names = sorted(traj)
  params = {k: jnp.asarray(v[0]) for k, v in traj.items()}
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(loss)(p), s, p))
  worst = 0.0
  for t in range(1, traj[names[0]].shape[0]):
    u, state = step(params, state)
    params = optax.apply_updates(params, u)
    for k in names:
      worst = max(worst, float(np.max(np.abs(np.asarray(params[k]) - traj[k][t]))))
      if rtol is not None:
        np.testing.assert_allclose(params[k], traj[k][t], rtol=rtol, atol=atol,
                                   err_msg=f"{label}/{k} step {t}")
  return worst
