"""Subset-Norm / Subspace-Momentum (AdamW-SNSM): what makes the method itself."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from benchmarks.shapes import transformer_shapes
from optkit.memory import subset_norm as sn
from tests import helpers

SHAPES = {"w": (6, 4), "v": (3, 5), "b": (4,)}


def _bytes(tree):
  return sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


# ---------------------------------------------------------------- first step


def test_first_step_by_hand():
  # g_w = [[3, 4], [0, 0]]: rank-1 SVD captures it (complement 0); subset
  # size 2 for numel 4 (floor(sqrt(4)) = 2), i.e. rows; the zero row stays 0.
  # d = sqrt(1-b2) * (P m / (1-b1)) / (sqrt((1-b2) * 25) + eps) = g / 5.
  # Vector b: plain AdamW first step, -lr * sign(g).
  lr = 0.1
  opt = optkit.adamw_snsm(lr, rank=1, eps=1e-12)
  g = {"w": jnp.array([[3.0, 4.0], [0.0, 0.0]]), "b": jnp.array([2.0, -0.5])}
  u, _ = jax.jit(opt.update)(g, opt.init(g), g)
  np.testing.assert_allclose(u["w"], -lr * np.array([[0.6, 0.8], [0.0, 0.0]]), rtol=1e-6)
  np.testing.assert_allclose(u["b"], [-lr, lr], rtol=1e-6)


def test_heuristic_subset_reduces_over_the_smaller_dimension():
  g = jnp.array([[3.0, 4.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [6.0, 8.0, 0.0]])  # (4, 3)
  tx = optkit.scale_by_subset_norm(subset_size="heuristic", eps=0.0)
  state = tx.init(g)
  assert state.nu.shape == (4, 1)                       # keeps the larger dim
  d, _ = jax.jit(tx.update)(g, state)
  np.testing.assert_allclose(d, g / np.linalg.norm(g, axis=1, keepdims=True), rtol=1e-6)
  assert tx.init(g.T).nu.shape == (1, 4)


# ---------------------------------------------------------------- reductions


def test_subset_size_one_is_adam_efficient_form():
  grads = helpers.gradient_sequence(12, seed=3, shapes=SHAPES)
  params = helpers.random_tree(0, shapes=SHAPES)
  mine = optkit.scale_by_subset_norm(subset_size=1, eps=0.0,
                                     numerator=optax.ema(0.9, debias=True))
  ref = optax.scale_by_adam(b1=0.9, b2=0.999, eps=0.0)
  for (u, _), (r, _) in zip(helpers.run_open_loop(mine, params, grads),
                            helpers.run_open_loop(ref, params, grads)):
    for k in SHAPES:
      np.testing.assert_allclose(u[k], r[k], rtol=2e-5, atol=1e-7)
  # Negative control: a larger subset is not Adam.
  other = optkit.scale_by_subset_norm(subset_size=2, eps=0.0,
                                      numerator=optax.ema(0.9, debias=True))
  u2 = helpers.run_open_loop(other, params, grads)[0][0]
  r2 = helpers.run_open_loop(ref, params, grads)[0][0]
  assert not np.allclose(u2["w"], r2["w"], rtol=1e-3)


def test_square_full_rank_subspace_momentum_is_full_momentum():
  shapes = {"w": (4, 4), "b": (3,)}
  grads = helpers.gradient_sequence(6, seed=5, shapes=shapes)
  params = helpers.random_tree(1, shapes=shapes)
  mine = optkit.scale_by_subspace_momentum(rank=4, b1=0.8, update_proj_gap=100)
  ref = optax.ema(0.8, debias=True)
  for (u, _), (r, _) in zip(helpers.run_open_loop(mine, params, grads),
                            helpers.run_open_loop(ref, params, grads)):
    np.testing.assert_allclose(u["w"], r["w"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(u["b"], r["b"], rtol=1e-6)


def test_rank_zero_is_plain_gradient_and_full_rank_has_no_complement():
  g = helpers.random_tree(7, shapes={"w": (6, 4)})
  b1 = 0.9
  zero = optkit.scale_by_subspace_momentum(rank=0, b1=b1)
  u, _ = jax.jit(zero.update)(g, zero.init(g))
  np.testing.assert_allclose(u["w"], g["w"] / (1 - b1), rtol=1e-5)
  full = optkit.scale_by_subspace_momentum(rank=4, b1=b1)
  u, state = jax.jit(full.update)(g, full.init(g))
  # At the refresh step P P^T g = g, so n = P m / (1 - b1) = g.
  np.testing.assert_allclose(u["w"], g["w"], rtol=1e-4, atol=1e-5)
  p = np.asarray(state.projector["w"])
  np.testing.assert_allclose(p.T @ p, np.eye(4), atol=1e-5)


# ------------------------------------------------- references and re-derivations


@pytest.mark.parametrize("config,subset_size", [("sqrt", -1), ("five", 5)])
def test_matches_pytorch_optimizer_adamwsn(config, subset_size):
  """pytorch_optimizer AdamWSN (sn=True on matrices, plain AdamW on the vector),
  float64, 10 closed-loop steps; tolerance rtol 1e-9 (observed ~1e-14)."""
  data = np.load(helpers.fixture("memory_subset_norm.npz"))
  with jax.enable_x64(True):
    d = {k[len("data__"):]: jnp.asarray(data[k]) for k in data.files if k.startswith("data__")}

    def loss(p):
      return (0.5 * jnp.sum((d["X1"] @ p["w1"] - d["Y1"]) ** 2)
              + 0.5 * jnp.sum((d["X2"] @ p["w2"] - d["Y2"]) ** 2)
              + 0.5 * jnp.sum(d["d"] * (p["b"] - d["c"]) ** 2))

    tx = optax.chain(
        optkit.scale_by_subset_norm(b2=0.999, eps=1e-8, subset_size=subset_size,
                                    numerator=optax.ema(0.9, debias=True)),
        optax.scale_by_learning_rate(0.05))
    traj = helpers.fixture_trajectory(data, f"{config}__traj__")
    worst = helpers.replay_trajectory(tx, loss, traj, rtol=1e-9, atol=1e-12)
  assert worst < 1e-9


def _numpy_snsm(grads, rank, b1, b2, eps, gap, subset):
  """float64 re-derivation of AdamW-SNSM's direction on one (M, N) matrix (M >= N)."""
  m = v = p = None
  out = []
  for t, g in enumerate(grads, start=1):
    if (t - 1) % gap == 0:
      p = np.linalg.svd(g, full_matrices=False)[0][:, :rank]
      m = np.zeros((rank, g.shape[1]))
    r = p.T @ g
    m = b1 * m + (1 - b1) * r
    num = (p @ m + (g - p @ r)) / (1 - b1 ** t)
    s = np.sum(g.reshape(-1, subset) ** 2, axis=1, keepdims=True)
    v = (1 - b2) * s if v is None else b2 * v + (1 - b2) * s
    out.append(math.sqrt(1 - b2 ** t) * (num.reshape(-1, subset) / (np.sqrt(v) + eps))
               .reshape(g.shape))
  return out


def test_matches_float64_numpy_rederivation_across_refreshes():
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal((6, 4)) for _ in range(12)]
  expected = _numpy_snsm(grads, rank=2, b1=0.9, b2=0.999, eps=1e-6, gap=5, subset=4)
  with jax.enable_x64(True):
    tx = optkit.adamw_snsm(1.0, rank=2, update_proj_gap=5, eps=1e-6)
    state = tx.init({"w": jnp.zeros((6, 4))})
    update = jax.jit(tx.update)
    for g, e in zip(grads, expected):
      u, state = update({"w": jnp.asarray(g)}, state, {"w": jnp.zeros((6, 4))})
      np.testing.assert_allclose(-np.asarray(u["w"]), e, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- projector refresh


def test_projector_refreshes_only_every_gap_steps_under_cond():
  tx = optkit.scale_by_subspace_momentum(rank=2, update_proj_gap=3)
  grads = helpers.gradient_sequence(7, seed=2, shapes={"w": (6, 4)})
  state = tx.init(grads[0])
  update = jax.jit(tx.update)
  projs = []
  for g in grads:
    _, state = update(g, state)
    projs.append(np.asarray(state.projector["w"]))
  same = [np.allclose(projs[i], projs[i - 1]) for i in range(1, 7)]
  assert same == [True, True, False, True, True, False]   # refresh at counts 3, 6
  # The SVD is inside a lax.cond branch, not on the every-step path.
  jaxpr = jax.make_jaxpr(tx.update)(grads[0], tx.init(grads[0])).jaxpr
  top = {e.primitive.name for e in jaxpr.eqns}
  assert "cond" in top and "svd" not in top
  assert "svd" in str(jaxpr)


def test_random_projector_is_seeded_and_orthonormal():
  g = helpers.random_tree(4, shapes={"w": (8, 5)})

  tx0 = optkit.scale_by_subspace_momentum(rank=3, projector="random", seed=0)
  tx1 = optkit.scale_by_subspace_momentum(rank=3, projector="random", seed=1)
  update = jax.jit(tx0.update)   # the seed only enters through the state
  proj = lambda tx: np.asarray(update(g, tx.init(g))[1].projector["w"])
  p0, p0b, p1 = proj(tx0), proj(tx0), proj(tx1)
  np.testing.assert_array_equal(p0, p0b)
  assert not np.allclose(p0, p1)
  np.testing.assert_allclose(p0.T @ p0, np.eye(3), atol=1e-5)


def test_topk_norm_projector_selects_the_largest_rows():
  g = {"w": jnp.array([[0.1, 0.0], [5.0, 1.0], [0.0, 0.2], [0.0, 3.0]])}
  tx = optkit.scale_by_subspace_momentum(rank=2, projector="topk_norm")
  _, state = jax.jit(tx.update)(g, tx.init(g))
  assert sorted(np.argmax(np.asarray(state.projector["w"]), axis=0).tolist()) == [1, 3]


# ---------------------------------------------------------------- memory


def test_state_shapes_give_the_memory_saving():
  state = optkit.adamw_snsm(1e-3, rank=2).init(
      {"w": jnp.zeros((6, 4)), "v": jnp.zeros((3, 5)), "b": jnp.zeros((4,))})
  sn_state = state[0]
  assert sn_state.nu["w"].shape == (6, 1)      # 24 / 4: subsets of 4 (sqrt rule)
  assert sn_state.nu["v"].shape == (5, 1)      # 15 / 3
  assert sn_state.nu["b"].shape == (4,)        # vector: Adam fallback
  sm_state = sn_state.numerator
  assert sm_state.projector["w"].shape == (6, 2) and sm_state.mu["w"].shape == (2, 4)
  assert sm_state.projector["v"].shape == (5, 2) and sm_state.mu["v"].shape == (2, 3)
  assert sm_state.mu["b"].shape == (4,)


def test_state_bytes_below_adamw_on_transformer_shapes():
  shapes = transformer_shapes(128, 4, 2000)
  params = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}
  p_bytes = _bytes(params)
  ratio = _bytes(jax.eval_shape(optkit.adamw_snsm(1e-3, rank=16).init, params)) / p_bytes
  adamw = _bytes(jax.eval_shape(optax.adamw(1e-3).init, params)) / p_bytes
  assert adamw >= 2.0                # negative control: AdamW keeps 2 copies
  assert ratio < 0.5, ratio          # 0.17 with rank 16


# ---------------------------------------------------------------- errors


def test_rank_larger_than_a_matrix_dimension_raises():
  with pytest.raises(ValueError, match=r"adamw_snsm: `rank`=4 .*\['w'\]"):
    optkit.adamw_snsm(1e-3, rank=4).init({"w": jnp.zeros((4, 3)), "b": jnp.zeros((3,))})
  with pytest.raises(ValueError, match=r"subspace_momentum: `rank`=5"):
    optkit.scale_by_subspace_momentum(rank=5).init({"k": jnp.zeros((3, 3, 2, 4))})


@pytest.mark.parametrize("kwargs", [dict(b2=1.5), dict(eps=-1.0), dict(subset_size=0),
                                    dict(subset_size="rows"), dict(subset_size=1.5)])
def test_bad_subset_norm_hparams_raise(kwargs):
  with pytest.raises(ValueError, match="subset_norm"):
    optkit.scale_by_subset_norm(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(rank=-1), dict(rank=2, b1=1.0),
                                    dict(rank=2, update_proj_gap=0),
                                    dict(rank=2, projector="qr")])
def test_bad_subspace_momentum_hparams_raise(kwargs):
  with pytest.raises(ValueError, match="subspace_momentum"):
    optkit.scale_by_subspace_momentum(**kwargs)


def test_bad_adamw_snsm_hparams_raise():
  with pytest.raises(ValueError, match="adamw_snsm"):
    optkit.adamw_snsm(-1.0)
  with pytest.raises(ValueError, match="adamw_snsm"):
    optkit.adamw_snsm(1e-3, b2=1.0)
