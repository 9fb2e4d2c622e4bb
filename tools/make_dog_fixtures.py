"""Regenerates tests/fixtures/reference/parameter_free_dog.npz from the authors' DoG.

Reference: formll/dog, the PyTorch package ``dog-optimizer`` 1.0.3 (PyPI;
``dog.DoG``, ``dog.LDoG``, ``dog.PolynomialDecayAverager``), installed in the
reference environment. Run with it:

    /work/refvenv/bin/python tools/make_dog_fixtures.py [--out DIR]

Problems (tools/_fixtures.py, float64 here so the test can compare tightly):
the 6-D quadratic 0.5 x'Ax - b'x (seed 0) and the 40 x 5 logistic regression
(seed 1, leaves w (5,) and b ()). Cases (``<case>__<problem>__traj__<leaf>``,
each (STEPS + 1, ...) with the start as row 0):

* ``dog``: DoG(reps_rel=1e-4) on both problems;
* ``dog_wd``: DoG(reps_rel=1e-4, weight_decay=0.05) on the quadratic;
* ``dog_init_eta``: DoG(init_eta=0.05) on the quadratic;
* ``ldog``: LDoG(reps_rel=1e-4) on the logistic regression (two leaves);
* ``avg``: the PolynomialDecayAverager(gamma=8) average of the ``dog`` run on
  the quadratic (row t = the average after t steps; row 0 the start).

The problem data is stored as ``quadratic__data__A`` / ``__b`` and
``logreg__data__X`` / ``__y`` (tests/helpers.py ``fixture_loss``).
"""

from __future__ import annotations

import dog as dog_ref
import numpy as np
import torch

from tools import _fixtures as fx

STEPS = 60
DTYPE = torch.float64


def _problem(name):
  if name == "quadratic":
    data, p0, _ = fx.quadratic_problem(0)
    a, b = (torch.tensor(data["A"], dtype=DTYPE), torch.tensor(data["b"], dtype=DTYPE))
    loss = lambda p: 0.5 * p["x"] @ (a @ p["x"]) - b @ p["x"]
  else:
    data, p0, _ = fx.logreg_problem(1)
    x, y = (torch.tensor(data["X"], dtype=DTYPE), torch.tensor(data["y"], dtype=DTYPE))

    def loss(p):
      z = x @ p["w"] + p["b"]
      return torch.mean(torch.nn.functional.softplus(z) - y * z)
  return data, {k: np.asarray(v, np.float64) for k, v in p0.items()}, loss


class _Holder(torch.nn.Module):
  def __init__(self, params):
    super().__init__()
    for k, v in params.items():
      setattr(self, k, v)


def main(argv=None):
  out = fx.output_dir(argv)
  arrays = {}
  for problem, prefix in (("quadratic", "quadratic"), ("logreg", "logreg")):
    data, _, _ = _problem(problem)
    for k, v in data.items():
      arrays[f"{prefix}__data__{k}"] = np.asarray(v, np.float64)

  def run(case, problem, make_opt):
    _, p0, loss = _problem(problem)
    params = {k: torch.nn.Parameter(torch.tensor(v, dtype=DTYPE)) for k, v in p0.items()}
    opt = make_opt(list(params.values()))
    traj = fx.record_trajectory(opt, params, loss, STEPS)
    for k, v in traj.items():
      arrays[f"{case}__{problem}__traj__{k}"] = v

  run("dog", "quadratic", lambda ps: dog_ref.DoG(ps, reps_rel=1e-4))
  run("dog", "logreg", lambda ps: dog_ref.DoG(ps, reps_rel=1e-4))
  run("dog_wd", "quadratic", lambda ps: dog_ref.DoG(ps, reps_rel=1e-4, weight_decay=0.05))
  run("dog_init_eta", "quadratic", lambda ps: dog_ref.DoG(ps, init_eta=0.05))
  run("ldog", "logreg", lambda ps: dog_ref.LDoG(ps, reps_rel=1e-4))

  # Polynomial-decay averaging of the DoG run on the quadratic.
  _, p0, loss = _problem("quadratic")
  params = {k: torch.nn.Parameter(torch.tensor(v, dtype=DTYPE)) for k, v in p0.items()}
  model = _Holder(params)
  opt = dog_ref.DoG(list(params.values()), reps_rel=1e-4)
  averager = dog_ref.PolynomialDecayAverager(model, gamma=8.0)
  rows = [p0["x"].copy()]
  for _ in range(STEPS):
    opt.zero_grad()
    loss(params).backward()
    opt.step()
    averager.step()
    rows.append(averager.averaged_model.x.detach().numpy().copy())
  arrays["avg__quadratic__traj__x"] = np.stack(rows)
  fx.save(out, "parameter_free_dog.npz", arrays)


if __name__ == "__main__":
  main()
