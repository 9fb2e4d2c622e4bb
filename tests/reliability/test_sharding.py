"""Every record under JAX SPMD: params sharded over a 2x4 mesh of 8 CPU devices.

The runs happen in one subprocess (``sharding_worker``) started with
``--xla_force_host_platform_device_count=8``; this file checks its report:
sharded results equal the single-device run (relative difference <= 1e-4: the
sharded reductions sum in another order), param-shaped state leaves carry the
params' sharding after ``init`` and after the steps, params keep theirs, and
the compiled step has no host transfers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.reliability import common

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECORDS = common.records()
TOL = 1e-4
pytestmark = pytest.mark.xdist_group("sharding")


@pytest.fixture(scope="module")
def report():
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  proc = subprocess.run([sys.executable, "-m", "tests.reliability.sharding_worker"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stderr[:3000] + " ... " + proc.stderr[-1500:]
  return json.loads(proc.stdout)


@pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])
def test_sharded_run_equals_single_device(report, record):
  r = report[record.name]
  assert r["rel_diff"] <= TOL, r["rel_diff"]
  assert r["params_lost"] == [], r["params_lost"]
  assert r["state_init"] == [], r["state_init"]
  assert r["state_steps"] == [], r["state_steps"]
  assert r["host"] == [], r["host"]
