"""benchmarks/state_memory.py runs end to end and reports what init allocates."""

import importlib.util
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_state_memory_table(tmp_path):
  spec = importlib.util.spec_from_file_location("state_memory",
                                                ROOT / "benchmarks" / "state_memory.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  out = tmp_path / "sm.md"
  mod.main(["--sizes", "tiny", "--out", str(out)])
  text = out.read_text()
  ratio = {m.group(1): float(m.group(2))
           for m in re.finditer(r"^\| `([^`]+)` \| [^|]+ \| ([\d.]+) \|$", text, re.M)}
  assert ratio["adamw (optax)"] == 2.0 and ratio["lion (optkit)"] == 1.0, text
  # Every memory-family optimizer is in the table; the projection and subset
  # methods keep less state than AdamW even on the tiny tree.
  for name in ("adamw_snsm", "natural_galore", "frugal", "block_coordinate_descent"):
    assert ratio[name] < 2.0, (name, text)
  assert "freeze_converged" in ratio
