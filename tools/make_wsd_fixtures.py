"""Regenerates tests/fixtures/reference/wsd.npz from pytorch_optimizer.

Evaluates pytorch_optimizer's ``get_wsd_schedule`` (a torch ``LambdaLR``) on a
one-parameter torch SGD whose base lr is the peak value, stepping the scheduler
once per step and recording ``get_last_lr()`` for t = 0 .. T + 2.

Run with the reference environment (torch, pytorch-optimizer):

    python tools/make_wsd_fixtures.py

Each case stores ``<case>/values`` (float64, shape (T + 3,)) and
``<case>/config`` = [peak, T, T_w, T_c, min_lr_ratio], and ``<case>/shape``
(the cool-down type). pytorch_optimizer's ``num_stable_steps`` is
T - T_w - T_c. Only ``min_lr_ratio = 0`` is used for 'linear' and '1-sqrt'
(the reference applies the ratio to the cosine shape only, see
optkit/schedules/wsd.py).
"""

import importlib.metadata
import os

import numpy as np
import torch
from pytorch_optimizer.lr_scheduler.wsd import get_wsd_schedule

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                   "reference", "wsd.npz")

# name: (shape, peak, T, T_w, T_c, min_lr_ratio)
CASES = {
    "linear": ("linear", 0.1, 100, 10, 20, 0.0),
    "1-sqrt": ("1-sqrt", 0.1, 100, 10, 20, 0.0),
    "cosine": ("cosine", 0.1, 100, 10, 20, 0.0),
    "cosine_min": ("cosine", 0.1, 100, 10, 20, 0.1),
    "linear_no_warmup_all_decay": ("linear", 1.0, 37, 0, 37, 0.0),
    "1-sqrt_odd": ("1-sqrt", 0.3, 41, 7, 9, 0.0),
    "cosine_no_cooldown": ("cosine", 0.5, 25, 5, 0, 0.0),
    "linear_one_step_phases": ("linear", 2.0, 12, 1, 1, 0.0),
}


def values(shape, peak, total, warmup, cooldown, min_ratio):
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=peak)
  sched = get_wsd_schedule(opt, num_warmup_steps=warmup,
                           num_stable_steps=total - warmup - cooldown,
                           num_decay_steps=cooldown, min_lr_ratio=min_ratio,
                           cooldown_type=shape)
  out = []
  for _ in range(total + 3):
    out.append(sched.get_last_lr()[0])
    opt.step()
    sched.step()
  return np.asarray(out, np.float64)


def main():
  arrays = {}
  for name, (shape, peak, total, warmup, cooldown, ratio) in CASES.items():
    arrays[f"{name}/values"] = values(shape, peak, total, warmup, cooldown,
                                      ratio)
    arrays[f"{name}/config"] = np.asarray(
        [peak, total, warmup, cooldown, ratio], np.float64)
    arrays[f"{name}/shape"] = np.asarray(shape)
  arrays["versions"] = np.asarray(
      f"pytorch_optimizer {importlib.metadata.version('pytorch_optimizer')}, "
      f"torch "
      f"{torch.__version__}")
  np.savez(OUT, **arrays)
  print(f"wrote {os.path.normpath(OUT)} ({len(CASES)} cases)")


if __name__ == "__main__":
  main()
