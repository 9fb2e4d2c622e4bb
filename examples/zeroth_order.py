"""Training from loss values alone: zeroth-order and forward-mode estimates vs backprop.

    python examples/zeroth_order.py --steps 300

Logistic regression on scikit-learn's breast-cancer data (30 features, 31
parameters), trained four ways:

- ``adam (backprop)``: the baseline, ``jax.grad`` of the batch loss into Adam.
- ``deepzero``: DeepZero's coordinate-wise finite differences (here every
  coordinate, ``sparsity=0``) with ZO-SGD; d + 1 loss evaluations per step.
- ``rge + adam``: the randomized gradient estimate ``optkit.zo_random_gradient``
  (q random directions, q + 1 loss evaluations) chained into Adam.
- ``forward gradient + adam``: ``optkit.forward_gradient`` (K Jacobian-vector
  products, no backward pass) chained into Adam.

The zeroth-order estimators ignore the incoming ``updates`` (they read only
their tree structure) and query ``value_fn``, the loss on the current batch::

    tx = optax.chain(optkit.zo_random_gradient(num_queries=20), optax.adam(0.01))
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, state = tx.update(zeros, state, params, value_fn=lambda p: loss(p, batch))

The script prints, for each method, the loss evaluations (or JVPs) per step and
the held-out loss and accuracy after ``--steps`` steps.

Args: ``--steps``, ``--seed``.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

import optkit
from optkit.bench import tasks

Q, K = 20, 4
METHODS = {
    "adam (backprop)": (lambda: optax.adam(0.01), "1 forward + 1 backward"),
    "deepzero": (lambda: optkit.deepzero(0.5, sparsity=0.0), "d + 1 = 32 losses"),
    "rge + adam": (lambda: optax.chain(optkit.zo_random_gradient(num_queries=Q),
                                       optax.adam(0.01)), f"q + 1 = {Q + 1} losses"),
    "forward gradient + adam": (lambda: optax.chain(optkit.forward_gradient(num_guesses=K),
                                                    optax.adam(0.01)), f"K = {K} JVPs"),
}


def run(task, name, steps, seed):
  tx = optax.with_extra_args_support(METHODS[name][0]())
  params = task.init(jax.random.key(seed))
  state = tx.init(params)
  backprop = name == "adam (backprop)"

  @jax.jit
  def step(params, state, key):
    batch = task.sample(key)
    f = lambda p: task.loss(p, batch)
    if backprop:
      loss, g = jax.value_and_grad(f)(params)
    else:  # no gradient: the estimators see only the loss
      loss, g = f(params), jax.tree.map(jnp.zeros_like, params)
    updates, state = tx.update(g, state, params, value_fn=f)
    return optax.apply_updates(params, updates), state, loss

  key = jax.random.key(1000 + seed)
  first = None
  for _ in range(steps):
    key, k = jax.random.split(key)
    params, state, loss = step(params, state, k)
    first = float(loss) if first is None else first
  return first, task.evaluate(params)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=300)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args(argv)
  task = tasks.get("logistic_regression")
  print(f"{task.description}; {args.steps} steps")
  for name, (_, cost) in METHODS.items():
    first, ev = run(task, name, args.steps, args.seed)
    print(f"{name:>24s}: {cost:>24s} per step; first loss {first:.4f}, "
          f"held-out loss {float(ev['loss']):.4f}, accuracy {float(ev['accuracy']):.3f}",
          flush=True)


if __name__ == "__main__":
  main()
