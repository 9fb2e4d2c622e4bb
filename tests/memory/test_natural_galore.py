"""Natural GaLore: what makes the method itself."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from benchmarks.shapes import transformer_shapes
from optkit.memory.natural_galore import woodbury_natural_gradient
from tests import helpers


def _bytes(tree):
  return sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


# ---------------------------------------------------------------- the Woodbury step


def test_woodbury_equals_dense_solve_float64():
  rng = np.random.default_rng(0)
  h, g, lam = rng.standard_normal((4, 12)), rng.standard_normal(12), 0.3
  with jax.enable_x64(True):
    x = np.asarray(woodbury_natural_gradient(jnp.asarray(h), jnp.asarray(g), lam))
  np.testing.assert_allclose(x, np.linalg.solve(lam * np.eye(12) + h.T @ h, g), rtol=1e-10)


def test_first_two_steps_by_hand_with_sgd_base():
  # rank 1, P = +-e1, lambda = 1, s = 2, base = identity (no Adam):
  # step 1: rho = [3, 0], F = I + rho rho^T  -> rho~ = rho / 10 -> [[0.3, 0], [0, 0]]
  # step 2: rho = [1, 0], H = [[3, 0], [1, 0]] -> F_11 = 1 + 9 + 1 -> [[1/11, 0], [0, 0]]
  tx = optkit.scale_by_natural_galore(rank=1, update_proj_gap=10, scale=1.0, history_size=2,
                                      damping=1.0, base=optax.identity())
  update = jax.jit(tx.update)
  g1 = {"w": jnp.array([[3.0, 0.0], [0.0, 1.0]])}
  g2 = {"w": jnp.array([[1.0, 0.0], [0.0, 2.0]])}
  d1, state = update(g1, tx.init(g1))
  d2, _ = update(g2, state)
  np.testing.assert_allclose(d1["w"], [[0.3, 0.0], [0.0, 0.0]], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(d2["w"], [[1 / 11, 0.0], [0.0, 0.0]], rtol=1e-6, atol=1e-7)


def test_natural_step_equals_dense_fisher_solve_over_steps():
  """The subspace step is F^{-1} rho with F = lam I + sum of the last s rho rho^T."""
  s, lam = 3, 0.5
  grads = helpers.gradient_sequence(6, seed=1, shapes={"w": (5, 3)})
  with jax.enable_x64(True):
    grads = [{"w": jnp.asarray(g["w"], jnp.float64)} for g in grads]
    tx = optkit.scale_by_natural_galore(rank=3, update_proj_gap=100, scale=1.0,
                                        history_size=s, damping=lam, base=optax.identity())
    state = tx.init(grads[0])
    update = jax.jit(tx.update)
    rhos = []
    for g in grads:
      d, state = update(g, state)
      p = np.asarray(state.galore.projector["w"])                    # (5, 3)
      rhos.append(p.T @ np.asarray(g["w"]))
      hist = np.stack([r.reshape(-1) for r in rhos[-s:]])
      f = lam * np.eye(9) + hist.T @ hist
      expected = p @ np.linalg.solve(f, rhos[-1].reshape(-1)).reshape(3, 3)
      np.testing.assert_allclose(d["w"], expected, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- reductions


def test_history_zero_is_optax_galore_with_scaled_eps():
  """s = 0: F = lam I, Adam(R / lam) with eps == Adam(R) with eps * lam."""
  shapes = {"w": (6, 4), "v": (3, 5)}
  grads = helpers.gradient_sequence(8, seed=2, shapes=shapes)
  params = helpers.random_tree(0, shapes=shapes)
  lam, eps = 0.5, 1e-3
  mine = optkit.scale_by_natural_galore(rank=2, update_proj_gap=3, scale=0.25,
                                        history_size=0, damping=lam, eps=eps)
  ref = optax.contrib.scale_by_galore(rank=2, update_proj_gap=3, scale=0.25,
                                      base_optimizer=optax.scale_by_adam(eps=eps * lam))
  ref_out = helpers.run_open_loop(ref, params, grads)
  for (u, _), (r, _) in zip(helpers.run_open_loop(mine, params, grads), ref_out):
    for k in shapes:
      # 2e-5: optkit passes b2 to Adam as an array (1 - b2 rounded once),
      # optax's Python b2 gives a 1.3e-5 relative difference in v (see module).
      np.testing.assert_allclose(u[k], r[k], rtol=2e-5, atol=1e-6)
  # Negative control: with a history the update is not GaLore's.
  nat = optkit.scale_by_natural_galore(rank=2, update_proj_gap=3, scale=0.25,
                                       history_size=3, damping=lam, eps=eps)
  u3 = helpers.run_open_loop(nat, params, grads[:3])[2][0]
  assert not np.allclose(u3["w"], ref_out[2][0]["w"], rtol=1e-2)


def test_full_rank_square_is_adam_in_the_rotated_basis():
  """rank = n on a square leaf: update = scale * P Adam(P^T G_t), P from G_0."""
  grads = [np.asarray(g["w"], np.float64)
           for g in helpers.gradient_sequence(5, seed=4, shapes={"w": (4, 4)})]
  b1, b2, eps, scale = 0.9, 0.999, 1e-8, 0.5
  p = np.linalg.svd(grads[0])[0]
  m = v = np.zeros((4, 4))
  expected = []
  for t, g in enumerate(grads, start=1):
    r = p.T @ g
    m, v = b1 * m + (1 - b1) * r, b2 * v + (1 - b2) * r * r
    n = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    expected.append(scale * p @ n)
  with jax.enable_x64(True):
    tx = optkit.scale_by_natural_galore(rank=4, update_proj_gap=100, scale=scale,
                                        history_size=0, damping=1.0, eps=eps)
    state = tx.init({"w": jnp.zeros((4, 4))})
    update = jax.jit(tx.update)
    for g, e in zip(grads, expected):
      d, state = update({"w": jnp.asarray(g)}, state)
      # optax's projector SVD runs in float32, hence 1e-6 rather than 1e-12.
      np.testing.assert_allclose(d["w"], e, rtol=1e-6, atol=1e-7)
  # Not Adam in the original basis (Adam is not rotation invariant).
  assert not np.allclose(expected[1], 0.5 * np.sign(grads[1]), atol=1e-2)


def test_vectors_get_plain_adam():
  g = {"w": jnp.ones((4, 3)), "b": jnp.array([1.0, -2.0, 0.5])}
  opt = optkit.natural_galore(0.1, rank=1)
  u, _ = jax.jit(opt.update)(g, opt.init(g), g)
  np.testing.assert_allclose(u["b"], [-0.1, 0.1, -0.1], rtol=1e-6)


# ---------------------------------------------------------------- reference


@pytest.mark.parametrize("config,gap", [("gap1", 1), ("gap100", 100)])
def test_matches_pytorch_optimizer_galore(config, gap):
  """pytorch_optimizer GaLore (projection 'reverse_std' = optax's side, rank 2,
  scale 0.25), float64, 10 closed-loop steps; history_size = 0 and damping = 1
  make Natural GaLore GaLore. Tolerance rtol 1e-6, atol 1e-7 (observed max
  deviation 1e-7): optax.contrib.galore computes the SVD in float32 even for
  float64 params; eps 1e-12 makes the two eps placements agree to ~1e-11.
  gap1 refreshes P at every step in both (and the SVD signs agree)."""
  data = np.load(helpers.fixture("memory_galore.npz"))
  with jax.enable_x64(True):
    d = {k[len("data__"):]: jnp.asarray(data[k]) for k in data.files if k.startswith("data__")}

    def loss(p):
      return (0.5 * jnp.sum((d["X1"] @ p["w1"] - d["Y1"]) ** 2)
              + 0.5 * jnp.sum((d["X2"] @ p["w2"] - d["Y2"]) ** 2)
              + 0.5 * jnp.sum(d["d"] * (p["b"] - d["c"]) ** 2))

    tx = optkit.natural_galore(0.05, rank=2, update_proj_gap=gap, scale=0.25,
                               history_size=0, damping=1.0, eps=1e-12)
    traj = helpers.fixture_trajectory(data, f"{config}__traj__")
    worst = helpers.replay_trajectory(tx, loss, traj, rtol=1e-6, atol=1e-7)
  assert worst < 1e-6


# ---------------------------------------------------------------- defining property


def _least_squares():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((64, 16)) * np.logspace(0, -1.5, 16)   # ill-conditioned
  y = x @ rng.standard_normal((16, 8))
  x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
  return lambda p: 0.5 * jnp.mean(jnp.sum((x @ p["w"] - y) ** 2, axis=1))


def _final_losses(history_size, lrs, steps=300):
  """Final loss after ``steps`` for each learning rate (one compile, vmapped)."""
  loss = _least_squares()
  p0 = {"w": jnp.zeros((16, 8))}

  def run(lr):
    tx = optkit.natural_galore(lr, rank=4, update_proj_gap=50, scale=1.0, damping=0.1,
                               history_size=history_size)

    def body(carry, _):
      p, s = carry
      u, s = tx.update(jax.grad(loss)(p), s, p)
      return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(body, (p0, tx.init(p0)), None, length=steps)
    return loss(p)

  return np.asarray(jax.jit(jax.vmap(run))(jnp.asarray(lrs)))


def test_natural_gradient_beats_galore_on_ill_conditioned_least_squares():
  """Same rank, projector and Adam, each tuned over the same learning rates:
  the Fisher correction reaches a 2x lower loss; plain GaLore (s = 0) does not."""
  lrs = (0.01, 0.03, 0.1)
  natural = _final_losses(10, lrs).min()
  galore = _final_losses(0, lrs).min()
  assert natural < 0.5 * galore, (natural, galore)


# ---------------------------------------------------------------- memory, refresh


def test_state_shapes_give_the_memory_saving():
  params = {"w": jnp.zeros((6, 4)), "v": jnp.zeros((3, 5)), "k": jnp.zeros((3, 3, 2, 4)),
            "b": jnp.zeros((4,))}
  state = optkit.scale_by_natural_galore(rank=2, history_size=3).init(params)
  proj = state.galore.projector
  natural_state, adam_state = state.galore.base_optimizer_state
  assert proj["w"].shape == (6, 2) and adam_state.mu["w"].shape == (2, 4)
  assert adam_state.nu["w"].shape == (2, 4)                   # second moment (r, n)
  assert proj["v"].shape == (5, 2) and adam_state.nu["v"].shape == (3, 2)
  assert proj["k"].shape == (18, 2) and adam_state.nu["k"].shape == (2, 4)  # (18, 4) view
  assert natural_state.history["w"].shape == (3, 8)           # (s, r * n)
  assert adam_state.nu["b"].shape == (4,)                     # vector: Adam fallback


def test_state_bytes_below_adamw_on_transformer_shapes():
  shapes = transformer_shapes(128, 4, 2000)
  params = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}
  p_bytes = _bytes(params)
  ratio = _bytes(jax.eval_shape(optkit.natural_galore(1e-3, rank=16).init, params)) / p_bytes
  adamw = _bytes(jax.eval_shape(optax.adamw(1e-3).init, params)) / p_bytes
  assert adamw >= 2.0                # negative control: AdamW keeps 2 copies
  assert ratio < 1.0, ratio          # 0.53 with rank 16, s = 10


def test_projection_refresh_runs_under_cond_every_gap_steps():
  tx = optkit.scale_by_natural_galore(rank=2, update_proj_gap=3, history_size=2)
  grads = helpers.gradient_sequence(7, seed=3, shapes={"w": (6, 4)})
  state = tx.init(grads[0])
  update = jax.jit(tx.update)
  projs = []
  for g in grads:
    _, state = update(g, state)
    projs.append(np.asarray(state.galore.projector["w"]))
  same = [np.allclose(projs[i], projs[i - 1]) for i in range(1, 7)]
  assert same == [True, True, False, True, True, False]
  jaxpr = jax.make_jaxpr(tx.update)(grads[0], tx.init(grads[0])).jaxpr
  top = {e.primitive.name for e in jaxpr.eqns}
  assert "cond" in top and "svd" not in top
  assert "svd" in str(jaxpr)


# ---------------------------------------------------------------- errors


def test_rank_larger_than_a_matrix_dimension_raises():
  with pytest.raises(ValueError, match=r"natural_galore: `rank`=4 .*\['w'\]"):
    optkit.natural_galore(1e-3, rank=4).init({"w": jnp.zeros((4, 3)), "b": jnp.zeros((3,))})


@pytest.mark.parametrize("kwargs", [dict(rank=0), dict(history_size=-1), dict(damping=0.0),
                                    dict(update_proj_gap=0), dict(b2=1.0), dict(scale=-1.0)])
def test_bad_hparams_raise(kwargs):
  with pytest.raises(ValueError, match="natural_galore"):
    optkit.scale_by_natural_galore(**kwargs)
  with pytest.raises(ValueError, match="natural_galore"):
    optkit.natural_galore(1e-3, **kwargs)
