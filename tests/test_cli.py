"""The command line: list, info, unknown names, and a tiny compare run."""

import json
import os
import subprocess
import sys

import pytest

from optkit import registry
from optkit.__main__ import main


def test_list_prints_every_record(capsys):
  assert main(["list"]) == 0
  out = capsys.readouterr().out
  for r in registry.algorithms():
    assert r.name in out
  assert main(["list", "--family", "sign"]) == 0
  assert "upgrad" not in capsys.readouterr().out


def test_info_prints_record_and_docstring(capsys):
  assert main(["info", "lion_k"]) == 0
  out = capsys.readouterr().out
  assert "Lion Secretly Solves Constrained Optimization" in out
  assert "2310.05898" in out and "Example" in out


def test_unknown_name_exits_nonzero_with_close_matches(capsys):
  assert main(["info", "lion_kk"]) != 0
  err = capsys.readouterr().err
  assert "lion_kk" in err and "lion_k" in err
  assert main(["frobnicate"]) != 0


def test_module_entry_point_runs_as_a_subprocess():
  out = subprocess.run([sys.executable, "-m", "optkit", "info", "nope"], capture_output=True,
                       text=True, timeout=120)
  assert out.returncode != 0 and "no algorithm named 'nope'" in out.stderr


def test_compare_writes_table_plot_and_json(tmp_path, capsys):
  rc = main(["compare", "--task", "digits_mlp", "--optimizers", "adamw,lion,adahessian",
             "--steps", "12", "--out", str(tmp_path), "--no-progress"])
  assert rc == 0
  out = capsys.readouterr().out
  assert "ms/step" in out and "adahessian" in out
  assert os.path.getsize(tmp_path / "curves.png") > 1000
  data = json.loads((tmp_path / "results.json").read_text())
  assert [r["optimizer"] for r in data["summary"]] == ["adamw", "lion", "adahessian"]
  lion = data["summary"][1]
  assert lion["state_bytes_per_param_byte"] == pytest.approx(1.0, abs=0.05)  # one momentum


def test_compare_rejects_aggregators_on_single_loss_tasks(capsys):
  assert main(["compare", "--optimizers", "upgrad", "--steps", "2", "--no-progress"]) != 0
  assert "aggregator" in capsys.readouterr().err
