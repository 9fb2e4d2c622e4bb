"""Command line: ``python -m optkit list | info NAME | compare ...``."""

from __future__ import annotations

import argparse
import difflib
import inspect
import sys
import textwrap


def _table(rows, headers):
  widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
  line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
  out = [line, "  ".join("-" * w for w in widths)]
  out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
  return "\n".join(out)


def cmd_list(args) -> int:
  from optkit import registry
  recs = registry.algorithms(family=args.family, kind=args.kind, pattern=args.pattern)
  if not recs:
    print("no algorithm matches", file=sys.stderr)
    return 1
  rows = [(r.name, r.family, r.kind, r.arxiv, textwrap.shorten(r.paper, 70)) for r in recs]
  print(_table(rows, ("name", "family", "kind", "arxiv", "paper")))
  print(f"\n{len(recs)} algorithms")
  return 0


def cmd_info(args) -> int:
  from optkit import registry
  try:
    r = registry.get(args.name)
  except KeyError as e:
    print(str(e).strip('"'), file=sys.stderr)
    return 2
  fields = [
      ("name", r.name), ("family", r.family), ("kind", r.kind), ("paper", r.paper),
      ("arxiv", f"{r.arxiv} ({r.arxiv_url})" if r.arxiv else "-"),
      ("factory", f"optkit.{r.factory.__name__}{inspect.signature(r.factory)}"),
      ("direction", f"optkit.{r.direction.__name__}" if r.direction else "-"),
      ("extra args", ", ".join(r.extra_args) or "-"),
      ("static hparams", ", ".join(r.static_hparams) or "-"),
      ("test hparams", dict(r.test_hparams) or "-"),
      ("problems", ", ".join(r.problems) or "-"),
      ("reference", r.reference or "-"),
  ]
  for k, v in fields:
    print(f"{k + ':':16} {v}")
  print()
  print(inspect.getdoc(r.factory) or "(no docstring)")
  return 0


def cmd_compare(args) -> int:
  from optkit.bench import compare
  return compare.main(args)


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m optkit",
                              description="optkit: optimizers from recent papers for JAX/Optax.")
  sub = p.add_subparsers(dest="command")
  pl = sub.add_parser("list", help="print the registry as a table")
  pl.add_argument("--family")
  pl.add_argument("--kind")
  pl.add_argument("--pattern", help="glob on the name, e.g. 'lion*'")
  pl.set_defaults(func=cmd_list)
  pi = sub.add_parser("info", help="print one record and its factory's docstring")
  pi.add_argument("name")
  pi.set_defaults(func=cmd_info)
  pc = sub.add_parser("compare", help="train several optimizers on a task and plot them")
  from optkit.bench import compare as _c  # light import: no jax work at import
  _c.add_arguments(pc)
  pc.set_defaults(func=cmd_compare)
  return p


def main(argv=None) -> int:
  parser = build_parser()
  argv = sys.argv[1:] if argv is None else argv
  if argv and not argv[0].startswith("-") and argv[0] not in ("list", "info", "compare"):
    close = difflib.get_close_matches(argv[0], ["list", "info", "compare"], n=1)
    print(f"optkit: unknown command {argv[0]!r}."
          + (f" Did you mean {close[0]!r}?" if close else ""), file=sys.stderr)
    return 2
  args = parser.parse_args(argv)
  if not getattr(args, "func", None):
    parser.print_help()
    return 0
  return args.func(args)


if __name__ == "__main__":
  sys.exit(main())
