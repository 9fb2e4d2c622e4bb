"""Sharpness-aware training with adversarial model perturbation (AMP).

    python examples/sharpness_amp.py --steps 300

AMP (Zheng et al., 2021) minimizes the worst loss in a small ball around the
weights: at every step it takes ``inner_iters`` gradient-ascent steps of size
``inner_lr`` on a perturbation ``delta`` with ``||delta|| <= epsilon`` (per
tensor by default), then
hands the gradient at ``w + delta`` to the outer optimizer. It needs the loss
of the current batch as a function of the params, ``value_fn``::

    tx = optkit.amp(optax.sgd(0.05, momentum=0.9), epsilon=0.5)
    updates, state = tx.update(grads, state, params, value_fn=lambda p: loss(p, batch))

On an MLP with a 256-wide hidden layer trained on scikit-learn's digits, the
script compares AMP with the same SGD: train and held-out loss and accuracy,
and a sharpness proxy (the largest loss increase over random perturbations of
norm ``epsilon``) at the end.

Args: ``--steps``, ``--epsilon``, ``--seed``.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

import optkit
from optkit.bench import tasks


def sharpness(loss, params, epsilon, key, n=16):
  """Largest loss increase over n random directions of norm epsilon."""
  leaves, treedef = jax.tree.flatten(params)
  base = loss(params)
  worst = -jnp.inf
  for i in range(n):
    keys = jax.random.split(jax.random.fold_in(key, i), len(leaves))
    noise = [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)]
    norm = jnp.sqrt(sum(jnp.sum(z ** 2) for z in noise))
    shifted = [x + epsilon * z / norm for x, z in zip(leaves, noise)]
    worst = jnp.maximum(worst, loss(jax.tree.unflatten(treedef, shifted)) - base)
  return float(worst)


def run(task, tx, steps, seed):
  params = task.init(jax.random.key(seed))
  state = tx.init(params)

  @jax.jit
  def step(params, state, key):
    batch = task.sample(key)
    value_fn = lambda p: task.loss(p, batch)
    loss, grads = jax.value_and_grad(value_fn)(params)
    updates, state = tx.update(grads, state, params, value_fn=value_fn)
    return optax.apply_updates(params, updates), state, loss

  key = jax.random.key(seed + 1)
  for i in range(steps):
    params, state, loss = step(params, state, jax.random.fold_in(key, i))
  return params, float(loss)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=300)
  ap.add_argument("--epsilon", type=float, default=0.5)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args(argv)
  task = tasks.digits_mlp(hidden=256, batch_size=64)
  print(task.description)
  base = lambda: optax.sgd(0.05, momentum=0.9)
  methods = {"sgd": optax.with_extra_args_support(base()),
             "amp + sgd": optkit.amp(base(), epsilon=args.epsilon)}
  for name, tx in methods.items():
    params, loss = run(task, tx, args.steps, args.seed)
    m = task.evaluate(params)
    sharp = sharpness(lambda p: task.evaluate(p)["loss"], params, args.epsilon,
                      jax.random.key(7))
    print(f"{name:10s} train loss {loss:.4f}  held-out loss {float(m['loss']):.4f}  "
          f"accuracy {float(m['accuracy']):.4f}  sharpness@{args.epsilon:g} {sharp:.4f}")


if __name__ == "__main__":
  main()
