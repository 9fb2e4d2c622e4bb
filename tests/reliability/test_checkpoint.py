"""Every optimizer state round-trips through orbax and resumes bit for bit.

2N steps in one process must equal N steps, an orbax save, a restore in a
FRESH process (new JAX runtime, new compilation) and N more steps: params and
state bitwise equal on the CPU, PRNG keys and step counts included.
"""

from __future__ import annotations

import os
import subprocess
import sys

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.reliability import common

N = 3
RECORDS = common.records()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.xdist_group("checkpoint")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("ckpt"))
  half, full = {}, {}
  for record in RECORDS:
    problem = common.problem_for(record)
    tx = common.build(record)
    params = problem.init(common.DTYPE)
    p, s = common.continue_run(record, tx, problem, params, tx.init(params), N)
    half[record.name] = {"params": p, "state": s}
    full[record.name] = common.continue_run(record, tx, problem, p, s, N)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(f"{directory}/half", half)
  checkpointer.wait_until_finished()
  # The fresh process must see the devices the checkpoint was written from
  # (orbax stores the sharding), so it runs on the same backend as this one.
  env = dict(os.environ, JAX_PLATFORMS=jax.default_backend())
  # A new compilation too: not the session's compilation cache (conftest.py).
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  proc = subprocess.run([sys.executable, "-m", "tests.reliability.resume_worker",
                         directory, str(N)], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[:3000] + " ... " + proc.stderr[-1500:]
  target = jax.eval_shape(lambda: {k: {"params": v[0], "state": v[1]}
                                   for k, v in full.items()})
  resumed = checkpointer.restore(f"{directory}/resumed", target)
  return half, full, resumed


@pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])
def test_resume_in_fresh_process_is_bitwise(runs, record):
  _, full, resumed = runs
  params, state = full[record.name]
  chex.assert_trees_all_equal(resumed[record.name]["params"], params)
  chex.assert_trees_all_equal(resumed[record.name]["state"], state)
  chex.assert_trees_all_equal_structs(resumed[record.name]["state"], state)


@pytest.mark.parametrize("name", ["adam", "adahessian"])
def test_resuming_without_the_state_is_detected(runs, name):
  """Negative control: params alone (state re-initialized) do not resume the run."""
  half, full, _ = runs
  record = next(r for r in RECORDS if r.name == name)
  problem = common.problem_for(record)
  tx = common.build(record)
  p = half[name]["params"]
  params, _ = common.continue_run(record, tx, problem, p, tx.init(p), N)
  assert not np.array_equal(np.asarray(params["w"]), np.asarray(full[name][0]["w"]))


@pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])
def test_state_has_no_zero_size_array(record):
  """orbax refuses to save zero-size arrays ("Cannot save arrays with zero size"),
  so no state leaf may have size 0 (use a (1,) placeholder for an absent one)."""
  params = common.problem_for(record).init(common.DTYPE)
  state = jax.eval_shape(common.build(record).init, params)
  empty = [jax.tree_util.keystr(path) for path, x in jax.tree_util.tree_leaves_with_path(state)
           if int(np.prod(x.shape)) == 0]
  assert not empty, f"{record.name}: zero-size state leaves {empty}"
