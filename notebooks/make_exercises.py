"""Write the students' versions of the lessons into notebooks/exercises/, as nbgrader would.

    python notebooks/make_exercises.py            # every lesson with exercises -> notebooks/exercises/
    python notebooks/make_exercises.py --check    # exit 1 if notebooks/exercises/ is not up to date (CI)
    python notebooks/make_exercises.py my_lesson.ipynb --out handout/   # any notebook, any folder

In a lesson's code cells, solution code sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines and
hidden tests between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` (nbgrader's markers, so a teacher
who uses nbgrader can take the lessons as they are). In the students' version each solution block becomes
``# YOUR CODE HERE`` and ``raise NotImplementedError()`` at the block's indentation, hidden tests are removed
with their markers; nothing else changes (markdown cells are left alone). Lessons without markers get no
students' version, and a students' version whose lesson no longer has exercises is removed.

Outputs: a check cell (``nstutil.checks.gram_matrix(my_gram_matrix)``) is tagged ``nbval-check-output`` and gets
the output it gives before the student has written anything, the "not done yet" line and
``False``, so that nbval checks the students' notebooks say exactly that; the lesson's other checked outputs are
kept (the cells after an exercise use nstutil's own function, not the student's, so they print the same); every
other output (and its execution count) is cleared.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import nbformat

HERE = Path(__file__).resolve().parent
EXERCISES = HERE / "exercises"
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
CHECK_TAG = "nbval-check-output"  # nbval compares these cells' outputs (pyproject's --nbval-lax)
# A check cell: comments and imports, then one call nstutil.checks.NAME(argument) (or checks.NAME(...)).
CHECK_CALL = re.compile(r"^(?:nstutil\.)?checks\.(\w+)\([\w.]+\)\s*$")


class MarkerError(ValueError):
    """Solution or hidden-test markers that do not pair up."""


def _marker(line: str) -> Optional[str]:
    text = line.strip()
    for marker in (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN):
        if text.startswith(marker):
            return marker
    return None


def student_source(source: str, where: str = "cell") -> str:
    """A code cell's source with solutions replaced by the stub and hidden tests removed."""
    out: List[str] = []
    inside: Optional[str] = None  # the BEGIN marker of the block we are in
    for number, line in enumerate(source.split("\n"), start=1):
        marker = _marker(line)
        if marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if inside:
                raise MarkerError(f"{where}, line {number}: {marker!r} inside a {inside!r} block: close it first")
            inside = marker
            if marker == BEGIN_SOLUTION:
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + stub for stub in STUB)
        elif marker in (END_SOLUTION, END_HIDDEN):
            opening = BEGIN_SOLUTION if marker == END_SOLUTION else BEGIN_HIDDEN
            if inside != opening:
                raise MarkerError(f"{where}, line {number}: {marker!r} without {opening!r} before it")
            inside = None
        elif inside is None:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: {inside!r} is never closed")
    return "\n".join(out)


def has_exercises(nb: nbformat.NotebookNode) -> bool:
    """Whether any code cell has a solution or hidden-test marker."""
    return any(_marker(line) for cell in nb.cells if cell.cell_type == "code" for line in cell.source.split("\n"))


def checked_name(source: str) -> Optional[str]:
    """The check a check cell calls (``"gram_matrix"`` for ``nstutil.checks.gram_matrix(my_gram_matrix)``), or
    None for any other cell."""
    lines = [line.strip() for line in source.split("\n")]
    code = [line for line in lines if line and not line.startswith(("#", "import ", "from "))]
    match = CHECK_CALL.match(code[0]) if len(code) == 1 else None
    return match.group(1) if match else None


def _not_done_outputs(check: str) -> List[nbformat.NotebookNode]:
    """What a check cell shows while its exercise is not done: the check's one line, then its value False."""
    from nstutil._checking import not_done_line

    return [nbformat.v4.new_output("stream", name="stdout", text=not_done_line(check) + "\n"),
            nbformat.v4.new_output("execute_result", data={"text/plain": "False"}, execution_count=None)]


def student_version(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The students' version of a lesson (a new notebook; ``nb`` is not changed)."""
    student = nbformat.from_dict(nb)
    for index, cell in enumerate(student.cells):
        if cell.cell_type != "code":
            continue
        cell.source = student_source(cell.source, f"{name}, cell {index}")
        check = checked_name(cell.source)
        tags = cell.metadata.get("tags", [])
        if check:
            cell.metadata["tags"] = tags + [CHECK_TAG] * (CHECK_TAG not in tags)
            cell.outputs = _not_done_outputs(check)
        elif CHECK_TAG not in tags:
            cell.outputs = []
        # nbval refuses stored outputs without an execution count ("unrun reference cell"): keep the lesson's.
        cell.execution_count = (cell.execution_count or index + 1) if cell.outputs else None
        for output in cell.outputs:
            if "execution_count" in output:
                output.execution_count = cell.execution_count
        cell.metadata.pop("execution", None)
    student.metadata.pop("widgets", None)
    return student


def _serialised(nb: nbformat.NotebookNode) -> str:
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"  # as nbformat.write stores it


def plan(lessons: Sequence[Path], out: Path, *, prune: bool = False) -> Dict[Path, Optional[str]]:
    """What ``out`` should hold: path -> the notebook's text, or None for a stale students' version to remove
    (whose lesson has no exercises now; with ``prune`` also any notebook in ``out`` that no lesson makes)."""
    wanted: Dict[Path, Optional[str]] = {}
    for lesson in lessons:
        nb = nbformat.read(lesson, as_version=4)
        if has_exercises(nb):
            wanted[out / lesson.name] = _serialised(student_version(nb, lesson.name))
        elif (out / lesson.name).exists():
            wanted[out / lesson.name] = None
    if prune:
        for orphan in sorted(out.glob("*.ipynb")):
            wanted.setdefault(orphan, None)
    return wanted


def _lessons() -> List[Path]:
    return sorted(p for p in HERE.glob("[0-9][0-9]_*.ipynb"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write (or with ``--check`` compare) the students' versions; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python notebooks/make_exercises.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", type=Path, help="notebooks (default: notebooks/NN_*.ipynb)")
    parser.add_argument("--out", type=Path, default=EXERCISES, help="folder for the students' versions "
                                                                    "(default: notebooks/exercises)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything is out of date")
    args = parser.parse_args(argv)
    lessons = args.lessons or _lessons()
    missing = [str(p) for p in lessons if not p.is_file()]
    if missing:
        print(f"make_exercises: error: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        wanted = plan(lessons, args.out, prune=not args.lessons)
    except MarkerError as exc:
        print(f"make_exercises: error: {exc}", file=sys.stderr)
        return 2
    stale = [p for p, text in wanted.items() if (text is None) or not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"out of date: {path} (run python notebooks/make_exercises.py)")
        return 1 if stale else 0
    for path in stale:
        if wanted[path] is None:
            path.unlink()
            print(f"removed {path} (its lesson has no exercises now)")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(wanted[path])
            print(f"wrote {path}")
    print(f"{len(wanted) - sum(t is None for t in wanted.values())} students' notebooks in {args.out}, "
          f"{len(stale)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
