"""The classroom JupyterHub (classroom/): started for real with the repository's configuration, one student spawned.

The hub runs through ``classroom/start-hub`` on free loopback ports with JupyterHub's dummy authenticator (the only
change from a class: any password logs in) and its state in a temporary folder. A student logs in through the login
form, which starts their server; the tests check what the student gets (the lessons and the exercises in their own
folder, the class's environment in the kernel: one thread, the size, the read-only weights file, the memory limit),
that the idle culler runs and that nothing listens beyond 127.0.0.1. The load test runs end to end with one student:
the playground's default run through the kernel gives the student a first image. Skipped with the reason
when the hub's packages or its proxy (npm ci --prefix classroom) are missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLASSROOM = REPO / "classroom"
sys.path.insert(0, str(CLASSROOM))
import load_test  # noqa: E402

PROXY = CLASSROOM / "node_modules" / ".bin" / "configurable-http-proxy"


def _missing() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the classroom hub is set up for Linux"
    for module in ("jupyterhub", "jupyterhub_idle_culler", "requests"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -r classroom/requirements.txt)"
    if not PROXY.exists():
        return "the hub's proxy is not installed (npm ci --prefix classroom)"
    return None


MISSING = _missing()
needs_hub = pytest.mark.skipif(MISSING is not None, reason=f"classroom test skipped: {MISSING}")
SMALL = {"NSTUTIL_SIZE": "32", "NSTUTIL_STEPS": "3"}


def _listening(pids) -> list:
    """(address, port) of every TCP socket in LISTEN state owned by one of ``pids`` (from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.append((address, int(port, 16)))
    return found


def _loopback(address_hex: str) -> bool:
    if len(address_hex) == 8:  # IPv4, little-endian: 127.x.x.x ends in 7F
        return address_hex.endswith("7F")
    return address_hex in ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    if MISSING:
        pytest.skip(f"classroom test skipped: {MISSING}")
    state = tmp_path_factory.mktemp("classroom")
    weights = state / "vgg19-fp16.pth"
    subprocess.run([sys.executable, "-m", "nstutil.weights", "export", str(weights), "--from", "random"],
                   check=True, stdout=subprocess.DEVNULL)
    weights.chmod(0o444)
    env = {"NSTUTIL_WEIGHTS": str(weights), "NSTUTIL_CLASS_THREADS": "1", **SMALL}
    with load_test.classroom_hub(state / "hub", env=env) as running:
        yield running, weights


@pytest.mark.parametrize("settings, line", [
    ({}, "set NSTUTIL_CLASS_PASSWORD to the class's password (at least 8 characters)"),
    ({"NSTUTIL_CLASS_PASSWORD": "short"}, "set NSTUTIL_CLASS_PASSWORD to the class's password (at least 8 characters)"),
    ({"NSTUTIL_CLASS_PASSWORD": "long enough", "NSTUTIL_CLASS_TEACHERS": "amy", "NSTUTIL_CLASS_ADMIN_PASSWORD": "short"},
     "NSTUTIL_CLASS_TEACHERS is set: set NSTUTIL_CLASS_ADMIN_PASSWORD too (at least 32 characters)"),
    ({"NSTUTIL_CLASS_PASSWORD": "long enough", "NSTUTIL_CLASS_ROSTER": "/no/such/roster.txt"},
     "NSTUTIL_CLASS_ROSTER=/no/such/roster.txt is not a readable file (one user name a line)"),
    ({"NSTUTIL_CLASS_PASSWORD": "long enough", "NSTUTIL_WEIGHTS": "/no/such/vgg19.pth"},
     "NSTUTIL_WEIGHTS=/no/such/vgg19.pth is not a readable file (python -m nstutil.weights export makes one)"),
])
def test_start_hub_refuses_an_incomplete_set_up(tmp_path, settings, line):
    if not PROXY.exists():
        pytest.skip("the hub's proxy is not installed (npm ci --prefix classroom)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NSTUTIL_CLASS_") and k != "NSTUTIL_WEIGHTS"}
    env.update(settings, NSTUTIL_CLASS_STATE=str(tmp_path / "state"))
    done = subprocess.run([str(CLASSROOM / "start-hub")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"classroom/start-hub: {line}"  # one line, nothing started
    assert not (tmp_path / "state").exists()


@needs_hub
def test_a_student_logs_in_and_gets_the_course(hub):
    running, weights = hub
    session = load_test.login_and_spawn(running, "ada")
    assert session.cookies  # logged in through the form
    load_test.wait_for_server(running, "ada", timeout=120)
    home = running.state / "homes" / "ada"
    lessons = sorted(p.name for p in (home / "lessons").glob("*.ipynb"))
    exercises = sorted(p.name for p in (home / "exercises").glob("*.ipynb"))
    assert lessons == sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert "12_playground.ipynb" in lessons
    assert exercises == sorted(p.name for p in (REPO / "notebooks" / "exercises").glob("*.ipynb")) and exercises

    code = ("import os, json, torch\n"
            "print('ENV ' + json.dumps({k: os.environ.get(k) for k in ('OMP_NUM_THREADS', 'NSTUTIL_SIZE', "
            "'NSTUTIL_WEIGHTS', 'MEM_LIMIT', 'HOME')} | {'threads': torch.get_num_threads(), 'cwd': os.getcwd()}))")
    out = asyncio.run(load_test.run_in_kernel(running, "ada", code, timeout=120))
    seen = json.loads(out.split("ENV ", 1)[1])
    assert seen["OMP_NUM_THREADS"] == "1" and seen["threads"] == 1
    assert seen["NSTUTIL_SIZE"] == "32"
    assert seen["NSTUTIL_WEIGHTS"] == str(weights) and weights.stat().st_mode & 0o222 == 0  # one read-only file
    assert seen["MEM_LIMIT"] == str(2 * 1024**3)  # the configured 2G, exported to the server
    assert Path(seen["HOME"]) == home and Path(seen["cwd"]) == home

    # The idle culler runs as a hub service.
    services = running.api("GET", "/services").json()
    assert services["idle-culler"]["command"][1:3] == ["-m", "jupyterhub_idle_culler"]
    culler = services["idle-culler"]["pid"]
    assert culler in load_test._descendants(running.proc.pid)
    assert b"--timeout=1800" in Path(f"/proc/{culler}/cmdline").read_bytes()

    # Nothing the hub started listens beyond the loopback address: hub, proxy, the student's server, the kernel.
    sockets = _listening(load_test._descendants(running.proc.pid))
    assert len(sockets) >= 4, sockets
    assert all(_loopback(address) for address, _ in sockets), sockets


@needs_hub
def test_the_class_password_is_asked(tmp_path):
    """The hub as a class runs it (no dummy authenticator): the shared password lets any name in, nothing else."""
    import requests

    env = {"NSTUTIL_CLASS_PASSWORD": "correct horse battery"}
    with load_test.classroom_hub(tmp_path / "hub", env=env, authenticator=None) as running:
        def login(password):
            session = requests.Session()
            session.get(f"{running.url}/hub/login", timeout=60).raise_for_status()
            reply = session.post(f"{running.url}/hub/login?next=%2Fhub%2Fhome", timeout=60, allow_redirects=False,
                                 data={"username": "lin", "password": password,
                                       "_xsrf": session.cookies.get("_xsrf", "")})
            return reply

        assert login("wrong password").status_code == 403
        assert login("").status_code == 403
        right = login("correct horse battery")
        assert right.status_code == 302 and right.headers["Location"].endswith("/hub/home")
        assert running.api("GET", "/users/lin").status_code == 200  # the student exists now; no server started
        assert running.api("GET", "/users/lin").json()["servers"] == {}


def test_load_test_refuses_bad_arguments(capsys):
    assert load_test.main(["--students", "0"]) == 2
    assert load_test.main(["--students", "65"]) == 2
    err = capsys.readouterr().err
    assert "--students must be 1 to 64, not 0" in err and "not 65" in err


@needs_hub
def test_load_test_one_student_end_to_end(tmp_path, capsys):
    out = tmp_path / "figures.json"
    assert load_test.main(["--students", "1", "--size", "32", "--steps", "3", "--timeout", "300",
                           "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["failed"] == [] and figures["students"] == 1
    student = figures["per_student"][0]
    assert 0 < student["login_s"] <= student["server_s"] <= student["first_image_s"] <= student["final_image_s"]
    assert student["peak_rss_mib"] > 50  # a server and a kernel with torch were measured
    assert figures["peak_mib_server"] >= student["peak_rss_mib"]
    assert 0 < figures["cpu_share"] <= 1
    assert 0 < student["run_cpu_s"] < student["cpu_s"]  # the run is part of the student's CPU time
    model = figures["model"]  # the default model: a 16-core, 64 GiB server
    assert model["cores"] == 16 and model["students_by_memory"] > 0 and model["students_by_time"] >= 16
    assert "failed: none" in capsys.readouterr().out
