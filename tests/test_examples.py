"""The scripts in examples/ run as their docstrings say."""

from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sharded_training_on_eight_simulated_devices():
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  proc = subprocess.run([sys.executable, "examples/sharded_training.py", "--steps", "12"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = proc.stdout
  assert out.startswith("8 devices, mesh {'fsdp': 4, 'tp': 2}")
  # The momentum shaped like the embedding is sharded like it.
  assert re.search(r"embed sharding P\(None, 'tp'\); state leaves shaped like it: "
                   r"\[PartitionSpec\(None, 'tp'\)\]|\[P\(None, 'tp'\)\]", out), out
  first, held_out = map(float, re.search(r"first loss ([\d.]+), held-out loss ([\d.]+)",
                                         out).groups())
  assert held_out < first - 0.5
