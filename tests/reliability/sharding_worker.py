"""Runs every record on params sharded over a 2x4 device mesh; prints JSON.

Run by ``test_sharding.py`` as ``python -m tests.reliability.sharding_worker``
with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``. For each record:
5 jitted steps on one device and the same 5 steps with the 2-D and 4-D params
sharded FSDP-like over mesh axis ``fsdp`` (2) and tensor-parallel-like over
``tp`` (4), the state created by ``optkit.sharding.init_state`` and the step's
shardings pinned as a user's train step would (``state_shardings``); reports the largest relative difference, whether every param-shaped
state leaf carries its param's sharding after ``init`` and after the steps,
and whether the compiled step contains host transfers.

``python -m tests.reliability.sharding_worker NAME ...`` runs only the named
records; with ``JAX_ENABLE_X64=1`` the params and problem are float64.
"""

from __future__ import annotations

import json
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import optkit
import optkit.sharding
from tests.contract import harness
from tests.reliability import common

SHAPES = {"b": (16,), "c": (), "k": (3, 3, 4, 8), "w": (8, 16)}
SPECS = {"b": P(), "c": P(), "k": P(None, None, "fsdp", "tp"), "w": P("fsdp", "tp")}
STEPS = 5
_HOST = re.compile(r"callback|outfeed|infeed|send\(|recv\(|host", re.IGNORECASE)


DTYPE = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _tree(seed, scale=1.0, offset=0.0):
  rng = np.random.default_rng(seed)
  return {k: jnp.asarray(offset + scale * rng.standard_normal(s), DTYPE)
          for k, s in SHAPES.items()}


CURV = jax.tree.map(lambda x: jnp.abs(x) + 0.5, _tree(1))
CENTER = _tree(2)
CENTER2 = _tree(4)


def _quad(params, center):
  return sum(0.5 * jnp.sum(c * (p - z) ** 2) for p, c, z in
             zip(jax.tree.leaves(params), jax.tree.leaves(CURV), jax.tree.leaves(center)))


class Problem:
  name = "sharded_quadratic"

  @staticmethod
  def loss(params):
    return _quad(params, CENTER)

  @staticmethod
  def objectives(params):
    return jnp.stack([_quad(params, CENTER), _quad(params, CENTER2)])


def _carries(state, params, shardings):
  """Every state leaf shaped like a param (ndim >= 1) has that param's sharding."""
  by_shape = {jnp.shape(p): shardings[k] for k, p in params.items() if jnp.ndim(p) >= 1}
  bad = []
  for path, x in jax.tree_util.tree_flatten_with_path(state)[0]:
    want = by_shape.get(jnp.shape(x))
    if want is None or not hasattr(x, "sharding"):
      continue
    if not x.sharding.is_equivalent_to(want, x.ndim):
      bad.append(f"{jax.tree_util.keystr(path)}: {x.sharding}")
  return bad


def main():
  mesh = Mesh(np.array(jax.devices()[:8]).reshape(2, 4), ("fsdp", "tp"))
  shardings = {k: NamedSharding(mesh, s) for k, s in SPECS.items()}
  out = {}
  names = set(sys.argv[1:])
  for record in common.records():
    if names and record.name not in names:
      continue
    problem = Problem()
    tx = common.build(record)
    params = _tree(3, offset=2.0)
    step = jax.jit(harness.make_step(record, tx, problem))
    p1, s1 = params, tx.init(params)
    for _ in range(STEPS):
      p1, s1, _ = step(p1, s1)

    p2 = jax.device_put(params, shardings)
    s2 = optkit.sharding.init_state(tx, p2)
    after_init = _carries(s2, p2, shardings)
    sshard = optkit.sharding.state_shardings(tx, p2)
    step = jax.jit(harness.make_step(record, tx, problem), in_shardings=(shardings, sshard),
                   out_shardings=(shardings, sshard, shardings))
    hlo = step.lower(p2, s2).compile().as_text()
    for _ in range(STEPS):
      p2, s2, _ = step(p2, s2)
    after_steps = _carries(s2, p2, shardings)
    params_kept = [k for k in p2 if not p2[k].sharding.is_equivalent_to(shardings[k],
                                                                        p2[k].ndim)]
    diff = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30))
               for a, b in zip(jax.tree.leaves(p2), jax.tree.leaves(p1)))
    out[record.name] = {"rel_diff": diff, "state_init": after_init,
                        "state_steps": after_steps, "params_lost": params_kept,
                        "host": sorted(set(m.lower() for m in _HOST.findall(hlo)))}
  json.dump(out, sys.stdout)


if __name__ == "__main__":
  main()
