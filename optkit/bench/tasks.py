"""Built-in training tasks for ``python -m optkit compare``.

Each task is real data shipped with an installed package (scikit-learn's
digits) or deterministic generation; nothing is downloaded at run time.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from optkit.bench import problems as problems_lib


@dataclasses.dataclass
class Task:
  """A training task.

  Attributes:
    name: task name.
    init: ``key -> params``.
    loss: ``(params, batch) -> scalar`` training loss on a batch.
    sample: ``(key) -> batch`` draws a training batch.
    evaluate: ``params -> dict`` of held-out metrics (``loss``, maybe ``accuracy``).
    target: train-loss value that counts as "reached" for steps-to-target.
    description: one line.
  """

  name: str
  init: Callable[[jax.Array], Any]
  loss: Callable[[Any, Any], jax.Array]
  sample: Callable[[jax.Array], Any]
  evaluate: Callable[[Any], dict]
  target: float
  description: str
  default_lrs: dict = dataclasses.field(default_factory=dict)


def _digits_split(seed: int = 0):
  from sklearn.datasets import load_digits  # ships the data with the package
  data = load_digits()
  x = (data.data / 16.0).astype(np.float32)
  x = (x - x.mean(0)) / (x.std(0) + 1e-3)
  y = data.target.astype(np.int32)
  perm = np.random.default_rng(seed).permutation(len(x))
  n_test = len(x) // 5
  test, train = perm[:n_test], perm[n_test:]
  return x[train], y[train], x[test], y[test]


def _xent(logits, y):
  return jnp.mean(jax.nn.logsumexp(logits, axis=-1)
                  - jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0])


def digits_mlp(hidden: int = 128, batch_size: int = 128) -> Task:
  """A two-layer MLP (64-hidden-10) on scikit-learn's 8x8 digits (1797 images)."""
  xtr, ytr, xte, yte = _digits_split()
  xtr, ytr, xte, yte = map(jnp.asarray, (xtr, ytr, xte, yte))

  def init(key):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (64, hidden)) / np.sqrt(64.0),
        "b1": jnp.zeros((hidden,)),
        "w2": jax.random.normal(k2, (hidden, 10)) / np.sqrt(hidden),
        "b2": jnp.zeros((10,)),
    }

  def apply(params, x):
    h = jax.nn.gelu(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]

  def loss(params, batch):
    x, y = batch
    return _xent(apply(params, x), y)

  def sample(key):
    idx = jax.random.randint(key, (batch_size,), 0, xtr.shape[0])
    return xtr[idx], ytr[idx]

  def evaluate(params):
    logits = apply(params, xte)
    return {"loss": _xent(logits, yte),
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == yte)}

  return Task("digits_mlp", init, loss, sample, evaluate, target=0.1,
              description=f"MLP 64-{hidden}-10 on scikit-learn digits "
                          f"({xtr.shape[0]} train / {xte.shape[0]} test)",
              default_lrs={"adamw": 3e-3, "sgd": 0.1, "lion": 1e-3, "lion_k": 1e-3,
                           "muon": 0.02, "spectral_descent": 0.02,
                           "steepest_descent": 0.02, "sign_descent": 3e-4,
                           "adahessian": 0.05, "adversarial_model_perturbation": 0.1})


def _from_problem(name: str, lrs: dict) -> Callable[[], Task]:
  problem = problems_lib.get(name)

  def make() -> Task:
    return Task(
        name, lambda key: problem.init(jnp.float32), lambda p, batch: problem.loss(p),
        lambda key: None, lambda p: {"loss": problem.loss(p)}, target=1e-3,
        description=f"deterministic {name.replace('_', ' ')} (optkit.bench.problems)",
        default_lrs=lrs)

  return make


TASKS = {
    "digits_mlp": digits_mlp,
    "ill_conditioned_quadratic": _from_problem(
        "ill_conditioned_quadratic", {"adamw": 0.05, "sgd": 5e-3, "lion": 0.01}),
    "rosenbrock": _from_problem("rosenbrock", {"adamw": 0.05, "sgd": 1e-3, "lion": 0.01}),
}


def get(name: str) -> Task:
  if name not in TASKS:
    raise KeyError(f"optkit compare: unknown task {name!r}; known: {', '.join(TASKS)}.")
  return TASKS[name]()
