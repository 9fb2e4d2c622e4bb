"""Test-session settings shared by tests/ and the doctests under optkit/."""

import os
import shutil
import sys
import tempfile

import pytest

_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_OWN_CACHE = []


def _use_compilation_cache():
  """One persistent XLA compilation cache for the whole session.

  Most of the suite's time is XLA compilation, and many tests compile the same
  computation again (the contract tests' baseline run of a record, the
  checkpoint fixture and its resume worker, ...). A cache directory created
  here, before the xdist workers and the subprocess workers start, is shared
  by all of them through the environment; every executable is cached (no
  minimum compile time). The directory is new for each session and removed at
  its end, so nothing is carried between runs or jax versions. A directory the
  user already set is used and left in place.
  """
  if os.environ.get(_CACHE_ENV):
    return
  path = tempfile.mkdtemp(prefix="optkit-xla-cache-")
  _OWN_CACHE.append(path)
  os.environ[_CACHE_ENV] = path
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  if "jax" in sys.modules:  # imported before this hook: set the options directly
    import jax
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_configure(config):
  # Tests that share one expensive module fixture (a subprocess run over every
  # record) are marked ``xdist_group``; with pytest-xdist's default ``load``
  # distribution each worker would rebuild the fixture. ``loadgroup`` keeps a
  # group on one worker and distributes everything else as ``load`` does. The
  # controller schedules by group; each worker must also know it runs under
  # ``loadgroup`` to tag its tests with their group (pytest_configure_node
  # passes that on: a worker re-parses the command line, which says ``load``).
  if getattr(config.option, "dist", None) == "load":
    config.option.dist = "loadgroup"
  if getattr(config, "workerinput", {}).get("optkit_loadgroup"):
    config.option.loadgroup = True
  _use_compilation_cache()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
  if node.config.getvalue("dist") == "loadgroup":
    node.workerinput["optkit_loadgroup"] = True


def pytest_unconfigure(config):
  if _OWN_CACHE and not hasattr(config, "workerinput"):  # the controller cleans up
    shutil.rmtree(_OWN_CACHE.pop(), ignore_errors=True)
