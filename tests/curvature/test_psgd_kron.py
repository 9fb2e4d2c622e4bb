"""PSGD Kron: psgd_jax fixture, the whitening fixed point, the RMS cap, the
update cadence and schedule, factor layout and hyperparameter checks."""

import importlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from tests import helpers

# The module itself: the package attribute ``optkit.curvature.psgd_kron`` is the function.
pk = importlib.import_module("optkit.curvature.psgd_kron")

FIXTURE = helpers.fixture("curvature_psgd_kron.npz")
# The fixture's tree. Tests share it (and call ``update`` eagerly) so that the
# module's jitted step compiles once for most of them.
SHAPES = {"b": (5,), "k": (3, 3, 2), "w": (6, 4)}
# Same settings as tools/make_psgd_kron_fixtures.py (names shared with psgd_jax).
CONFIGS = {
    "default": dict(learning_rate=0.01, b1=0.9, preconditioner_update_probability=1.0),
    "variant": dict(learning_rate=0.02, b1=0.5, weight_decay=0.1,
                    preconditioner_update_probability=0.5, memory_save_mode="one_diag",
                    momentum_into_precond_update=False, preconditioner_lr=0.2,
                    preconditioner_init_scale=2.0),
    "balance": dict(learning_rate=0.01, b1=0.9, preconditioner_update_probability=1.0),
}


def _psgd_jax_keys(count, key):
  """psgd_jax 0.2.9's per-step key: its constant key folded with the count."""
  del key
  return jax.random.fold_in(jax.random.PRNGKey(pk.PSGD_JAX_KEY_SEED), count)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_psgd_jax_fixture(name):
  """Open-loop trajectory and final factors equal psgd_jax 0.2.9 kron (its
  probe keys replayed through the test hook) to 1e-4 absolute; measured
  ~2e-7. 'balance' runs 48 steps: psgd_jax re-balances the factors at
  count 46."""
  data = np.load(FIXTURE)
  kw = dict(CONFIGS[name])
  lr, wd = kw.pop("learning_rate"), kw.pop("weight_decay", 0.0)
  tx = optax.chain(pk.scale_by_psgd_kron(**kw, _step_key_fn=_psgd_jax_keys),
                   optax.add_decayed_weights(wd), optax.scale_by_learning_rate(lr))
  leaves = sorted({k.split("/")[2] for k in data.files if k.startswith(f"{name}/x0/")})
  params = {k: jnp.asarray(data[f"{name}/x0/{k}"]) for k in leaves}
  grads = {k: data[f"{name}/grads/{k}"] for k in leaves}
  state, update = tx.init(params), tx.update
  for step in range(grads[leaves[0]].shape[0]):
    u, state = update({k: jnp.asarray(grads[k][step]) for k in leaves}, state, params)
    params = optax.apply_updates(params, u)
    for k in leaves:
      np.testing.assert_allclose(params[k], data[f"{name}/traj/{k}"][step + 1],
                                 rtol=0, atol=1e-4, err_msg=f"{name} step {step} {k}")
  for k in leaves:
    for i, q in enumerate(state[0].Qs[k]):
      np.testing.assert_allclose(q, data[f"{name}/Q/{k}/{i}"], rtol=0, atol=1e-4)


# ---------------------------------------------------------------- whitening

_N = 8


def _sqrt_and_inv_sqrt(seed):
  """Sigma^(1/2) and Sigma^(-1/2) of a random 8x8 SPD matrix, condition 100."""
  q = np.linalg.qr(np.random.default_rng(seed).standard_normal((_N, _N)))[0]
  e = np.logspace(0, 2, _N)
  return (q * np.sqrt(e)) @ q.T, (q / np.sqrt(e)) @ q.T


def _fit_on_kronecker_noise(memory_save_mode=None):
  """Feeds G = S_L^(1/2) Z S_R^(1/2) (b1 = 0, p = 1) for 2000 steps, the fit's
  step size 0.1 then 0.02; returns the relative Frobenius error of
  P = Q_L^T Q_L (x) Q_R^T Q_R against (S_L (x) S_R)^(-1/2)."""
  half_l, inv_l = _sqrt_and_inv_sqrt(1)
  half_r, inv_r = _sqrt_and_inv_sqrt(2)
  hl, hr = jnp.asarray(half_l, jnp.float32), jnp.asarray(half_r, jnp.float32)
  lrs = jnp.asarray(np.r_[np.full(1000, 0.1), np.full(1000, 0.02)], jnp.float32)

  def make(lr):
    return pk.scale_by_psgd_kron(b1=0.0, preconditioner_update_probability=1.0,
                                 preconditioner_lr=lr, memory_save_mode=memory_save_mode)

  def body(state, inp):
    key, lr = inp
    g = hl @ jax.random.normal(key, (_N, _N)) @ hr
    return make(lr).update(g, state)[1], None

  state = make(0.1).init(jnp.zeros((_N, _N)))
  keys = jax.random.split(jax.random.key(0), lrs.shape[0])
  state, _ = jax.jit(lambda s: jax.lax.scan(body, s, (keys, lrs)))(state)
  p_l, p_r = (np.asarray(q, np.float64) for q in state.Qs)
  p_l = np.diag(p_l ** 2) if p_l.ndim == 1 else p_l.T @ p_l
  p_r = np.diag(p_r ** 2) if p_r.ndim == 1 else p_r.T @ p_r
  target = np.kron(inv_l, inv_r)
  return np.linalg.norm(np.kron(p_l, p_r) - target) / np.linalg.norm(target)


def test_whitening_property():
  """Kronecker factors learn (S_L (x) S_R)^(-1/2) to < 10% (measured ~4.7%)."""
  assert _fit_on_kronecker_noise() < 0.1


def test_whitening_negative_controls():
  """Diagonal factors (memory_save_mode='all_diag', measured 83%) and the
  identity preconditioner of plain SGD, even at its best scale (75%), do not
  whiten correlated gradients."""
  assert _fit_on_kronecker_noise("all_diag") > 0.5
  _, inv_l = _sqrt_and_inv_sqrt(1)
  _, inv_r = _sqrt_and_inv_sqrt(2)
  target = np.kron(inv_l, inv_r)
  best = np.trace(target) / target.shape[0] * np.eye(target.shape[0])
  assert np.linalg.norm(best - target) / np.linalg.norm(target) > 0.5


# ---------------------------------------------------------------- the step


def test_update_rms_at_most_1p1_learning_rate():
  lr = 0.3
  tx = optkit.psgd_kron(lr, preconditioner_update_probability=1.0)
  params = helpers.random_tree(0, shapes=SHAPES)
  state, rms = tx.init(params), []
  for g in helpers.gradient_sequence(6, seed=3, shapes=SHAPES):
    u, state = tx.update(jax.tree.map(lambda x: 100.0 * x, g), state, params)
    params = optax.apply_updates(params, u)
    rms.append([float(jnp.sqrt(jnp.mean(u[k] ** 2))) for k in sorted(u)])
  rms = np.array(rms)
  assert np.all(rms <= 1.1 * lr * (1 + 1e-6))
  assert rms.max() >= 0.99 * 1.1 * lr  # the cap binds for large gradients


def test_frozen_preconditioner_is_clipped_momentum():
  """preconditioner_lr = 0 keeps Q = s^(1/k) I per factor, so P = s^2 I and
  the direction is clip(s^2 m_hat) with the bias-corrected EMA m_hat; the
  first step is clip(s^2 g) (hand-computed)."""
  s, b1 = 0.5, 0.8
  tx = pk.scale_by_psgd_kron(b1=b1, preconditioner_lr=0.0, preconditioner_init_scale=s,
                             preconditioner_update_probability=1.0)
  shapes = SHAPES
  grads = helpers.gradient_sequence(4, seed=5, shapes=shapes)
  state, update = tx.init(grads[0]), tx.update
  m = {k: np.zeros(v) for k, v in shapes.items()}
  for t, g in enumerate(grads, start=1):
    u, state = update(g, state)
    for k in shapes:
      m[k] = b1 * m[k] + (1 - b1) * np.asarray(g[k], np.float64)
      d = s ** 2 * m[k] / (1 - b1 ** t)
      d = d / max(1.0, np.sqrt(np.mean(d ** 2)) / 1.1)
      np.testing.assert_allclose(u[k], d, rtol=2e-5, atol=1e-7)
  u1, _ = tx.update(grads[0], tx.init(grads[0]))
  np.testing.assert_allclose(u1["w"], s ** 2 * grads[0]["w"], rtol=1e-6)


def test_zero_gradient_leaf_keeps_its_factors():
  """Documented deviation: a leaf whose gradients are exactly zero keeps its
  factors (psgd_jax would grow them on the probes alone); the others fit."""
  tx = pk.scale_by_psgd_kron(preconditioner_update_probability=1.0)
  grads = helpers.gradient_sequence(4, seed=2, shapes=SHAPES)
  state = tx.init(grads[0])
  for g in grads:
    u, state = tx.update({**g, "b": jnp.zeros(5)}, state)
  np.testing.assert_array_equal(state.Qs["b"][0], np.ones(5))
  np.testing.assert_array_equal(u["b"], np.zeros(5))
  assert not np.allclose(state.Qs["w"][0], np.eye(6))


def test_update_cadence_is_a_deterministic_counter():
  """p = 0.25: the factors change on steps 4 and 8 only, and the counter
  cycles 1, 2, 3, 0."""
  tx = pk.scale_by_psgd_kron(preconditioner_update_probability=0.25)
  grads = helpers.gradient_sequence(8, seed=1, shapes=SHAPES)
  state, update = tx.init(grads[0]), tx.update
  counters, changed = [], []
  for g in grads:
    old = state.Qs["w"][0]
    _, state = update(g, state)
    counters.append(int(state.update_counter))
    changed.append(not np.array_equal(old, state.Qs["w"][0]))
  assert counters == [1, 2, 3, 0, 1, 2, 3, 0]
  assert changed == [False, False, False, True, False, False, False, True]


def test_schedule_values():
  sched = optkit.psgd_update_prob_schedule()
  np.testing.assert_allclose(
      sched(jnp.array([0, 500, 1000, 4000, 10_000])),
      [1.0, 1.0, np.exp(-0.5), np.exp(-3.5), 0.03], rtol=1e-6)
  np.testing.assert_allclose(float(sched(4000)), 0.0301974, rtol=1e-5)
  custom = optkit.psgd_update_prob_schedule(max_prob=0.5, min_prob=0.1, decay=0.01,
                                            flat_start=10)
  np.testing.assert_allclose(custom(jnp.array([0, 10, 110, 1000])),
                             [0.5, 0.5, 0.5 * np.exp(-1.0), 0.1], rtol=1e-6)


def test_default_schedule_updates_every_step_at_first():
  tx = pk.scale_by_psgd_kron()
  g = {"w": jnp.arange(12.0).reshape(4, 3)}
  _, state = tx.update(g, tx.init(g))
  assert int(state.update_counter) == 0  # p(1) = 1: updated (counter reset)
  assert not np.array_equal(state.Qs["w"][0], jnp.eye(4))


# ---------------------------------------------------------------- layout, dtypes, keys


def test_factor_layout():
  params = {"s": jnp.zeros(()), "v": jnp.zeros(5), "w": jnp.zeros((6, 4)),
            "k": jnp.zeros((3, 3, 2)), "o": jnp.zeros((1, 7)), "big": jnp.zeros((3, 20))}
  shapes = lambda tx: {k: [q.shape for q in v] for k, v in tx.init(params).Qs.items()}
  assert shapes(pk.scale_by_psgd_kron(max_size_triangular=10)) == {
      "s": [()], "v": [(5,)], "w": [(6, 6), (4, 4)], "k": [(3, 3), (3, 3), (2, 2)],
      "o": [(1,), (7, 7)], "big": [(3, 3), (20,)]}
  one = shapes(pk.scale_by_psgd_kron(memory_save_mode="one_diag"))
  assert one["k"] == [(3, 3), (3,), (2, 2)]  # the last of the largest axes
  assert one["w"] == [(6,), (4, 4)]
  assert all(len(s) <= 1 for f in shapes(pk.scale_by_psgd_kron(
      memory_save_mode="all_diag")).values() for s in f)
  assert shapes(pk.scale_by_psgd_kron(min_ndim_triangular=1))["v"] == [(5, 5)]
  qs = pk.scale_by_psgd_kron(preconditioner_init_scale=8.0).init(params).Qs
  np.testing.assert_allclose(qs["s"][0], 8.0)
  np.testing.assert_allclose(qs["k"][0], 2.0 * np.eye(3))  # 8^(1/3)
  np.testing.assert_allclose(qs["w"][1], np.sqrt(8.0) * np.eye(4), rtol=1e-6)


def test_bf16_params_keep_float32_factors():
  params = {"w": jnp.ones((4, 3), jnp.bfloat16), "b": jnp.ones(3, jnp.bfloat16)}
  tx = optkit.psgd_kron(0.1)
  state = tx.init(params)
  u, state = jax.jit(tx.update)(params, state, params)
  assert u["w"].dtype == jnp.bfloat16 and state[0].mu["w"].dtype == jnp.bfloat16
  assert all(q.dtype == jnp.float32 for q in jax.tree.leaves(state[0].Qs))
  assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u))


def test_balancing_keeps_the_preconditioner():
  key = jax.random.key(0)
  a = jnp.triu(jax.random.normal(key, (3, 3))) + 3 * jnp.eye(3)
  qs = (10.0 * a, 0.1 * jnp.triu(jax.random.normal(jax.random.key(1), (2, 2))) + jnp.eye(2),
        jnp.array([4.0, 0.5]))
  g = jax.random.normal(jax.random.key(2), (3, 2, 2))
  # pylint: disable=protected-access
  balanced, before, after = jax.jit(lambda qs, g: (
      pk._balance(qs), pk._precondition(qs, g), pk._precondition(pk._balance(qs), g)))(qs, g)
  maxes = [float(jnp.max(jnp.abs(q))) for q in balanced]
  np.testing.assert_allclose(maxes, maxes[0], rtol=1e-5)
  assert not np.allclose(balanced[0], qs[0])
  np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-6)


def test_seed_drives_the_probes():
  g = {"w": jnp.arange(12.0).reshape(4, 3)}

  def factors(seed):
    tx = pk.scale_by_psgd_kron(seed=seed)
    state = tx.init(g)
    _, s1 = tx.update(g, state)
    _, s2 = tx.update(g, s1)
    assert not np.array_equal(s1.key, s2.key)  # split every step
    return s2.Qs["w"][0]

  np.testing.assert_array_equal(factors(0), factors(0))
  assert not np.allclose(factors(0), factors(1))


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs,arg", [
    (dict(b1=1.0), "b1"),
    (dict(preconditioner_lr=-0.1), "preconditioner_lr"),
    (dict(preconditioner_lr=1.0), "preconditioner_lr"),
    (dict(preconditioner_init_scale=0.0), "preconditioner_init_scale"),
    (dict(preconditioner_update_probability=0.0), "preconditioner_update_probability"),
    (dict(preconditioner_update_probability=1.5), "preconditioner_update_probability"),
    (dict(max_size_triangular=0), "max_size_triangular"),
    (dict(min_ndim_triangular=-1), "min_ndim_triangular"),
    (dict(memory_save_mode="some_diag"), "memory_save_mode"),
    (dict(momentum_into_precond_update=1), "momentum_into_precond_update"),
    (dict(seed=1.5), "seed"),
    (dict(learning_rate=-1.0), "learning_rate"),
    (dict(weight_decay=-0.1), "weight_decay"),
])
def test_bad_hyperparameters_raise(kwargs, arg):
  with pytest.raises(ValueError, match=rf"psgd_kron: `{re.escape(arg)}`"):
    optkit.psgd_kron(**{"learning_rate": 0.1, **kwargs})


@pytest.mark.parametrize("kwargs,arg", [
    (dict(min_prob=0.0), "min_prob"), (dict(max_prob=1.5), "max_prob"),
    (dict(decay=-1.0), "decay")])
def test_bad_schedule_arguments_raise(kwargs, arg):
  with pytest.raises(ValueError, match=rf"psgd_update_prob_schedule: `{arg}`"):
    optkit.psgd_update_prob_schedule(**kwargs)
