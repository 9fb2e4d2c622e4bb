"""Tests of GGPO and random weight perturbation (optkit.perturbation.ggpo).

What makes GGPO GGPO: the update is the inner optimizer applied to the
gradient at theta + eps, where eps is row-wise Gaussian with
sigma_i^2 = (sigma^2/n)(alpha ||W'_i||^2 + beta ||G_i||^2), G the previous
step's gradient; the key lives in the state. Checked: sampled per-row
variances, the exact reproduction of the noise from the state key, the stored
gradient norms, the tiny-radius limit (radius 0 is rejected), LoRA merging.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit
from optkit.perturbation.ggpo import ggpo_row_std, row_gaussian_noise

NAME = "ggpo_perturbation"
RWP = "random_weight_perturbation"


def _params():
  rng = np.random.default_rng(0)
  return {"b": jnp.asarray(rng.normal(size=(4,)), jnp.float32),
          "k": jnp.asarray(rng.normal(size=(2, 2, 3, 4)), jnp.float32),
          "w": jnp.asarray(rng.normal(size=(3, 4)) * np.array([0.1, 1, 2, 4]),
                           jnp.float32)}


def _loss(p):
  return (jnp.sum(jnp.cosh(p["w"])) + jnp.sum(jnp.sin(p["k"]) ** 2)
          + jnp.sum(p["b"] ** 4))


def _np_row_sq(x):
  x = np.asarray(x, np.float64)
  return x ** 2 if x.ndim <= 1 else np.sum(x ** 2, axis=tuple(range(x.ndim - 1)))


def test_registry_records():
  for name, static in ((NAME, {"inner", "seed", "merged_weight_fn", "mask"}),
                       (RWP, {"inner", "seed", "sigma_fn", "mask"})):
    rec = optkit.registry.get(name)
    assert rec.kind == "wrapper" and rec.extra_args == ("value_fn",)
    assert static <= set(rec.static_hparams)


def test_row_std_by_hand():
  # Rows are the last axis (output units): n = size / shape[-1].
  w = np.array([[3.0, 0.0], [4.0, 1.0], [0.0, 2.0]])      # n = 3
  gsq = np.array([9.0, 16.0])                              # previous ||G_i||^2
  gnorm = np.sqrt(gsq)
  sigma, alpha, beta = 0.5, 2.0, 0.25
  expected = np.sqrt(sigma ** 2 / 3 * (alpha * np.array([25.0, 5.0])
                                       + beta * gsq))
  got = ggpo_row_std(jnp.asarray(w), jnp.asarray(gnorm), sigma, alpha, beta)
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_sampled_noise_has_the_stated_per_row_variance():
  params = _params()
  gsq = jax.tree.map(lambda p: jnp.asarray(_np_row_sq(np.asarray(p) * 0.5 + 1.0),
                                           jnp.float32), params)
  sigma, alpha, beta = 0.3, 1.0, 2.0
  std = ggpo_row_std(params, jax.tree.map(jnp.sqrt, gsq), sigma, alpha, beta)
  keys = jax.random.split(jax.random.key(1), 3000)
  eps = jax.jit(jax.vmap(lambda k: row_gaussian_noise(k, params, std)))(keys)
  for name, e in eps.items():
    e = np.asarray(e, np.float64)
    p = np.asarray(params[name], np.float64)
    n = 1 if p.ndim <= 1 else p.size // p.shape[-1]
    want_var = sigma ** 2 / n * (alpha * _np_row_sq(p)
                                 + beta * np.asarray(gsq[name]))
    axes = tuple(range(e.ndim - 1))                        # samples + row entries
    var = np.mean(e ** 2, axis=axes)
    mean = np.mean(e, axis=axes)
    samples = e.size // e.shape[-1]
    # Relative standard error of a variance estimate: sqrt(2 / samples).
    np.testing.assert_allclose(var, want_var, rtol=6 * np.sqrt(2 / samples))
    assert np.all(np.abs(mean) < 6 * np.sqrt(want_var / samples))
  # Negative control: the rows really differ (a single sigma would not fit).
  w_var = sigma ** 2 / 3 * (alpha * _np_row_sq(params["w"])
                            + beta * np.asarray(gsq["w"]))
  assert w_var.max() > 5 * w_var.min()


def test_update_is_inner_on_the_gradient_at_the_reproduced_perturbation():
  params = _params()
  sigma, alpha, beta, lr = 0.2, 1.0, 1.0, 0.1
  tx = optkit.ggpo_perturbation(optax.sgd(lr), sigma, alpha, beta, seed=3)
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.grad(_loss)(p), s, p,
                                        value_fn=_loss))
  grad = jax.jit(jax.grad(_loss))
  for t in range(3):
    # The noise of this step from the state's key and stored norms.
    _, sub = jax.random.split(jax.random.wrap_key_data(state.key))
    std = ggpo_row_std(params, state.grad_row_norm, sigma, alpha, beta)
    eps = row_gaussian_noise(sub, params, std)
    g = grad(jax.tree.map(jnp.add, params, eps))
    u, new_state = step(params, state)
    chex.assert_trees_all_close(u, jax.tree.map(lambda v: -lr * v, g),
                                rtol=1e-5, atol=1e-6)
    # The state stores the row norms of that gradient.
    for k in params:
      np.testing.assert_allclose(new_state.grad_row_norm[k],
                                 np.sqrt(_np_row_sq(g[k])), rtol=1e-5)
    # The key was split: the next step uses new noise.
    assert not np.array_equal(new_state.key, state.key)
    if t == 0:
      # Step 1 has no previous gradient: only the weight term.
      chex.assert_trees_all_equal(state.grad_row_norm,
                                  jax.tree.map(jnp.zeros_like,
                                               state.grad_row_norm))
      # Negative control: the plain gradient is not what was used.
      assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
          jax.tree.leaves(g), jax.tree.leaves(grad(params)))) > 1e-3
    params = optax.apply_updates(params, u)
    state = new_state


def test_seed_determines_the_noise():
  params = _params()
  out = {}
  for seed in (0, 0, 1):
    tx = optkit.ggpo_perturbation(optax.sgd(0.1), 0.5, seed=seed)
    u, _ = jax.jit(lambda p, tx=tx: tx.update(jax.grad(_loss)(p), tx.init(p), p,
                                               value_fn=_loss))(params)
    out.setdefault(seed, []).append(u)
  chex.assert_trees_all_equal(out[0][0], out[0][1])
  assert not np.allclose(out[0][0]["w"], out[1][0]["w"])


def test_tiny_radius_tends_to_the_inner_optimizer():
  # sigma = 0 is rejected (a radius must be positive); a tiny radius gives
  # the inner optimizer's update up to O(sigma): with the same key the noise
  # is proportional to sigma, so the deviation shrinks linearly (float64).
  inner = optax.sgd(0.1, momentum=0.9)
  with jax.enable_x64(True):
    params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), _params())
    ref, _ = inner.update(jax.grad(_loss)(params), inner.init(params), params)
    scale = max(float(jnp.max(jnp.abs(r))) for r in jax.tree.leaves(ref))
    errs = []
    for sigma in (1e-2, 1e-5):
      tx = optkit.ggpo_perturbation(inner, sigma)
      u, _ = jax.jit(lambda p, tx=tx: tx.update(
          jax.grad(_loss)(p), tx.init(p), p, value_fn=_loss))(params)
      errs.append(max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
          jax.tree.leaves(u), jax.tree.leaves(ref))))
  assert errs[1] < 1e-4 * scale
  # Negative control: a real radius differs, by ~1000x more.
  assert 500 < errs[0] / errs[1] < 2000, errs
  with pytest.raises(ValueError, match=f"{NAME}.*sigma"):
    optkit.ggpo_perturbation(inner, 0.0)


def test_gradient_guided_rows_get_more_noise():
  # alpha = 0: only the previous gradient sets the scale. Rows with a larger
  # previous gradient get proportionally more noise; a zero row gets none.
  w = jnp.ones((5, 3))
  gnorm = jnp.array([0.0, 1.0, 10.0])
  std = ggpo_row_std(w, gnorm, 1.0, 0.0, 1.0)
  np.testing.assert_allclose(std, np.sqrt(np.array([0.0, 1.0, 100.0]) / 5),
                             rtol=1e-6)
  # Negative control: random weight perturbation with one sigma_fn value
  # perturbs every row alike.
  eps = row_gaussian_noise(jax.random.key(0), jnp.zeros((2000, 3)),
                           jnp.float32(0.3))
  np.testing.assert_allclose(np.std(np.asarray(eps), axis=0), 0.3, rtol=0.06)


def test_random_weight_perturbation_uses_sigma_fn_rows():
  params = {"w": jnp.zeros((4000, 2)), "c": jnp.zeros(())}
  sigma_fn = lambda p: {"w": jnp.array([0.1, 2.0]), "c": jnp.float32(0.0)}

  def loss(p):
    return jnp.sum(p["w"] ** 2) / 2 + p["c"] ** 2

  tx = optkit.random_weight_perturbation(optax.sgd(1.0), sigma_fn, seed=5)
  u, state = jax.jit(lambda p: tx.update(jax.grad(loss)(p), tx.init(p), p,
                                         value_fn=loss))(params)
  # grad L(0 + eps) = eps for w: the update is -eps; c gets no noise.
  eps = -np.asarray(u["w"])
  np.testing.assert_allclose(np.std(eps, axis=0), [0.1, 2.0],
                             rtol=0.05)
  assert float(u["c"]) == 0.0
  assert state.key.dtype == jnp.uint32


def test_lora_merged_weight_and_mask():
  # Flax layout: W (in, out) frozen base, A (in, r), B (r, out); W' = W + A B.
  rng = np.random.default_rng(2)
  params = {"A": jnp.asarray(rng.normal(size=(6, 2)), jnp.float32),
            "B": jnp.asarray(rng.normal(size=(2, 3)), jnp.float32),
            "W": jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)}
  merged = lambda p: {"A": p["A"], "B": p["B"], "W": p["W"] + p["A"] @ p["B"]}
  mask = {"A": False, "B": False, "W": True}
  gsq = jax.tree.map(lambda p: jnp.zeros(p.shape[-1:]), params)
  std = ggpo_row_std(params, gsq, 1.0, 1.0, 0.0, merged)
  wm = np.asarray(merged(params)["W"], np.float64)
  np.testing.assert_allclose(std["W"], np.sqrt(np.sum(wm ** 2, axis=0) / 6),
                             rtol=1e-5)
  eps = row_gaussian_noise(jax.random.key(0), params, std, mask)
  assert np.all(np.asarray(eps["A"]) == 0) and np.all(np.asarray(eps["B"]) == 0)
  assert np.all(np.asarray(eps["W"]) != 0)

  def loss(p):
    return jnp.sum(jnp.tanh(p["W"] + p["A"] @ p["B"]) ** 2)

  tx = optkit.ggpo_perturbation(optax.sgd(0.1), 0.1, merged_weight_fn=merged,
                                mask=mask)
  u, _ = jax.jit(lambda p: tx.update(jax.grad(loss)(p), tx.init(p), p,
                                     value_fn=loss))(params)
  chex.assert_tree_all_finite(u)


@pytest.mark.parametrize("kwargs,arg", [
    ({"sigma": 0.0}, "sigma"),
    ({"sigma": -0.1}, "sigma"),
    ({"alpha": -1.0}, "alpha"),
    ({"beta": -1.0}, "beta"),
    ({"seed": -1}, "seed"),
])
def test_bad_hyperparameters_raise(kwargs, arg):
  with pytest.raises(ValueError, match=f"{NAME}.*{arg}"):
    optkit.ggpo_perturbation(optax.sgd(0.1), **kwargs)


def test_random_weight_perturbation_bad_sigma_fn_raises():
  with pytest.raises(ValueError, match=f"{RWP}.*sigma_fn"):
    optkit.random_weight_perturbation(optax.sgd(0.1), 0.1)


@pytest.mark.parametrize("name", [NAME, RWP])
def test_missing_value_fn_and_params_raise(name):
  p = {"w": jnp.ones(3)}
  tx = (optkit.ggpo_perturbation(optax.sgd(0.1)) if name == NAME else
        optkit.random_weight_perturbation(optax.sgd(0.1), lambda q: 0.1))
  state = tx.init(p)
  with pytest.raises(ValueError, match=f"{name}.*value_fn"):
    tx.update(p, state, p)
  with pytest.raises(ValueError, match=f"{name}.*params"):
    tx.update(p, state, None, value_fn=lambda q: jnp.sum(q["w"]))
