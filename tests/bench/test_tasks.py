"""The compare harness's built-in tasks: they build, learn, and fail clearly."""

import json

import jax
import numpy as np
import pytest

from optkit.__main__ import main
from optkit.bench import compare, tasks

NEW_TASKS = ("logistic_regression", "digits_cnn", "char_lm", "two_task")


@pytest.mark.parametrize("name", NEW_TASKS)
def test_task_builds_and_adamw_decreases_its_loss(name):
  task = tasks.get(name)
  params = task.init(jax.random.key(0))
  batch = jax.jit(task.sample)(jax.random.key(1))
  assert np.isfinite(float(jax.jit(task.loss)(params, batch)))
  run = compare.run_one(task, "adamw", task.default_lrs["adamw"], 30, seed=0, progress=False)
  losses = np.asarray(run["train_loss"])
  assert len(losses) == 30 and np.all(np.isfinite(losses)) and not run["diverged"]
  assert losses[-5:].mean() < 0.8 * losses[:5].mean()
  first, last = run["eval"][0], run["final_eval"]  # held-out after step 1 and at the end
  assert all(np.isfinite(v) for v in first.values()) and all(
      np.isfinite(v) for v in last.values())
  assert last["loss"] < first["loss"]


def test_two_task_objectives_have_one_row_per_loss_and_sum_to_the_loss():
  task = tasks.get("two_task")
  params = task.init(jax.random.key(0))
  batch = jax.jit(task.sample)(jax.random.key(1))
  objs = jax.jit(task.objectives)(params, batch)
  assert objs.shape == (2,)
  np.testing.assert_allclose(float(jax.jit(task.loss)(params, batch)), float(objs.sum()),
                             rtol=1e-6)
  jac = jax.jit(jax.jacrev(task.objectives))(params, batch)
  for j, p in zip(jax.tree.leaves(jac), jax.tree.leaves(params)):
    assert j.shape == (2,) + p.shape
  ev = jax.jit(task.evaluate)(params)
  np.testing.assert_allclose(float(ev["loss"]), float(ev["loss_digit"] + ev["loss_parity"]),
                             rtol=1e-6)


def test_char_lm_corpus_is_cpython_docs_split_by_position():
  text = tasks._corpus()
  assert len(text) > 300_000 and "lambda" in text
  task = tasks.get("char_lm")
  n = sum(p.size for p in jax.tree.leaves(task.init(jax.random.key(0))))
  assert 50_000 <= n <= 120_000


def test_two_task_runs_upgrad_end_to_end(tmp_path, capsys):
  rc = main(["compare", "--task", "two_task", "--optimizers", "upgrad,jacobian_descent,adamw",
             "--steps", "25", "--out", str(tmp_path), "--no-progress"])
  assert rc == 0
  out = capsys.readouterr().out
  assert "loss_digit" in out and "loss_parity" in out
  data = json.loads((tmp_path / "results.json").read_text())
  rows = {r["optimizer"]: r for r in data["summary"]}
  assert set(rows) == {"upgrad", "jacobian_descent", "adamw"}
  for r in rows.values():
    assert r["status"] == "ok"
    assert np.isfinite(r["eval"]["loss_digit"]) and np.isfinite(r["eval"]["loss_parity"])
  up = [r for r in data["runs"] if r["optimizer"] == "upgrad"][0]
  assert np.mean(up["train_loss"][-5:]) < np.mean(up["train_loss"][:5])


def test_divergence_is_reported_and_other_runs_go_on(tmp_path, capsys, monkeypatch):
  # sgd at lr 1e6 (the task's lr without --tune) blows up logistic regression.
  def diverging_task():
    task = tasks.logistic_regression()
    return tasks.dataclasses.replace(task, name="_diverge",
                                     default_lrs={**task.default_lrs, "sgd": 1e6})
  monkeypatch.setitem(tasks.TASKS, "_diverge", diverging_task)
  rc = main(["compare", "--task", "_diverge", "--optimizers", "sgd,adamw",
             "--steps", "40", "--out", str(tmp_path), "--no-progress"])
  assert rc == 0
  out = capsys.readouterr().out
  assert "diverged@" in out
  data = json.loads((tmp_path / "results.json").read_text())
  rows = {r["optimizer"]: r for r in data["summary"]}
  assert rows["sgd"]["diverged"] and 1 <= rows["sgd"]["diverged_at_step"] <= 40
  assert rows["sgd"]["status"] == f"diverged@{rows['sgd']['diverged_at_step']}"
  assert rows["adamw"]["status"] == "ok" and rows["adamw"]["eval_loss"] < 0.69


def test_unknown_task_exits_nonzero_listing_tasks(capsys):
  assert main(["compare", "--task", "nope", "--steps", "2", "--no-progress"]) != 0
  err = capsys.readouterr().err
  assert "nope" in err
  for name in tasks.TASKS:
    assert name in err


def test_unknown_optimizer_exits_nonzero_listing_valid_names(capsys):
  assert main(["compare", "--task", "two_task", "--optimizers", "adamw,frobnicate",
               "--steps", "2", "--no-progress"]) != 0
  err = capsys.readouterr().err
  assert "frobnicate" in err
  for name in ("adamw", "sgd", "upgrad", "jacobian_descent", "lion"):
    assert name in err
  assert main(["compare", "--task", "digits_mlp", "--optimizers", "frobnicate",
               "--steps", "2", "--no-progress"]) != 0
  err = capsys.readouterr().err
  assert "lion" in err and "upgrad" not in err.split("valid optimizers")[1]
