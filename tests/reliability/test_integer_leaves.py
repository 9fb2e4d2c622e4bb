"""Integer and boolean params: every record rejects them the same way.

The policy (``optkit.core.tree.check_floating``): a gradient leaf that is not
floating point (``jax.grad(..., allow_int=True)`` gives float0 for an integer
param) raises a TypeError that names the algorithm and the leaf and says how
to keep such leaves out of the optimizer. No record may crash with an unclear
error or silently produce an update for them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optkit
from tests.contract import harness
from tests.reliability import common

RECORDS = common.records()


def _inputs(record):
  problem = common.problem_for(record)
  params = dict(problem.init(common.DTYPE))
  grads = dict(harness.gradient(record, problem, params))
  lead = (2,) if harness.takes_jacobian(record) else ()
  params["step"] = jnp.array(3, jnp.int32)
  grads["step"] = np.zeros(lead, dtype=jax.dtypes.float0)
  value_fn = lambda p, key=None: problem.loss({k: v for k, v in p.items() if k != "step"})
  return params, grads, value_fn


@pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])
def test_integer_param_is_rejected_clearly(record):
  params, grads, value_fn = _inputs(record)
  tx = common.build(record)
  with pytest.raises(TypeError, match=r"\['step'\] has dtype.*floating-point") as err:
    state = tx.init(params)
    tx.update(grads, state, params, value_fn=value_fn, value=value_fn(params))
  # Named by the record or by the optkit piece that rejects it (jacobian_descent's
  # default aggregator upgrad, sophia_g's direction sophia, ...).
  algo = str(err.value).split(":")[0]
  assert algo in record.name or record.name in algo or hasattr(optkit, algo), str(err.value)


def test_the_same_tree_without_the_integer_leaf_works():
  """Negative control: dropping the integer leaf (the documented remedy) runs."""
  record = next(r for r in RECORDS if r.name == "adam")
  params, grads, value_fn = _inputs(record)
  del params["step"], grads["step"]
  tx = common.build(record)
  updates, _ = tx.update(grads, tx.init(params), params)
  assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))
