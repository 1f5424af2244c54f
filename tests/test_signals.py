"""Signals during a command-line run: SIGTERM and SIGHUP keep the best image as Ctrl-C does, and a second signal
while the first is being handled neither loses the result nor prints something untrue (nstutil.interrupts)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import nstutil
import nstutil.transfer as transfer_module
from nstutil import cli
from nstutil.interrupts import StopSignals

REPO = Path(__file__).resolve().parent.parent


def _write_png(path, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8), "RGB").save(path)
    return path


def _argv(tmp_path, steps=100000):
    content = _write_png(tmp_path / "content.png", seed=1)
    style = _write_png(tmp_path / "style.png", seed=2)
    return ["--content", str(content), "--style", str(style), "-o", str(tmp_path / "out.png"), "--size", "32",
            "--steps", str(steps), "-q"]


def test_first_signal_raises_later_ones_are_ignored(capsys):
    with StopSignals() as stop:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs before this ends
        os.kill(os.getpid(), signal.SIGINT)  # the second: no exception
    assert stop.received == signal.SIGTERM and stop.exit_status == 143 and stop.name == "SIGTERM"
    assert "SIGINT ignored: already stopping" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored


def test_hold_turns_the_first_signal_into_a_note():
    with StopSignals() as stop:
        stop.hold()
        os.kill(os.getpid(), signal.SIGINT)
    assert stop.received == signal.SIGINT


def test_second_ctrl_c_while_restoring_the_weights_keeps_the_result(tmp_path, capsys, monkeypatch):
    """The first Ctrl-C stops the optimisation; the second lands while the network's weights are restored (the
    end of channels_last_weights). The best image is still written and the run says it was interrupted."""
    monkeypatch.setenv("NSTUTIL_WEIGHTS", "random")
    real_transfer, real_layout = cli.style_transfer, transfer_module.channels_last_weights
    sent = []

    def transfer(*args, callback, **kwargs):
        def interrupt_at_third(event):
            callback(event)
            if event.record.evaluation == 2:
                sent.append(signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # the handler runs before this ends
        return real_transfer(*args, callback=interrupt_at_third, **kwargs)

    @contextmanager
    def layout(model, layers):
        with real_layout(model, layers):
            try:
                yield
            finally:
                if sent:  # (the estimate before the run times a pass in this layout too)
                    sent.append(signal.SIGINT)
                    os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C
                    time.sleep(1)

    monkeypatch.setattr(cli, "style_transfer", transfer)
    monkeypatch.setattr(transfer_module, "channels_last_weights", layout)
    assert cli.main(_argv(tmp_path)) == 130
    assert len(sent) == 2
    err = capsys.readouterr().err
    assert "nothing written" not in err and "Traceback" not in err
    assert "interrupted after 3 of 100000 evaluations" in err and "wrote" in err
    assert nstutil.load_image(tmp_path / "out.png").shape == (1, 3, 27, 32)


def test_signal_after_the_optimisation_is_not_called_before_it(tmp_path, capsys, monkeypatch):
    def transfer(*args, callback, **kwargs):
        callback(SimpleNamespace(record=SimpleNamespace(evaluation=4)))
        raise KeyboardInterrupt  # e.g. while the best image is upsampled

    monkeypatch.setattr(cli, "style_transfer", transfer)
    monkeypatch.setattr(cli, "plan_run", lambda *args, **kwargs: None)
    assert cli.main(_argv(tmp_path)) == 130
    err = capsys.readouterr().err
    assert "before the optimisation started" not in err
    assert "while finishing, after 5 evaluations; nothing written" in err


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_write_the_best_image(tmp_path, signum, status):
    env = dict(os.environ, NSTUTIL_WEIGHTS="random",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    output = tmp_path / "out.png"
    proc = subprocess.Popen([sys.executable, "-m", "nstutil", *_argv(tmp_path), "--save-every", "1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        snapshot = tmp_path / "out-0001.png"
        deadline = time.monotonic() + 120
        while not snapshot.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert snapshot.exists(), "no progress within 120 s"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    name = signal.Signals(signum).name
    assert proc.returncode == status, err
    assert "Traceback" not in err and f"stopped by {name}: interrupted after" in err and str(output) in err
    assert nstutil.load_image(output).shape == (1, 3, 27, 32)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
