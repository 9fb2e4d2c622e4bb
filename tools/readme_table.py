"""Regenerates the README's algorithm table from the registry.

    python tools/readme_table.py          # rewrite README.md in place
    python tools/readme_table.py --check  # exit 1 if README.md is stale

tests/test_readme.py runs the check, so the table cannot drift.
"""

from __future__ import annotations

import pathlib
import sys

START, END = "<!-- algorithms:start -->", "<!-- algorithms:end -->"
README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def render() -> str:
  from optkit import registry
  lines = []
  for family in registry.FAMILIES:
    recs = registry.algorithms(family=family)
    if not recs:
      continue
    lines.append(f"\n**{family.replace('_', ' ')}**\n")
    lines.append("| name | kind | extra args | paper |")
    lines.append("|---|---|---|---|")
    for r in recs:
      paper = f"[{r.paper}]({r.arxiv_url})" if r.arxiv else r.paper
      extra = ", ".join(f"`{a}`" for a in r.extra_args) or "-"
      lines.append(f"| `optkit.{r.factory.__name__}` | {r.kind} | {extra} | {paper} |")
  n = len(registry.algorithms())
  lines.append(f"\n{n} registered algorithms (`python -m optkit list`).")
  return "\n".join(lines).strip() + "\n"


def updated_readme(text: str) -> str:
  head, rest = text.split(START, 1)
  _, tail = rest.split(END, 1)
  return f"{head}{START}\n{render()}{END}{tail}"


def main(argv) -> int:
  text = README.read_text()
  new = updated_readme(text)
  if "--check" in argv:
    if new != text:
      print("README.md algorithm table is stale: run python tools/readme_table.py",
            file=sys.stderr)
      return 1
    return 0
  README.write_text(new)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
