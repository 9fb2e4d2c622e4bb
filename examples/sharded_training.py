"""Train a small transformer with its params sharded over every device (JAX SPMD).

    # 8 simulated CPU devices on one machine:
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python examples/sharded_training.py

The model is optkit's character-level transformer benchmark task (CPython's
pydoc text, no download). A 2-D ``Mesh`` of all devices has axes ``fsdp`` and
``tp``: every matrix is sharded over both (rows over ``fsdp``, columns over
``tp``; a dimension that does not divide stays replicated), vectors are
replicated, and the batch is split over all devices. The train step is one
``jax.jit``: XLA's SPMD partitioner inserts the collectives, and the optimizer
state is created by ``optkit.sharding.init_state`` (a jitted ``tx.init``
with output shardings), so each elementwise state leaf (moments, momenta) is
sharded exactly like its param.
Nothing in optkit assumes one device.

The same script runs on a multi-host TPU or GPU cluster: start one process per
host with the same command and add, before anything else touches JAX::

    jax.distributed.initialize()   # coordinator address etc. from the environment

``jax.devices()`` then lists every device of every host, the mesh below spans
them all, and each host feeds its slice of the batch (here every host draws
the same global batch from the same key, which is correct but wasteful; real
input pipelines shard the data with ``jax.make_array_from_process_local_data``).

Matrix methods on sharded matrices (``muon``, ``spectral_descent``,
``shampoo``): Newton-Schulz and the Shampoo statistics are matrix products
XLA partitions like any other; an eigendecomposition or SVD (Shampoo's
inverse roots, ``orthogonalize_svd``) needs the whole matrix, so XLA gathers
it. Use ``shampoo(block_size=...)`` to keep those roots small; the per-method
details are in ``optkit/sharding.py``.

Args: ``--optimizer`` (a registry name, default lion), ``--steps``,
``--learning-rate``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import optkit
from optkit.bench import tasks


def make_mesh():
  devices = np.array(jax.devices())
  n = devices.size
  tp = 2 if n % 2 == 0 and n > 1 else 1
  return Mesh(devices.reshape(n // tp, tp), ("fsdp", "tp"))


def param_spec(x, mesh):
  """Rows over fsdp, columns over tp, where the dimension divides."""
  if jnp.ndim(x) != 2:
    return P()
  rows = "fsdp" if x.shape[0] % mesh.shape["fsdp"] == 0 else None
  cols = "tp" if x.shape[1] % mesh.shape["tp"] == 0 else None
  return P(rows, cols)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--optimizer", default="lion")
  ap.add_argument("--steps", type=int, default=200)
  ap.add_argument("--learning-rate", type=float, default=None)
  args = ap.parse_args(argv)

  mesh = make_mesh()
  task = tasks.char_lm()
  record = optkit.registry.get(args.optimizer)
  lr = args.learning_rate or task.default_lrs.get(args.optimizer, 1e-3)
  tx = optax.with_extra_args_support(record.make(learning_rate=lr))

  params = task.init(jax.random.key(0))
  shardings = jax.tree.map(lambda x: NamedSharding(mesh, param_spec(x, mesh)), params)
  params = jax.device_put(params, shardings)
  state = optkit.sharding.init_state(tx, params)  # moments sharded like params
  batch_sharding = NamedSharding(mesh, P(("fsdp", "tp")))

  @jax.jit
  def step(params, state, key):
    batch = jax.lax.with_sharding_constraint(task.sample(key), batch_sharding)
    value_fn = lambda p: task.loss(p, batch)
    loss, grads = jax.value_and_grad(value_fn)(params)
    updates, state = tx.update(grads, state, params, value_fn=value_fn, value=loss)
    return optax.apply_updates(params, updates), state, loss

  print(f"{len(jax.devices())} devices, mesh {dict(mesh.shape)}; {task.description}")
  like_embed = [x.sharding for x in jax.tree.leaves(state) if x.shape == params["embed"].shape]
  print(f"optimizer {args.optimizer} (lr {lr}); embed sharding "
        f"{params['embed'].sharding.spec}; state leaves shaped like it: "
        f"{[getattr(s, 'spec', s) for s in like_embed]}")
  key = jax.random.key(1)
  t0 = time.perf_counter()
  first = None
  for t in range(args.steps):
    key, sub = jax.random.split(key)
    params, state, loss = step(params, state, sub)
    if first is None:
      first = float(loss)
    if t % max(1, args.steps // 10) == 0 or t == args.steps - 1:
      print(f"step {t:5d}  train loss {float(loss):.4f}", flush=True)
  held_out = float(task.evaluate(params)["loss"])
  print(f"done in {time.perf_counter() - t0:.1f} s: first loss {first:.4f}, "
        f"held-out loss {held_out:.4f} nats/char")
  return first, held_out


if __name__ == "__main__":
  main()
