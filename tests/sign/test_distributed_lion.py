"""What makes Distributed Lion itself (arXiv:2404.00438); the contract suite
covers ``distributed_lion_simulated`` (an aggregator record). ``distributed_lion``
only runs inside a mapped axis, so it is tested here: under ``jax.vmap`` with an
axis name in-process and under ``jax.shard_map`` on 4 CPU devices in a
subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers

SHAPES = {"a": (5,), "b": (2, 3), "c": ()}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _worker_grads(n_workers, steps, seed=0):
  """``steps`` trees whose leaves have a leading worker axis of size n_workers."""
  rng = np.random.default_rng(seed)
  return [{k: jnp.asarray(rng.standard_normal((n_workers,) + s), jnp.float32)
           for k, s in SHAPES.items()} for _ in range(steps)]


def _replicate(tree, n):
  return jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), tree)


def _run_simulated(n, grads, params, lr, wd, **kw):
  tx = optax.chain(optkit.distributed_lion_simulated(n, **kw),
                   optax.add_decayed_weights(wd), optax.scale_by_learning_rate(lr))
  state = tx.init(params)
  update = jax.jit(tx.update)
  out = []
  for g in grads:
    u, state = update(g, state, params)
    params = optax.apply_updates(params, u)
    out.append((u, params))
  return out


def _run_vmapped(n, grads, params, lr, wd, **kw):
  """distributed_lion with the workers as a named vmap axis (one call per worker)."""
  tx = optkit.distributed_lion(lr, weight_decay=wd, axis_name="workers", **kw)
  p = _replicate(params, n)
  state = jax.vmap(tx.init)(p)
  step = jax.jit(jax.vmap(tx.update, axis_name="workers"))
  out = []
  for g in grads:
    u, state = step(g, state, p)
    p = optax.apply_updates(p, u)
    out.append((u, p))
  return out


# ---------------------------------------------------------------- reductions


@pytest.mark.parametrize("aggregation", ["majority_vote", "average"])
def test_one_worker_is_lion(aggregation):
  """Catalog test (1): N = 1 gives exactly optax.lion, both forms."""
  params = helpers.random_tree(3, shapes=SHAPES)
  grads = _worker_grads(1, 6, seed=1)
  ref = helpers.run_open_loop(optax.lion(0.02, weight_decay=0.1), params,
                              [jax.tree.map(lambda x: x[0], g) for g in grads])
  sim = _run_simulated(1, grads, params, 0.02, 0.1, aggregation=aggregation)
  vm = _run_vmapped(1, grads, params, 0.02, 0.1, aggregation=aggregation)
  for (ur, _), (us, _), (uv, _) in zip(ref, sim, vm):
    chex.assert_trees_all_equal(us, ur)
    chex.assert_trees_all_equal(jax.tree.map(lambda x: x[0], uv), ur)


@pytest.mark.parametrize("aggregation", ["majority_vote", "average"])
def test_simulated_equals_named_axis_form(aggregation):
  """The leading-axis simulation and the psum form (under a named vmap axis)
  give the same updates on every worker, and replicated params stay equal."""
  n = 4
  params = helpers.random_tree(5, shapes=SHAPES)
  grads = _worker_grads(n, 6, seed=2)
  sim = _run_simulated(n, grads, params, 0.03, 0.2, aggregation=aggregation)
  vm = _run_vmapped(n, grads, params, 0.03, 0.2, aggregation=aggregation)
  for (us, ps), (uv, pv) in zip(sim, vm):
    for i in range(n):
      # Equal up to float rounding of -lr (Delta + wd x): XLA fuses the two
      # programs differently (1 ulp); the votes themselves are checked exactly below.
      chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], uv), us, rtol=1e-6, atol=1e-9)
      chex.assert_trees_all_close(jax.tree.map(lambda x: x[i], pv), ps, rtol=1e-6, atol=1e-8)
  # The aggregated direction itself is bit-identical.
  sim_dir = optkit.distributed_lion_simulated(n, aggregation=aggregation)
  vm_dir = optkit.scale_by_distributed_lion(axis_name="workers", aggregation=aggregation)
  s_sim, s_vm = sim_dir.init(params), jax.vmap(vm_dir.init)(_replicate(params, n))
  step = jax.jit(jax.vmap(vm_dir.update, axis_name="workers"))
  sim_update = jax.jit(sim_dir.update)
  for g in grads:
    d_sim, s_sim = sim_update(g, s_sim)
    d_vm, s_vm = step(g, s_vm)
    for i in range(n):
      chex.assert_trees_all_equal(jax.tree.map(lambda x: x[i], d_vm), d_sim)
  chex.assert_trees_all_close(s_vm.mu, s_sim.mu, rtol=1e-6, atol=1e-9)  # FMA rounding


def test_vote_values_and_ties():
  """Catalog test (3): majority vote gives {-1, 0, 1} (0 exactly on ties, N even);
  averaging gives multiples of 1/N and is not a sign (negative control)."""
  n = 4
  grads = _worker_grads(n, 5, seed=3)
  params = helpers.random_tree(0, shapes=SHAPES)
  maj = optkit.distributed_lion_simulated(n)
  avg = optkit.distributed_lion_simulated(n, aggregation="average")
  s_maj, s_avg = maj.init(params), avg.init(params)
  maj_update, avg_update = jax.jit(maj.update), jax.jit(avg.update)
  saw_tie = saw_fraction = False
  for g in grads:
    um, s_maj = maj_update(g, s_maj)
    ua, s_avg = avg_update(g, s_avg)
    for m, a in zip(jax.tree.leaves(um), jax.tree.leaves(ua)):
      m, a = np.asarray(m), np.asarray(a)
      assert set(np.unique(m)) <= {-1.0, 0.0, 1.0}
      np.testing.assert_array_equal(m, np.sign(a))          # same votes, two aggregations
      np.testing.assert_array_equal(np.round(a * n), a * n)  # multiples of 1/N
      saw_tie |= bool(np.any(m == 0))
      saw_fraction |= bool(np.any((np.abs(a) > 0) & (np.abs(a) < 1)))
  assert saw_tie and saw_fraction


def test_majority_vote_hand_computed():
  """3 workers, first step (m = 0): delta_i = sign(g_i); Delta = sign(sum)."""
  g = {"a": jnp.array([[1.0, 2.0, -1.0, 0.0], [3.0, -1.0, -2.0, 0.0], [-1.0, -5.0, 1.0, 1.0]])}
  tx = optkit.distributed_lion_simulated(3)
  u, s = tx.update(g, tx.init({"a": jnp.zeros(4)}))
  np.testing.assert_array_equal(u["a"], [1.0, -1.0, -1.0, 1.0])
  np.testing.assert_allclose(s.mu["a"], 0.01 * np.asarray(g["a"]), rtol=1e-6)  # local momenta


def test_momenta_stay_local():
  """Each worker's momentum is the EMA of its own gradients only."""
  n = 3
  grads = _worker_grads(n, 4, seed=4)
  tx = optkit.distributed_lion_simulated(n, b2=0.9)
  state = tx.init(helpers.random_tree(0, shapes=SHAPES))
  update = jax.jit(tx.update)
  m = jax.tree.map(jnp.zeros_like, grads[0])
  for g in grads:
    _, state = update(g, state)
    m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
  chex.assert_trees_all_close(state.mu, m, rtol=1e-6, atol=1e-8)   # float32 rounding


# ---------------------------------------------------------------- shard_map on a CPU mesh

_SHARD_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax, chex
    from jax.sharding import NamedSharding, PartitionSpec as P
    import optkit
    n = len(jax.devices())
    assert n == 8, n
    mesh = jax.make_mesh((n,), ("batch",))
    per_worker = lambda t: jax.device_put(t, NamedSharding(mesh, P("batch")))
    replicated = lambda t: jax.device_put(t, NamedSharding(mesh, P()))
    rng = np.random.default_rng(0)
    shapes = {"a": (5,), "b": (2, 3), "c": ()}
    params = {k: jnp.asarray(rng.standard_normal(s), jnp.float32) for k, s in shapes.items()}
    for aggregation in ("majority_vote", "average"):
      direction = optkit.scale_by_distributed_lion(axis_name="batch", aggregation=aggregation)
      full = optkit.distributed_lion(0.03, weight_decay=0.2, axis_name="batch",
                                     aggregation=aggregation)
      sim_dir = optkit.distributed_lion_simulated(n, aggregation=aggregation)
      sim_full = optax.chain(optkit.distributed_lion_simulated(n, aggregation=aggregation),
                             optax.add_decayed_weights(0.2), optax.scale_by_learning_rate(0.03))
      def make_step(tx):
        def step(g, s, p):
          # One worker's block: drop the size-1 leading axis of g and s.
          g = jax.tree.map(lambda x: x[0], g)
          s = jax.tree.map(lambda x: x[0], s)
          u, s = tx.update(g, s, p)
          return u, jax.tree.map(lambda x: x[None], s)
        return jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P("batch"), P("batch"), P()),
                                     out_specs=(P(), P("batch"))))
      stacked_init = lambda tx: per_worker(jax.tree.map(
          lambda x: jnp.broadcast_to(x, (n,) + x.shape), tx.init(params)))
      step_dir, step_full = make_step(direction), make_step(full)
      s_dir, s_full = stacked_init(direction), stacked_init(full)
      s_sim_dir, s_sim_full = sim_dir.init(params), sim_full.init(params)
      sim_dir_update, sim_full_update = jax.jit(sim_dir.update), jax.jit(sim_full.update)
      p_sh = p_sim = params
      for t in range(5):
        g = {k: jnp.asarray(rng.standard_normal((n,) + s), jnp.float32)
             for k, s in shapes.items()}
        d_sh, s_dir = step_dir(per_worker(g), s_dir, replicated(p_sh))
        d_sim, s_sim_dir = sim_dir_update(g, s_sim_dir, p_sim)
        chex.assert_trees_all_equal(d_sh, d_sim)            # the votes: exactly equal
        u_sh, s_full = step_full(per_worker(g), s_full, replicated(p_sh))
        u_sim, s_sim_full = sim_full_update(g, s_sim_full, p_sim)
        chex.assert_trees_all_close(u_sh, u_sim, rtol=1e-6, atol=1e-9)
        p_sh = optax.apply_updates(p_sh, u_sh)
        p_sim = optax.apply_updates(p_sim, u_sim)
      chex.assert_trees_all_close(s_dir.mu, s_sim_dir.mu, rtol=1e-6, atol=1e-9)  # momenta
      chex.assert_trees_all_close(p_sh, p_sim, rtol=1e-6, atol=1e-8)
    print("SHARD_MAP_OK", n)
""")


def test_shard_map_on_cpu_mesh_equals_simulated():
  """Catalog test (2): distributed_lion under jax.shard_map over 8 XLA host devices
  (int8 psum of the votes) equals distributed_lion_simulated(8): the direction
  (votes) exactly, per-worker momenta and the full update (decay, lr) to rtol
  1e-6 (XLA may contract b2 m + (1 - b2) g into an FMA in one program and not
  the other: 1 ulp), both aggregations, 5 steps. Run in a subprocess because
  the device count is fixed when JAX starts."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                      " --xla_force_host_platform_device_count=8").strip()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run([sys.executable, "-c", _SHARD_SCRIPT], env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert "SHARD_MAP_OK 8" in proc.stdout


# ---------------------------------------------------------------- errors


def test_outside_a_mapped_axis_raises_clear_error():
  tx = optkit.distributed_lion(0.1, axis_name="batch")
  p = jnp.zeros(3)
  state = tx.init(p)
  with pytest.raises(ValueError, match=r"distributed_lion.*`axis_name`='batch'"):
    tx.update(jnp.ones(3), state, p)
  with pytest.raises(ValueError, match=r"distributed_lion.*`axis_name`"):
    jax.jit(tx.update)(jnp.ones(3), state, p)
  # Inside a vmap bound to another name: still the clear error.
  with pytest.raises(ValueError, match="distributed_lion"):
    jax.vmap(lambda g: tx.update(g, state, p)[0], axis_name="other")(jnp.ones((2, 3)))


@pytest.mark.parametrize("kwargs", [
    {"learning_rate": -1.0},
    {"learning_rate": 0.1, "b1": 1.0},
    {"learning_rate": 0.1, "weight_decay": -0.1},
    {"learning_rate": 0.1, "aggregation": "median"},
    {"learning_rate": 0.1, "axis_name": None},
    {"learning_rate": 0.1, "axis_name": ""},
])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="distributed_lion"):
    optkit.distributed_lion(**kwargs)


@pytest.mark.parametrize("kwargs", [{"num_workers": 0}, {"num_workers": 2.5},
                                    {"num_workers": 2, "b2": -0.1},
                                    {"num_workers": 2, "aggregation": "sum"}])
def test_bad_simulated_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="distributed_lion_simulated"):
    optkit.distributed_lion_simulated(**kwargs)


def test_simulated_worker_axis_mismatch_raises():
  tx = optkit.distributed_lion_simulated(2)
  state = tx.init({"a": jnp.zeros(3)})
  with pytest.raises(ValueError, match="distributed_lion_simulated"):
    tx.update({"a": jnp.zeros((3, 3))}, state)
