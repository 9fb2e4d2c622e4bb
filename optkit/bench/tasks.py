"""Built-in training tasks for ``python -m optkit compare``.

Each task is real data shipped with an installed package or deterministic
generation; nothing is downloaded at run time:

- ``digits_mlp``, ``digits_cnn``, ``two_task``: scikit-learn's 8x8 digits
  (``sklearn.datasets.load_digits``, 1797 images), a fixed 80/20 split.
- ``logistic_regression``: scikit-learn's breast-cancer data
  (``sklearn.datasets.load_breast_cancer``, 569 x 30), standardized with the
  training split's statistics, a fixed 80/20 split.
- ``char_lm``: a character-level transformer on English text that ships with
  CPython itself: the values of ``pydoc_data.topics.topics`` (the Python
  documentation's topic pages that ``help()`` prints; about 465k characters
  in CPython 3.11, 103 distinct characters), joined in sorted-key order. It is
  always installed with the interpreter, so the task needs no download and no
  extra package. The first 90% (by position) trains, the last 10% is held out.
- ``ill_conditioned_quadratic``, ``rosenbrock``: deterministic problems from
  ``optkit.bench.problems``.

Models are pure JAX (no flax/torch); conv kernels use Flax's ``(kh, kw, in, out)``
layout. A task with ``objectives`` (``two_task``) is a multi-loss task:
``objectives(params, batch)`` returns the ``(m,)`` vector whose Jacobian the
compare harness feeds to multi-objective aggregators; ``loss`` is their sum.
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
    default_lrs: optimizer name -> learning rate used without ``--tune``.
    objectives: for multi-loss tasks, ``(params, batch) -> (m,)``; ``loss`` is
      then the sum of the objectives. None for single-loss tasks.
    report: extra held-out metric names (keys of ``evaluate``) shown in the table.
  """

  name: str
  init: Callable[[jax.Array], Any]
  loss: Callable[[Any, Any], jax.Array]
  sample: Callable[[jax.Array], Any]
  evaluate: Callable[[Any], dict]
  target: float
  description: str
  default_lrs: dict = dataclasses.field(default_factory=dict)
  objectives: Optional[Callable[[Any, Any], jax.Array]] = None
  report: tuple = ()


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


def _rng(key) -> np.random.Generator:
  """A NumPy generator seeded by a JAX key (the new tasks' ``init`` runs eagerly).

  NumPy, not ``jax.random``: compiling threefry for every parameter shape takes
  seconds per shape on a small CPU, longer than the runs themselves.
  """
  return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def _normal(rng: np.random.Generator, shape, scale=1.0) -> jax.Array:
  return jnp.asarray(rng.standard_normal(shape).astype(np.float32) * np.float32(scale))


def _digits_images(seed: int = 0):
  """Digits as (n, 8, 8, 1) images scaled by one global mean/std (train split)."""
  from sklearn.datasets import load_digits
  data = load_digits()
  x = (data.data / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
  y = data.target.astype(np.int32)
  perm = np.random.default_rng(seed).permutation(len(x))  # same split as _digits_split
  n_test = len(x) // 5
  test, train = perm[:n_test], perm[n_test:]
  mu, sd = x[train].mean(), x[train].std()
  x = (x - mu) / sd
  return x[train], y[train], x[test], y[test]


def _xent(logits, y):
  return jnp.mean(jax.nn.logsumexp(logits, axis=-1)
                  - jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0])


def _sampler(xtr, ytr, batch_size: int):
  """``key -> (x, y)``: a training batch drawn with replacement."""

  def sample(key):
    idx = jax.random.randint(key, (batch_size,), 0, xtr.shape[0])
    return xtr[idx], ytr[idx]

  return sample


def _softmax_classifier(name, init, apply, data, batch_size, description, default_lrs):
  """A Task for ``apply(params, x) -> logits`` trained with cross-entropy."""
  xtr, ytr, xte, yte = data

  def loss(params, batch):
    x, y = batch
    return _xent(apply(params, x), y)

  def evaluate(params):
    logits = apply(params, xte)
    return {"loss": _xent(logits, yte),
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == yte)}

  return Task(name, init, loss, _sampler(xtr, ytr, batch_size), evaluate, target=0.1,
              description=f"{description} ({xtr.shape[0]} train / {xte.shape[0]} test)",
              default_lrs=default_lrs)


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

  return _softmax_classifier(
      "digits_mlp", init, apply, (xtr, ytr, xte, yte), batch_size,
      f"MLP 64-{hidden}-10 on scikit-learn digits",
      default_lrs={"adamw": 3e-3, "sgd": 0.1, "lion": 1e-3, "lion_k": 1e-3,
                   "muon": 0.02, "spectral_descent": 0.02,
                   "steepest_descent": 0.02, "sign_descent": 3e-4,
                   "adahessian": 0.05, "adversarial_model_perturbation": 0.1})


def logistic_regression(batch_size: int = 64, l2: float = 1e-4) -> Task:
  """Binary logistic regression on scikit-learn's breast-cancer data (569 x 30).

  Features are standardized with the training split's mean and std; fixed
  80/20 split (seed 0). Training loss: mean binary cross-entropy on a batch
  plus ``l2/2 * |w|^2``; held-out: cross-entropy and accuracy.
  """
  from sklearn.datasets import load_breast_cancer  # ships the data with the package
  data = load_breast_cancer()
  x = data.data.astype(np.float32)
  y = data.target.astype(np.float32)
  perm = np.random.default_rng(0).permutation(len(x))
  n_test = len(x) // 5
  test, train = perm[:n_test], perm[n_test:]
  mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
  x = (x - mu) / sd
  xtr, ytr, xte, yte = map(jnp.asarray, (x[train], y[train], x[test], y[test]))

  def init(key):
    del key  # convex problem: start at zero
    return {"w": jnp.zeros((x.shape[1],)), "b": jnp.zeros(())}

  def bce(params, xs, ys):
    z = xs @ params["w"] + params["b"]
    return jnp.mean(jax.nn.softplus(z) - ys * z), z

  def loss(params, batch):
    xs, ys = batch
    return bce(params, xs, ys)[0] + 0.5 * l2 * jnp.sum(params["w"] ** 2)

  sample = _sampler(xtr, ytr, batch_size)

  def evaluate(params):
    value, z = bce(params, xte, yte)
    return {"loss": value, "accuracy": jnp.mean((z > 0) == (yte > 0.5))}

  return Task("logistic_regression", init, loss, sample, evaluate, target=0.1,
              description=f"logistic regression on scikit-learn breast cancer "
                          f"({xtr.shape[0]} train / {xte.shape[0]} test, 30 features)",
              default_lrs={"adamw": 0.01, "sgd": 0.05, "lion": 0.01, "lion_k": 0.01,
                           "muon": 0.05, "spectral_descent": 0.05,
                           "steepest_descent": 0.05, "sign_descent": 1e-3, "adahessian": 0.1,
                           "adversarial_model_perturbation": 0.05})


def _conv(x, k, stride=1):
  return jax.lax.conv_general_dilated(x, k, (stride, stride), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def digits_cnn(channels: tuple = (8, 16), batch_size: int = 128) -> Task:
  """A small CNN on scikit-learn's digits as 8x8x1 images.

  conv 3x3 (1->c1) - gelu - conv 3x3 stride 2 (c1->c2) - gelu - dense (4*4*c2 -> 10).
  Kernels are in Flax layout ``(kh, kw, in, out)``.
  """
  c1, c2 = channels
  xtr, ytr, xte, yte = map(jnp.asarray, _digits_images())

  def init(key):
    rng = _rng(key)
    return {
        "conv1": {"kernel": _normal(rng, (3, 3, 1, c1), 1 / 3.0), "bias": jnp.zeros((c1,))},
        "conv2": {"kernel": _normal(rng, (3, 3, c1, c2), 1 / np.sqrt(9.0 * c1)),
                  "bias": jnp.zeros((c2,))},
        "dense": {"kernel": _normal(rng, (16 * c2, 10), 1 / np.sqrt(16.0 * c2)),
                  "bias": jnp.zeros((10,))},
    }

  def apply(params, x):
    h = jax.nn.gelu(_conv(x, params["conv1"]["kernel"]) + params["conv1"]["bias"])
    h = jax.nn.gelu(_conv(h, params["conv2"]["kernel"], 2) + params["conv2"]["bias"])
    h = h.reshape(h.shape[0], -1)
    return h @ params["dense"]["kernel"] + params["dense"]["bias"]

  return _softmax_classifier(
      "digits_cnn", init, apply, (xtr, ytr, xte, yte), batch_size,
      f"CNN conv3x3({c1})-conv3x3/2({c2})-dense on scikit-learn digits",
      default_lrs={"adamw": 3e-3, "sgd": 0.05, "lion": 1e-3, "lion_k": 1e-3,
                   "muon": 0.02, "spectral_descent": 0.02,
                   "steepest_descent": 0.02, "sign_descent": 3e-4,
                   "adahessian": 0.05, "adversarial_model_perturbation": 0.05})


def _corpus() -> str:
  """English text shipped with CPython: the ``help()`` topic pages."""
  from pydoc_data.topics import topics
  return "".join(topics[k] for k in sorted(topics))


def char_lm(d_model: int = 64, n_heads: int = 4, n_layers: int = 2, context: int = 64,
            batch_size: int = 32, mlp_ratio: int = 2, n_eval: int = 64) -> Task:
  """A tiny pre-LayerNorm causal transformer over characters of Python's docs.

  Embedding + learned positions, ``n_layers`` blocks of causal multi-head
  attention and a gelu MLP, final LayerNorm and an untied output head (about
  80k parameters at the defaults). Train: random windows of the first 90% of
  the corpus; held-out: ``n_eval`` evenly spaced windows of the last 10%.
  Loss in nats per character (next-character cross-entropy).
  """
  text = _corpus()
  vocab = sorted(set(text))
  lookup = {c: i for i, c in enumerate(vocab)}
  ids = np.fromiter((lookup[c] for c in text), dtype=np.int32, count=len(text))
  n_train = int(0.9 * len(ids))
  train_ids, test_ids = jnp.asarray(ids[:n_train]), ids[n_train:]
  starts = np.linspace(0, len(test_ids) - context - 2, n_eval).astype(np.int64)
  test_windows = jnp.asarray(np.stack([test_ids[s:s + context + 1] for s in starts]))
  v, d, h = len(vocab), d_model, n_heads
  dh = d // h
  hidden = mlp_ratio * d

  def init(key):
    rng = _rng(key)
    normal = lambda shape, fan_in: _normal(rng, shape, 1 / np.sqrt(fan_in))
    params = {"embed": normal((v, d), 1.0) * 0.02,
              "pos": normal((context, d), 1.0) * 0.02,
              "ln_f": {"scale": jnp.ones((d,)), "bias": jnp.zeros((d,))},
              "head": normal((d, v), d)}
    for i in range(n_layers):
      params[f"block{i}"] = {
          "ln1": {"scale": jnp.ones((d,)), "bias": jnp.zeros((d,))},
          "qkv": normal((d, 3 * d), d),
          "proj": normal((d, d), d) / np.sqrt(2.0 * n_layers),
          "ln2": {"scale": jnp.ones((d,)), "bias": jnp.zeros((d,))},
          "fc1": normal((d, hidden), d),
          "fc2": normal((hidden, d), hidden) / np.sqrt(2.0 * n_layers),
      }
    return params

  def layer_norm(p, x):
    mu = jnp.mean(x, -1, keepdims=True)
    var = jnp.var(x, -1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + 1e-5) * p["scale"] + p["bias"]

  mask = np.tril(np.ones((context, context), dtype=bool))

  def apply(params, tokens):
    n, t = tokens.shape
    x = params["embed"][tokens] + params["pos"][:t]
    for i in range(n_layers):
      p = params[f"block{i}"]
      qkv = layer_norm(p["ln1"], x) @ p["qkv"]
      q, k, val = jnp.split(qkv.reshape(n, t, 3, h, dh), 3, axis=2)
      q, k, val = q[:, :, 0], k[:, :, 0], val[:, :, 0]          # (n, t, h, dh)
      att = jnp.einsum("nthd,nshd->nhts", q, k) / np.sqrt(dh)
      att = jnp.where(mask[:t, :t], att, -1e9)
      att = jax.nn.softmax(att, axis=-1)
      y = jnp.einsum("nhts,nshd->nthd", att, val).reshape(n, t, d)
      x = x + y @ p["proj"]
      x = x + jax.nn.gelu(layer_norm(p["ln2"], x) @ p["fc1"]) @ p["fc2"]
    return layer_norm(params["ln_f"], x) @ params["head"]

  def nll(params, windows):
    logits = apply(params, windows[:, :-1])
    return _xent(logits.reshape(-1, v), windows[:, 1:].reshape(-1))

  def sample(key):
    s = jax.random.randint(key, (batch_size,), 0, n_train - context - 1)
    return jax.vmap(lambda i: jax.lax.dynamic_slice(train_ids, (i,), (context + 1,)))(s)

  def evaluate(params):
    return {"loss": nll(params, test_windows)}

  return Task("char_lm", init, nll, sample, evaluate, target=2.0,
              description=f"char transformer ({n_layers}x d{d} h{h}, ctx {context}) on "
                          f"CPython's pydoc topics text ({n_train} train / "
                          f"{len(test_ids)} held-out chars, vocab {v}); loss in nats/char",
              default_lrs={"adamw": 3e-3, "sgd": 0.1, "lion": 3e-4, "lion_k": 3e-4,
                           "muon": 0.02, "spectral_descent": 0.02,
                           "steepest_descent": 0.02, "sign_descent": 3e-4,
                           "adahessian": 0.05, "adversarial_model_perturbation": 0.1})


def two_task(hidden: int = 64, batch_size: int = 128) -> Task:
  """Two objectives on one shared MLP trunk over scikit-learn digits.

  Trunk 64-hidden (gelu); head ``digit`` (hidden->10) classifies the digit,
  head ``parity`` (hidden->2) classifies even/odd. ``objectives`` returns
  ``[xent_digit, xent_parity]``; the training loss is their sum. Held-out:
  both cross-entropies (``loss_digit``, ``loss_parity``), their sum (``loss``)
  and both accuracies.
  """
  xtr, ytr, xte, yte = map(jnp.asarray, _digits_split())

  def init(key):
    rng = _rng(key)
    return {
        "trunk": {"w": _normal(rng, (64, hidden), 1 / 8.0), "b": jnp.zeros((hidden,))},
        "digit": {"w": _normal(rng, (hidden, 10), 1 / np.sqrt(hidden)), "b": jnp.zeros((10,))},
        "parity": {"w": _normal(rng, (hidden, 2), 1 / np.sqrt(hidden)), "b": jnp.zeros((2,))},
    }

  def heads(params, x):
    h = jax.nn.gelu(x @ params["trunk"]["w"] + params["trunk"]["b"])
    return (h @ params["digit"]["w"] + params["digit"]["b"],
            h @ params["parity"]["w"] + params["parity"]["b"])

  def objectives(params, batch):
    x, y = batch
    ld, lp = heads(params, x)
    return jnp.stack([_xent(ld, y), _xent(lp, y % 2)])

  def loss(params, batch):
    return jnp.sum(objectives(params, batch))

  sample = _sampler(xtr, ytr, batch_size)

  def evaluate(params):
    ld, lp = heads(params, xte)
    d, p = _xent(ld, yte), _xent(lp, yte % 2)
    return {"loss": d + p, "loss_digit": d, "loss_parity": p,
            "accuracy": jnp.mean(jnp.argmax(ld, -1) == yte),
            "accuracy_parity": jnp.mean(jnp.argmax(lp, -1) == yte % 2)}

  return Task("two_task", init, loss, sample, evaluate, target=0.2,
              description=f"two objectives (digit, parity) on a shared MLP trunk 64-{hidden}, "
                          f"scikit-learn digits ({xtr.shape[0]} train / {xte.shape[0]} test)",
              default_lrs={"adamw": 3e-3, "sgd": 0.05, "upgrad": 0.05,
                           "jacobian_descent": 0.05, "lion": 1e-3, "lion_k": 1e-3,
                           "muon": 0.02, "spectral_descent": 0.02,
                           "adahessian": 0.05, "adversarial_model_perturbation": 0.05},
              objectives=objectives,
              report=("loss_digit", "loss_parity", "accuracy_parity"))


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
    "logistic_regression": logistic_regression,
    "digits_cnn": digits_cnn,
    "char_lm": char_lm,
    "two_task": two_task,
}


def get(name: str) -> Task:
  if name not in TASKS:
    raise KeyError(f"optkit compare: unknown task {name!r}; known: {', '.join(TASKS)}.")
  return TASKS[name]()
