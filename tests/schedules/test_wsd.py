"""Tests of the WSD schedule and the last-iterate bound (optkit.schedules.wsd).

The schedule matches pytorch_optimizer's get_wsd_schedule at every step
(fixture tests/fixtures/reference/wsd.npz, made by tools/make_wsd_fixtures.py,
tolerance 1e-6 absolute on float32 values); ``schedule_bound`` matches the
closed form of the constant-schedule bound and an O(T^2) loop re-derivation of
Theorem 3.1; ``transfer_learning_rate`` is the identity between identical
shapes and reflects the paper's findings (a cool-down removes the log T term
and raises the optimal learning rate).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optkit

NAME = "wsd_schedule"
FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "reference",
                       "wsd.npz")
SHAPES = ("linear", "1-sqrt", "cosine")


def _vals(schedule, n):
  """schedule(t) for t = 0..n-1, evaluated in one jitted call."""
  return np.asarray(jax.jit(schedule)(jnp.arange(n)))


def _cases():
  data = np.load(FIXTURE, allow_pickle=False)
  names = sorted({k.split("/")[0] for k in data.files if "/" in k})
  return data, names


def test_fixture_has_all_shapes_and_a_nonzero_floor():
  data, names = _cases()
  shapes = {str(data[f"{n}/shape"]) for n in names}
  assert shapes == set(SHAPES)
  assert any(data[f"{n}/config"][4] > 0 for n in names)


@pytest.mark.parametrize("case", _cases()[1])
def test_matches_pytorch_optimizer(case):
  data, _ = _cases()
  peak, total, warmup, cooldown, ratio = data[f"{case}/config"]
  shape = str(data[f"{case}/shape"])
  ref = data[f"{case}/values"]
  assert ref.shape == (int(total) + 3,)          # t = 0 .. T + 2
  sched = optkit.wsd_schedule(peak, int(total), int(warmup), int(cooldown),
                              cooldown_shape=shape, end_value=ratio * peak)
  ours = _vals(sched, int(total) + 3)
  np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)


def test_boundary_values():
  peak, total, warmup, cooldown = 0.1, 100, 10, 20
  s = optkit.wsd_schedule(peak, total, warmup, cooldown)
  at = lambda t: float(s(t))
  assert at(0) == 0.0                                     # eta(0) = 0
  np.testing.assert_allclose(at(1), peak / warmup, rtol=1e-6)
  np.testing.assert_allclose(at(warmup - 1), peak * (warmup - 1) / warmup,
                             rtol=1e-6)
  assert at(warmup) == pytest.approx(peak, rel=1e-7)     # stable phase starts
  assert at(total - cooldown) == pytest.approx(peak, rel=1e-7)
  np.testing.assert_allclose(at(total - cooldown + 1),
                             peak * (cooldown - 1) / cooldown, rtol=1e-6)
  np.testing.assert_allclose(at(total - 1), peak / cooldown, rtol=1e-6)
  assert at(total) == 0.0 and at(total + 5) == 0.0        # end_value


@pytest.mark.parametrize("shape", SHAPES)
def test_cooldown_reaches_end_value_continuously(shape):
  # optkit's documented choice: every shape decays towards end_value (the
  # reference does so for 'cosine' only).
  peak, end, total, cooldown = 1.0, 0.2, 50, 10
  s = optkit.wsd_schedule(peak, total, 5, cooldown, cooldown_shape=shape,
                          end_value=end)
  vals = _vals(s, total + 3)
  cool = vals[total - cooldown:total]
  assert np.all(cool >= end - 1e-7) and np.all(cool <= peak + 1e-7)
  p_last = (cooldown - 1) / cooldown
  frac = {"linear": 1 - p_last, "1-sqrt": 1 - np.sqrt(p_last),
          "cosine": 0.5 * (1 + np.cos(np.pi * p_last))}[shape]
  np.testing.assert_allclose(vals[total - 1], end + (peak - end) * frac,
                             rtol=1e-6)
  np.testing.assert_allclose(vals[total:], end, rtol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_warmup_increases_then_non_increasing(shape):
  total, warmup = 60, 7
  s = optkit.wsd_schedule(0.3, total, warmup, 15, cooldown_shape=shape)
  vals = _vals(s, total + 4)
  assert np.all(np.diff(vals[:warmup + 1]) > 0)
  assert np.all(np.diff(vals[warmup:]) <= 1e-9)
  # Negative control: a cool-down with a re-warming step fails the check.
  bumped = vals.copy()
  bumped[total - 3] = bumped[total - 4] + 0.01
  assert not np.all(np.diff(bumped[warmup:]) <= 1e-9)


def test_jittable_and_accepts_ints_and_arrays():
  s = optkit.wsd_schedule(0.1, 100, 10, 20, cooldown_shape="1-sqrt")
  traced = jax.jit(s)
  for t in (0, 5, 10, 79, 80, 95, 99, 100, 150):
    assert float(traced(jnp.asarray(t, jnp.int32))) == pytest.approx(
        float(s(t)), abs=1e-7)
  batch = np.asarray(s(np.arange(120, dtype=np.int32).reshape(10, 12)))
  assert batch.shape == (10, 12)
  np.testing.assert_allclose(batch.ravel(), _vals(s, 120), atol=1e-7)
  # Traced hyperparameter values (the steps stay static).
  f = jax.jit(lambda peak, t: optkit.wsd_schedule(peak, 100, 10, 20)(t))
  assert float(f(jnp.float32(0.2), 50)) == pytest.approx(0.2)


def test_drives_an_optax_optimizer():
  s = optkit.wsd_schedule(0.5, 10, 2, 4)
  tx = optax.sgd(s)
  p = jnp.ones(2)
  state = tx.init(p)
  step = jax.jit(tx.update)
  seen = []
  for _ in range(12):
    u, state = step(jnp.ones(2), state)
    seen.append(-float(u[0]))
  np.testing.assert_allclose(seen, _vals(s, 12), atol=1e-7)


@pytest.mark.parametrize("kwargs,arg", [
    ({"total_steps": 20, "warmup_steps": 15, "cooldown_steps": 10},
     "warmup_steps \\+ cooldown_steps"),
    ({"total_steps": -1, "warmup_steps": 0, "cooldown_steps": 0}, "total_steps"),
    ({"total_steps": 10, "warmup_steps": -2, "cooldown_steps": 0},
     "warmup_steps"),
    ({"total_steps": 10, "warmup_steps": 0, "cooldown_steps": -1},
     "cooldown_steps"),
    ({"total_steps": 10, "warmup_steps": 0, "cooldown_steps": 2,
      "cooldown_shape": "exp"}, "cooldown_shape"),
    ({"total_steps": 10, "warmup_steps": 0, "cooldown_steps": 2,
      "end_value": -0.1}, "end_value"),
])
def test_bad_arguments_raise(kwargs, arg):
  with pytest.raises(ValueError, match=f"{NAME}.*{arg}"):
    optkit.wsd_schedule(0.1, **kwargs)


# ----- the bound -------------------------------------------------------------


def _harmonic(n):
  return float(np.sum(1.0 / np.arange(1, n + 1))) if n > 0 else 0.0


def _bound_loops(eta, D, G):
  """Theorem 3.1 term by term with explicit loops (float64 NumPy)."""
  eta = np.asarray(eta, np.float64)
  g = np.broadcast_to(np.asarray(G, np.float64), eta.shape)
  T = len(eta)
  s = sum(eta)
  out = (D ** 2 + sum(eta[t] ** 2 * g[t] ** 2 for t in range(T))) / (2 * s)
  for k in range(T - 1):
    tail_next = sum(eta[t] for t in range(k + 1, T))
    tail = sum(eta[t] for t in range(k, T))
    sq = sum(eta[t] ** 2 * g[t] ** 2 for t in range(k, T))
    out += 0.5 * eta[k] / tail_next * sq / tail
  return out


@pytest.mark.parametrize("T", [1, 2, 10, 257])
@pytest.mark.parametrize("D,G,gamma", [(1.0, 1.0, 0.5), (5.0, 0.3, 0.01)])
def test_constant_schedule_matches_closed_form(T, D, G, gamma):
  with jax.enable_x64(True):
    got = float(optkit.schedule_bound(jnp.full(T, gamma), D, G))
  closed = D ** 2 / (2 * gamma * T) + gamma * G ** 2 * (1 + _harmonic(T - 1)) / 2
  np.testing.assert_allclose(got, closed, rtol=1e-12)


def test_matches_loop_rederivation_on_wsd_and_random_rates():
  rng = np.random.default_rng(0)
  wsd = _vals(optkit.wsd_schedule(1.0, 40, 5, 10, "1-sqrt"), 40).astype(
      np.float64)
  cases = [
      (wsd, 2.0, 1.5),
      (rng.uniform(0.01, 1.0, size=30), 0.7, rng.uniform(0.5, 2.0, size=30)),
  ]
  with jax.enable_x64(True):
    for eta, D, G in cases:
      got = float(optkit.schedule_bound(jnp.asarray(eta), D, jnp.asarray(G)))
      np.testing.assert_allclose(got, _bound_loops(eta, D, G), rtol=1e-12)


def test_zero_rates_and_final_zero():
  with jax.enable_x64(True):
    # eta_1 = 0 (WSD warm-up) contributes nothing: same as dropping the step
    # from the sums (D^2 term included).
    eta = jnp.asarray([0.0, 0.5, 0.5, 0.25])
    np.testing.assert_allclose(
        float(optkit.schedule_bound(eta, 1.0, 1.0)),
        _bound_loops(np.asarray(eta[1:]), 1.0, 1.0), rtol=1e-12)
    # A positive step followed only by zero steps: the theorem gives no bound.
    assert np.isinf(float(optkit.schedule_bound(
        jnp.asarray([0.5, 0.5, 0.0]), 1.0, 1.0)))


def _best_bound(eta, D=1.0, G=1.0):
  # min over gamma of A/gamma + B gamma, computed from two evaluations.
  with jax.enable_x64(True):
    eta = jnp.asarray(eta, jnp.float64)
    b1 = float(optkit.schedule_bound(eta, D, G))           # A + B
    b2 = float(optkit.schedule_bound(2.0 * eta, D, G))     # A/2 + 2B
  B = (2 * b2 - b1) / 3
  A = b1 - B
  return 2 * np.sqrt(A * B), np.sqrt(A / B)


def test_cooldown_removes_the_log_term():
  # The paper's point: at the best multiplier, constant ~ sqrt(log T / T)
  # while WSD with a linear 20% cool-down ~ 1/sqrt(T); so the ratio
  # constant/WSD grows with T (negative control: the constant schedule).
  ratios = []
  for T in (100, 1000, 10000):
    const, _ = _best_bound(np.ones(T))
    wsd_rates = _vals(optkit.wsd_schedule(1.0, T, 0, T // 5), T)
    wsd, _ = _best_bound(wsd_rates)
    assert wsd < const
    ratios.append(const / wsd)
  assert ratios[0] < ratios[1] < ratios[2]


def test_transfer_between_identical_shapes_is_identity():
  s = optkit.wsd_schedule(1.0, 200, 10, 40, "1-sqrt")
  with jax.enable_x64(True):
    got = optkit.transfer_learning_rate(s, s, D=3.0, G=0.5, learning_rate=2e-3,
                                        steps_a=200, steps_b=200)
    np.testing.assert_allclose(float(got), 2e-3, rtol=1e-12)
    # Same shape at another scale: the multiplier absorbs the scale.
    eta = _vals(s, 200).astype(np.float64)
    got = optkit.transfer_learning_rate(eta, 4.0 * eta, learning_rate=2e-3)
    np.testing.assert_allclose(float(got), 2e-3 / 4.0, rtol=1e-12)


def test_transfer_matches_ratio_of_best_multipliers():
  T = 500
  const = np.ones(T)
  wsd = _vals(optkit.wsd_schedule(1.0, T, 0, T // 5), T).astype(np.float64)
  _, g_const = _best_bound(const)
  _, g_wsd = _best_bound(wsd)
  with jax.enable_x64(True):
    got = float(optkit.transfer_learning_rate(const, wsd, D=2.0, G=3.0,
                                              learning_rate=1e-3))
    # Scalar G: D and G cancel.
    other = float(optkit.transfer_learning_rate(const, wsd, D=0.1, G=10.0,
                                                learning_rate=1e-3))
  np.testing.assert_allclose(got, 1e-3 * g_wsd / g_const, rtol=1e-9)
  np.testing.assert_allclose(got, other, rtol=1e-9)
  # The paper's finding: a cool-down allows a larger learning rate.
  assert got > 1e-3


def test_bound_helpers_reject_bad_input():
  with pytest.raises(ValueError, match="schedule_bound"):
    optkit.schedule_bound(jnp.ones((2, 2)), 1.0, 1.0)
  with pytest.raises(ValueError, match="schedule_bound"):
    optkit.schedule_bound(jnp.asarray([0.1, -0.1]), 1.0, 1.0)
  with pytest.raises(ValueError, match="transfer_learning_rate"):
    optkit.transfer_learning_rate(optkit.wsd_schedule(1.0, 10, 0, 2),
                                  np.ones(10))
