"""``python -m optkit compare``: train optimizers side by side on a task.

Prints a table (best/final train loss, held-out loss and accuracy, steps to the
target loss, ms per step, optimizer-state bytes per parameter byte) and writes
``curves.png`` and ``results.json`` to ``--out``. Optimizers that need
``value_fn`` get it from the task's loss on the current batch.

Multi-loss tasks (a ``Task`` with ``objectives``, e.g. ``two_task``): records of
kind ``aggregator`` run as ``optax.chain(aggregator, optax.sgd(lr, momentum=0.9))``
and optimizers whose factory takes ``aggregator`` are built with ``upgrad()``
and the same SGD; both are fed ``jax.jacrev(objectives)`` (a Jacobian tree with
a leading objective axis) as their ``updates`` and the objective vector as
``values``. Every other optimizer gets the gradient of the summed loss.

A run whose training loss becomes non-finite stops there and is reported as
diverged at that step (1-based: the step whose loss was non-finite); the other
runs go on. Non-finite numbers are written as ``null`` in ``results.json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time

DEFAULT_OPTIMIZERS = ("adamw", "lion", "muon", "spectral_descent", "adahessian",
                      "adversarial_model_perturbation")
BASELINES = ("adamw", "sgd")


def add_arguments(p: argparse.ArgumentParser) -> None:
  p.add_argument("--task", default="digits_mlp", help="task name (default: digits_mlp)")
  p.add_argument("--optimizers", default=",".join(DEFAULT_OPTIMIZERS),
                 help="comma-separated registry names; 'adamw' and 'sgd' are optax baselines")
  p.add_argument("--steps", type=int, default=400)
  p.add_argument("--seeds", type=int, default=1)
  p.add_argument("--tune", action="store_true",
                 help="sweep 5 log-spaced learning rates around each default (same budget for all)")
  p.add_argument("--out", default="runs/compare")
  p.add_argument("--no-progress", action="store_true")


def _is_multi_objective(name: str) -> bool:
  """Whether ``name`` consumes a Jacobian (an aggregator, or takes one)."""
  from optkit import registry
  if name in BASELINES:
    return False
  rec = registry.get(name)
  return rec.kind == "aggregator" or (
      rec.kind == "optimizer" and "aggregator" in inspect.signature(rec.factory).parameters)


def valid_optimizers(multi_objective: bool = False) -> list:
  """Names ``compare`` accepts (on a multi-loss task when ``multi_objective``)."""
  from optkit import registry
  out = list(BASELINES)
  for rec in registry.algorithms():
    try:
      build_optimizer(rec.name, 1e-3, multi_objective=multi_objective)
    except (KeyError, ValueError, TypeError):
      continue
    out.append(rec.name)
  return out


def build_optimizer(name: str, lr: float, multi_objective: bool = False):
  """An optax transformation for ``name`` at learning rate ``lr``.

  With ``multi_objective`` (a multi-loss task), aggregators become
  ``chain(aggregator, sgd(lr, momentum=0.9))`` and optimizers taking an
  ``aggregator`` get ``upgrad()`` (and the same SGD as ``inner``).
  """
  import optax
  from optkit import registry

  if name == "adamw":
    return optax.adamw(lr, weight_decay=1e-4)
  if name == "sgd":
    return optax.sgd(lr, momentum=0.9)
  rec = registry.get(name)
  params = inspect.signature(rec.factory).parameters
  if multi_objective and rec.kind == "aggregator":
    return optax.chain(rec.factory(), optax.sgd(lr, momentum=0.9))
  if multi_objective and rec.kind == "optimizer" and "aggregator" in params:
    from optkit.multi_objective import upgrad
    kwargs = {"aggregator": upgrad()}
    if "inner" in params:
      kwargs["inner"] = optax.sgd(lr, momentum=0.9)
    if "learning_rate" in params:
      kwargs["learning_rate"] = lr
    return rec.factory(**kwargs)
  if rec.kind == "wrapper" and "inner" in params:
    return rec.factory(inner=optax.sgd(lr, momentum=0.9))
  if rec.kind in ("optimizer", "direction") and "learning_rate" in params and \
      "aggregator" not in params:
    return rec.factory(learning_rate=lr)
  if rec.kind == "aggregator" or "aggregator" in params:
    raise ValueError(
        f"optkit compare: {name!r} is a multi-objective {rec.kind} and cannot be compared "
        "on a single-loss task (multi-objective aggregators need a multi-loss task such "
        "as two_task).")
  raise ValueError(f"optkit compare: {name!r} is a {rec.kind}, not an optimizer "
                   "that compare can run.")


def _state_bytes_ratio(state, params) -> float:
  import jax
  import numpy as np
  nbytes = lambda t: sum(np.asarray(x).nbytes for x in jax.tree.leaves(t)
                         if hasattr(x, "dtype") and np.ndim(x) > 0)
  return nbytes(state) / max(nbytes(params), 1)


def run_one(task, name: str, lr: float, steps: int, seed: int, progress: bool = True):
  """Trains one optimizer; returns a dict of curves and summary numbers."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax

  jacobian = task.objectives is not None and _is_multi_objective(name)
  tx = optax.with_extra_args_support(
      build_optimizer(name, lr, multi_objective=task.objectives is not None))
  key = jax.random.key(seed)
  params = task.init(key)
  state = tx.init(params)

  @jax.jit
  def step(params, state, key):
    batch = task.sample(key)
    value_fn = lambda p: task.loss(p, batch)
    if jacobian:  # per-objective Jacobian: leaves of shape (m, *param.shape)
      values = task.objectives(params, batch)
      grads = jax.jacrev(task.objectives)(params, batch)
      loss = jnp.sum(values)
      updates, state = tx.update(grads, state, params, values=values, value_fn=value_fn,
                                 value=loss)
    else:
      loss, grads = jax.value_and_grad(value_fn)(params)
      updates, state = tx.update(grads, state, params, value_fn=value_fn, value=loss)
    return optax.apply_updates(params, updates), state, loss

  evaluate = jax.jit(task.evaluate)
  data_key = jax.random.key(1000 + seed)
  train_losses, evals = [], []
  # Compile (and warm up) outside the timed loop; the result is discarded.
  jax.block_until_ready(step(params, state, data_key))
  bar = None
  if progress:
    from tqdm.auto import tqdm
    bar = tqdm(total=steps, desc=f"{name:>30s} lr={lr:.2g} seed={seed}", leave=False,
               file=sys.stderr, mininterval=0.5)
  t_total = 0.0
  eval_every = max(1, steps // 40)
  diverged_at = None
  for t in range(steps):
    data_key, k = jax.random.split(data_key)
    t0 = time.perf_counter()
    params, state, loss = step(params, state, k)
    loss = float(loss)  # blocks on the step
    t_total += time.perf_counter() - t0
    train_losses.append(loss)
    if not np.isfinite(loss):
      diverged_at = t + 1
      break
    if t % eval_every == 0 or t == steps - 1:
      evals.append((t, {k2: float(v) for k2, v in evaluate(params).items()}))
    if bar is not None:
      bar.update(1)
      if t % 20 == 0:
        bar.set_postfix(loss=f"{loss:.4f}")
  if bar is not None:
    bar.close()
  if diverged_at is not None:
    # The last evaluation saw finite params; the run's final numbers are not finite.
    final_eval = {k: float("nan") for k in (evals[-1][1] if evals else {"loss": 0})}
  else:
    final_eval = evals[-1][1]
  finite = np.asarray(train_losses[:len(train_losses) - (diverged_at is not None)])
  smooth = np.convolve(finite, np.ones(10) / 10, mode="valid") if len(finite) >= 10 \
      else finite
  reached = np.nonzero(smooth <= task.target)[0]
  return {
      "optimizer": name, "lr": lr, "seed": seed,
      "train_loss": train_losses,
      "eval_steps": [e[0] for e in evals],
      "eval": [e[1] for e in evals],
      "best_train_loss": float(np.min(smooth)) if len(smooth) else float("nan"),
      "final_train_loss": (float("nan") if diverged_at is not None
                           else float(np.mean(train_losses[-10:]))),
      "final_eval": final_eval,
      "steps_to_target": int(reached[0]) + 10 if len(reached) else None,
      "ms_per_step": 1000.0 * t_total / max(len(train_losses), 1),
      "state_bytes_per_param_byte": _state_bytes_ratio(state, params),
      "diverged": diverged_at is not None,
      "diverged_at_step": diverged_at,
  }


def _run_safely(task, name, lr, steps, seed, progress):
  """``run_one``, but an exception inside one run is recorded, not raised."""
  try:
    return run_one(task, name, lr, steps, seed, progress)
  except Exception as e:  # pylint: disable=broad-except
    print(f"optkit compare: {name} (lr {lr:.2g}, seed {seed}) failed: "
          f"{type(e).__name__}: {e}", file=sys.stderr)
    return {"optimizer": name, "lr": lr, "seed": seed, "error": f"{type(e).__name__}: {e}",
            "train_loss": [], "eval_steps": [], "eval": [], "final_eval": {},
            "diverged": False, "diverged_at_step": None}


def _lr_grid(base: float):
  return [base * f for f in (0.1, 0.3, 1.0, 3.0, 10.0)]


def _summarize(results, names, report=()):
  import numpy as np
  rows = []
  for name in names:
    rs = [r for r in results if r["optimizer"] == name and r.get("selected", True)]
    if not rs:
      continue
    ok = [r for r in rs if "error" not in r]
    mean = lambda key: float(np.mean([r[key] for r in ok])) if ok else float("nan")
    ev = lambda key: float(np.mean([r["final_eval"].get(key, np.nan) for r in ok])) \
        if ok else float("nan")
    stt = [r["steps_to_target"] for r in ok]
    div = [r["diverged_at_step"] for r in ok if r.get("diverged")]
    if len(ok) < len(rs):
      status = "error"
    elif div:
      status = f"diverged@{min(div)}" + (f" ({len(div)}/{len(rs)})" if len(rs) > 1 else "")
    else:
      status = "ok"
    rows.append({
        "optimizer": name, "lr": rs[0]["lr"], "status": status,
        "diverged": bool(div), "diverged_at_step": min(div) if div else None,
        "best_train_loss": mean("best_train_loss"),
        "final_train_loss": mean("final_train_loss"),
        "eval_loss": ev("loss"), "eval_accuracy": ev("accuracy"),
        "eval": {k: ev(k) for k in (ok[0]["final_eval"] if ok else {})},
        "steps_to_target": (None if not stt or any(s is None for s in stt)
                            else float(np.mean(stt))),
        "ms_per_step": mean("ms_per_step"),
        "state_bytes_per_param_byte": mean("state_bytes_per_param_byte"),
    })
  return rows


def _print_table(rows, task):
  headers = ["optimizer", "lr", "status", "best train", "final train", "test loss", "test acc",
             *[f"test {k}" for k in task.report],
             f"steps to {task.target:g}", "ms/step", "state B/param B"]
  fmt = lambda v, f: "-" if v is None or v != v else format(v, f)
  lines = [[r["optimizer"], fmt(r["lr"], ".2g"), r["status"], fmt(r["best_train_loss"], ".4f"),
            fmt(r["final_train_loss"], ".4f"), fmt(r["eval_loss"], ".4f"),
            fmt(r["eval_accuracy"], ".3f"),
            *[fmt(r["eval"].get(k), ".4f") for k in task.report],
            fmt(r["steps_to_target"], ".0f"),
            fmt(r["ms_per_step"], ".2f"), fmt(r["state_bytes_per_param_byte"], ".2f")]
           for r in rows]
  widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(headers)]
  print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
  print("  ".join("-" * w for w in widths))
  for l in lines:
    print("  ".join(c.ljust(w) for c, w in zip(l, widths)))


def _finite_or_none(obj):
  """``obj`` with every non-finite float replaced by None (strict JSON)."""
  import math
  if isinstance(obj, float):
    return obj if math.isfinite(obj) else None
  if isinstance(obj, dict):
    return {k: _finite_or_none(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite_or_none(v) for v in obj]
  return obj


def _plot(results, names, task, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for i, name in enumerate(names):
    rs = [r for r in results if r["optimizer"] == name and r.get("selected", True)]
    if not rs:
      continue
    rs = [r for r in rs if "error" not in r and r["train_loss"]]
    if not rs:
      continue
    color = f"C{i % 10}"
    n = min(len(r["train_loss"]) for r in rs)
    curves = np.asarray([r["train_loss"][:n] for r in rs])
    k = min(10, n)
    sm = np.apply_along_axis(lambda c: np.convolve(c, np.ones(k) / k, mode="valid"), 1, curves)
    div = [r["diverged_at_step"] for r in rs if r.get("diverged")]
    label = f"{name} (lr {rs[0]['lr']:.2g}" + (f", diverged@{min(div)})" if div else ")")
    axes[0].plot(np.arange(sm.shape[1]) + k, sm.mean(0), color=color, label=label)
    ne = min(len(r["eval"]) for r in rs)
    if ne:
      axes[1].plot(rs[0]["eval_steps"][:ne],
                   np.mean([[e["loss"] for e in r["eval"][:ne]] for r in rs], 0), color=color)
  axes[1].set_ylabel("held-out loss")
  axes[1].set_yscale("log")
  axes[0].set_yscale("log")
  axes[0].set_xlabel("step")
  axes[0].set_ylabel("train loss (10-step mean)")
  axes[1].set_xlabel("step")
  axes[0].legend(fontsize=8)
  fig.suptitle(f"optkit compare: {task.description}", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(args) -> int:
  from optkit.bench import tasks as tasks_lib
  from optkit import registry

  try:
    task = tasks_lib.get(args.task)
  except KeyError as e:
    print(e.args[0], file=sys.stderr)
    return 2
  names = [n.strip() for n in args.optimizers.split(",") if n.strip()]
  multi = task.objectives is not None
  for n in names:
    if n in BASELINES:
      continue
    try:
      build_optimizer(n, 1e-3, multi_objective=multi)
    except (KeyError, ValueError) as e:
      print(e.args[0], file=sys.stderr)
      print(f"optkit compare: valid optimizers on task {task.name!r}: "
            f"{', '.join(valid_optimizers(multi))}.", file=sys.stderr)
      return 2
  if args.steps < 1 or args.seeds < 1:
    print("optkit compare: --steps and --seeds must be >= 1", file=sys.stderr)
    return 2
  os.makedirs(args.out, exist_ok=True)
  print(f"task: {task.description}; {args.steps} steps x {args.seeds} seed(s)"
        f"{'; tuning lr over 5 values' if args.tune else ''}", flush=True)
  results = []
  for name in names:
    base = task.default_lrs.get(name, 1e-3)
    grid = _lr_grid(base) if args.tune else [base]
    runs = {lr: [_run_safely(task, name, lr, args.steps, s, not args.no_progress)
                 for s in range(args.seeds)] for lr in grid}
    # Select the learning rate by held-out loss (diverged runs lose).
    def score(rs):
      import numpy as np
      v = np.mean([r["final_eval"].get("loss", np.nan) for r in rs])
      return v if np.isfinite(v) else float("inf")
    best = min(runs, key=lambda lr: score(runs[lr]))
    for lr, rs in runs.items():
      for r in rs:
        r["selected"] = lr == best
        results.append(r)
    sel = runs[best][0]
    if "error" in sel:
      print(f"  {name:>30s}: lr {best:.2g}, error: {sel['error']}", flush=True)
    elif sel["diverged"]:
      print(f"  {name:>30s}: lr {best:.2g}, diverged at step {sel['diverged_at_step']}",
            flush=True)
    else:
      print(f"  {name:>30s}: lr {best:.2g}, final train {sel['final_train_loss']:.4f}, "
            f"test {sel['final_eval']}", flush=True)
  rows = _summarize(results, names, task.report)
  print()
  _print_table(rows, task)
  png = os.path.join(args.out, "curves.png")
  _plot(results, names, task, png)
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(_finite_or_none(
        {"task": task.name, "description": task.description, "steps": args.steps,
         "seeds": args.seeds, "tuned": bool(args.tune), "summary": rows,
         "runs": results}), f, indent=1, allow_nan=False)
  print(f"\nwrote {png} and {os.path.join(args.out, 'results.json')}")
  return 0
