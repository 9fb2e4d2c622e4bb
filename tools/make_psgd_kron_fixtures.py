"""Writes tests/fixtures/reference/curvature_psgd_kron.npz from psgd_jax 0.2.9.

Run with the reference environment:

  /work/refvenv/bin/pip install psgd-jax==0.2.9 --no-deps   # pure Python, once
  /work/refvenv/bin/python tools/make_psgd_kron_fixtures.py

psgd_jax 0.2.9 ``kron.py`` does not import with optax 0.2.8 (it imports
``optax._src.clipping``, which no longer exists, and ``flax.linen``, which the
reference environment lacks). This script only shims those two imports: it
puts a placeholder ``optax._src.clipping`` module (kron.py never uses it) and
a ``flax.linen`` module with an empty ``Partitioned`` class (kron.py only
uses it in ``isinstance`` checks) into ``sys.modules``; nothing is vendored.

Matmuls run at 'highest' precision (global config and psgd_jax's own
``precond_update_precision`` / ``precond_grads_precision`` arguments).

Open loop: a fixed sequence of random float32 gradients (independent of the
params) is fed to ``psgd_jax.kron.kron`` for 10 steps (48 for ``balance``). Its probe
vectors come from ``fold_in(PRNGKey(5318008), count)``; the optkit test
replays them with ``scale_by_psgd_kron``'s private ``_step_key_fn`` hook.

Saved keys: ``{cfg}/grads/{leaf}`` (steps, *shape), ``{cfg}/x0/{leaf}``,
``{cfg}/traj/{leaf}`` (steps + 1 iterates, the first is x0) and
``{cfg}/Q/{leaf}/{i}`` (the final factors), for the configs in ``CONFIGS``.
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

import optax  # noqa: E402
import optax._src  # noqa: E402


def _shim_imports():
  """Placeholder modules for the two imports psgd_jax 0.2.9 cannot resolve."""
  if "optax._src.clipping" not in sys.modules:
    clipping = types.ModuleType("optax._src.clipping")
    sys.modules["optax._src.clipping"] = clipping
    optax._src.clipping = clipping
  try:
    import flax.linen  # noqa: F401
  except ImportError:
    flax = types.ModuleType("flax")
    linen = types.ModuleType("flax.linen")

    class Partitioned:  # only used in isinstance checks by kron.py
      pass

    linen.Partitioned = Partitioned
    flax.linen = linen
    sys.modules["flax"] = flax
    sys.modules["flax.linen"] = linen


_shim_imports()

from psgd_jax import kron as psgd_kron_ref  # noqa: E402

from tools import _fixtures  # noqa: E402

STEPS = 10
# psgd_jax re-balances the factors when the uniform draw of step count c is
# below 0.01: with its constant key that first happens at c = 46, so the
# "balance" config runs 48 steps.
SHAPES_A = {"b": (5,), "k": (3, 3, 2), "w": (6, 4)}
SHAPES_B = {"b": (5,), "c": (), "k": (3, 3, 2), "w": (6, 4)}
# name -> (steps, shapes, kwargs of psgd_jax kron; optkit uses the same names).
CONFIGS = {
    "default": (STEPS, SHAPES_A, dict(learning_rate=0.01, b1=0.9,
                               preconditioner_update_probability=1.0)),
    "variant": (STEPS, SHAPES_B, dict(learning_rate=0.02, b1=0.5, weight_decay=0.1,
                               preconditioner_update_probability=0.5,
                               memory_save_mode="one_diag",
                               momentum_into_precond_update=False,
                               preconditioner_lr=0.2,
                               preconditioner_init_scale=2.0)),
    "balance": (48, SHAPES_A, dict(learning_rate=0.01, b1=0.9,
                                   preconditioner_update_probability=1.0)),
}


def _run(name, steps, shapes, kwargs, seed):
  rng = np.random.default_rng(seed)
  x0 = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
  grads = [{k: (rng.standard_normal(s) * (1.0 + np.arange(np.prod(s, dtype=int)).reshape(s)
                                           % 3)).astype(np.float32)
            for k, s in shapes.items()} for _ in range(steps)]
  tx = psgd_kron_ref.kron(precond_update_precision="highest",
                          precond_grads_precision="highest", **kwargs)
  params = jax.tree.map(jax.numpy.asarray, x0)
  state = tx.init(params)
  update = jax.jit(tx.update)
  traj = [x0]
  for g in grads:
    u, state = update(jax.tree.map(jax.numpy.asarray, g), state, params)
    params = optax.apply_updates(params, u)
    traj.append(jax.tree.map(np.asarray, params))
  out = {}
  for k in shapes:
    out[f"{name}/x0/{k}"] = x0[k]
    out[f"{name}/grads/{k}"] = np.stack([g[k] for g in grads])
    out[f"{name}/traj/{k}"] = np.stack([p[k] for p in traj])
  qs = state[0]["Qs_preconditioners"]
  for k in shapes:
    for i, q in enumerate(qs[k]):
      out[f"{name}/Q/{k}/{i}"] = np.asarray(q)
  return out


def main(argv=None):
  out_dir = _fixtures.output_dir(argv)
  arrays = {}
  for i, (name, (steps, shapes, kwargs)) in enumerate(CONFIGS.items()):
    arrays.update(_run(name, steps, shapes, kwargs, seed=100 + i))
  _fixtures.save(out_dir, "curvature_psgd_kron.npz", arrays)


if __name__ == "__main__":
  main()
