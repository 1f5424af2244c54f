"""notebooks/make_exercises.py: the students' versions, on a scratch lesson written here, and the committed ones.

The scratch lesson has an exercise (solution markers), its check, hidden tests and a later cell that uses
nstutil's function. Executed, the lesson's check passes and the students' version's says "not done yet". The
committed students' notebooks are run by nbval itself (pytest collects notebooks/exercises/); here only that they
are up to date and that their check cells expect "not done yet".
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

_spec = importlib.util.spec_from_file_location("make_exercises", NOTEBOOKS / "make_exercises.py")
make_exercises = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_exercises)

EXERCISE = '''def my_gram_matrix(features):
    """The Gram matrix F·Fᵀ / (C·H·W) of a 1×C×H×W feature map."""
    b, c, h, w = features.shape
    ### BEGIN SOLUTION
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)
    ### END SOLUTION'''

HIDDEN = '''import torch
### BEGIN HIDDEN TESTS
assert torch.allclose(my_gram_matrix(torch.ones(1, 2, 2, 2)), torch.full((1, 2, 2), 0.5))
### END HIDDEN TESTS
print("visible line")'''


def _scratch_lesson(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A lesson\nWrite the Gram matrix.\n### BEGIN SOLUTION\nleft as it is"),
        nbformat.v4.new_code_cell("import torch\nimport nstutil\nfrom nstutil import checks"),
        nbformat.v4.new_code_cell(EXERCISE),
        nbformat.v4.new_code_cell("checks.gram_matrix(my_gram_matrix)"),
        nbformat.v4.new_code_cell(HIDDEN),
        nbformat.v4.new_code_cell("# later cells use nstutil's own function\n"
                                  "print(nstutil.gram_matrix(torch.ones(1, 2, 2, 2)).shape)"),
    ]
    for k, cell in enumerate(nb.cells):
        cell.id = f"cell-{k}"
        if cell.cell_type == "code":  # as if the lesson had been run: outputs to be cleared
            cell.execution_count = k
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="old output\n")]
    nbformat.write(nb, path)
    return path


def _execute(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_student_source_replaces_solutions_like_nbgrader():
    got = make_exercises.student_source(EXERCISE)
    assert got == ('def my_gram_matrix(features):\n'
                   '    """The Gram matrix F·Fᵀ / (C·H·W) of a 1×C×H×W feature map."""\n'
                   '    b, c, h, w = features.shape\n'
                   '    # YOUR CODE HERE\n'
                   '    raise NotImplementedError()')
    assert make_exercises.student_source(HIDDEN) == 'import torch\nprint("visible line")'
    assert make_exercises.student_source("x = 1\n") == "x = 1\n"


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without"),
    ("### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n### END SOLUTION", "inside"),
    ("### BEGIN HIDDEN TESTS\n### END SOLUTION", "without"),
])
def test_unpaired_markers_are_refused(source, problem):
    with pytest.raises(make_exercises.MarkerError, match=problem) as info:
        make_exercises.student_source(source, "lesson.ipynb, cell 3")
    assert "lesson.ipynb, cell 3" in str(info.value)


def test_student_version_of_a_scratch_lesson(tmp_path):
    lesson = _scratch_lesson(tmp_path / "03_scratch.ipynb")
    out = tmp_path / "exercises"
    assert make_exercises.main([str(lesson), "--out", str(out)]) == 0
    student = nbformat.read(out / lesson.name, as_version=4)
    original = nbformat.read(lesson, as_version=4)
    assert [c.id for c in student.cells] == [c.id for c in original.cells]
    assert student.cells[0].source == original.cells[0].source  # markdown untouched, even with a marker in it
    assert "raise NotImplementedError()" in student.cells[2].source and "flat" not in student.cells[2].source
    assert "HIDDEN" not in student.cells[4].source and "assert" not in student.cells[4].source
    # The check cell holds what it prints before the exercise is done (nbval compares it); the rest is cleared.
    check = student.cells[3]
    assert "nbval-check-output" in check.metadata.tags and check.execution_count
    assert [o.get("text") or o.data["text/plain"] for o in check.outputs] == [
        "○ gram_matrix: not done yet (replace raise NotImplementedError() with your code)\n", "False"]
    assert all(c.outputs == [] and c.execution_count is None for i, c in enumerate(student.cells)
               if c.cell_type == "code" and i != 3)
    # --check: up to date now; out of date once the lesson changes; a file on disk is what nbformat writes.
    assert make_exercises.main([str(lesson), "--out", str(out), "--check"]) == 0
    original.cells[2].source += "\n# changed"
    nbformat.write(original, lesson)
    assert make_exercises.main([str(lesson), "--out", str(out), "--check"]) == 1
    # A lesson without exercises any more: its students' version is removed.
    original.cells[2].source = "def my_gram_matrix(features):\n    return nstutil.gram_matrix(features)"
    original.cells[4].source = "print('visible line')"
    nbformat.write(original, lesson)
    assert make_exercises.main([str(lesson), "--out", str(out)]) == 0
    assert not (out / lesson.name).exists()


def test_bad_lesson_is_one_line_exit_2(tmp_path, capsys):
    lesson = tmp_path / "01_bad.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1")]
    nbformat.write(nb, lesson)
    assert make_exercises.main([str(lesson), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "01_bad.ipynb, cell 0" in err and "never closed" in err
    assert make_exercises.main([str(tmp_path / "missing.ipynb")]) == 2


def test_scratch_lesson_passes_and_students_version_is_not_done(tmp_path):
    """Both run top to bottom: the lesson's check passes, the students' says not done yet and nothing fails."""
    lesson = _scratch_lesson(tmp_path / "03_scratch.ipynb")
    out = tmp_path / "exercises"
    make_exercises.main([str(lesson), "--out", str(out)])
    solved = _execute(lesson)
    assert _stdout(solved.cells[3]).startswith("✔ gram_matrix: passed")
    assert _stdout(solved.cells[4]) == "visible line\n"
    unsolved = _execute(out / lesson.name)
    assert _stdout(unsolved.cells[3]) == ("○ gram_matrix: not done yet (replace raise NotImplementedError() "
                                          "with your code)\n")
    assert _stdout(unsolved.cells[5]) == "torch.Size([1, 2, 2])\n"


def test_command_line(tmp_path):
    lesson = _scratch_lesson(tmp_path / "03_scratch.ipynb")
    run = subprocess.run([sys.executable, str(NOTEBOOKS / "make_exercises.py"), str(lesson), "--out",
                          str(tmp_path / "handout")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "wrote" in run.stdout and (tmp_path / "handout" / lesson.name).exists()


# ---------------------------------------------------------------------- the committed students' notebooks

def _lessons_with_exercises():
    return [p for p in make_exercises._lessons() if make_exercises.has_exercises(nbformat.read(p, as_version=4))]


def _check_cells(path: Path):
    return [(c, make_exercises.checked_name(c.source)) for c in nbformat.read(path, as_version=4).cells
            if c.cell_type == "code" and make_exercises.checked_name(c.source)]


def test_committed_exercises_are_up_to_date():
    """``python notebooks/make_exercises.py --check``, as CI runs it: notebooks/exercises/ holds exactly what
    make_exercises.py makes from today's lessons, one students' notebook per lesson with exercises."""
    run = subprocess.run([sys.executable, str(NOTEBOOKS / "make_exercises.py"), "--check"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in make_exercises.EXERCISES.glob("*.ipynb")) == \
        sorted(p.name for p in _lessons_with_exercises())


def test_the_series_has_an_exercise_and_a_checked_check_for_every_check():
    """At least eight exercises; each check in nstutil.checks is called in a lesson, in a cell whose output nbval
    compares: the solution passes in the lesson, and the students' version says "not done yet"."""
    import nstutil.checks

    lessons = _lessons_with_exercises()
    solutions = sum(c.source.count(make_exercises.BEGIN_SOLUTION) for p in lessons
                    for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code")
    assert solutions >= 8
    called = {}
    for lesson in lessons:
        for cell, name in _check_cells(lesson):
            called[name] = lesson.name
            assert "nbval-check-output" in cell.metadata.get("tags", []), (lesson.name, name)
            assert _stdout(cell).startswith(f"✔ {name}: passed"), (lesson.name, name, cell.outputs)
        for cell, name in _check_cells(make_exercises.EXERCISES / lesson.name):
            assert _stdout(cell) == f"○ {name}: not done yet (replace raise NotImplementedError() with your code)\n"
    assert sorted(called) == sorted(nstutil.checks.__all__)


def test_pytest_runs_the_students_notebooks(pytestconfig):
    """Plain ``pytest`` runs notebooks/exercises/ under nbval too (testpaths reach it; nothing ignores it)."""
    testpaths, addopts = pytestconfig.getini("testpaths"), " ".join(pytestconfig.getini("addopts"))
    assert "notebooks" in testpaths and "exercises" not in addopts and "--nbval" in addopts
