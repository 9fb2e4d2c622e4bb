"""The contract every registered transformation keeps (ARCHITECTURE.md, items 1-9).

Parameterized over the registry: adding a record adds its checks. The tree has
a scalar, a vector, a matrix and a 4-D conv kernel leaf.
"""

from __future__ import annotations

import inspect
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit import registry
from optkit.core import extra_args
from optkit.bench import problems as problems_lib
from tests.contract import harness

RECORDS = [r for r in registry.algorithms() if r.kind in harness.TRANSFORM_KINDS]
IDS = [r.name for r in RECORDS]
STEPS = 3


def _params(record, dtype=jnp.float32):
  return harness.problem_for(record).init(dtype)


def _tol(dtype):
  return dict(rtol=1e-5, atol=1e-6) if dtype == jnp.float32 else dict(rtol=2e-2, atol=2e-2)


def test_registry_is_not_empty_and_kinds_are_covered():
  kinds = {r.kind for r in registry.algorithms()}
  assert {"optimizer", "schedule", "aggregator", "wrapper"} <= kinds


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_record_metadata(record):
  assert record.paper and record.paper == record.paper.strip()
  assert re.fullmatch(r"\d{4}\.\d{4,5}", record.arxiv), record.arxiv
  sig = inspect.signature(record.factory)
  assert set(record.test_hparams) <= set(sig.parameters)
  assert set(record.static_hparams) <= set(sig.parameters)
  assert record.factory.__doc__ and "Example" in record.factory.__doc__
  if record.direction is not None:
    assert record.direction.__name__.startswith("scale_by_")


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_jit_matches_no_jit(record):
  problem = harness.problem_for(record)
  tx = harness.build(record)
  p_jit, s_jit, _ = harness.run(record, tx, problem, _params(record), STEPS, jit=True)
  p_eager, s_eager, _ = harness.run(record, tx, problem, _params(record), STEPS, jit=False)
  chex.assert_trees_all_close(p_jit, p_eager, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(s_jit, s_eager, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_shapes_dtypes_and_state_are_stable(record, dtype):
  problem = harness.problem_for(record)
  tx = harness.build(record)
  params = _params(record, dtype)
  state0 = tx.init(params)
  for leaf in jax.tree.leaves(state0):
    assert isinstance(leaf, jax.Array), f"state holds a non-array leaf {leaf!r}"
  step = jax.jit(harness.make_step(record, tx, problem))
  state = state0
  for _ in range(STEPS):
    params, state, updates = step(params, state)
    chex.assert_trees_all_equal_structs(updates, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
    chex.assert_trees_all_equal_structs(state, state0)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, state0)
    chex.assert_tree_all_finite(updates)


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_state_survives_scan_and_cond(record):
  """Fixed-shape state: usable as a lax.scan carry and in both lax.cond branches."""
  problem = harness.problem_for(record)
  tx = harness.build(record)
  params = _params(record)
  _, state, losses = harness.run_scan(record, tx, problem, params, 4)
  chex.assert_tree_all_finite(state)
  assert losses.shape == (4,)
  step = harness.make_step(record, tx, problem)
  s0 = tx.init(params)
  out = jax.jit(lambda p, s, flag: jax.lax.cond(
      flag, lambda: step(p, s)[1], lambda: s))(params, s0, True)
  chex.assert_trees_all_equal_shapes_and_dtypes(out, s0)


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_runs_with_params_and_state_donated(record):
  """Users jit their step with params and state donated: the state must not
  alias params (or each other), and donation must not change the result."""
  problem = harness.problem_for(record)
  tx = harness.build(record)
  expected = harness.run(record, tx, problem, _params(record), STEPS)[0]
  params = _params(record)
  state = tx.init(params)
  step = jax.jit(harness.make_step(record, tx, problem), donate_argnums=(0, 1))
  for _ in range(STEPS):
    params, state, _ = step(params, state)
  chex.assert_trees_all_close(params, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_zero_gradients_are_finite(record):
  tx = harness.build(record)
  params = _params(record)
  problem = harness.problem_for(record)
  g = harness.gradient(record, problem, params)
  zeros = jax.tree.map(jnp.zeros_like, g)
  state = tx.init(params)
  update = jax.jit(lambda z, s: tx.update(
      z, s, params, value_fn=harness.value_fn_of(problem), value=problem.loss(params)))
  for _ in range(STEPS):
    updates, state = update(zeros, state)
    chex.assert_tree_all_finite((updates, state))


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_same_seed_same_result(record):
  problem = harness.problem_for(record)
  a = harness.run(record, harness.build(record), problem, _params(record), STEPS)[0]
  b = harness.run(record, harness.build(record), problem, _params(record), STEPS)[0]
  chex.assert_trees_all_equal(a, b)


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_update_traces_once(record):
  problem = harness.problem_for(record)
  tx = harness.build(record)
  params = _params(record)
  state = tx.init(params)
  chex.clear_trace_counter()
  step = jax.jit(chex.assert_max_traces(harness.make_step(record, tx, problem), n=1))
  for _ in range(STEPS):
    params, state, _ = step(params, state)


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_inject_hyperparams(record):
  """Every numeric hyperparameter (defaults included) can be injected as an array."""
  problem = harness.problem_for(record)
  hps = {**dict(record.test_hparams), **harness.numeric_hparams(record)}
  injected = optax.inject_hyperparams(record.factory, static_args=record.static_hparams)(**hps)
  assert set(harness.numeric_hparams(record)) <= set(injected.init(_params(record)).hyperparams)
  tx_plain = harness.build(record)
  p_inj = harness.run(record, injected, problem, _params(record), STEPS)[0]
  p_plain = harness.run(record, tx_plain, problem, _params(record), STEPS)[0]
  chex.assert_trees_all_close(p_inj, p_plain, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "record", [r for r in RECORDS if "learning_rate" in inspect.signature(r.factory).parameters],
    ids=lambda r: r.name)
def test_learning_rate_schedule_and_validation(record):
  problem = harness.problem_for(record)
  lr = record.test_hparams.get(
      "learning_rate", inspect.signature(record.factory).parameters["learning_rate"].default)
  assert isinstance(lr, (int, float)), "test_hparams should give a numeric learning_rate"
  sched = optax.constant_schedule(lr)
  p_sched = harness.run(record, harness.build(record, learning_rate=sched), problem,
                        _params(record), STEPS)[0]
  p_const = harness.run(record, harness.build(record), problem, _params(record), STEPS)[0]
  chex.assert_trees_all_close(p_sched, p_const, rtol=1e-6, atol=1e-7)
  # A schedule is evaluated per step: half the lr after step 0 must change the result.
  halving = lambda t: jnp.where(t < 1, lr, lr / 2)
  p_half = harness.run(record, harness.build(record, learning_rate=halving), problem,
                       _params(record), STEPS)[0]
  assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(p_half),
                                                    jax.tree.leaves(p_const)))
  with pytest.raises(ValueError, match=re.escape(record.name.split("_")[0])):
    record.make(learning_rate=-1.0)


@pytest.mark.parametrize("record", [r for r in RECORDS if r.extra_args], ids=lambda r: r.name)
def test_missing_extra_args_raise(record):
  tx = harness.build(record)
  params = _params(record)
  problem = harness.problem_for(record)
  g = harness.gradient(record, problem, params)
  state = tx.init(params)
  full = {"value_fn": problem.loss, "value": problem.loss(params),
          "values": jnp.zeros((2,))}
  for missing in record.extra_args:
    extra = {k: v for k, v in full.items() if k != missing}
    with pytest.raises(ValueError, match=missing) as err:
      tx.update(g, state, params, **extra)
    assert record.name.split("_")[0] in str(err.value) or \
        (record.direction and record.direction.__name__[len("scale_by_"):] in str(err.value))


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_unknown_extra_args_are_ignored(record):
  problem = harness.problem_for(record)
  tx = record.make()
  params = _params(record)
  state = tx.init(params)
  g = harness.gradient(record, problem, params)
  if isinstance(tx, optax.GradientTransformationExtraArgs):
    u1, _ = tx.update(g, state, params, value_fn=harness.value_fn_of(problem), value=problem.loss(params),
                      some_unrelated_argument=1.0)
    u2, _ = tx.update(g, state, params, value_fn=harness.value_fn_of(problem), value=problem.loss(params))
    chex.assert_trees_all_close(u1, u2)
  else:
    assert not record.extra_args, "a transformation that needs extra args must accept them"


@pytest.mark.parametrize("record", RECORDS, ids=IDS)
def test_mismatched_gradient_tree_raises(record):
  problem = harness.problem_for(record)
  tx = harness.build(record)
  params = _params(record)
  state = tx.init(params)
  g = harness.gradient(record, problem, params)
  bad = dict(g)
  bad.pop("w")
  with pytest.raises((ValueError, TypeError)):
    tx.update(bad, state, params, value_fn=harness.value_fn_of(problem), value=problem.loss(params))


PER_GRADIENT = [r for r in RECORDS if r.kind != "estimator" and not harness.takes_jacobian(r)]


@pytest.mark.parametrize("record", [r for r in RECORDS if r.kind != "estimator"], ids=lambda r: r.name)
def test_composes_with_chain(record):
  problem = harness.problem_for(record)
  params = _params(record)
  base = harness.run(record, harness.build(record), problem, params, STEPS)[0]
  chained = harness.run(record, optax.chain(record.make(), optax.identity()), problem,
                        params, STEPS)[0]
  chex.assert_trees_all_close(base, chained, rtol=1e-6, atol=1e-7)


# MultiSteps and masked accumulate / pass through per-parameter gradients, so
# they apply to transformations fed ordinary gradients (not Jacobians).
@pytest.mark.parametrize("record", PER_GRADIENT, ids=lambda r: r.name)
def test_composes_with_multisteps(record):
  problem = harness.problem_for(record)
  params = _params(record)
  multi = optax.MultiSteps(record.make(), every_k_schedule=2)
  p_multi, _, updates = harness.run(record, multi, problem, params, 4)
  chex.assert_tree_all_finite(p_multi)
  # Steps 1 and 3 only accumulate: their updates are zero.
  assert all(float(jnp.abs(u).max()) == 0.0 for u in jax.tree.leaves(updates[0]))
  assert any(float(jnp.abs(u).max()) > 0.0 for u in jax.tree.leaves(updates[1]))


@pytest.mark.parametrize("record", PER_GRADIENT, ids=lambda r: r.name)
def test_masked(record):
  problem = harness.problem_for(record)
  params = _params(record)
  mask = {k: k != "c" for k in params}
  tx = optax.with_extra_args_support(optax.masked(record.make(), mask))
  state = tx.init(params)

  @jax.jit
  def update(g, s, p):
    # Transformations that read value_fn see only the masked-in leaves.
    value_fn = extra_args.masked_value_fn(harness.value_fn_of(problem), p, mask)
    return tx.update(g, s, p, value_fn=value_fn, value=problem.loss(p))

  for _ in range(2):
    g = harness.gradient(record, problem, params)
    updates, state = update(g, state, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
    new_params = optax.apply_updates(params, updates)
    params, old = new_params, params
  # The masked-in leaves move; the masked-out one gets the raw gradient.
  assert not np.allclose(new_params["w"], old["w"])
  np.testing.assert_allclose(updates["c"], g["c"])


CONVERGENCE = [(r, p) for r in RECORDS if r.kind not in ("estimator", "direction")
               for p in r.problems]


@pytest.mark.parametrize("record,problem_name", CONVERGENCE,
                         ids=[f"{r.name}-{p}" for r, p in CONVERGENCE])
def test_decreases_loss_on_named_problems(record, problem_name):
  problem = problems_lib.get(problem_name)
  params = problem.init(jnp.float32)
  start = float(problem.loss(params))
  _, _, losses = harness.run_scan(record, harness.build(record), problem, params, 200)
  losses = np.asarray(losses)
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.5 * start, (start, losses[::20])


def test_every_optimizer_names_the_quadratic():
  for r in RECORDS:
    if r.kind == "optimizer" and "two_quadratics" not in r.problems:
      assert "quadratic" in r.problems, r.name
