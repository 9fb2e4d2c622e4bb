"""The step-time benchmark script runs end to end (numbers are not asserted)."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_step_time_writes_a_table(tmp_path):
  spec = importlib.util.spec_from_file_location("step_time", ROOT / "benchmarks" / "step_time.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  out = tmp_path / "st.md"
  mod.main(["--sizes", "tiny", "--repeats", "1", "--only", "lion,adahessian,mars_exact",
            "--out", str(out)])
  text = out.read_text()
  assert "| lion |" in text and "| adahessian |" in text and "| mars_exact |" in text
  assert "failed" not in text
