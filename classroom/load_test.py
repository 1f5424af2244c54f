"""A class of simulated students on the classroom JupyterHub: how long each waits for a first image, memory, CPU.

    python classroom/load_test.py --students 8            # class settings: 128 px, 100 evaluations
    python classroom/load_test.py --students 2 --json out.json

Starts the hub for real (``classroom/start-hub`` with the repository's ``jupyterhub_config.py``; only the
authenticator is swapped for JupyterHub's dummy one, so the simulated students can log in with any password) on free
loopback ports, with its state in a temporary folder and the weights in one read-only float16 file
(``--weights``, default an export of seeded random weights: speed and memory do not depend on the values). Then all
students at once: log in through the hub's login form, which starts their server; open a kernel on it; run the
playground's default run there (``nstutil.widgets.playground()``, its Run, at the hub's settings). Reported per
student: seconds from login to the server being up, to the first preview image, to the final image; peak memory
(the student's server and kernel, resident); and for the whole server: peak memory, CPU share of the machine.

Bounded: at most 64 students, ``--timeout`` seconds in all (default 1800); everything listens on 127.0.0.1 only;
the hub and every student's process are stopped at the end. Exit status 0 only when every student got a first
image (and the run finished), 1 otherwise, 2 for bad arguments or a set-up that is not complete.
Linux only (memory and CPU are read from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

HERE = Path(__file__).resolve().parent
START_HUB = HERE / "start-hub"
MAX_STUDENTS = 64

# What each student's kernel runs: the playground's default run (its Run button), timing the first preview image.
STUDENT_CODE = """
import json, resource, time
def cpu():  # this kernel's CPU seconds, all threads
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
t0, c0 = time.monotonic(), cpu()
from nstutil import widgets as nw
page = nw.playground()
panel = page.panel
t_ready, c_ready = time.monotonic(), cpu()
panel.run()
first = None
while panel.running:
    if first is None and panel.preview_updates > 0:
        first = time.monotonic()
    time.sleep(0.05)
panel.wait()
t_end, c_end = time.monotonic(), cpu()
if first is None and panel.preview_updates > 0:
    first = t_end
r = panel.result
print("NSTLOAD " + json.dumps({
    "import_and_model_s": t_ready - t0, "first_image_s": None if first is None else first - t0,
    "run_s": t_end - t0, "start_cpu_s": c_ready - c0, "run_cpu_s": c_end - c_ready, "evaluations": len(panel.history), "size": panel.size.value,
    "stop_reason": None if r is None else r.stop_reason,
    "error": None if panel.error is None else repr(panel.error)}))
"""


def free_port() -> int:
    """A free TCP port on the loopback address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the hub

@dataclass
class Hub:
    """A running classroom hub: its public URL, an admin API token, the process, the state folder."""
    url: str
    token: str
    proc: subprocess.Popen
    state: Path
    log: Path

    def api(self, method: str, path: str, **kwargs):
        import requests

        headers = {"Authorization": f"token {self.token}"}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs)


def _wrapper_config(state: Path, token: str) -> Path:
    """The repository's hub configuration, plus an admin service whose token drives the test (never in a class)."""
    config = state / "load_test_config.py"
    config.write_text(
        f"load_subconfig({str(HERE / 'jupyterhub_config.py')!r})\n"
        "c.JupyterHub.services.append({'name': 'load-test', 'api_token': %r})\n"
        "c.JupyterHub.load_roles.append({'name': 'load-test', 'services': ['load-test'],\n"
        "    'scopes': ['admin:users', 'admin:servers', 'access:servers', 'read:users', 'list:services',"
        " 'read:services']})\n" % token
    )
    return config


@contextlib.contextmanager
def classroom_hub(state: Path, *, env: Optional[Dict[str, str]] = None, timeout: float = 120,
                  authenticator: Optional[str] = "dummy") -> Iterator[Hub]:
    """Run ``classroom/start-hub`` on free loopback ports with the dummy authenticator (``None``: the class's shared
    password, from ``env``); stop it and every student's server on exit (by the process group of the hub we
    started)."""
    state.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(24)
    port, hub_port, api_port = free_port(), free_port(), free_port()
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.update({"NSTUTIL_CLASS_STATE": str(state), "NSTUTIL_CLASS_IP": "127.0.0.1",
                     "NSTUTIL_CLASS_PORT": str(port), "PYTHON": sys.executable})
    log = state / "hub.log"
    cmd = [str(START_HUB), "-f", str(_wrapper_config(state, token)), f"--JupyterHub.hub_port={hub_port}",
           f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{api_port}"]
    if authenticator:
        cmd.append(f"--JupyterHub.authenticator_class={authenticator}")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    hub = Hub(f"http://127.0.0.1:{port}", token, proc, state, log)
    try:
        _wait_for_hub(hub, timeout)
        yield hub
    finally:
        _stop(proc)


def _wait_for_hub(hub: Hub, timeout: float) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.proc.poll() is not None:
            raise RuntimeError(f"the hub exited with {hub.proc.returncode}:\n{hub.log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if hub.api("GET", "/").status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"the hub did not answer within {timeout:.0f} s:\n{hub.log.read_text(errors='replace')[-3000:]}")


def _descendants(pid: int) -> List[int]:
    """The processes below ``pid`` (read from /proc): the proxy, the culler, the students' servers and kernels."""
    parents: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry}/stat") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found.extend(children)
        frontier = children
    return found


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the hub's process group (the hub stops the students' servers and the proxy), then SIGKILL to
    whatever is left of the group and of the hub's descendants: a hub killed before its clean-up (a slow, busy
    machine) would otherwise leave its proxy, culler and servers running, some in sessions of their own."""
    below = _descendants(proc.pid)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


# -- one student

@dataclass
class Student:
    name: str
    login_s: Optional[float] = None
    server_s: Optional[float] = None
    kernel_s: Optional[float] = None
    first_image_s: Optional[float] = None
    final_image_s: Optional[float] = None
    evaluations: int = 0
    run_cpu_s: Optional[float] = None
    peak_rss_mib: float = 0.0
    cpu_s: float = 0.0
    error: Optional[str] = None
    kernel: dict = field(default_factory=dict)


def login_and_spawn(hub: Hub, name: str) -> "requests.Session":  # noqa: F821
    """Log in through the hub's form, as a browser does; the hub then starts the student's server."""
    import requests

    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=60).raise_for_status()
    xsrf = session.cookies.get("_xsrf", "")
    reply = session.post(f"{hub.url}/hub/login?next=", data={"username": name, "password": "any", "_xsrf": xsrf},
                         timeout=120, allow_redirects=True)
    reply.raise_for_status()
    if "/hub/login" in reply.url and "Invalid" in reply.text:
        raise RuntimeError(f"login refused for {name}")
    return session


def wait_for_server(hub: Hub, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = hub.api("GET", f"/users/{name}").json()
        server = model.get("servers", {}).get("", {})
        if server.get("ready"):
            return
        if not server:  # the login started it, so it has stopped: the hub's log says why
            raise RuntimeError(f"{name}'s server stopped while starting (see the hub's log)")
        time.sleep(0.5)
    raise TimeoutError(f"{name}'s server did not start within {timeout:.0f} s")


async def run_in_kernel(hub: Hub, name: str, code: str, timeout: float) -> str:
    """Start a kernel on the student's server, execute ``code``, return its stdout; the kernel is shut down."""
    import requests
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    headers = {"Authorization": f"token {hub.token}"}
    base = f"{hub.url}/user/{name}/api"
    reply = await asyncio.to_thread(requests.post, f"{base}/kernels", json={"name": "python3"}, headers=headers,
                                    timeout=120)
    reply.raise_for_status()
    kernel_id = reply.json()["id"]
    try:
        ws_url = f"{base}/kernels/{kernel_id}/channels".replace("http://", "ws://", 1)
        ws = await websocket_connect(HTTPRequest(ws_url, headers=headers, request_timeout=120),
                                     max_message_size=256 * 2**20)
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": name, "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out: List[str] = []
        replied = idle = False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{name}'s kernel did not finish within {timeout:.0f} s")
            raw = await asyncio.wait_for(ws.read_message(), left)
            if raw is None:
                raise RuntimeError(f"{name}'s kernel connection closed")
            if not isinstance(raw, str):
                continue  # a binary message (widget buffers): not ours to read
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content.get("text", ""))
            elif kind == "error":
                raise RuntimeError(f"{name}'s kernel: {content.get('ename')}: {content.get('evalue')}")
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
        ws.close()
        return "".join(out)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(requests.delete, f"{base}/kernels/{kernel_id}", headers=headers, timeout=30)


async def one_student(hub: Hub, student: Student, timeout: float) -> None:
    start = time.monotonic()
    try:
        await asyncio.to_thread(login_and_spawn, hub, student.name)
        student.login_s = time.monotonic() - start
        await asyncio.to_thread(wait_for_server, hub, student.name, timeout)
        student.server_s = time.monotonic() - start
        kernel_start = time.monotonic()
        stdout = await run_in_kernel(hub, student.name, STUDENT_CODE, timeout - (kernel_start - start))
        found = re.search(r"NSTLOAD (\{.*\})", stdout)
        if not found:
            raise RuntimeError(f"{student.name}'s kernel printed no result: {stdout[-300:]!r}")
        student.kernel = json.loads(found.group(1))
        # The kernel's times count from its first line; the kernel's start is the time before it.
        offset = time.monotonic() - start - student.kernel["run_s"]
        student.kernel_s = offset
        if student.kernel["first_image_s"] is not None:
            student.first_image_s = offset + student.kernel["first_image_s"]
        student.evaluations = student.kernel["evaluations"]
        student.run_cpu_s = student.kernel["run_cpu_s"]
        if student.kernel["error"] or student.kernel["stop_reason"] != "completed":
            raise RuntimeError(f"{student.name}'s run: {student.kernel['error'] or student.kernel['stop_reason']}")
        student.final_image_s = time.monotonic() - start
    except Exception as exc:  # noqa: BLE001 - one line per failed student in the report
        student.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


# -- memory and CPU, from /proc

def _descendants(root: int) -> List[int]:
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _proc_figures(pid: int):
    """(resident MiB, CPU seconds, JUPYTERHUB_USER or None) of one process, or None when it is gone."""
    try:
        rss_kib = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        user = None
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        for item in environ:
            if item.startswith(b"JUPYTERHUB_USER="):
                user = item.split(b"=", 1)[1].decode()
        return rss_kib / 1024, cpu, user
    except (OSError, ValueError, IndexError):
        return None


class Sampler(threading.Thread):
    """Every ``interval`` s: resident memory of the hub's whole tree and of each student's processes; CPU time."""

    def __init__(self, root: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_total_mib = 0.0
        self.peak_student_mib: Dict[str, float] = {}
        self.cpu_by_pid: Dict[int, tuple] = {}  # pid -> (cpu s, user): the last reading of each process
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self) -> None:
        total, per_student = 0.0, {}
        for pid in _descendants(self.root):
            figures = _proc_figures(pid)
            if figures is None:
                continue
            rss, cpu, user = figures
            total += rss
            if user:
                per_student[user] = per_student.get(user, 0.0) + rss
            self.cpu_by_pid[pid] = (cpu, user)
        self.peak_total_mib = max(self.peak_total_mib, total)
        for user, rss in per_student.items():
            self.peak_student_mib[user] = max(self.peak_student_mib.get(user, 0.0), rss)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def cpu_seconds(self, user: Optional[str] = None) -> float:
        return sum(cpu for cpu, who in self.cpu_by_pid.values() if user is None or who == user)


# -- the class

def _weights_file(folder: Path, source: str) -> Path:
    """One read-only float16 weights file for the whole class (python -m nstutil.weights export)."""
    if os.path.isfile(source):
        return Path(source)
    out = folder / "vgg19-fp16.pth"
    subprocess.run([sys.executable, "-m", "nstutil.weights", "export", str(out), "--from", source], check=True,
                   stdout=subprocess.DEVNULL)
    out.chmod(0o444)
    return out


def run_class(students: int, *, size: int, steps: int, timeout: float, weights: str, threads: int,
              state: Path, hub_env: Optional[Dict[str, str]] = None) -> dict:
    """Start the hub, run ``students`` students at once, stop everything; return the figures."""
    env = {"NSTUTIL_WEIGHTS": str(_weights_file(state, weights)), "NSTUTIL_SIZE": str(size),
           "NSTUTIL_STEPS": str(steps), "NSTUTIL_CLASS_THREADS": str(threads)}
    env.update(hub_env or {})
    class_ = [Student(f"student{i + 1:02d}") for i in range(students)]
    started = time.monotonic()
    with classroom_hub(state / "hub", env=env) as hub:
        hub_ready_s = time.monotonic() - started
        sampler = Sampler(hub.proc.pid)
        sampler.start()
        t0, cpu0 = time.monotonic(), sampler.cpu_seconds()

        async def everyone():
            await asyncio.gather(*(one_student(hub, s, timeout - hub_ready_s) for s in class_))

        asyncio.run(everyone())
        wall = time.monotonic() - t0
        sampler.sample()
        sampler.stop()
        for s in class_:
            s.peak_rss_mib = round(sampler.peak_student_mib.get(s.name, 0.0), 1)
            s.cpu_s = round(sampler.cpu_seconds(s.name), 1)
        cpu = sampler.cpu_seconds() - cpu0
    cores = os.cpu_count() or 1
    firsts = sorted(s.first_image_s for s in class_ if s.first_image_s is not None)
    finals = sorted(s.final_image_s for s in class_ if s.final_image_s is not None)
    return {
        "students": students, "size": size, "steps": steps, "threads_per_kernel": threads, "cores": cores,
        "hub_start_s": round(hub_ready_s, 1), "wall_s": round(wall, 1),
        "failed": [s.name for s in class_ if s.error or s.first_image_s is None],
        "first_image_s": {"min": _r(firsts[0] if firsts else None), "median": _r(_median(firsts)),
                          "max": _r(firsts[-1] if firsts else None)},
        "final_image_s": {"min": _r(finals[0] if finals else None), "median": _r(_median(finals)),
                          "max": _r(finals[-1] if finals else None)},
        "peak_mib_per_student_max": round(max((s.peak_rss_mib for s in class_), default=0.0), 1),
        "peak_mib_server": round(sampler.peak_total_mib, 1),
        "cpu_share": round(cpu / (wall * cores), 3),
        "per_student": [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in vars(s).items()
                         if k != "kernel"} for s in class_],
    }


def _r(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 1)


def _median(values: List[float]) -> Optional[float]:
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def capacity(figures: dict, cores: int, ram_gib: float, wait_s: float = 60) -> dict:
    """A model of what a CPU server with ``cores`` and ``ram_gib`` holds, from the measured figures.

    Memory: the server's own share (the measured whole-server peak less the students') plus the largest student's
    peak per student, 10 % of the RAM kept for the system. Time, one thread per kernel: a run takes its measured CPU
    seconds on one core, so when every student presses Run at once the last image comes after about
    ceil(N / cores) runs; a class logging in together waits for N server and kernel starts shared by the cores.
    """
    done = [s for s in figures["per_student"] if s["run_cpu_s"] is not None]
    if not done:
        return {}
    per_student = figures["peak_mib_per_student_max"] / 1024
    server = max(0.0, figures["peak_mib_server"] / 1024 - sum(s["peak_rss_mib"] for s in done) / 1024)
    by_memory = int((0.9 * ram_gib - server) // per_student)
    run_cpu = max(s["run_cpu_s"] for s in done)
    start_cpu = max(s["cpu_s"] - s["run_cpu_s"] for s in done)
    by_time = int(max(1, wait_s // run_cpu) * cores)
    return {"cores": cores, "ram_gib": ram_gib, "students_by_memory": by_memory, "run_cpu_s": round(run_cpu, 1),
            "start_cpu_s": round(start_cpu, 1), "wait_s": wait_s, "students_by_time": by_time,
            "students": min(by_memory, by_time),
            "login_together_s": round(min(by_memory, by_time) * start_cpu / cores, 1)}


def report(figures: dict) -> str:
    """The figures as the lines printed at the end."""
    lines = [f"{figures['students']} students, {figures['size']} px, {figures['steps']} evaluations, "
             f"{figures['threads_per_kernel']} thread(s) per kernel, {figures['cores']} cores; hub up in "
             f"{figures['hub_start_s']} s, the class took {figures['wall_s']} s",
             f"{'student':<10} {'login':>6} {'server':>7} {'kernel':>7} {'1st img':>8} {'final':>7} "
             f"{'peak MiB':>9} {'CPU s':>6} {'run CPU s':>9}  error"]
    for s in figures["per_student"]:
        cells = [s["login_s"], s["server_s"], s["kernel_s"], s["first_image_s"], s["final_image_s"]]
        text = " ".join(f"{'-' if v is None else v:>{w}}" for v, w in zip(cells, (6, 7, 7, 8, 7)))
        run_cpu = "-" if s["run_cpu_s"] is None else s["run_cpu_s"]
        lines.append(f"{s['name']:<10} {text} {s['peak_rss_mib']:>9} {s['cpu_s']:>6} {run_cpu:>9}  {s['error'] or ''}")
    f, g = figures["first_image_s"], figures["final_image_s"]
    lines.append(f"first image after {f['min']} / {f['median']} / {f['max']} s (min / median / max), final image "
                 f"after {g['min']} / {g['median']} / {g['max']} s (seconds from login)")
    lines.append(f"peak memory: {figures['peak_mib_per_student_max']} MiB for the largest student, "
                 f"{figures['peak_mib_server']} MiB for the whole server; CPU share {figures['cpu_share']:.0%} "
                 f"of {figures['cores']} cores")
    lines.append("failed: " + (", ".join(figures["failed"]) + " (--keep DIR keeps the hub's log)"
                               if figures["failed"] else "none"))
    model = figures.get("model")
    if model:
        lines.append(
            f"model, {model['cores']} cores and {model['ram_gib']} GiB: memory holds {model['students_by_memory']} "
            f"students; a run is {model['run_cpu_s']} CPU s, so {model['students_by_time']} students pressing Run "
            f"together all have their image within {model['wait_s']:.0f} s; that class of {model['students']} "
            f"logging in together waits about {model['login_together_s']} s for its servers and kernels "
            f"({model['start_cpu_s']} CPU s each)")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python classroom/load_test.py", description=__doc__.split("\n\n")[0],
                                     epilog="exit status: 0 every student got a first image and a finished run; "
                                            "1 a student failed; 2 bad arguments or an incomplete set-up")
    parser.add_argument("--students", type=int, required=True, metavar="N", help=f"1 to {MAX_STUDENTS}")
    parser.add_argument("--size", type=int, default=128, metavar="PX", help="image size (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=100, metavar="N",
                        help="loss evaluations per run (default: %(default)s, the playground's)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="threads per kernel (default: %(default)s, as the hub's configuration)")
    parser.add_argument("--weights", default="random", metavar="SOURCE",
                        help="a weights file, or a source to export one from (default: random)")
    parser.add_argument("--timeout", type=float, default=1800, metavar="S",
                        help="seconds for the whole class (default: %(default)s)")
    parser.add_argument("--model", default="16,64", metavar="CORES,GIB",
                        help="the CPU server to model from the figures (default: %(default)s)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    parser.add_argument("--keep", metavar="DIR", help="keep the hub's state and log in DIR (default: a temporary folder)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    problems = []
    if not 1 <= args.students <= MAX_STUDENTS:
        problems.append(f"--students must be 1 to {MAX_STUDENTS}, not {args.students}")
    if not 32 <= args.size <= 1024 or args.steps < 1 or args.threads < 1 or args.timeout <= 0:
        problems.append("--size must be 32 to 1024 px, --steps, --threads and --timeout positive")
    if not (HERE / "node_modules" / ".bin" / "configurable-http-proxy").exists():
        problems.append("the hub's proxy is not installed: run  npm ci --prefix classroom")
    if not Path("/proc/self/status").exists():
        problems.append("this load test reads /proc: run it on Linux")
    try:
        model_cores, model_ram = (float(x) for x in args.model.split(","))
    except ValueError:
        problems.append(f"--model must be CORES,GIB (e.g. 16,64), not {args.model!r}")
    if problems:
        for line in problems:
            print(f"load_test: error: {line}", file=sys.stderr)
        return 2
    state = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nst_class_"))
    try:
        figures = run_class(args.students, size=args.size, steps=args.steps, timeout=args.timeout,
                            weights=args.weights, threads=args.threads, state=state)
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        print(f"load_test: error: {exc}", file=sys.stderr)  # a hub that did not start: its log's tail follows
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)
    figures["model"] = capacity(figures, int(model_cores), model_ram)
    print(report(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if not figures["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
