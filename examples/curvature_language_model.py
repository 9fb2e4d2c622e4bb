"""Sophia and AdaHessian with ``value_fn`` on a small character language model.

    python examples/curvature_language_model.py --steps 150
    python examples/curvature_language_model.py --optimizers sophia,adam --steps 400

Curvature methods estimate the Hessian diagonal with Hutchinson probes
(Hessian-vector products of the loss), so ``update`` needs the loss itself as
a function of the params on the **current batch**: ``value_fn``. The estimate
runs every ``update_interval`` steps (Sophia's default 10; AdaHessian's 1
here, as in its paper) under ``lax.cond``, and its probes come from a key
kept in the optimizer state, so the whole step stays one jitted function.

The model is optkit's benchmark task ``char_lm``: a 2-layer transformer
(about 80k params; a context of 32 characters and batches of 16 windows
by default, to keep the run short) on the text of CPython's own documentation, which ships
with the interpreter (no download). Prints train and held-out loss (nats per
character) and ms per step for each optimizer, Adam as the baseline.

Args: ``--optimizers`` (comma-separated registry names or ``adam``),
``--steps``, ``--seed``, ``--context``, ``--batch-size``.
"""

from __future__ import annotations

import argparse
import time

import jax
import optax

import optkit
from optkit.bench import tasks

LEARNING_RATES = {"adam": 3e-3, "sophia": 2e-3, "adahessian": 0.05, "sophia_g": 2e-3}


def make(name: str):
  if name == "adam":
    return optax.adam(LEARNING_RATES["adam"])
  record = optkit.registry.get(name)
  return record.make(learning_rate=LEARNING_RATES.get(name, 1e-3))


def train(task, name: str, steps: int, seed: int):
  tx = optax.with_extra_args_support(make(name))
  params = task.init(jax.random.key(seed))
  state = tx.init(params)

  @jax.jit
  def step(params, state, key):
    batch = task.sample(key)
    value_fn = lambda p: task.loss(p, batch)   # the loss on THIS batch
    loss, grads = jax.value_and_grad(value_fn)(params)
    updates, state = tx.update(grads, state, params, value_fn=value_fn)
    return optax.apply_updates(params, updates), state, loss

  key = jax.random.key(seed + 1)
  params, state, loss = step(params, state, key)           # compile
  jax.block_until_ready(loss)
  start = time.perf_counter()
  for i in range(1, steps):
    params, state, loss = step(params, state, jax.random.fold_in(key, i))
    if i % max(1, steps // 4) == 0:
      print(f"  {name:10s} step {i:5d}  train loss {float(loss):.3f}")
  jax.block_until_ready(loss)
  ms = 1e3 * (time.perf_counter() - start) / max(1, steps - 1)
  return float(loss), float(task.evaluate(params)["loss"]), ms


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--optimizers", default="adam,sophia,adahessian")
  ap.add_argument("--steps", type=int, default=150)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--context", type=int, default=32)
  ap.add_argument("--batch-size", type=int, default=16)
  args = ap.parse_args(argv)
  task = tasks.char_lm(context=args.context, batch_size=args.batch_size)
  print(task.description)
  rows = []
  for name in args.optimizers.split(","):
    rows.append((name, *train(task, name, args.steps, args.seed)))
  print(f"{'optimizer':12s} {'train':>8s} {'held-out':>9s} {'ms/step':>8s}")
  for name, tr, te, ms in rows:
    print(f"{name:12s} {tr:8.3f} {te:9.3f} {ms:8.1f}")


if __name__ == "__main__":
  main()
