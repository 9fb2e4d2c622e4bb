"""Restores every record's checkpoint in a fresh process and trains N more steps.

Run by ``test_checkpoint.py`` as ``python -m tests.reliability.resume_worker DIR N``:
reads ``DIR/half`` (params and optimizer state after N steps, saved with orbax),
restores it against the abstract tree of a freshly built transformation, runs
N more jitted steps and saves the result to ``DIR/resumed``.
"""

from __future__ import annotations

import sys

import jax
import orbax.checkpoint as ocp

from tests.reliability import common


def main(directory: str, steps: int) -> None:
  target = {}
  txs = {}
  for record in common.records():
    problem = common.problem_for(record)
    tx = common.build(record)
    params = problem.init(common.DTYPE)
    txs[record.name] = (record, tx, problem)
    target[record.name] = jax.eval_shape(lambda p=params, tx=tx: {"params": p,
                                                                    "state": tx.init(p)})
  checkpointer = ocp.StandardCheckpointer()
  restored = checkpointer.restore(f"{directory}/half", target)
  out = {}
  for name, (record, tx, problem) in txs.items():
    params, state = common.continue_run(record, tx, problem, restored[name]["params"],
                                        restored[name]["state"], steps)
    out[name] = {"params": params, "state": state}
  checkpointer.save(f"{directory}/resumed", out)
  checkpointer.wait_until_finished()


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]))
