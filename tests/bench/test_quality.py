"""benchmarks/quality.py runs end to end on a tiny budget and writes its report."""

import importlib.util
import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load():
  spec = importlib.util.spec_from_file_location("quality", ROOT / "benchmarks" / "quality.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_quality_report_end_to_end(tmp_path):
  mod = _load()
  out = tmp_path / "quality.md"
  jsonl = tmp_path / "jobs.jsonl"
  assert mod.main(["--tasks", "ill_conditioned_quadratic", "--optimizers", "lion",
                   "--seeds", "2", "--steps-scale", "0.1", "--jobs", "2",
                   "--jsonl", str(jsonl), "--out", str(out)]) == 0
  jobs = [json.loads(line) for line in jsonl.read_text().splitlines()]
  assert sorted(j["optimizer"] for j in jobs) == ["adamw", "lion"]
  for j in jobs:
    assert len(j["tuning"]) == 5          # the same 5-point grid for every optimizer
    assert len(j["runs"]) == 2            # tuned on seed 0, then seed 1 at that rate
    assert [r["seed"] for r in j["runs"]] == [0, 1]
    assert all(len(r["train_loss"]) == 30 for r in j["runs"])
  text = out.read_text()
  rows = re.findall(r"^\| (adamw|lion) \| ", text, re.M)
  assert sorted(rows) == ["adamw", "lion"], text
  assert (tmp_path / "quality_ill_conditioned_quadratic.png").stat().st_size > 1000
  # The baseline's own steps-to-AdamW ratio is 1 by construction.
  assert re.search(r"^\| adamw \| .* \| 1\.00 .*\|", text, re.M), text
  # The report can be rebuilt from the saved jobs alone.
  again = tmp_path / "again.md"
  assert mod.main(["--report-from", str(jsonl), "--seeds", "2", "--out", str(again)]) == 0
  body = lambda t: [line for line in t.split("\n")[3:] if not line.startswith("![")]
  assert body(again.read_text()) == body(text)


def test_base_learning_rate_follows_the_factory_default():
  mod = _load()
  # DoG's learning rate is a multiplier whose default is 1.0: its grid is
  # centred there, not on the 1e-3 that suits Adam-like steps.
  job = mod.run_job("ill_conditioned_quadratic", "dog", 10, 1)
  assert set(job["tuning"]) == {"0.1", "0.3", "1", "3", "10"}, job["tuning"]
