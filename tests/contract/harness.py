"""Shared machinery of the contract suite: build a record's transformation and
run it on a problem, jitted or not, exactly as a user's train step would."""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import optax

from optkit.bench import problems as problems_lib

TRANSFORM_KINDS = ("optimizer", "direction", "estimator", "aggregator", "wrapper")
AGGREGATOR_LR = 0.05


def build(record, **overrides):
  """``record.factory(**test_hparams, **overrides)`` with extra-args support."""
  return optax.with_extra_args_support(record.make(**overrides))


def numeric_hparams(record) -> dict:
  """Every numeric argument of the factory (given or default), for inject_hyperparams."""
  sig = inspect.signature(record.factory)
  bound = sig.bind_partial(**dict(record.test_hparams))
  bound.apply_defaults()
  out = {}
  for name, value in bound.arguments.items():
    if name in record.static_hparams or isinstance(value, bool):
      continue
    if isinstance(value, (int, float)) and not callable(value):
      out[name] = value
  return out


def takes_jacobian(record) -> bool:
  """True for aggregators and optimizers built on one (Jacobian input)."""
  return record.kind == "aggregator" or (
      "aggregator" in inspect.signature(record.factory).parameters)


def gradient(record, problem, params):
  """The ``updates`` a user feeds: a gradient, or a Jacobian for aggregators."""
  if takes_jacobian(record) and problem.objectives is not None:
    return jax.jacrev(problem.objectives)(params)
  return jax.grad(problem.loss)(params)


def value_fn_of(problem):
  """The problem's loss as ``value_fn``, also callable as ``value_fn(params, key=k)``.

  Sophia-G's estimator calls ``value_fn(params, key=k)`` to sample labels; the
  contract problems have no labels, so the key is accepted and unused.
  """

  def value_fn(params, key=None):
    del key
    return problem.loss(params)

  return value_fn


def make_step(record, tx, problem):
  """A train step ``(params, state) -> (params, state, updates)``."""
  value_fn = value_fn_of(problem)

  def step(params, state):
    g = gradient(record, problem, params)
    g = jax.tree.map(lambda a, p: a.astype(p.dtype), g, params)
    updates, state = tx.update(g, state, params, value_fn=value_fn,
                               value=problem.loss(params))
    if record.kind == "estimator":
      new_params = params
    elif record.kind == "aggregator":
      # An aggregator returns a descent direction for the objectives: step
      # against it, as chain(aggregator, optax.sgd(AGGREGATOR_LR)) would.
      new_params = jax.tree.map(lambda p, u: p - AGGREGATOR_LR * u, params, updates)
    else:
      new_params = optax.apply_updates(params, updates)
    return new_params, state, updates

  return step


def run(record, tx, problem, params, steps: int, jit: bool = True):
  """Runs ``steps`` steps; returns (params, state, list of updates)."""
  state = tx.init(params)
  step = make_step(record, tx, problem)
  if jit:
    step = jax.jit(step)
  updates = []
  for _ in range(steps):
    params, state, u = step(params, state)
    updates.append(u)
  return params, state, updates


def run_scan(record, tx, problem, params, steps: int):
  """Runs ``steps`` steps inside one ``lax.scan``; returns final params and losses."""
  state = tx.init(params)
  step = make_step(record, tx, problem)

  def body(carry, _):
    p, s = carry
    p, s, _ = step(p, s)
    return (p, s), problem.loss(p)

  (params, state), losses = jax.jit(
      lambda p, s: jax.lax.scan(body, (p, s), None, length=steps))(params, state)
  return params, state, losses


def shapes_dtypes(tree: Any):
  return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


def problem_for(record):
  """The problem the structural checks run on."""
  if takes_jacobian(record):
    return problems_lib.two_quadratics
  return problems_lib.quadratic
