"""Orthogonalized updates on the matrices, Adam on everything else.

    python examples/muon_with_adam.py --steps 300

Muon and spectral descent are defined for matrices: their update is the
momentum's polar factor U V^T (computed by Newton-Schulz iterations, matrix
products only). A CNN also has biases (1-D) and conv kernels (4-D). The usual
recipe sends the 2-D leaves to the orthogonalized method and the rest to Adam
with ``optax.multi_transform``::

    labels = lambda params: jax.tree.map(lambda p: "matrix" if p.ndim == 2 else "other", params)
    tx = optax.multi_transform({"matrix": optkit.spectral_descent(0.02, b1=0.95),
                                "other": optax.adam(3e-3)}, labels)

(``optkit.muon`` does the same split internally, with AdamW on non-matrix
leaves, and can treat conv kernels as matrices through
``muon_weight_dimension_numbers``.) The script trains scikit-learn digits'
CNN with that recipe, with ``optkit.muon``, and with Adam alone, and prints
the singular values of the dense layer's gradient and of its update, showing
the update's spectrum flattened to about 1 (Newton-Schulz's quintic
maps singular values into a band around 1, not exactly onto it).

Args: ``--steps``, ``--seed``.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optkit
from optkit.bench import tasks


def labels(params):
  return jax.tree.map(lambda p: "matrix" if p.ndim == 2 else "other", params)


OPTIMIZERS = {
    "spectral_descent + adam": lambda: optax.multi_transform(
        {"matrix": optkit.spectral_descent(0.02, b1=0.95), "other": optax.adam(3e-3)},
        labels),
    "muon (adamw on non-matrices)": lambda: optkit.muon(0.02, adam_learning_rate=3e-3),
    "adam": lambda: optax.adam(3e-3),
}


def run(task, tx, steps, seed):
  params = task.init(jax.random.key(seed))
  state = tx.init(params)

  @jax.jit
  def step(params, state, key):
    loss, grads = jax.value_and_grad(task.loss)(params, task.sample(key))
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss, grads, updates

  key = jax.random.key(seed + 1)
  for i in range(steps):
    params, state, loss, grads, updates = step(params, state, jax.random.fold_in(key, i))
  return params, float(loss), grads, updates


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=300)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args(argv)
  task = tasks.digits_cnn()
  print(task.description)
  for name, make in OPTIMIZERS.items():
    params, loss, grads, updates = run(task, make(), args.steps, args.seed)
    metrics = task.evaluate(params)
    print(f"{name:30s} train loss {loss:.4f}  held-out loss {float(metrics['loss']):.4f}  "
          f"accuracy {float(metrics['accuracy']):.4f}")
    if name.startswith("spectral"):
      sg = np.linalg.svd(np.asarray(grads["dense"]["kernel"]), compute_uv=False)
      su = np.linalg.svd(np.asarray(updates["dense"]["kernel"]) / -0.02, compute_uv=False)
      # Cross-entropy gradients sum to zero over the 10 classes, so the dense
      # kernel's gradient (and momentum) has rank 9: the 10th singular value is
      # 0 and Newton-Schulz keeps it there; the other 9 go to about 1.
      print("  dense gradient singular values:", np.array2string(sg[:9], precision=3))
      print("  dense update / lr singular values:", np.array2string(su[:9], precision=2),
            f"(10th: {su[9]:.1e})")


if __name__ == "__main__":
  main()
