"""optkit.sharding.init_state puts param-shaped state where the params are.

Runs in a subprocess with 8 simulated CPU devices (the device count is fixed
when JAX starts).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import optkit
import jax.numpy as jnp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import optkit
    mesh = Mesh(np.array(jax.devices()).reshape(2, 4), ("fsdp", "tp"))
    w = NamedSharding(mesh, P("fsdp", "tp"))
    params = {"w": jax.device_put(jnp.ones((8, 16)), w), "b": jnp.ones((16,))}
    for tx in (optkit.lion(1e-3), optkit.adam(1e-3), optkit.shampoo(1e-3)):
      plain = jax.jit(tx.init)(params)
      state = optkit.sharding.init_state(tx, params)
      like_w = [x for x in jax.tree.leaves(state) if x.shape == (8, 16)]
      assert like_w and all(x.sharding.is_equivalent_to(w, 2) for x in like_w)
      plain_w = [x for x in jax.tree.leaves(plain) if x.shape == (8, 16)]
      print("PLAIN_SHARDED", all(x.sharding.is_equivalent_to(w, 2) for x in plain_w))
      others = [x for x in jax.tree.leaves(state) if x.shape != (8, 16)]
      assert all(x.sharding.is_fully_replicated for x in others)
    print("OK")
""")


def test_init_state_shards_param_shaped_leaves():
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().endswith("OK")


def test_init_state_needs_a_sharded_leaf():
  with pytest.raises(ValueError, match="init_state.*NamedSharding"):
    optkit.sharding.init_state(optkit.lion(1e-3), {"w": jnp.ones(3)})
