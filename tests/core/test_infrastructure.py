"""Validation, the extra-args protocol, tree helpers and the Algorithm record."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optkit.core import Algorithm, extra_args, tree, validate


def test_validate_messages_name_algorithm_and_argument():
  with pytest.raises(ValueError, match=r"pebble: `b1` must be in \[0, 1\), got 1.5"):
    validate.unit_interval("pebble", b1=1.5)
  with pytest.raises(ValueError, match="pebble: `eps` must be positive"):
    validate.positive("pebble", eps=0.0)
  with pytest.raises(ValueError, match="pebble: `learning_rate`"):
    validate.learning_rate("pebble", -1e-3)
  with pytest.raises(ValueError, match="pebble: `steps` must be an integer >= 1"):
    validate.integer_at_least("pebble", 1, steps=0)
  with pytest.raises(ValueError, match="pebble: `mode`"):
    validate.one_of("pebble", "mode", "x", ("a", "b"))
  with pytest.raises(ValueError, match="pebble: `eps`"):
    validate.non_negative("pebble", eps=float("nan"))
  with pytest.raises(TypeError, match="pebble: `inner`"):
    validate.transformation("pebble", inner=3)


def test_validate_accepts_good_values_schedules_arrays_and_tracers():
  validate.unit_interval("pebble", b1=0.0, b2=jnp.asarray(0.99))
  validate.learning_rate("pebble", optax.constant_schedule(1e-3))
  validate.positive("pebble", eps=np.float32(1e-8))
  validate.transformation("pebble", inner=optax.sgd(0.1))

  @jax.jit
  def f(b1):
    validate.unit_interval("pebble", b1=b1)  # skipped: b1 is a tracer
    return b1

  f(2.0)
  with pytest.raises(TypeError, match="static Python int"):
    jax.jit(lambda n: validate.integer_at_least("pebble", 1, steps=n))(3)


def test_extra_args_require():
  with pytest.raises(ValueError, match=r"sophia: update\(\) requires the extra argument `value_fn`"):
    extra_args.require("sophia", {}, "value_fn")
  with pytest.raises(TypeError, match="sophia: `value_fn` must be callable"):
    extra_args.require("sophia", {"value_fn": 3.0}, "value_fn")
  f = lambda p: p
  assert extra_args.require("sophia", {"value_fn": f}, "value_fn") is f
  assert extra_args.require("polyak", {"value": 0.0}, "value") == 0.0  # falsy is fine
  with pytest.raises(ValueError, match="requires `params`"):
    extra_args.require_params("sam", None)


def test_check_same_structure():
  ref = {"a": jnp.zeros(3), "b": jnp.zeros((2, 2))}
  tree.check_same_structure("pebble", {"a": jnp.ones(3), "b": jnp.ones((2, 2))}, ref)
  with pytest.raises(ValueError, match="pebble: the gradient tree does not match"):
    tree.check_same_structure("pebble", {"a": jnp.ones(3)}, ref)
  with pytest.raises(ValueError, match=r"pebble: the gradient leaf at \['b'\] has shape"):
    tree.check_same_structure("pebble", {"a": jnp.ones(3), "b": jnp.ones(4)}, ref)


def test_leading_axis_and_flatten_rows():
  j = {"a": jnp.arange(6.0).reshape(2, 3), "s": jnp.array([1.0, 2.0])}
  assert tree.leading_axis_size("upgrad", j) == 2
  np.testing.assert_array_equal(tree.flatten_rows(j), [[0, 1, 2, 1], [3, 4, 5, 2]])
  with pytest.raises(ValueError, match="upgrad: every leaf must have the same leading"):
    tree.leading_axis_size("upgrad", {"a": jnp.zeros((2, 3)), "b": jnp.zeros((3,))})
  with pytest.raises(ValueError, match="upgrad"):
    tree.leading_axis_size("upgrad", {"a": jnp.zeros((2, 3)), "s": jnp.zeros(())})


def test_random_like_distributions():
  t = {"a": jnp.zeros((1000,)), "b": jnp.zeros((), jnp.bfloat16)}
  r = tree.random_like(jax.random.key(0), t)
  assert set(np.unique(np.asarray(r["a"]))) == {-1.0, 1.0}
  assert r["b"].dtype == jnp.bfloat16
  g = tree.random_like(jax.random.key(0), t, "gaussian")
  assert abs(float(jnp.std(g["a"])) - 1.0) < 0.1
  with pytest.raises(ValueError, match="distribution"):
    tree.random_like(jax.random.key(0), t, "cauchy")


def test_algorithm_record_validation():
  f = lambda learning_rate: optax.sgd(learning_rate)
  f.__doc__ = "Example:"
  rec = Algorithm(name="x", family="sign", kind="optimizer", paper="P", arxiv="0000.00000",
                  factory=f, test_hparams={"learning_rate": 0.1})
  assert rec.arxiv_url.endswith("0000.00000")
  assert rec.make() is not None
  with pytest.raises(ValueError, match="kind"):
    Algorithm(name="x", family="f", kind="thing", paper="P", arxiv="", factory=f)
  with pytest.raises(ValueError, match="extra_args"):
    Algorithm(name="x", family="f", kind="optimizer", paper="P", arxiv="", factory=f,
              extra_args=("loss",))
  with pytest.raises(ValueError, match="problems"):
    Algorithm(name="x", family="f", kind="optimizer", paper="P", arxiv="", factory=f,
              problems=("mnist",))


def test_masked_value_fn_evaluates_the_full_loss_on_the_masked_subtree():
  params = {"a": jnp.array([1.0, 2.0]), "b": jnp.array(3.0)}
  loss = lambda p: jnp.sum(p["a"] ** 2) * p["b"]
  mask = {"a": True, "b": False}
  captured = {}

  def probe(updates, state, params=None, **extra):
    captured["value"] = extra["value_fn"](params)
    captured["grad"] = jax.grad(extra["value_fn"])(params)
    return updates, state

  inner = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), probe)
  tx = optax.masked(inner, mask)
  tx.update(params, tx.init(params), params,
            value_fn=extra_args.masked_value_fn(loss, params, mask))
  np.testing.assert_allclose(captured["value"], loss(params))
  np.testing.assert_allclose(captured["grad"]["a"], 2 * params["a"] * 3.0)
  assert isinstance(captured["grad"]["b"], optax.MaskedNode)
  # Negative control: the unrestricted value_fn cannot read the masked params.
  with pytest.raises(Exception):
    tx.update(params, tx.init(params), params, value_fn=loss)
