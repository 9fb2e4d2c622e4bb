"""Long runs: 20,000 steps of every record, and step counts at the int32 limit.

Every record runs 20,000 steps of its contract problem inside one ``lax.scan``:
the loss stays finite, the state keeps its structure, shapes and dtypes (no
dtype drift), and the step counts read 20,000. Then every ``count`` in the
state is set to 2**31 - 2 and three more steps run: counts saturate at
2**31 - 1 (optax.safe_increment) instead of wrapping to negative values, and
bias corrections and schedules evaluated there stay finite.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.contract import harness
from tests.reliability import common

STEPS = 20_000
INT32_MAX = np.iinfo(np.int32).max
RECORDS = common.records()


def _counts(state):
  """(path, leaf) of every int32 scalar whose path names a step count."""
  flat = jax.tree_util.tree_flatten_with_path(state)[0]
  return [(jax.tree_util.keystr(path), x) for path, x in flat
          if "count" in jax.tree_util.keystr(path).lower()
          and jnp.shape(x) == () and jnp.result_type(x) == jnp.int32]


def _set_counts(state, value):
  def f(path, x):
    if ("count" in jax.tree_util.keystr(path).lower() and jnp.shape(x) == ()
        and jnp.result_type(x) == jnp.int32):
      return jnp.asarray(value, jnp.int32)
    return x
  return jax.tree_util.tree_map_with_path(f, state)


@pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])
def test_twenty_thousand_steps_then_saturated_counts(record):
  problem = common.problem_for(record)
  tx = common.build(record)
  if record.kind == "direction":  # a direction is a descent direction: add a step size
    tx = optax.chain(tx, optax.scale_by_learning_rate(1e-2))
  params = problem.init(common.DTYPE)
  before = harness.shapes_dtypes(tx.init(params))
  params, state, losses = harness.run_scan(record, tx, problem, params, STEPS)
  losses = np.asarray(losses)
  assert np.all(np.isfinite(losses)), f"first non-finite at {np.argmax(~np.isfinite(losses))}"
  assert harness.shapes_dtypes(state) == before
  counts = _counts(state)
  for path, c in counts:
    assert 0 <= int(c) <= STEPS, (path, int(c))
  if counts:  # the step counter itself reads 20,000
    assert any(int(c) == STEPS for _, c in counts), [(p, int(c)) for p, c in counts]

  state = _set_counts(state, INT32_MAX - 2)
  params, state = common.continue_run(record, tx, problem, params, state, 3)
  for path, c in _counts(state):
    assert int(c) >= 0, f"{path} wrapped around to {int(c)}"
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params))
  assert harness.shapes_dtypes(state) == before


def test_a_plain_increment_would_wrap():
  """Negative control: int32 + 1 at the limit wraps; that is what the test catches."""
  assert int(jnp.asarray(INT32_MAX, jnp.int32) + 1) < 0
