"""PyTorch step times of the algorithms optkit shares with pytorch_optimizer.

Run with the reference environment (``pip install -e ".[reference]"``, CPU
torch), normally by ``benchmarks/step_time.py --torch-python PYTHON``:

    PYTHON benchmarks/torch_step_time.py --sizes 1M --repeats 5 > torch.json

Times ``optimizer.step()`` (gradients already in ``.grad``, under
``torch.no_grad``) on the same leaf shapes as the JAX benchmark, float32, with
torch using every core; prints ``{size: {optkit_name: seconds}}`` as JSON.
Each optimizer runs with its library's default implementation (for
``torch.optim.Adam`` on the CPU that is the per-tensor loop; ``foreach=True``
is timed too, as ``adam[foreach]``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shapes import SIZES  # noqa: E402


def _po():
  import pytorch_optimizer as po
  return po


# optkit record name -> constructor (params -> torch optimizer).
def factories():
  po = _po()
  return {
      "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
      "adam[foreach]": lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True),
      "adamax": lambda p: torch.optim.Adamax(p, lr=1e-3),
      "amsgrad": lambda p: torch.optim.Adam(p, lr=1e-3, amsgrad=True),
      "lion": lambda p: po.Lion(p, lr=1e-4),
      "ademamix": lambda p: po.AdEMAMix(p, lr=1e-3),
      "mars": lambda p: po.MARS(p, lr=1e-3),
      "grams": lambda p: po.Grams(p, lr=1e-3),
      "ano": lambda p: po.Ano(p, lr=1e-4),
      "gravity": lambda p: po.Gravity(p, lr=1e-2),
      "adabound": lambda p: po.AdaBound(p, lr=1e-3),
      "adamp": lambda p: po.AdamP(p, lr=1e-3),
      "sgdp": lambda p: po.SGDP(p, lr=1e-3),
      "diffgrad": lambda p: po.DiffGrad(p, lr=1e-3),
      "ranger21": lambda p: po.Ranger21(p, num_iterations=1000, lr=1e-3),
      "shampoo": lambda p: po.Shampoo(p, lr=1e-3),
  }


# pytorch_optimizer's Shampoo recomputes every inverse root each step by default:
# on a 2-core CPU that is minutes per step at 20M parameters, so it is timed on
# the small tree only.
SMALL_ONLY = ("shampoo",)


def time_step(make, shapes, repeats):
  gen = torch.Generator().manual_seed(0)
  params = [torch.nn.Parameter(0.02 * torch.randn(s, generator=gen)) for s in shapes.values()]
  for p in params:
    p.grad = 0.02 * torch.randn(p.shape, generator=gen)
  opt = make(params)
  with torch.no_grad():
    opt.step()  # state allocation, first-step branches
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      opt.step()
      times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--sizes", default="1M,50M")
  ap.add_argument("--repeats", type=int, default=10)
  ap.add_argument("--only", default="")
  args = ap.parse_args(argv)
  torch.set_num_threads(os.cpu_count())
  only = {n for n in args.only.split(",") if n}
  out = {}
  for size in args.sizes.split(","):
    out[size] = {}
    for name, make in factories().items():
      if only and name.split("[")[0] not in only:
        continue
      if name in SMALL_ONLY and size not in ("tiny", "1M"):
        continue
      try:
        out[size][name] = time_step(make, SIZES[size], args.repeats)
      except Exception as e:  # report, keep going
        print(f"{name}: {type(e).__name__}: {e}", file=sys.stderr)
      print(f"[{size}] {name}: {out[size].get(name)}", file=sys.stderr, flush=True)
  json.dump(out, sys.stdout)


if __name__ == "__main__":
  main()
