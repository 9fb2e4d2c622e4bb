"""Optimizer-state bytes per parameter byte of the memory-efficient methods.

    python benchmarks/state_memory.py    # writes benchmarks/results/state_memory.md

Every optimizer of the ``memory`` family, at its paper's default settings,
against AdamW (2.0: two float32 moments per float32 param), Adafactor and
Lion, on the transformer leaf shapes of ``benchmarks/shapes.py`` (an
embedding, per layer qkv / out / up / down matrices, norms and biases). The
state is measured with ``jax.eval_shape(tx.init, params)``: the shapes and
dtypes ``init`` returns, so nothing is allocated and the figure is exact (the
state a training step carries is the same, by the optimizer contract). Scalar
leaves (step counts, keys) are counted too. On the 1M tree (width 128) the
projection rank is 32 instead of the default 128, which would be full rank.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optkit
from optkit import registry

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shapes import SIZES  # noqa: E402

LR = 1e-3


def settings(name: str, size: str) -> dict:
  """Paper defaults; the rank scaled down on the small tree only."""
  small_rank = {"1M": 32, "tiny": 4}.get(size)
  if name in ("adamw_snsm", "natural_galore"):
    return {"rank": small_rank} if small_rank else {}
  if name == "freeze_converged":
    return {"inner": optax.adamw(LR), "total_steps": 10_000}
  return {}


def baselines():
  return {"adamw (optax)": lambda size: optax.adamw(LR),
          "adafactor (optax)": lambda size: optax.adafactor(LR),
          "lion (optkit)": lambda size: optkit.lion(LR)}


def state_ratio(tx, shapes) -> float:
  params = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}
  state = jax.eval_shape(tx.init, params)
  state_bytes = sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(state)
                    if hasattr(x, "dtype"))
  param_bytes = sum(int(np.prod(s)) * 4 for s in shapes.values())
  return state_bytes / param_bytes


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--sizes", default="1M,20M,50M")
  ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                "state_memory.md"))
  args = ap.parse_args(argv)
  sizes = args.sizes.split(",")
  rows = []
  for label, make in baselines().items():
    rows.append((label, "defaults", [state_ratio(make(s), SIZES[s]) for s in sizes]))
  for rec in registry.algorithms(family="memory"):
    ratios, shown = [], None
    for s in sizes:
      extra = settings(rec.name, s)
      kwargs = {} if rec.kind == "wrapper" else {"learning_rate": LR}
      ratios.append(state_ratio(rec.factory(**kwargs, **extra), SIZES[s]))
      if s not in ("1M", "tiny"):
        shown = {k: v for k, v in extra.items() if k not in ("inner",)}
    note = "paper defaults" + (f" ({shown})" if shown else "")
    if rec.name == "freeze_converged":
      note = "around optax.adamw (freezing frees no state; it skips updates)"
    rows.append((rec.name, note, ratios))
  header = ["| optimizer | settings | " + " | ".join(f"{s} params" for s in sizes) + " |",
            "|---|---|" + "---|" * len(sizes)]
  counts = {s: sum(int(np.prod(v)) for v in SIZES[s].values()) for s in sizes}
  lines = [
      "# Optimizer-state bytes per parameter byte",
      "",
      "Produced by `python benchmarks/state_memory.py` (exact: `jax.eval_shape` of `init`).",
      "Trees: " + ", ".join(f"{s} = {counts[s]:,} float32 params" for s in sizes)
      + " (transformer leaf shapes, `benchmarks/shapes.py`). On the 1M tree (width 128) the",
      "projection methods use rank 32; elsewhere every method runs at its defaults.",
      "",
      *header,
      *[f"| `{n}` | {note} | " + " | ".join(f"{r:.3f}" for r in ratios) + " |"
        for n, note, ratios in rows],
      "",
  ]
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    f.write("\n".join(lines))
  print("\n".join(lines))


if __name__ == "__main__":
  main()
