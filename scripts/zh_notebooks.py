#!/usr/bin/env python3
"""Writes the Chinese walkthroughs, ``notebooks/zh/``, from the English ones: one source per notebook.

Markdown is translated paragraph by paragraph from the table in ``zh_prose.py``; code cells are copied as they
are, so the two languages cannot drift apart in what they run. One code cell is added before the first one,
``dynamo_nb.set_language("zh")``, so figures, timelines and the control panel speak the seed's Chinese.

    scripts/zh_notebooks.py                         # every walkthrough in WALKTHROUGHS
    scripts/zh_notebooks.py notebooks/08-x.ipynb    # any notebook given
    scripts/zh_notebooks.py --check                 # exit 1 if a committed zh notebook differs

A paragraph missing from the table is an error that quotes it. Adding a walkthrough is one line in
WALKTHROUGHS, plus its paragraphs in the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOURCE = REPO / "notebooks"
TARGET = SOURCE / "zh"

#: The walkthroughs that have a Chinese twin, by file name in ``notebooks/``.
WALKTHROUGHS = (
    "00-quickstart.ipynb",
    "01-namespaces-and-isolation.ipynb",
    "02-components-endpoints-and-names.ipynb",
    "03-registration-and-startup.ipynb",
    "04-registry.ipynb",
    "05-lifecycle.ipynb",
    "06-events-pubsub.ipynb",
    "07-playground.ipynb",
    "08-services-and-config.ipynb",
    "09-real-dynamo.ipynb",
    "10-faults.ipynb",
    "11-debugging.ipynb",
)

LANGUAGE_CELL = 'import dynamo_nb\n\ndynamo_nb.set_language("zh")  # 图、时间线和控制面板使用种子文档的中文术语'
LANGUAGE_CELL_ID = "zh-language"


def _table() -> dict[str, str]:
    sys.path.insert(0, str(HERE))
    try:
        from zh_prose import PROSE
    finally:
        sys.path.remove(str(HERE))
    table = dict(PROSE)
    if len(table) != len(PROSE):
        raise ValueError("zh_prose.PROSE translates one English paragraph twice")
    return table


class MissingTranslation(KeyError):
    """English paragraphs that the table does not translate (yet)."""

    def __str__(self) -> str:
        return "no Chinese for these paragraphs in scripts/zh_prose.py:\n\n" + "\n\n---\n\n".join(self.args[0])


def translate_markdown(source: str, table: dict[str, str], missing: list[str]) -> str:
    out = []
    for paragraph in source.split("\n\n"):
        if paragraph not in table:
            missing.append(paragraph)
        out.append(table.get(paragraph, paragraph))
    return "\n\n".join(out)


def build(path: Path, table: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The Chinese twin of the notebook at ``path``."""
    table = _table() if table is None else table
    nb = nbformat.read(path, as_version=4)
    missing: list[str] = []
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = translate_markdown(cell.source, table, missing)
        elif cell.cell_type == "code" and not any(c.cell_type == "code" for c in cells):
            language = nbformat.v4.new_code_cell(LANGUAGE_CELL)
            language.id = LANGUAGE_CELL_ID
            cells.append(language)
        cells.append(cell)
    if missing:
        raise MissingTranslation(missing)
    nb.cells = cells
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def unused(table: dict[str, str], paths: list[Path]) -> list[str]:
    """Table entries that no given notebook uses any more."""
    used = {p for path in paths for cell in nbformat.read(path, as_version=4).cells
            if cell.cell_type == "markdown" for p in cell.source.split("\n\n")}
    return [en for en in table if en not in used]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="English notebooks (default: WALKTHROUGHS)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a zh notebook differs")
    args = parser.parse_args(argv)
    paths = args.notebooks or [SOURCE / name for name in WALKTHROUGHS]
    table = _table()
    stale = []
    for path in paths:
        target = TARGET / path.name
        text = render(build(path, table))
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(str(target.relative_to(REPO)))
        else:
            target.write_text(text, encoding="utf-8")
            print("wrote", target.relative_to(REPO))
    if not args.notebooks:
        for en in unused(table, paths):
            print("unused in zh_prose.py:", en.splitlines()[0], file=sys.stderr)
    if stale:
        print("out of date (run scripts/zh_notebooks.py):", *stale, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
