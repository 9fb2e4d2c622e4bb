"""Non-finite gradients: ``optax.apply_if_finite`` skips bad steps for every record.

A run with one NaN gradient in the middle, wrapped in ``apply_if_finite``, must
end exactly where the same run without that step ends: the bad step changes
neither the params nor the wrapped optimizer's state (PRNG keys and step
counts included). Aggregators, whose output has no leading objective axis, use
``optkit.apply_if_finite`` (the same rule; optax's wrapper assumes the update
has the gradient's shape).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests.contract import harness
from tests.reliability import common

RECORDS = common.records()


def _wrapper(record):
  return optkit.apply_if_finite if harness.takes_jacobian(record) else optax.apply_if_finite


def _poison(tree):
  leaves, treedef = jax.tree.flatten(tree)
  leaves[0] = leaves[0].at[(0,) * leaves[0].ndim].set(jnp.nan)
  return jax.tree.unflatten(treedef, leaves)


def _run(record, tx, problem, params, bad_at):
  """5 jitted steps; at step ``bad_at`` the gradient has a NaN."""
  state = tx.init(params)

  @jax.jit
  def step(params, state, bad):
    g = harness.gradient(record, problem, params)
    g = jax.lax.cond(bad, _poison, lambda t: t, g)
    updates, state = tx.update(g, state, params, value_fn=harness.value_fn_of(problem),
                               value=problem.loss(params))
    if record.kind == "estimator":
      return params, state
    if record.kind == "aggregator":
      return jax.tree.map(lambda p, u: p - harness.AGGREGATOR_LR * u, params, updates), state
    return optax.apply_updates(params, updates), state

  for t in range(5):
    params, state = step(params, state, jnp.asarray(t == bad_at))
  return params, state


@pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])
def test_apply_if_finite_skips_a_nan_step(record):
  problem = common.problem_for(record)
  params = problem.init(common.DTYPE)
  tx = _wrapper(record)(common.build(record), 3)
  p_bad, s_bad = _run(record, tx, problem, params, bad_at=2)
  # Reference: the same wrapper, no bad step, one step fewer (the skipped one).
  p_ref, s_ref = common.continue_run(record, tx, problem, params, tx.init(params), 4)
  chex.assert_trees_all_close(p_bad, p_ref, rtol=1e-6, atol=1e-7)
  chex.assert_trees_all_close(s_bad.inner_state, s_ref.inner_state, rtol=1e-6, atol=1e-7)
  assert int(s_bad.total_notfinite) == 1
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(p_bad))


def test_without_the_wrapper_a_nan_step_poisons_adam():
  """Negative control: the same bad step, unwrapped, leaves NaN in Adam's params."""
  record = next(r for r in RECORDS if r.name == "adam")
  problem = common.problem_for(record)
  p_bad, _ = _run(record, common.build(record), problem, problem.init(common.DTYPE),
                  bad_at=2)
  assert not all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(p_bad))


def test_optkit_apply_if_finite_equals_optax_on_per_gradient_records():
  record = next(r for r in RECORDS if r.name == "adam")
  problem = common.problem_for(record)
  params = problem.init(common.DTYPE)
  for bad_at in (1, 2, 3, 4):  # consecutive bad steps past the limit are applied
    ours = _run(record, optkit.apply_if_finite(common.build(record), 1), problem, params,
                bad_at)
    ref = _run(record, optax.apply_if_finite(common.build(record), 1), problem, params,
               bad_at)
    chex.assert_trees_all_equal(ours, ref)


def test_apply_if_finite_bad_arguments():
  with pytest.raises(ValueError, match="apply_if_finite.*max_consecutive_errors"):
    optkit.apply_if_finite(optkit.adam(1e-3), -1)
  with pytest.raises(TypeError, match="apply_if_finite.*inner"):
    optkit.apply_if_finite(lambda g: g, 3)
