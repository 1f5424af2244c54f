"""One source of lesson times (issue 23.4): every lesson's "How to run" box and the teacher's guide's table say
what notebooks/lesson_times.py says (the measurement of LESSON_TIMES.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _times():
    spec = importlib.util.spec_from_file_location("lesson_times", NOTEBOOKS / "lesson_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_boxes_and_guide_say_the_measured_times():
    times = _times()
    lessons = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    assert set(times.TIMES) == lessons  # every lesson has its time
    assert times.problems() == []


def test_a_box_that_says_something_else_is_found(tmp_path, monkeypatch):
    times = _times()
    monkeypatch.setitem(times.TIMES, "03_gram_matrices", (60 * 20, 60 * 40))  # as if measured at 20 min
    found = times.problems()
    assert any(p.startswith("03_gram_matrices.ipynb: its box") for p in found), found
    assert any("the row of 03_gram_matrices" in p for p in found), found


def test_an_idle_time_not_measured_is_said_not_guessed(monkeypatch):
    times = _times()
    monkeypatch.setitem(times.TIMES, "03_gram_matrices", (None, 600))
    sentence = times.box_sentence("03_gram_matrices")
    assert sentence.startswith("It takes **10.0 min** on one busy core") and "idle 2-core CPU: not measured" in sentence
    assert times._BOX.fullmatch(sentence)  # write() can find it again to rewrite it
    found = times.problems()  # the box and the guide still say the measured idle time: both are reported
    assert any(p.startswith("03_gram_matrices.ipynb: its box") for p in found), found
    assert any("does not end | not measured | 10.0 min |" in p for p in found), found


def test_the_guide_writes_times_as_the_table_does():
    times = _times()
    assert times.duration(9.9) == "10 s" and times.duration(403.4) == "6.7 min" and times.duration(927) == "15.5 min"


def test_the_measurement_is_in_lesson_times_md():
    times = _times()
    text = (NOTEBOOKS.parent / "LESSON_TIMES.md").read_text(encoding="utf-8")
    for lesson, (idle, one) in times.TIMES.items():
        if idle is None:  # then its one-core time must be there, and the load it was measured under
            assert f"| {one:g} s" in text, lesson
        else:
            assert f"| {idle:g} s" in text or f"| {idle} s" in text, lesson
