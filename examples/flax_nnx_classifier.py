"""Train a Flax nnx MLP on scikit-learn's digits with any optkit optimizer.

    python examples/flax_nnx_classifier.py --optimizer lion --steps 300
    python examples/flax_nnx_classifier.py --optimizer adahessian   # reads value_fn

The model is an ``nnx.Module``; ``nnx.Optimizer`` wraps the optkit
transformation like any Optax one. Optimizers whose registry record lists
``value_fn`` among its extra inputs (AdaHessian, Sophia, AMP, ...) get it from
``optkit.flax.nnx_value_fn``, which evaluates the loss of the current batch at
the params the optimizer passes in. Data: the 1,797 8x8 digit images that
ship with scikit-learn, a fixed 80/20 split; nothing is downloaded.

Args: ``--optimizer`` (a registry name, see ``python -m optkit list``),
``--learning-rate`` (default: the record's tested value scaled for this task,
or 1e-3), ``--steps``, ``--batch-size``, ``--seed``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import optkit

# Learning rates that work on this task for a few records (others: --learning-rate).
LEARNING_RATES = {"adamw": 3e-3, "adam": 3e-3, "lion": 1e-3, "lion_k": 1e-3, "muon": 0.02,
                  "spectral_descent": 0.02, "adahessian": 0.15, "sophia": 1e-3,
                  "sophia_g": 1e-3, "ademamix": 1e-3, "mars": 3e-3, "shampoo": 1e-3,
                  "adversarial_model_perturbation": 0.05}


def load_digits(seed: int = 0):
  from sklearn.datasets import load_digits as _load
  data = _load()
  x = (data.data / 16.0).astype(np.float32)
  x = (x - x.mean(0)) / (x.std(0) + 1e-3)
  y = data.target.astype(np.int32)
  perm = np.random.default_rng(seed).permutation(len(x))
  n_test = len(x) // 5
  return x[perm[n_test:]], y[perm[n_test:]], x[perm[:n_test]], y[perm[:n_test]]


class MLP(nnx.Module):

  def __init__(self, rngs: nnx.Rngs, hidden: int = 128):
    self.hidden = nnx.Linear(64, hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, 10, rngs=rngs)

  def __call__(self, x):
    return self.out(nnx.gelu(self.hidden(x)))


def xent(logits, y):
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--optimizer", default="lion")
  ap.add_argument("--learning-rate", type=float, default=None)
  ap.add_argument("--steps", type=int, default=300)
  ap.add_argument("--batch-size", type=int, default=128)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args(argv)

  record = optkit.registry.get(args.optimizer)
  lr = args.learning_rate or LEARNING_RATES.get(args.optimizer, 1e-3)
  tx = record.make(learning_rate=lr)
  needs_value_fn = "value_fn" in record.extra_args

  xtr, ytr, xte, yte = map(jnp.asarray, load_digits())
  model = MLP(nnx.Rngs(args.seed))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer, x, y):
    loss_fn = lambda m: xent(m(x), y)
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    extra = {"value_fn": optkit.flax.nnx_value_fn(model, loss_fn)} if needs_value_fn else {}
    optimizer.update(model, grads, **extra)
    return loss

  @nnx.jit
  def evaluate(model):
    logits = model(xte)
    return xent(logits, yte), jnp.mean(jnp.argmax(logits, -1) == yte)

  rng = np.random.default_rng(args.seed)
  print(f"{args.optimizer} (lr {lr:g}) on digits: {xtr.shape[0]} train / {xte.shape[0]} test")
  start = time.perf_counter()
  for step in range(1, args.steps + 1):
    idx = rng.integers(0, xtr.shape[0], args.batch_size)
    loss = train_step(model, optimizer, xtr[idx], ytr[idx])
    if step % max(1, args.steps // 5) == 0 or step == args.steps:
      print(f"step {step:5d}  train loss {float(loss):.4f}")
  test_loss, acc = evaluate(model)
  print(f"held-out loss {float(test_loss):.4f}, accuracy {float(acc):.4f} "
        f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
  main()
