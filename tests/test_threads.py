"""nstutil.threads: PyTorch's thread count from the free cores, NSTUTIL_THREADS overriding (issue 23.5)."""

from __future__ import annotations

import pytest
import torch

from nstutil import threads
from nstutil.errors import NSTError


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_busy_machine_gets_fewer_threads(monkeypatch):
    monkeypatch.delenv("NSTUTIL_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(threads, "busy_cores", lambda sample_s: 1.7)  # two cores mostly taken by others
    assert threads.free_cores() == 2
    assert threads.use_free_cores() == 2 and torch.get_num_threads() == 2


def test_idle_machine_and_fully_busy_machine(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(threads, "busy_cores", lambda sample_s: 0.3)  # a little background noise: all cores
    assert threads.free_cores() == 4
    monkeypatch.setattr(threads, "busy_cores", lambda sample_s: 7.0)  # more busy than cores: still one thread
    assert threads.free_cores() == 1


def test_unknown_load_keeps_pytorchs_choice(monkeypatch):
    monkeypatch.delenv("NSTUTIL_THREADS", raising=False)
    monkeypatch.setattr(threads, "busy_cores", lambda sample_s: None)  # no /proc/stat (macOS, Windows)
    torch.set_num_threads(1)
    assert threads.use_free_cores() == 1


def test_environment_variable_wins(monkeypatch):
    monkeypatch.setenv("NSTUTIL_THREADS", "1")
    monkeypatch.setattr(threads, "busy_cores", lambda sample_s: pytest.fail("must not measure when set"))
    assert threads.use_free_cores() == 1 and torch.get_num_threads() == 1


def test_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("NSTUTIL_THREADS", "many")
    with pytest.raises(NSTError, match="NSTUTIL_THREADS"):
        threads.use_free_cores()


def test_busy_cores_reads_this_machine():
    busy = threads.busy_cores(0.05)
    if busy is None:
        pytest.skip("no /proc/stat here")
    assert 0.0 <= busy <= (__import__("os").cpu_count() or 1) + 1e-6


def test_lesson_setup_sets_the_threads(monkeypatch):
    import nstutil.lesson as lesson

    monkeypatch.setenv("NSTUTIL_THREADS", "1")
    torch.set_num_threads(2)
    lesson.setup(32, model=False, show=False)
    assert torch.get_num_threads() == 1
