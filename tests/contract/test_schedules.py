"""The schedule contract: pure ``step -> value``, jittable, finite, non-negative."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optkit import registry

SCHEDULES = registry.algorithms(kind="schedule")


@pytest.mark.parametrize("record", SCHEDULES, ids=lambda r: r.name)
def test_schedule_contract(record):
  assert re.fullmatch(r"\d{4}\.\d{4,5}", record.arxiv)
  sched = record.make()
  steps = np.arange(0, 400)
  eager = np.asarray([float(sched(int(t))) for t in steps[:50]])
  jitted = np.asarray(jax.jit(jax.vmap(sched))(jnp.asarray(steps, jnp.int32)))
  np.testing.assert_allclose(jitted[:50], eager, rtol=1e-6, atol=1e-8)
  assert np.all(np.isfinite(jitted))
  assert np.all(jitted >= 0)
  assert jitted.max() > 0
  # Usable as an optax learning rate.
  import optax
  tx = optax.sgd(sched)
  p = {"x": jnp.ones(3)}
  u, _ = tx.update(p, tx.init(p), p)
  assert np.all(np.isfinite(np.asarray(u["x"])))
