"""UPGrad / Jacobian descent (arXiv:2406.16232) against torchjd 0.18 and its defining properties."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "reference",
                       "upgrad_torchjd.npz")
J_PAPER = np.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]], np.float32)


# Compilations dominate this file's run time: every test below reuses one of a few
# jitted entry points and shapes ((2, 3) with the default preference, (4, 6) with an
# explicit one); hyperparameters are traced arguments.


@jax.jit
def _agg_default_jit(jac, norm_eps, reg_eps):
  tx = optkit.upgrad(None, norm_eps, reg_eps)  # pref_vector None: torchjd's MeanWeighting
  return tx.update(jac, tx.init(None))[0]


@functools.partial(jax.jit, static_argnames=("solver", "max_iters"))
def _agg_jit(jac, pref, norm_eps, reg_eps, solver="active_set", max_iters=100):
  tx = optkit.upgrad(pref, norm_eps, reg_eps, solver=solver, max_iters=max_iters)
  return tx.update(jac, tx.init(None))[0]


def _agg_default(jac, norm_eps=1e-4, reg_eps=1e-4):
  f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
  return _agg_default_jit(f32(jac), f32(norm_eps), f32(reg_eps))


def _agg(jac, pref, norm_eps=1e-4, reg_eps=1e-4, **static):
  f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
  return _agg_jit(f32(jac), f32(pref), f32(norm_eps), f32(reg_eps), **static)


def _uniform(m):
  return jnp.full((m,), 1.0 / m)


def _conflicting(rng, m, n):
  """Rows with a small shared part and strongly opposed private parts."""
  base, opp = rng.normal(size=n), rng.normal(size=n)
  coef = np.where(np.arange(m) % 2 == 0, 1.0, -1.0) * rng.uniform(1.0, 3.0, size=m)
  j = 0.3 * base + coef[:, None] * opp + 0.3 * rng.normal(size=(m, n))
  return j.astype(np.float32)


def _mean_conflicting(rng, m, n):
  """Row 0 points against the others, so the plain mean conflicts with it."""
  d = rng.normal(size=n)
  j = d * rng.uniform(1.0, 3.0, size=(m, 1)) + 0.5 * rng.normal(size=(m, n))
  j[0] = -0.5 * d + 0.5 * rng.normal(size=n)
  return j.astype(np.float32)


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.linalg.norm(a - b) / np.linalg.norm(b)


# (1) torchjd's documented values, defaults and exact.
def test_paper_jacobian_defaults_and_exact():
  a_default = _agg_default(jnp.asarray(J_PAPER))
  a_exact = _agg_default(jnp.asarray(J_PAPER), reg_eps=0.0)
  np.testing.assert_allclose(a_default, [0.29290, 1.90035, 1.90035], atol=1e-5)
  np.testing.assert_allclose(a_exact, [0.29240, 1.90058, 1.90058], atol=1e-5)
  # Not the mean (which conflicts with row 0), so the check above can fail.
  assert float(J_PAPER[0] @ J_PAPER.mean(0)) < 0


# (2) The defining property with a negative control: J·A >= 0, the mean violates it.
def test_no_conflict_with_any_objective_and_mean_fails():
  rng = np.random.default_rng(0)
  for _ in range(6):
    j = _mean_conflicting(rng, 4, 6)
    a = np.asarray(_agg(jnp.asarray(j), _uniform(4), reg_eps=0.0), np.float64)
    assert (j @ a).min() >= -1e-6, j @ a
    assert (j @ j.mean(0)).min() < -1e-1  # negative control: the mean conflicts


# (3) Positive homogeneity.
def test_homogeneity():
  j = _conflicting(np.random.default_rng(1), 4, 6)
  a = _agg(jnp.asarray(j), _uniform(4))
  a3 = _agg(jnp.asarray(3.0 * j), _uniform(4))
  np.testing.assert_allclose(a3, 3.0 * np.asarray(a), rtol=1e-5, atol=1e-6)


# (4) One objective: UPGrad is the identity on its gradient.
def test_single_objective_returns_its_gradient():
  g = np.random.default_rng(2).normal(size=(1, 7)).astype(np.float32)
  np.testing.assert_allclose(_agg(jnp.asarray(g), _uniform(1)), g[0], rtol=1e-6)
  np.testing.assert_allclose(_agg(jnp.asarray(g), _uniform(1), reg_eps=0.0), g[0],
                             rtol=1e-6)


# (5) Non-negative pairwise inner products: every row is already in the dual cone.
def test_non_conflicting_rows_give_the_mean():
  rng = np.random.default_rng(3)
  base = rng.normal(size=6)
  j = (base + 0.2 * rng.normal(size=(4, 6))).astype(np.float32)
  assert (j @ j.T >= 0).all()
  for reg in (0.0, 1e-4):
    np.testing.assert_allclose(_agg(jnp.asarray(j), _uniform(4), reg_eps=reg), j.mean(0),
                               rtol=1e-6, atol=1e-6)
  # Control: with conflicting rows the result is not the mean.
  jc = _conflicting(rng, 4, 6)
  assert _rel(_agg(jnp.asarray(jc), _uniform(4), reg_eps=0.0), jc.mean(0)) > 1e-2


# (6) Permutation equivariance of the objectives.
def test_permutation_equivariance():
  rng = np.random.default_rng(4)
  j = _conflicting(rng, 4, 6)
  perm = np.array([2, 0, 3, 1])
  np.testing.assert_allclose(_agg(jnp.asarray(j[perm]), _uniform(4)),
                             _agg(jnp.asarray(j), _uniform(4)), rtol=1e-5, atol=1e-6)
  pref = rng.uniform(0.2, 1.0, size=4).astype(np.float32)
  np.testing.assert_allclose(_agg(jnp.asarray(j[perm]), jnp.asarray(pref[perm])),
                             _agg(jnp.asarray(j), jnp.asarray(pref)), rtol=1e-5, atol=1e-6)
  # Control: permuting only the preference changes the result.
  assert _rel(_agg(jnp.asarray(j), jnp.asarray(pref[perm])),
              _agg(jnp.asarray(j), jnp.asarray(pref))) > 1e-3


# (7) A pytree Jacobian is the flattened matrix, leaf by leaf.
def test_pytree_equals_flattened_matrix():
  m = 4
  params = {"a": jnp.zeros(()), "k": jnp.zeros((1, 1, 2, 1)), "w": jnp.zeros((1, 3))}
  sizes = {k: int(np.prod(v.shape)) for k, v in params.items()}
  j = _conflicting(np.random.default_rng(5), m, sum(sizes.values()))  # (4, 6)
  jac, start = {}, 0
  for k in sorted(params):  # jax.tree order: sorted dict keys
    jac[k] = jnp.asarray(j[:, start:start + sizes[k]].reshape((m,) + params[k].shape))
    start += sizes[k]
  tx = optkit.upgrad()
  out, _ = jax.jit(tx.update)(jac, tx.init(params), params)
  for k in params:
    assert (out[k].shape, out[k].dtype) == (params[k].shape, params[k].dtype), k
  flat = np.concatenate([np.asarray(out[k]).reshape(-1) for k in sorted(params)])
  np.testing.assert_allclose(flat, _agg(jnp.asarray(j), _uniform(m)), rtol=1e-5, atol=1e-6)


def _fixture_cases():
  data = np.load(FIXTURE)
  cases = []
  for k in range(int(data["num_cases"])):
    pref = data[f"pref_{k}"]
    cases.append(dict(j=data[f"J_{k}"], pref=None if pref.size == 0 else pref,
                      a_default=data[f"A_default_{k}"], a_exact=data[f"A_exact_{k}"],
                      exact_norm_eps=float(data[f"exact_norm_eps_{k}"]),
                      kind=str(data[f"kind_{k}"])))
  return cases


def _run_fixture(dtype):
  """Every fixture case, torchjd defaults and reg_eps = 0, in one vmapped call.

  To compile once, every J is zero-padded to (8, 16) with zero preference on the
  padded rows. This changes nothing mathematically: zero rows and columns leave
  tr(G) and the other entries of G unchanged, a padded row's QP has u = 0 and
  c = 0 (so w = 0 there), and no real row's QP moves a padded coordinate (its
  multiplier is 0). The padded output columns are checked to be exactly 0.
  """
  cases = _fixture_cases()
  mm = max(c["j"].shape[0] for c in cases)
  nn = max(c["j"].shape[1] for c in cases)
  js, prefs, norm_eps, reg_eps, refs, keys = [], [], [], [], [], []
  for k, c in enumerate(cases):
    m, n = c["j"].shape
    pref = np.full(m, 1.0 / m) if c["pref"] is None else c["pref"]  # MeanWeighting
    for mode, ne, re in (("default", 1e-4, 1e-4), ("exact", c["exact_norm_eps"], 0.0)):
      js.append(np.pad(c["j"], ((0, mm - m), (0, nn - n))))
      prefs.append(np.pad(pref, (0, mm - m)))
      norm_eps.append(ne)
      reg_eps.append(re)
      refs.append(c[f"a_{mode}"])
      keys.append((k, mode))
  out = np.asarray(jax.jit(jax.vmap(_agg_jit))(
      jnp.asarray(np.stack(js), dtype), jnp.asarray(np.stack(prefs), dtype),
      jnp.asarray(norm_eps, dtype), jnp.asarray(reg_eps, dtype)))
  errors = {}
  for key, a, ref in zip(keys, out, refs):
    assert not np.any(a[ref.shape[0]:]), key
    errors[key] = _rel(a[:ref.shape[0]], ref)
  return errors


# (8) torchjd 0.18 UPGrad (quadprog, float64) on 51 Jacobians x {defaults, reg_eps=0}.
def test_matches_torchjd_fixture_float32():
  # Tolerance 1e-5 relative (2-norm): float32 rounding of G = J Jᵀ alone moves the
  # strongly conflicting 1e3-scaled cases by a few 1e-6.
  errors = _run_fixture(jnp.float32)
  assert len(errors) == 102
  assert {c["kind"] for c in _fixture_cases()} == {
      "gaussian", "conflict", "aligned", "scaled", "large"}
  bad = {k: e for k, e in errors.items() if not e <= 1e-5}
  assert not bad, bad


def test_matches_torchjd_fixture_float64():
  # With x64 the Gramian and the QP run in float64: agreement to 1e-10 relative.
  with jax.enable_x64(True):
    errors = _run_fixture(jnp.float64)
  bad = {k: e for k, e in errors.items() if not e <= 1e-10}
  assert not bad, bad


def test_default_pref_unpadded_matches_fixture():
  case = _fixture_cases()[9]  # conflict (2, 3), pref None
  assert case["pref"] is None and case["j"].shape == (2, 3) and case["kind"] == "conflict"
  np.testing.assert_allclose(_agg_default(jnp.asarray(case["j"])), case["a_default"],
                             rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(_agg_default(jnp.asarray(case["j"]), reg_eps=0.0),
                             case["a_exact"], rtol=1e-5, atol=1e-7)


def test_projected_gradient_solver_agrees_with_active_set():
  rng = np.random.default_rng(6)
  for _ in range(3):
    j = jnp.asarray(_conflicting(rng, 4, 6))
    for reg in (1e-4, 0.0):
      exact = _agg(j, _uniform(4), reg_eps=reg)
      approx = _agg(j, _uniform(4), reg_eps=reg, solver="projected_gradient",
                    max_iters=3000)
      assert _rel(approx, exact) <= 1e-5


def test_zero_jacobian_gives_zero_update():
  for reg in (1e-4, 0.0):
    out = _agg(jnp.zeros((4, 6)), _uniform(4), reg_eps=reg)
    np.testing.assert_array_equal(out, np.zeros(6))


def test_small_jacobian_below_norm_eps_gives_the_mean():
  # torchjd behaviour: tr(G) < norm_eps zeroes G, so the aggregation is the mean.
  j = 1e-3 * _conflicting(np.random.default_rng(7), 4, 6)
  assert np.trace(j @ j.T) < 1e-4
  np.testing.assert_allclose(_agg(jnp.asarray(j), _uniform(4)), j.mean(0), rtol=1e-6)
  assert _rel(_agg(jnp.asarray(j), _uniform(4), norm_eps=0.0), j.mean(0)) > 1e-2


def test_non_finite_jacobian_gives_nan_update_skipped_by_apply_if_finite():
  j = jnp.asarray(J_PAPER).at[0, 1].set(jnp.inf)
  assert np.isnan(np.asarray(_agg_default(j))).all()
  # The NaN update reaches the inner optimizer, so apply_if_finite there skips it.
  opt = optkit.jacobian_descent(optkit.upgrad(), optax.apply_if_finite(optax.sgd(0.1), 3))
  params = jnp.zeros(3)
  update = jax.jit(opt.update)
  updates, state = update(j, opt.init(params), params)
  np.testing.assert_array_equal(updates, np.zeros(3))
  assert int(state[1].notfinite_count) == 1
  updates, _ = update(jnp.asarray(J_PAPER), state, params)
  np.testing.assert_allclose(updates, -0.1 * np.array([0.29290, 1.90035, 1.90035]),
                             atol=1e-6)


def test_injected_hyperparameters_and_values_extra_arg():
  tx = optax.inject_hyperparams(
      optkit.upgrad, static_args=("pref_vector", "solver", "max_iters"))(
          pref_vector=None, norm_eps=1e-4, reg_eps=0.0)
  j = jnp.asarray(J_PAPER)
  params = jnp.zeros(3)
  out, _ = jax.jit(tx.update)(j, tx.init(params), params, values=jnp.array([1.0, 2.0]))
  np.testing.assert_allclose(out, [0.29240, 1.90058, 1.90058], atol=1e-5)


# (9) Jacobian descent on two conflicting quadratics.
def _two_quadratics():
  a, b = jnp.array([1.0, 0.0]), jnp.array([-1.0, 0.0])
  h2 = jnp.array([1.0, 4.0])

  def losses(x):
    return jnp.stack([0.5 * jnp.sum((x - a) ** 2), 0.5 * jnp.sum(h2 * (x - b) ** 2)])

  return losses


def _pareto_residual(jac):
  """min_{λ∈[0,1]} ||λ g1 + (1-λ) g2||: zero exactly on the Pareto-stationary set."""
  g1, g2 = jac[0], jac[1]
  d = g1 - g2
  lam = jnp.clip(-jnp.dot(g2, d) / jnp.maximum(jnp.dot(d, d), 1e-30), 0.0, 1.0)
  return jnp.linalg.norm(lam * g1 + (1 - lam) * g2)


def test_jacobian_descent_two_quadratics_reduces_both_and_reaches_pareto_set():
  losses = _two_quadratics()
  x0 = jnp.array([0.5, 0.4])
  jac0 = np.array([[-0.5, 0.4], [1.5, 1.6]])  # ∇f_1(x0), ∇f_2(x0)
  assert jac0[0] @ jac0[1] < 0  # conflicting start

  def run(opt, steps=300):
    @jax.jit
    def go(x0):
      def step(carry, _):
        x, state = carry
        u, state = opt.update(jax.jacrev(losses)(x), state, x)
        x = optax.apply_updates(x, u)
        return (x, state), losses(x)
      (x, _), hist = jax.lax.scan(step, (x0, opt.init(x0)), None, length=steps)
      hist = jnp.concatenate([losses(x0)[None], hist])
      return hist, _pareto_residual(jax.jacrev(losses)(x))
    hist, residual = go(x0)
    return np.asarray(hist), float(residual)

  hist, residual = run(
      optkit.jacobian_descent(optkit.upgrad(reg_eps=0.0), optax.sgd(0.05)))
  assert (np.diff(hist, axis=0) <= 1e-6).all()     # each loss non-increasing
  assert (hist[-1] < hist[0] - 1e-2).all()          # and strictly reduced
  assert residual < 1e-4                            # Pareto-stationary at the end
  g1, g2 = np.asarray(jac0)
  d = g1 - g2
  lam = np.clip(-g2 @ d / (d @ d), 0, 1)
  assert np.linalg.norm(lam * g1 + (1 - lam) * g2) > 1e-1  # but not at the start

  # Negative control: descent on the mean loss ends at its minimizer, where
  # objective 1 is worse than at the start.
  mean_opt = optax.chain(optax.with_extra_args_support(
      optax.stateless(lambda g, p: jax.tree.map(lambda x: x.mean(0), g))), optax.sgd(0.05))
  mean_hist, _ = run(mean_opt)
  assert mean_hist[-1, 0] > mean_hist[0, 0] + 1e-1


def test_record_factories_build():
  rec = optkit.registry.get("jacobian_descent")
  opt = rec.make()
  params = jnp.zeros(3)
  u, _ = jax.jit(opt.update)(jnp.asarray(J_PAPER), opt.init(params), params)
  np.testing.assert_allclose(u, -0.05 * np.array([0.29290, 1.90035, 1.90035]), atol=1e-6)
  assert optkit.registry.get("upgrad").kind == "aggregator"


def test_iwrm_jacobian_rows_are_per_example_gradients():
  x = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
  y = jnp.array([0.5, -1.0, 2.0])
  params = {"w": jnp.array([0.3, -0.2]), "b": jnp.array(0.1)}

  def per_example(p, x, y):
    return 0.5 * (x @ p["w"] + p["b"] - y) ** 2

  jac = jax.jit(optkit.iwrm_jacobian(per_example))(params, x, y)
  r = np.asarray(x) @ np.asarray(params["w"]) + 0.1 - np.asarray(y)  # residuals
  np.testing.assert_allclose(jac["w"], r[:, None] * np.asarray(x), rtol=1e-6)  # ∂ℓ_i/∂w
  np.testing.assert_allclose(jac["b"], r, rtol=1e-6)                            # ∂ℓ_i/∂b
  values, jac2 = jax.jit(optkit.iwrm_jacobian(per_example, return_values=True))(
      params, x, y)
  np.testing.assert_allclose(values, 0.5 * r ** 2, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), jac2, jac)
  with pytest.raises(ValueError, match="iwrm_jacobian"):
    optkit.iwrm_jacobian(lambda p, x, y: per_example(p, x, y).sum())(params, x, y)


# (10) Wrong inputs and hyperparameters.
def test_wrong_jacobian_trees_raise():
  tx = optkit.upgrad()
  with pytest.raises(ValueError, match="upgrad.*leading"):
    tx.update({"a": jnp.zeros((2, 3)), "b": jnp.zeros((3, 3))}, tx.init(None))
  with pytest.raises(ValueError, match="upgrad.*scalar"):
    tx.update({"a": jnp.zeros((2, 3)), "c": jnp.zeros(())}, tx.init(None))
  params = {"a": jnp.zeros(3), "c": jnp.zeros(())}
  with pytest.raises(ValueError, match="upgrad.*leaf"):
    tx.update({"a": jnp.zeros((2, 4)), "c": jnp.zeros((2,))}, tx.init(params), params)
  with pytest.raises(ValueError, match="upgrad.*pref_vector"):
    optkit.upgrad([0.5, 0.5, 0.0]).update(jnp.asarray(J_PAPER), ())


@pytest.mark.parametrize("kwargs", [dict(norm_eps=-1.0), dict(reg_eps=-1e-3),
                                    dict(solver="quadprog"), dict(max_iters=0),
                                    dict(pref_vector=[[0.5, 0.5]]),
                                    dict(pref_vector=[np.nan, 1.0])])
def test_bad_hyperparameters_raise(kwargs):
  with pytest.raises(ValueError, match="upgrad"):
    optkit.upgrad(**kwargs)


def test_jacobian_descent_rejects_non_transformations():
  with pytest.raises(TypeError, match="jacobian_descent"):
    optkit.jacobian_descent(optkit.upgrad(), 0.1)
