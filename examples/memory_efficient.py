"""Memory-efficient training: GaLore-style projections and FRUGAL on a small LM.

    python examples/memory_efficient.py --steps 200

AdamW keeps two float32 moments per parameter (2.0 bytes of state per byte of
params). The memory family keeps less:

- ``optkit.natural_galore``: Adam moments of the gradient projected to rank r
  (refreshed by an SVD every ``update_proj_gap`` steps, under ``lax.cond``),
  with a natural-gradient correction from a short history in the subspace;
- ``optkit.frugal``: AdamW on a ``density`` fraction of each matrix's
  directions, signSGD (no state) on the rest;
- ``optkit.adamw_snsm``: subset-norm second moments (one per row subset) and
  momentum in a rank-r subspace.

Leaves with fewer than two axes (norms, biases) take plain AdamW in all of
them. The script trains optkit's character transformer (CPython's own
documentation text, no download) with each and prints the final train and
held-out loss next to the optimizer-state bytes per parameter byte, measured
from the actual state. On this narrow model (width 64) Natural GaLore's
history of 10 projected gradients takes most of what its projection saves;
the saving grows with width (``benchmarks/results/state_memory.md``).

Args: ``--steps``, ``--rank`` (projection rank, default 16 of the model's
width 64), ``--seed``.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
import optax

import optkit
from optkit.bench import tasks


def state_ratio(state, params) -> float:
  nbytes = lambda t: sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(t)
                         if hasattr(x, "dtype"))
  return nbytes(state) / nbytes(params)


def optimizers(rank: int):
  return {
      "adamw (optax)": optax.adamw(3e-3),
      f"natural_galore (rank {rank})": optkit.natural_galore(3e-3, rank=rank,
                                                            update_proj_gap=50, scale=1.0),
      "frugal (density 0.25)": optkit.frugal(3e-3, density=0.25, update_gap=50),
      f"adamw_snsm (rank {rank})": optkit.adamw_snsm(3e-3, rank=rank, update_proj_gap=50),
  }


def train(task, tx, steps, seed):
  tx = optax.with_extra_args_support(tx)
  params = task.init(jax.random.key(seed))
  state = tx.init(params)

  @jax.jit
  def step(params, state, key):
    loss, grads = jax.value_and_grad(task.loss)(params, task.sample(key))
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss

  key = jax.random.key(seed + 1)
  losses = []
  for i in range(steps):
    params, state, loss = step(params, state, jax.random.fold_in(key, i))
    losses.append(float(loss))
  return params, state, float(np.mean(losses[-10:]))


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=200)
  ap.add_argument("--rank", type=int, default=16)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args(argv)
  task = tasks.char_lm(context=32, batch_size=16)
  print(task.description)
  print(f"{'optimizer':28s} {'train':>7s} {'held-out':>9s} {'state B / param B':>18s}")
  for name, tx in optimizers(args.rank).items():
    params, state, loss = train(task, tx, args.steps, args.seed)
    held_out = float(task.evaluate(params)["loss"])
    print(f"{name:28s} {loss:7.3f} {held_out:9.3f} {state_ratio(state, params):18.3f}")


if __name__ == "__main__":
  main()
