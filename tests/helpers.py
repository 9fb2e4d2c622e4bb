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
