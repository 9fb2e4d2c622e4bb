"""Jacobian descent with UPGrad on a two-task model (digit and parity heads).

    python examples/multi_task_upgrad.py --steps 300

A shared MLP trunk feeds two heads on scikit-learn's digits: one classifies
the digit, one its parity. Instead of descending the summed loss, Jacobian
descent takes the Jacobian of the loss vector (one gradient per objective,
stacked on a leading axis of every leaf) and lets an aggregator pick one
update. UPGrad projects each objective's gradient onto the dual cone of all
of them and averages: the result never conflicts with any objective (its
inner product with every objective's gradient is >= 0). ``optkit.upgrad`` is
that aggregator as a GradientTransformation; chain it with an ordinary
optimizer on the aggregated direction::

    tx = optax.chain(optkit.upgrad(), optax.sgd(0.05))
    jac = jax.jacrev(objectives)(params, batch)      # every leaf: (2, *shape)
    updates, state = tx.update(jac, state, params)

The script compares it with descending the mean loss (the same update when
the two gradients do not conflict, since UPGrad then returns their mean) and
reports the smallest cosine between the update and either objective's
gradient over the run (>= 0 for UPGrad by construction; the mean loss's
update can go negative on steps where the tasks conflict), the number of
such steps, and both methods' held-out losses.

Args: ``--steps``, ``--seed``, ``--learning-rate``.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

import optkit
from optkit.bench import tasks


def flat(tree):
  return jnp.concatenate([x.reshape(x.shape[0], -1) for x in jax.tree.leaves(tree)], axis=1)


def run(task, method, steps, seed, lr):
  if method == "upgrad":
    tx = optax.chain(optkit.upgrad(), optax.sgd(lr))
  else:
    tx = optax.sgd(lr)
  params = task.init(jax.random.key(seed))
  state = tx.init(params)

  @jax.jit
  def step(params, state, key):
    batch = task.sample(key)
    jac = jax.jacrev(task.objectives)(params, batch)    # leaves: (2, *shape)
    g = flat(jac)                                       # (2, n)
    if method == "upgrad":
      updates, state = tx.update(jac, state, params)
    else:
      updates, state = tx.update(jax.tree.map(lambda j: j.mean(0), jac), state, params)
    d = -flat(jax.tree.map(lambda u: u[None], updates))[0]
    cos = g @ d / (jnp.linalg.norm(g, axis=1) * jnp.linalg.norm(d) + 1e-12)
    return optax.apply_updates(params, updates), state, jnp.min(cos)

  key = jax.random.key(seed + 1)
  worst = []
  for i in range(steps):
    params, state, c = step(params, state, jax.random.fold_in(key, i))
    worst.append(float(c))
  return params, min(worst), sum(c < 0 for c in worst)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=300)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--learning-rate", type=float, default=0.05)
  args = ap.parse_args(argv)
  task = tasks.two_task()
  print(task.description)
  for method in ("upgrad", "mean",):
    params, worst, n_conflict = run(task, method, args.steps, args.seed, args.learning_rate)
    m = task.evaluate(params)
    print(f"{method:7s} held-out digit loss {float(m['loss_digit']):.4f}  parity loss "
          f"{float(m['loss_parity']):.4f}  digit acc {float(m['accuracy']):.3f}  "
          f"min cosine(update, objective gradient) {worst:+.3f} "
          f"({n_conflict} of {args.steps} steps conflict)")


if __name__ == "__main__":
  main()
