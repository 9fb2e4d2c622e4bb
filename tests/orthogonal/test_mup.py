"""muP (Tensor Programs IVb): multiplier tables, the wrapper, and the coordinate
check (width-independent first-step feature change) with SP as negative control.

The MLP helpers here are reused by test_u_mup.py and test_mup_second_order.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit

D_IN, D_OUT, BATCH, N_BASE = 8, 4, 16, 64
WIDTHS = (64, 256, 1024)
ROLES = {"w1": "input", "b1": "bias", "w2": "hidden", "b2": "bias", "w3": "output"}


def mlp_shapes(n):
  return {"w1": (D_IN, n), "b1": (n,), "w2": (n, n), "b2": (n,), "w3": (n, D_OUT)}


def mlp_params(n, std, seed=0):
  """Gaussian weights with per-leaf std ``std[name]`` and zero biases (NumPy RNG:
  no per-shape compilation)."""
  rng = np.random.default_rng(seed)
  shapes = mlp_shapes(n)
  p = {k: jnp.zeros(s, jnp.float32) for k, s in shapes.items() if k.startswith("b")}
  for name in ("w1", "w2", "w3"):
    p[name] = jnp.asarray(std[name] * rng.standard_normal(shapes[name]), jnp.float32)
  return p


def data(seed=1):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.standard_normal((BATCH, D_IN)), jnp.float32),
          jnp.asarray(rng.standard_normal((BATCH, D_OUT)), jnp.float32))


def forward(params, x, mult=None):
  """Returns (h2, f): the second hidden pre-activation and the output.

  ``mult`` holds forward (parameter) multipliers per weight (1 when absent).
  """
  m = mult or {}
  h1 = x @ (m.get("w1", 1.0) * params["w1"]) + params["b1"]
  h2 = jax.nn.relu(h1) @ (m.get("w2", 1.0) * params["w2"]) + params["b2"]
  f = jax.nn.relu(h2) @ (m.get("w3", 1.0) * params["w3"])
  return h2, f


SEEDS = 4


def first_step_feature_change(tx, params_fn, mult=None):
  """RMS per coordinate of the change of h2 after one step of ``tx``, averaged
  over ``SEEDS`` initializations ``params_fn(seed)`` (and data sets)."""

  def change(params, x, y):
    loss = lambda p: jnp.mean((forward(p, x, mult)[1] - y) ** 2)
    g = jax.grad(loss)(params)
    u, _ = tx.update(g, tx.init(params), params)
    new = optax.apply_updates(params, u)
    dh = forward(new, x, mult)[0] - forward(params, x, mult)[0]
    return jnp.sqrt(jnp.mean(dh ** 2))

  stack = lambda trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)
  params = stack([params_fn(s) for s in range(SEEDS)])
  xs, ys = stack([data(100 + s) for s in range(SEEDS)])
  # One compilation per width (eager ops compile one by one: slow on a busy CPU).
  return float(jnp.mean(jax.jit(jax.vmap(change))(params, xs, ys)))


def mup_std(n):
  """muP init = base init x mup_multipliers(...).init_std (base: 1/sqrt(fan_in),
  readout 1/fan_in)."""
  r = n / N_BASE
  base = {"w1": D_IN ** -0.5, "w2": N_BASE ** -0.5, "w3": 1.0 / N_BASE}
  m = optkit.mup_multipliers(mlp_shapes_tree(n), ROLES, r).init_std
  return {k: base[k] * m[k] for k in base}


def mlp_shapes_tree(n):
  return {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in mlp_shapes(n).items()}


def test_multipliers_are_one_at_base_width():
  for optimizer in ("adam", "sgd"):
    for readout in ("lr", "param"):
      m = optkit.mup_multipliers(mlp_shapes_tree(64), ROLES, 1.0, optimizer=optimizer,
                                 readout=readout)
      for tree in m:
        assert all(v == 1.0 for v in jax.tree.leaves(tree)), (optimizer, readout, tree)


def test_hand_checked_tables():
  # r = 4: TP V Table 3 / MuAdam / MuSGD (see the module docstring).
  p = mlp_shapes_tree(256)
  adam = optkit.mup_multipliers(p, ROLES, 4.0)
  assert adam.lr == {"w1": 1.0, "b1": 1.0, "w2": 0.25, "b2": 1.0, "w3": 0.25}
  assert adam.init_std == {"w1": 1.0, "b1": 1.0, "w2": 0.5, "b2": 1.0, "w3": 0.25}
  assert adam.param == {"w1": 1.0, "b1": 1.0, "w2": 1.0, "b2": 1.0, "w3": 1.0}
  adam_p = optkit.mup_multipliers(p, ROLES, 4.0, readout="param")
  assert adam_p.lr == {"w1": 1.0, "b1": 1.0, "w2": 0.25, "b2": 1.0, "w3": 1.0}
  assert adam_p.param["w3"] == 0.25 and adam_p.init_std["w3"] == 1.0
  sgd = optkit.mup_multipliers(p, ROLES, 4.0, optimizer="sgd")
  assert sgd.lr == {"w1": 4.0, "b1": 4.0, "w2": 1.0, "b2": 4.0, "w3": 0.25}
  sgd_p = optkit.mup_multipliers(p, ROLES, 4.0, optimizer="sgd", readout="param")
  assert sgd_p.lr["w3"] == 4.0
  # MuSGD: the per-step decay lr x wd is width-independent.
  for k in ROLES:
    assert sgd.lr[k] * sgd.weight_decay[k] == pytest.approx(1.0)
  # Doubling the hidden width halves the Adam hidden multiplier, biases unchanged.
  a8 = optkit.mup_multipliers(p, ROLES, 8.0)
  assert a8.lr["w2"] == adam.lr["w2"] / 2 and a8.lr["b1"] == adam.lr["b1"]


def test_roles_forms_and_defaults():
  p = mlp_shapes_tree(128)
  as_tree = optkit.mup_multipliers(p, ROLES, 2.0)
  as_callable = optkit.mup_multipliers(p, lambda params: dict(ROLES), 2.0)
  assert as_tree == as_callable
  # Per-leaf widths as a tree; one string for every leaf; default roles.
  per_leaf = optkit.mup_multipliers(p, ROLES, {k: 2.0 for k in ROLES})
  assert per_leaf == as_tree
  all_hidden = optkit.mup_multipliers(p, "hidden", 2.0).lr
  assert set(jax.tree.leaves(all_hidden)) == {0.5}
  default = optkit.mup_multipliers(p, None, 2.0).lr
  assert default == {"w1": 0.5, "b1": 1.0, "w2": 0.5, "b2": 1.0, "w3": 0.5}
  # A prefix tree: one role for a whole sub-tree.
  nested = {"layer": {"w": jnp.zeros((4, 4)), "b": jnp.zeros(4)}, "out": jnp.zeros((4, 2))}
  m = optkit.mup_multipliers(nested, {"layer": "hidden", "out": "output"}, 2.0)
  assert m.lr == {"layer": {"w": 0.5, "b": 0.5}, "out": 0.5}


def test_scale_by_mup_scales_the_inner_update():
  params = mlp_params(128, mup_std(128))
  g = jax.tree.map(lambda p: jnp.ones_like(p) * 0.3, params)
  inner = optax.adam(0.01)
  tx = optkit.scale_by_mup(ROLES, 2.0, inner=inner)
  tx1 = optkit.scale_by_mup(ROLES)  # default inner: the Adam direction (no lr)
  adam_dir = optax.scale_by_adam()

  @jax.jit  # one compilation (eager ops compile one by one)
  def run(g, params):
    return (tx.update(g, tx.init(params), params)[0],
            inner.update(g, inner.init(params), params)[0],
            tx1.update(g, tx1.init(params), params)[0],
            adam_dir.update(g, adam_dir.init(params))[0])

  u, ref, u1, d = run(g, params)
  m = optkit.mup_multipliers(params, ROLES, 2.0).lr
  for k in params:
    np.testing.assert_allclose(u[k], m[k] * ref[k], rtol=1e-6)
  # r = 1 reduces to the inner direction exactly.
  jax.tree.map(np.testing.assert_array_equal, u1, d)


def sp_std(n):
  """Standard parametrization: 1/sqrt(fan_in) everywhere."""
  return {"w1": D_IN ** -0.5, "w2": n ** -0.5, "w3": n ** -0.5}


def _init(n, std_fn):
  return lambda seed: mlp_params(n, std_fn(n), seed)


def _mup_adam(n, lr=0.01):
  return optkit.scale_by_mup(ROLES, n / N_BASE, inner=optax.adam(lr))


def test_coordinate_check_adam():
  """Defining property: with muP init + multipliers the first Adam step changes
  the hidden pre-activations by the same RMS at every width; SP's (standard init
  1/sqrt(fan_in), one lr) grows ~ linearly with width."""
  mup = np.array([first_step_feature_change(_mup_adam(n), _init(n, mup_std))
                  for n in WIDTHS])
  sp = np.array([first_step_feature_change(optax.adam(0.01), _init(n, sp_std))
                 for n in WIDTHS])
  # Width-independent to 15% (finite-width fluctuations are O(1/sqrt(n))).
  np.testing.assert_allclose(mup / mup[0], 1.0, atol=0.15)
  # Negative control: SP's change grows with width (x16 width -> > x8 change).
  assert sp[-1] / sp[0] > 8.0, sp


def test_coordinate_check_sgd():
  """SGD table (MuSGD): the first SGD step's feature change is width-independent."""
  def tx(n):
    return optkit.scale_by_mup(ROLES, n / N_BASE, inner=optax.sgd(0.5), optimizer="sgd")
  mup = np.array([first_step_feature_change(tx(n), _init(n, mup_std)) for n in WIDTHS])
  np.testing.assert_allclose(mup / mup[0], 1.0, atol=0.15)
  # Negative control: the Adam table applied to SGD shrinks the change with width.
  wrong = np.array([first_step_feature_change(
      optkit.scale_by_mup(ROLES, n / N_BASE, inner=optax.sgd(0.5)), _init(n, mup_std))
      for n in WIDTHS])
  assert wrong[-1] / wrong[0] < 0.5, wrong


@pytest.mark.parametrize("fn", ["mup_multipliers", "scale_by_mup"])
def test_bad_metadata_raises(fn):
  p = {"w": jnp.zeros((4, 4)), "b": jnp.zeros(4)}

  def call(roles, widths):
    if fn == "mup_multipliers":
      return optkit.mup_multipliers(p, roles, widths)
    tx = optkit.scale_by_mup(roles, widths)
    return tx.init(p)

  with pytest.raises(ValueError, match=rf"{fn}.*unknown role 'matrix'.*\['w'\]"):
    call({"w": "matrix", "b": "bias"}, 1.0)
  with pytest.raises(ValueError, match=rf"{fn}.*width_mults.*\['b'\].*positive"):
    call({"w": "hidden", "b": "bias"}, {"w": 2.0, "b": 0.0})
  with pytest.raises(ValueError, match=rf"{fn}.*width_mults.*\['w'\].*positive"):
    call({"w": "hidden", "b": "bias"}, {"w": -1.0, "b": 1.0})
  with pytest.raises(ValueError, match=rf"{fn}.*roles.*no entry.*\['w'\]"):
    call({"b": "bias"}, 1.0)
  with pytest.raises(ValueError, match=fn):
    call({"w": "hidden", "b": "bias"}, float("nan"))


def test_bad_modes_raise():
  p = {"w": jnp.zeros((4, 4))}
  with pytest.raises(ValueError, match="mup_multipliers.*optimizer"):
    optkit.mup_multipliers(p, optimizer="lion")
  with pytest.raises(ValueError, match="scale_by_mup.*readout"):
    optkit.scale_by_mup(readout="zero")
