"""Writes and executes the notebooks in notebooks/ (outputs kept, small).

    python tools/build_notebooks.py            # all
    python tools/build_notebooks.py quickstart # one

The cells live here so that a notebook's source is reviewable as plain Python;
the committed .ipynb files are this script's output, executed top to bottom
with nbclient. CI runs them again with nbmake (``pytest --nbmake``, enabled in
pyproject's addopts) to check they still run.
"""

from __future__ import annotations

import os
import sys

import nbformat
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "notebooks")

M, C = "markdown", "code"

NOTEBOOKS = {}

NOTEBOOKS["01_quickstart"] = [
    (M, """# optkit quickstart

optkit's optimizers are Optax `GradientTransformation`s: `init(params) -> state`,
`update(grads, state, params) -> (updates, state)`. They chain with Optax's own
pieces, jit, and drop into any JAX loop. This notebook trains a logistic
regression on scikit-learn's breast-cancer data (ships with the package) with
Lion, then shows the registry, `value_fn` for curvature methods, and
`inject_hyperparams`."""),
    (C, """import jax, jax.numpy as jnp, numpy as np, optax, optkit
from sklearn.datasets import load_breast_cancer

data = load_breast_cancer()
x = (data.data - data.data.mean(0)) / data.data.std(0)
x, y = jnp.asarray(x, jnp.float32), jnp.asarray(data.target, jnp.float32)

def loss(params, x, y):
  logits = x @ params["w"] + params["b"]
  return optax.sigmoid_binary_cross_entropy(logits, y).mean()

params = {"w": jnp.zeros(x.shape[1]), "b": jnp.zeros(())}
print(x.shape, "initial loss", float(loss(params, x, y)))"""),
    (M, "## A training loop\n\nAny optkit optimizer chains with Optax pieces, here gradient clipping."),
    (C, """tx = optax.chain(optax.clip_by_global_norm(1.0), optkit.lion(learning_rate=1e-2))
state = tx.init(params)

@jax.jit
def step(params, state):
  l, grads = jax.value_and_grad(loss)(params, x, y)
  updates, state = tx.update(grads, state, params)
  return optax.apply_updates(params, updates), state, l

for i in range(201):
  params, state, l = step(params, state)
  if i % 50 == 0:
    print(f"step {i:3d} loss {float(l):.4f}")
acc = jnp.mean((x @ params["w"] + params["b"] > 0) == (y > 0.5))
print("train accuracy", float(acc))"""),
    (M, """## The registry

Every algorithm has a record: its paper, arXiv id, family, the extra inputs
its `update` reads, and a factory."""),
    (C, """print(len(optkit.registry.algorithms()), "records")
for rec in optkit.registry.algorithms(family="sign"):
  print(f"{rec.name:20s} {rec.arxiv:12s} {rec.paper[:60]}")"""),
    (C, """rec = optkit.registry.get("sophia")
print(rec.paper, rec.arxiv, "extra inputs:", rec.extra_args)"""),
    (M, """## Optimizers that need the loss: `value_fn`

Curvature and perturbation methods (AdaHessian, Sophia, AMP, ...) evaluate
Hessian-vector products or gradients at other points, so `update` takes the
loss of the current batch as a function of the params, `value_fn`."""),
    (C, """tx = optkit.adahessian(learning_rate=0.15)
params = {"w": jnp.zeros(x.shape[1]), "b": jnp.zeros(())}
state = tx.init(params)

@jax.jit
def step(params, state):
  value_fn = lambda p: loss(p, x, y)
  l, grads = jax.value_and_grad(value_fn)(params)
  updates, state = tx.update(grads, state, params, value_fn=value_fn)
  return optax.apply_updates(params, updates), state, l

for i in range(101):
  params, state, l = step(params, state)
  if i % 25 == 0:
    print(f"step {i:3d} loss {float(l):.4f}")"""),
    (M, """Forgetting it is a clear error, not a silent fallback:"""),
    (C, """try:
  tx.update(jax.grad(loss)(params, x, y), state, params)
except ValueError as e:
  print("ValueError:", e)"""),
    (M, """## Hyperparameters as state

Every numeric hyperparameter works with `optax.inject_hyperparams`, so it can
be read and changed between steps (schedules, sweeps)."""),
    (C, """tx = optax.inject_hyperparams(optkit.lion)(learning_rate=1e-2, b1=0.9, b2=0.99)
state = tx.init(params)
state.hyperparams["learning_rate"] = 3e-3
print({k: float(v) for k, v in state.hyperparams.items() if jnp.ndim(v) == 0})"""),
]

NOTEBOOKS["02_choosing_an_optimizer"] = [
    (M, """# Choosing an optimizer

`python -m optkit compare` trains several optimizers on one task and reports
losses, steps to a target, step time and optimizer-state size. The same
machinery is a Python API: `optkit.bench.tasks` has the tasks and
`optkit.bench.compare.run_one` trains one optimizer. Here: an MLP on
scikit-learn's digits, a few optimizers, one seed, short runs (CI runs this
notebook; the command line does more seeds and a learning-rate sweep)."""),
    (C, """import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from optkit.bench import tasks, compare

task = tasks.digits_mlp()
print(task.description)
names = ["adamw", "lion", "ademamix", "adahessian"]
results = {}
for name in names:
  lr = task.default_lrs.get(name, 1e-3)
  results[name] = compare.run_one(task, name, lr, steps=120, seed=0, progress=False)"""),
    (C, """fig, ax = plt.subplots(figsize=(6, 3.5))
for name, r in results.items():
  loss = np.asarray(r["train_loss"])
  smooth = np.convolve(loss, np.ones(10) / 10, mode="valid")
  ax.plot(np.arange(len(smooth)) + 10, smooth, label=name)
ax.set_yscale("log"); ax.set_xlabel("step"); ax.set_ylabel("train loss (10-step mean)")
ax.legend(); fig.tight_layout()
fig.savefig("/tmp/optkit_choose.png", dpi=60)
plt.close(fig)
from IPython.display import Image
Image("/tmp/optkit_choose.png")"""),
    (C, """print(f"{'optimizer':12s} {'final train':>11s} {'held-out':>9s} {'ms/step':>8s} {'state/param':>11s}")
for name, r in results.items():
  print(f"{name:12s} {r['final_train_loss']:11.4f} {float(r['final_eval']['loss']):9.4f} "
        f"{r['ms_per_step']:8.2f} {r['state_bytes_per_param_byte']:11.2f}")"""),
    (M, """Things to read off such a table: AdaHessian pays a Hessian-vector product per
step (higher ms/step) for its curvature; optimizer-state bytes per parameter
byte are 1.0 for Lion (one momentum), 2.0 for AdamW, 3.0 for AdEMAMix (a second,
slow momentum) and AdaHessian (moments plus the probe's key and Hessian
estimate). One seed and 120 steps at untuned learning rates decide nothing;
`python -m optkit compare --seeds 3 --tune` is the honest version."""),
]

NOTEBOOKS["03_curvature_hutchinson"] = [
    (M, """# Curvature: Hutchinson estimates of the Hessian diagonal

AdaHessian and Sophia-H precondition with an estimate of diag(H):
`z * (H z)` for a random Rademacher probe `z`, which is unbiased because
E[z zᵀ] = I. `optkit.core.hessian.hutchinson_diag` computes it with one
Hessian-vector product per probe; `exact_diag` computes the exact diagonal
(one HVP per parameter, for small problems). Here both on a small tanh
network, and how the error shrinks with the number of probes."""),
    (C, """import jax, jax.numpy as jnp, numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from optkit.core import hessian

k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
x = jax.random.normal(k1, (64, 5)); y = jnp.sin(x.sum(1))
params = {"w1": 0.5 * jax.random.normal(k2, (5, 8)), "w2": 0.5 * jax.random.normal(k3, (8,))}

def value_fn(p):
  return jnp.mean((jnp.tanh(x @ p["w1"]) @ p["w2"] - y) ** 2)

exact = jnp.concatenate([v.ravel() for v in jax.tree.leaves(hessian.exact_diag(value_fn, params))])
print("parameters:", exact.size)"""),
    (C, """def estimate(num_samples, seed):
  d = hessian.hutchinson_diag(value_fn, params, jax.random.key(seed), num_samples=num_samples)
  return jnp.concatenate([v.ravel() for v in jax.tree.leaves(d)])

counts = [1, 4, 16, 64, 256]
errors = [float(np.mean([jnp.linalg.norm(estimate(n, s) - exact) / jnp.linalg.norm(exact)
                         for s in range(5)])) for n in counts]
for n, e in zip(counts, errors):
  print(f"{n:4d} probes: relative error {e:.3f}")"""),
    (C, """fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
a.loglog(counts, errors, "o-", label="Hutchinson")
a.loglog(counts, errors[0] / np.sqrt(counts), "k--", label="1/sqrt(probes)")
a.set_xlabel("probes"); a.set_ylabel("relative error"); a.legend()
est = estimate(256, 0)
b.scatter(exact, est, s=8); lim = [float(exact.min()), float(exact.max())]
b.plot(lim, lim, "k--", lw=1); b.set_xlabel("exact diag(H)"); b.set_ylabel("estimate, 256 probes")
fig.tight_layout(); fig.savefig("/tmp/optkit_hutch.png", dpi=60); plt.close(fig)
from IPython.display import Image
Image("/tmp/optkit_hutch.png")"""),
    (M, """The error falls like 1/sqrt(probes), the rate of an unbiased estimate with
finite variance. The optimizers use one probe per refresh and smooth it with
an exponential moving average instead (AdaHessian also averages over spatial
blocks); Sophia refreshes it only every `update_interval` steps (default 10),
inside `lax.cond`, which is what keeps its step cost close to Adam's."""),
]

NOTEBOOKS["04_orthogonalized_updates"] = [
    (M, """# Orthogonalized updates: Newton-Schulz

Muon and spectral descent replace a matrix update `G = U S Vᵀ` by its polar
factor `U Vᵀ`: every singular value becomes 1. An SVD would do it exactly but
is slow on accelerators; `optkit.core.linalg.newton_schulz` runs a few
matrix-product iterations instead. Muon's quintic coefficients push the
singular values into a band around 1 fast; the cubic ones converge to 1
exactly but need more steps."""),
    (C, """import jax, jax.numpy as jnp, numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from optkit.core import linalg

# A gradient-like matrix with a spread of singular values (condition number 1e3).
u, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (64, 64)))
v, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (32, 32)))
s = jnp.logspace(0, -3, 32)
g = (u[:, :32] * s) @ v.T
sv = lambda m: np.linalg.svd(np.asarray(m), compute_uv=False)
print("input singular values: max %.3g min %.3g" % (sv(g).max(), sv(g).min()))"""),
    (C, """for steps in (1, 3, 5, 10):
  out = sv(linalg.newton_schulz(g, steps=steps))
  print(f"quintic, {steps:2d} steps: singular values in [{out.min():.3f}, {out.max():.3f}]")
for steps in (10, 30):
  out = sv(linalg.newton_schulz(g, steps=steps, coeffs=linalg.CUBIC_COEFFS))
  print(f"cubic,   {steps:2d} steps: singular values in [{out.min():.3f}, {out.max():.3f}]")
exact = linalg.orthogonalize_svd(g)
print("SVD U V^T: singular values", sv(exact).min().round(4), sv(exact).max().round(4))"""),
    (C, """fig, ax = plt.subplots(figsize=(6, 3.2))
ax.semilogy(sv(g), "k.", label="input")
for steps in (1, 3, 5):
  ax.semilogy(sv(linalg.newton_schulz(g, steps=steps)), ".-", label=f"NS quintic, {steps} steps")
ax.axhline(1.0, color="gray", lw=0.8)
ax.set_xlabel("index"); ax.set_ylabel("singular value"); ax.legend(fontsize=8)
fig.tight_layout(); fig.savefig("/tmp/optkit_ns.png", dpi=60); plt.close(fig)
from IPython.display import Image
Image("/tmp/optkit_ns.png")"""),
    (M, """The quintic iteration never settles at exactly 1: it maps singular values
into a band of about [0.7, 1.2], which is what the update needs (the direction
`U Vᵀ`, not exact orthogonality). It starts from `G / ||G||_F`, so singular
values far below the largest (here 1e-3 of it) are still on their way up
after Muon's default 5 steps, and 10 steps bring every one into the band.
The cubic iteration converges to exactly 1 but needs about 30 steps. In an
optimizer (spectral descent, `b1 = 0`, the default 5 quintic steps):"""),
    (C, """import optax, optkit
tx = optkit.spectral_descent(learning_rate=0.02)
params = {"w": jnp.zeros((64, 32)), "b": jnp.zeros(32)}
state = tx.init(params)
updates, state = tx.update({"w": g, "b": jnp.ones(32)}, state, params)
print("update singular values / lr:", sv(-updates["w"] / 0.02).min().round(3),
      sv(-updates["w"] / 0.02).max().round(3))"""),
]

NOTEBOOKS["05_multi_objective"] = [
    (M, """# Multi-objective aggregation: the conflict-free direction

With several losses, their gradients can conflict: a step along the mean
gradient can increase one of the losses. UPGrad (Jacobian descent) projects
each gradient onto the dual cone of all of them and averages; the result has
a non-negative inner product with every gradient. `optkit.upgrad` takes the
Jacobian (every leaf with a leading objective axis) and returns one update."""),
    (C, """import jax, jax.numpy as jnp, numpy as np, optax, optkit
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

g1 = jnp.array([1.0, 0.1]); g2 = jnp.array([-0.3, 0.3])    # conflicting: g1 . g2 < 0
jac = {"x": jnp.stack([g1, g2])}                            # leading objective axis
tx = optkit.upgrad()
d_up, _ = tx.update(jac, tx.init({"x": jnp.zeros(2)}), {"x": jnp.zeros(2)})
d_up = d_up["x"]; d_mean = (g1 + g2) / 2
for name, d in [("mean", d_mean), ("upgrad", d_up)]:
  print(f"{name:7s} direction {np.round(np.asarray(d), 3)}  <d,g1> {float(d @ g1):+.3f}  <d,g2> {float(d @ g2):+.3f}")"""),
    (C, """fig, ax = plt.subplots(figsize=(4, 4))
for vec, c, lab in [(g1, "C0", "g1"), (g2, "C1", "g2"), (d_mean, "gray", "mean"), (d_up, "C3", "UPGrad")]:
  ax.annotate("", xy=np.asarray(vec), xytext=(0, 0), arrowprops=dict(color=c, width=1.5, headwidth=7))
  ax.text(*(np.asarray(vec) * 1.08), lab, color=c)
ax.set_xlim(-0.5, 1.2); ax.set_ylim(-0.2, 0.8); ax.set_aspect("equal"); ax.axhline(0, lw=0.5, c="k"); ax.axvline(0, lw=0.5, c="k")
fig.tight_layout(); fig.savefig("/tmp/optkit_upgrad.png", dpi=60); plt.close(fig)
from IPython.display import Image
Image("/tmp/optkit_upgrad.png")"""),
    (M, """When the gradients do not conflict, UPGrad returns their mean:"""),
    (C, """jac2 = {"x": jnp.stack([jnp.array([1.0, 0.2]), jnp.array([0.6, 0.5])])}
d2, _ = tx.update(jac2, tx.init({"x": jnp.zeros(2)}), {"x": jnp.zeros(2)})
print(np.asarray(d2["x"]), np.asarray(jac2["x"].mean(0)))"""),
    (M, """On many random conflicting Jacobians (10 objectives, 50 parameters), the
smallest inner product with any objective's gradient:"""),
    (C, """worst_up, worst_mean = [], []
for s in range(100):
  j = jax.random.normal(jax.random.key(s), (10, 50))
  d, _ = tx.update({"x": j}, tx.init({"x": jnp.zeros(50)}), {"x": jnp.zeros(50)})
  worst_up.append(float((j @ d["x"]).min())); worst_mean.append(float((j @ j.mean(0)).min()))
print("UPGrad: min over draws of min_i <d, g_i> = %+.2e" % min(worst_up))
print("mean:   min over draws of min_i <d, g_i> = %+.2e (%d of 100 draws conflict)"
      % (min(worst_mean), sum(w < 0 for w in worst_mean)))"""),
    (M, """In a training loop, chain the aggregator with an optimizer and feed it
`jax.jacrev` of the loss vector: see `examples/multi_task_upgrad.py`."""),
]


def build(name: str) -> None:
  nb = nbformat.v4.new_notebook()
  nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
  for kind, src in NOTEBOOKS[name]:
    nb.cells.append(nbformat.v4.new_markdown_cell(src) if kind == M
                    else nbformat.v4.new_code_cell(src))
  NotebookClient(nb, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": OUT}}).execute()
  path = os.path.join(OUT, f"{name}.ipynb")
  nbformat.write(nb, path)
  print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
  os.makedirs(OUT, exist_ok=True)
  for name in (sys.argv[1:] or NOTEBOOKS):
    build(name)
