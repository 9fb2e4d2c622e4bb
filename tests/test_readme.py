"""The README's set-up commands and algorithm table stay true."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _commands():
  text = (ROOT / "README.md").read_text()
  return re.findall(r"```bash\n(.*?)\n```", text, re.S)


def test_readme_opens_with_main_job_then_test_command():
  main_job, test_cmd = _commands()[:2]
  assert "python -m optkit compare" in main_job
  assert "pytest" in test_cmd


def test_ci_runs_exactly_the_readme_test_command():
  test_cmd = _commands()[1].strip()
  ci = (ROOT / ".ci" / "run").read_text()
  assert test_cmd in ci.splitlines()


def test_algorithm_table_is_in_sync_with_registry():
  from tools import readme_table
  text = (ROOT / "README.md").read_text()
  assert readme_table.updated_readme(text) == text, "run: python tools/readme_table.py"


def test_quickstart_snippets_run():
  """The README's first two Python snippets, run in order as a reader would,
  each define a working train step."""
  import jax.numpy as jnp
  import numpy as np
  text = (ROOT / "README.md").read_text()
  snippets = re.findall(r"```python\n(.*?)\n```", text, re.S)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((32, 64)), jnp.float32)
  y = jnp.arange(32) % 10
  ns = {}
  for code in snippets[:2]:
    exec(code, ns)  # pylint: disable=exec-used
    params, state = ns["params"], ns["tx"].init(ns["params"])
    before = float(ns["loss"](params, x, y))
    for _ in range(20):
      params, state = ns["step"](params, state, x, y)
    assert float(ns["loss"](params, x, y)) < before
