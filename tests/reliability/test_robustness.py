"""Property-based robustness: random trees, magnitudes and dtypes for every record.

hypothesis draws a parameter tree (scalars, vectors, matrices, conv kernels,
size-0 leaves, bf16 and f32 mixed in one tree) and a gradient magnitude from
1e-15 to 1e15 (f32's squares stay finite), and runs two eager steps of every
record. The rule (ARCHITECTURE.md, contract item 8): either a clear
``ValueError``/``TypeError`` that names the algorithm, or finite updates and
state, with the tree's shapes and dtypes kept. ``derandomize=True`` keeps CI
reproducible; run with ``--hypothesis-seed`` for new draws.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.contract import harness
from tests.reliability import common

RECORDS = common.records()
SHAPES = [(), (1,), (5,), (0,), (3, 4), (4, 3), (1, 7), (0, 3), (3, 3, 2, 4), (2, 2, 1, 3)]


@st.composite
def trees(draw):
  n = draw(st.integers(1, 4))
  shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=n, max_size=n))
  dtypes = draw(st.lists(st.sampled_from([jnp.float32, jnp.bfloat16]), min_size=n,
                         max_size=n))
  exponent = draw(st.integers(-15, 15))
  seed = draw(st.integers(0, 2**16))
  return {f"p{i}": (s, d) for i, (s, d) in enumerate(zip(shapes, dtypes))}, exponent, seed


def _draw(spec, scale, seed, lead=None):
  rng = np.random.default_rng(seed)
  out = {}
  for k, (shape, dtype) in spec.items():
    full = shape if lead is None else (lead,) + shape
    out[k] = jnp.asarray(scale * rng.standard_normal(full), dtype)
  return out


def _finite(tree):
  return all(bool(jnp.all(jnp.isfinite(x.astype(jnp.float32))))
             for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact))


def _check(record, spec, exponent, seed):
  scale = 10.0 ** exponent
  params = _draw(spec, 1.0, seed)
  jac = harness.takes_jacobian(record)
  grads = [_draw(spec, scale, seed + t + 1, lead=2 if jac else None) for t in range(2)]
  curv = 10.0 ** exponent

  def value_fn(p, key=None):
    del key
    return sum(0.5 * curv * jnp.sum(x.astype(jnp.float32) ** 2) for x in jax.tree.leaves(p))

  try:
    tx = common.build(record)
    state = tx.init(params)
    for g in grads:
      updates, state = tx.update(g, state, params, value_fn=value_fn, value=value_fn(params))
  except (ValueError, TypeError) as e:
    assert record.name in str(e) or record.factory.__name__ in str(e), str(e)
    return
  assert _finite(updates), (record.name, spec, exponent)
  assert _finite(state), (record.name, spec, exponent)
  assert jax.tree.structure(updates) == jax.tree.structure(params)
  for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params)):
    assert u.shape == p.shape and u.dtype == p.dtype, (u.shape, u.dtype, p.shape, p.dtype)


@pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])
@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=trees())
def test_random_trees_give_finite_output_or_a_clear_error(record, case):
  spec, exponent, seed = case
  _check(record, spec, exponent, seed)


@pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])
def test_extreme_magnitudes_and_size_zero_leaves(record):
  """The corners hypothesis may not draw: 1e-15 and 1e15 gradients, a size-0 leaf."""
  spec = {"a": ((3, 4), jnp.float32), "b": ((0,), jnp.float32), "c": ((), jnp.bfloat16)}
  for exponent in (-15, 15):
    _check(record, spec, exponent, seed=7)


def test_the_check_sees_a_nan():
  """Negative control: a transformation that divides by the gradient fails the check."""
  assert not _finite({"x": jnp.array([1.0, jnp.nan])})
  assert not _finite({"x": jnp.array([1.0, jnp.inf], jnp.bfloat16)})
