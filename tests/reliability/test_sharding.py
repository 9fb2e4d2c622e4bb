"""Every record under JAX SPMD: params sharded over a 2x4 mesh of 8 CPU devices.

The runs happen in one subprocess (``sharding_worker``) started with
``--xla_force_host_platform_device_count=8``; this file checks its report:
sharded results equal the single-device run (relative difference <= 1e-4: the
sharded reductions sum in another order), param-shaped state leaves carry the
params' sharding after ``init`` and after the steps, params keep theirs, and
the compiled step has no host transfers.

Zeroth-order records estimate the gradient from differences of loss values
divided by the smoothing radius (``(f(x + mu u) - f(x)) / mu`` and the like).
The sharded loss sums its terms in another order, which moves a float32 value
by about eps * |f|; divided by mu and multiplied by the dimension, that is a
gradient error of order 0.1 on this problem, far above 1e-4 after 5 steps and
nothing to do with sharding. Those records' numerical comparison therefore
runs in a second worker with float64 params (``JAX_ENABLE_X64=1``), where the
same reordering is invisible at 1e-4; their sharding, state placement and
host-transfer checks come from the float32 run like every other record's.
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


# forward_gradient also takes value_fn, but differentiates it forward-mode (a JVP,
# no difference quotient), so its float32 run is compared like any other.
VALUE_DIFFERENCES = [r.name for r in RECORDS if r.family == "zeroth_order"
                     and "value_fn" in r.extra_args and r.name != "forward_gradient"]


def _run_worker(names=(), x64=False):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  if x64:
    env["JAX_ENABLE_X64"] = "1"
  proc = subprocess.run([sys.executable, "-m", "tests.reliability.sharding_worker", *names],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stderr[:3000] + " ... " + proc.stderr[-1500:]
  return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def report():
  return _run_worker()


@pytest.fixture(scope="module")
def report64():
  return _run_worker(VALUE_DIFFERENCES, x64=True)


def test_the_group_stays_on_one_worker(request):
  """Under pytest-xdist, ``loadgroup`` must tag this module's tests (else every
  worker re-runs the sharding subprocesses; see the pytest pin in pyproject)."""
  assert ("PYTEST_XDIST_WORKER" not in os.environ
          or request.node.nodeid.endswith("@sharding")), request.node.nodeid


def test_value_difference_records_are_found():
  assert {"deepzero", "gfm_plus", "zo_random_gradient",
          "zo_coordinate_gradient"} <= set(VALUE_DIFFERENCES)


@pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])
def test_sharded_run_equals_single_device(report, report64, record):
  r = report[record.name]
  if record.name in VALUE_DIFFERENCES:
    assert report64[record.name]["rel_diff"] <= TOL, report64[record.name]["rel_diff"]
  else:
    assert r["rel_diff"] <= TOL, r["rel_diff"]
  assert r["params_lost"] == [], r["params_lost"]
  assert r["state_init"] == [], r["state_init"]
  assert r["state_steps"] == [], r["state_steps"]
  assert r["host"] == [], r["host"]
