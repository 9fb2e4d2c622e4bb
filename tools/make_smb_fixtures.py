"""Reference trajectories of SMB from the authors' code (sibirbil/SMB).

Run with the reference environment:

    /work/refvenv/bin/python tools/make_smb_fixtures.py [--out DIR] [--repo GITDIR]

It reads ``source/smbsolve/smb.py`` from a git checkout of sibirbil/SMB
(``--repo``, default the local mirror /work/.mirror/sibirbil+SMB/repo) with
``git show HEAD:...`` into a temporary directory, stubs its one project import
(``smbexperiments.experimentlogger.get_logger``) and runs the official ``SMB``
optimizer in float64 on a small tanh regression with two parameter tensors
(``w`` (3, 2), ``b`` (2,)). Nothing of the reference is copied into optkit.

Writes tests/fixtures/reference/perturbation_smb.npz with, per configuration
``<cfg>`` in (``plain``: lr 4, the official defaults otherwise;
``auto``: lr 3 with autoschedule on a window of 3 steps):

* ``<cfg>__w``, ``<cfg>__b``: params, shape (steps + 1, ...), row 0 the start;
* ``<cfg>__model_step``: 1 where the step was a model step, 0 where
  not, -1 where the autoschedule cleared the record (steps,);
* ``<cfg>__lr``: the optimizer's lr after every step (steps,);
* ``x``, ``y``: the batch; ``hparams__<cfg>``: [lr, eta, c, window].
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tools import _fixtures  # noqa: E402

STEPS = 12
DEFAULT_REPO = "/work/.mirror/sibirbil+SMB/repo"


def load_smb_class(repo: str):
  src = subprocess.run(["git", "--git-dir", os.path.join(repo, ".git")
                        if os.path.isdir(os.path.join(repo, ".git")) else repo,
                        "show", "HEAD:source/smbsolve/smb.py"],
                       check=True, capture_output=True, text=True).stdout
  # Stub the project logger the module imports.
  import logging
  pkg = types.ModuleType("smbexperiments")
  mod = types.ModuleType("smbexperiments.experimentlogger")
  mod.get_logger = logging.getLogger
  pkg.experimentlogger = mod
  sys.modules["smbexperiments"] = pkg
  sys.modules["smbexperiments.experimentlogger"] = mod
  tmp = tempfile.mkdtemp()
  path = os.path.join(tmp, "smb_reference.py")
  with open(path, "w") as f:
    f.write(src)
  sys.path.insert(0, tmp)
  import smb_reference  # pylint: disable=import-outside-toplevel
  return smb_reference.SMB


def problem():
  rng = np.random.default_rng(7)
  x = rng.normal(size=(6, 3))
  y = rng.normal(size=(6, 2))
  w0 = 1.5 * rng.normal(size=(3, 2))
  b0 = 0.5 * rng.normal(size=(2,))
  return x, y, w0, b0


def run(smb_cls, lr, autoschedule, window):
  x, y, w0, b0 = problem()
  xt, yt = torch.tensor(x), torch.tensor(y)
  w = torch.nn.Parameter(torch.tensor(w0))
  b = torch.nn.Parameter(torch.tensor(b0))
  opt = smb_cls([w, b], lr=lr, autoschedule=autoschedule,
                n_batches_per_epoch=window)

  def closure():
    opt.zero_grad()
    r = torch.tanh(xt @ w + b) - yt
    return 0.5 * torch.mean(torch.sum(r ** 2, dim=1))

  ws, bs, flags, lrs = [w0.copy()], [b0.copy()], [], []
  for _ in range(STEPS):
    len_before = len(opt.state["model_step_list"]) if opt.state else 0
    opt.step(closure)
    lst = opt.state["model_step_list"]
    # The autoschedule clears the list at the end of a window: the flag of
    # that step is then unknown (-1).
    flags.append(lst[-1] if len(lst) > len_before else -1)
    ws.append(w.detach().numpy().copy())
    bs.append(b.detach().numpy().copy())
    lrs.append(opt.param_groups[0]["lr"])
  return np.stack(ws), np.stack(bs), np.asarray(flags), np.asarray(lrs)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--out", default=_fixtures.REFERENCE_DIR)
  parser.add_argument("--repo", default=DEFAULT_REPO)
  args = parser.parse_args()
  torch.set_default_dtype(torch.float64)
  smb_cls = load_smb_class(args.repo)
  x, y, _, _ = problem()
  arrays = {"x": x, "y": y}
  for cfg, lr, auto, window in (("plain", 4.0, False, 500),
                                ("auto", 3.0, True, 3)):
    w, b, flags, lrs = run(smb_cls, lr, auto, window)
    arrays[f"{cfg}__w"] = w
    arrays[f"{cfg}__b"] = b
    arrays[f"{cfg}__model_step"] = flags
    arrays[f"{cfg}__lr"] = lrs
    arrays[f"hparams__{cfg}"] = np.asarray([lr, 0.99, 0.1, window], np.float64)
    print(cfg, "model steps:", flags, "lr:", lrs)
  _fixtures.save(args.out, "perturbation_smb.npz", arrays)


if __name__ == "__main__":
  main()
