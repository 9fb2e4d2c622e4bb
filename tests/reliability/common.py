"""Shared pieces of the reliability tests (checkpoints, non-finite steps, long runs)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from optkit import registry
from tests.contract import harness

DTYPE = jnp.float32
build = harness.build
problem_for = harness.problem_for


def records():
  """Every registered transformation (schedules have their own contract)."""
  return [r for r in registry.algorithms() if r.kind in harness.TRANSFORM_KINDS]


def continue_run(record, tx, problem, params, state, steps: int):
  """``steps`` more jitted steps from a given (params, state)."""
  step = jax.jit(harness.make_step(record, tx, problem))
  for _ in range(steps):
    params, state, _ = step(params, state)
  return params, state
