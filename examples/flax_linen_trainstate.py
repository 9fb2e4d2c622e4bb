"""A Flax linen ``TrainState`` loop with an optkit optimizer (Sophia-G here).

    python examples/flax_linen_trainstate.py --steps 300
    python examples/flax_linen_trainstate.py --optimizer ademamix --learning-rate 1e-3

linen params are a plain pytree, so ``TrainState.create(tx=optkit.<name>(...))``
works unchanged. ``TrainState.apply_gradients`` cannot forward extra inputs to
``tx.update`` (its keyword arguments replace dataclass fields), so optimizers
that read ``value_fn`` (Sophia, AdaHessian, AMP, ...) step with
``optkit.flax.apply_gradients(state, grads, value_fn=...)``; for the others
the plain ``state.apply_gradients(grads=grads)`` is used. Sophia-G's
``value_fn`` is the loss against labels sampled from the model's softmax,
built by ``optkit.gnb_value_fn(logits_fn)``. Data: scikit-learn's
breast-cancer table (569 x 30, ships with the package), standardized, 80/20.

Args: ``--optimizer``, ``--learning-rate``, ``--steps``, ``--batch-size``, ``--seed``.
"""

from __future__ import annotations

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

import optkit


def load_data(seed: int = 0):
  from sklearn.datasets import load_breast_cancer
  data = load_breast_cancer()
  x, y = data.data.astype(np.float32), data.target.astype(np.int32)
  perm = np.random.default_rng(seed).permutation(len(x))
  n_test = len(x) // 5
  test, train = perm[:n_test], perm[n_test:]
  mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
  x = (x - mu) / sd
  return x[train], y[train], x[test], y[test]


class Classifier(nn.Module):

  @nn.compact
  def __call__(self, x):
    x = nn.gelu(nn.Dense(32)(x))
    return nn.Dense(2)(x)


def xent(logits, y):
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--optimizer", default="sophia_g")
  ap.add_argument("--learning-rate", type=float, default=3e-3)
  ap.add_argument("--steps", type=int, default=300)
  ap.add_argument("--batch-size", type=int, default=64)
  ap.add_argument("--seed", type=int, default=0)
  args = ap.parse_args(argv)

  xtr, ytr, xte, yte = map(jnp.asarray, load_data())
  model = Classifier()
  params = model.init(jax.random.key(args.seed), xtr[:1])["params"]
  record = optkit.registry.get(args.optimizer)
  state = train_state.TrainState.create(apply_fn=model.apply, params=params,
                                        tx=record.make(learning_rate=args.learning_rate))
  needs_value_fn = "value_fn" in record.extra_args

  @jax.jit
  def train_step(state, x, y):
    logits_fn = lambda p: state.apply_fn({"params": p}, x)
    loss, grads = jax.value_and_grad(lambda p: xent(logits_fn(p), y))(state.params)
    if args.optimizer == "sophia_g":
      # Sophia-G's Gauss-Newton-Bartlett estimate needs the loss against labels
      # sampled from the model's own softmax: gnb_value_fn builds it from the logits.
      state = optkit.flax.apply_gradients(state, grads, value_fn=optkit.gnb_value_fn(logits_fn))
    elif needs_value_fn:
      state = optkit.flax.apply_gradients(state, grads,
                                          value_fn=lambda p: xent(logits_fn(p), y))
    else:
      state = state.apply_gradients(grads=grads)
    return state, loss

  @jax.jit
  def evaluate(params):
    logits = model.apply({"params": params}, xte)
    return xent(logits, yte), jnp.mean(jnp.argmax(logits, -1) == yte)

  rng = np.random.default_rng(args.seed)
  print(f"{args.optimizer} (lr {args.learning_rate:g}) on breast cancer: "
        f"{xtr.shape[0]} train / {xte.shape[0]} test")
  for step in range(1, args.steps + 1):
    idx = rng.integers(0, xtr.shape[0], args.batch_size)
    state, loss = train_step(state, xtr[idx], ytr[idx])
    if step % max(1, args.steps // 5) == 0 or step == args.steps:
      print(f"step {int(state.step):5d}  train loss {float(loss):.4f}")
  test_loss, acc = evaluate(state.params)
  print(f"held-out loss {float(test_loss):.4f}, accuracy {float(acc):.4f}")


if __name__ == "__main__":
  main()
