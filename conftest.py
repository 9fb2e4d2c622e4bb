"""Test-session settings shared by tests/ and the doctests under optkit/."""


def pytest_configure(config):
  # Tests that share one expensive module fixture (a subprocess run over every
  # record) are marked ``xdist_group``; with pytest-xdist's default ``load``
  # distribution each worker would rebuild the fixture. ``loadgroup`` keeps a
  # group on one worker and distributes everything else as ``load`` does.
  if getattr(config.option, "dist", None) == "load":
    config.option.dist = "loadgroup"
