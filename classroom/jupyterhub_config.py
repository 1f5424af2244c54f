"""JupyterHub for a class on one machine: the nstutil lessons and exercises for every student.

Start it with ``classroom/start-hub`` (README, "Serving a class"); that script checks the set-up and runs
``jupyterhub -f classroom/jupyterhub_config.py`` with the state (database, cookie secret, students' folders) in
``$NSTUTIL_CLASS_STATE`` (default ``classroom/state/``). Every setting a teacher changes is an environment variable
read here, so this file stays as it is in the repository:

=========================  =========================================================================  =============
variable                   what it sets                                                               default
=========================  =========================================================================  =============
NSTUTIL_CLASS_PASSWORD     the class's shared password (at least 8 characters): any name logs in      (required)
NSTUTIL_CLASS_ROSTER       a file with the allowed user names, one a line (otherwise any name)        any name
NSTUTIL_CLASS_TEACHERS     admin user names, comma-separated (they log in with the admin password)    none
NSTUTIL_CLASS_ADMIN_PASSWORD  the teachers' password (at least 32 characters)                         none
NSTUTIL_CLASS_IP / _PORT   where the hub listens: 0.0.0.0 to serve the room's network                 127.0.0.1 / 8000
NSTUTIL_WEIGHTS            the one read-only weights file every kernel loads (the float16 export)     auto
NSTUTIL_SIZE               image size of the lessons and the playground, px                           128
NSTUTIL_CLASS_THREADS      CPU threads per kernel (OMP/MKL/torch)                                     1
NSTUTIL_CLASS_MEM_LIMIT    memory per student, where the spawner enforces it                          2G
NSTUTIL_CLASS_CULL_AFTER   seconds of inactivity before a student's server is stopped                 1800
NSTUTIL_STEPS, TORCH_HOME  passed on to every kernel when set (evaluations per run; torch.hub's cache)  unset
=========================  =========================================================================  =============

Students' servers run as the account that started the hub, each in its own folder (``state/homes/<name>``) with a
copy of the lessons and the exercises made at their first login: one machine, no Linux account per student, and
**no isolation between students** (a student's code can read another's folder). For isolation and more students
than one machine holds, the teacher's guide (notebooks/README.md, "Serving a class") moves the same settings to Zero
to JupyterHub, where each student gets a container with an enforced memory limit.
"""

import os
import shutil
import sys
from pathlib import Path

from jupyterhub.spawner import SimpleLocalProcessSpawner

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STATE = Path(os.environ.get("NSTUTIL_CLASS_STATE", HERE / "state")).expanduser().resolve()
HOMES = STATE / "homes"

c = get_config()  # noqa: F821 - provided by JupyterHub when it reads this file


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


# -- where the hub listens (the proxy's public address); the hub itself and the students' servers stay on loopback
c.JupyterHub.ip = _env("NSTUTIL_CLASS_IP", "127.0.0.1")
c.JupyterHub.port = int(_env("NSTUTIL_CLASS_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
# The pinned proxy from classroom/package.json (npm ci --prefix classroom), not whatever is on PATH.
c.ConfigurableHTTPProxy.command = [str(HERE / "node_modules" / ".bin" / "configurable-http-proxy")]

# -- who logs in: one shared class password; teachers are admins with their own password
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ.get("NSTUTIL_CLASS_PASSWORD", "")
_roster = _env("NSTUTIL_CLASS_ROSTER", "")
if _roster:
    c.Authenticator.allowed_users = {line.strip() for line in Path(_roster).read_text().splitlines() if line.strip()}
else:
    c.Authenticator.allow_all = True
_teachers = {name.strip() for name in _env("NSTUTIL_CLASS_TEACHERS", "").split(",") if name.strip()}
if _teachers:
    c.Authenticator.admin_users = _teachers
    c.SharedPasswordAuthenticator.admin_password = os.environ.get("NSTUTIL_CLASS_ADMIN_PASSWORD", "")


# -- each student's server: a folder with the course, the settings that keep memory predictable
class ClassroomSpawner(SimpleLocalProcessSpawner):
    """A local server per student in ``state/homes/<name>``, running as the hub's account (no Linux users needed)."""


c.JupyterHub.spawner_class = ClassroomSpawner
c.ClassroomSpawner.home_dir_template = str(HOMES / "{username}")
c.Spawner.notebook_dir = str(HOMES / "{username}")
c.Spawner.ip = "127.0.0.1"
# The single-user server from the hub's own Python environment (where nstutil and the requirements are installed).
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = "/lab/tree/lessons/12_playground.ipynb"
c.Spawner.args = ["--ServerApp.terminals_enabled=False"]
if os.geteuid() == 0:  # a hub started as root (a container): its students' servers run as root too
    c.Spawner.args.append("--allow-root")
# A student's first server start imports torch: give it time on a busy machine.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# Honoured by spawners that can enforce it (SystemdSpawner, DockerSpawner, KubeSpawner on Zero to JupyterHub); the
# local spawner only exports it as MEM_LIMIT. The load test's figures say what a student needs (teacher's guide).
c.Spawner.mem_limit = _env("NSTUTIL_CLASS_MEM_LIMIT", "2G")
_threads = _env("NSTUTIL_CLASS_THREADS", "1")
c.Spawner.environment = {
    # One thread per kernel: N students share the cores instead of N×cores threads fighting over them, and each
    # kernel's memory does not grow with per-thread buffers.
    "OMP_NUM_THREADS": _threads,
    "MKL_NUM_THREADS": _threads,
    "OPENBLAS_NUM_THREADS": _threads,
    "NSTUTIL_SIZE": _env("NSTUTIL_SIZE", "128"),
    "NSTUTIL_WEIGHTS": _env("NSTUTIL_WEIGHTS", "auto"),
    "MPLBACKEND": "Agg",
}
for _name in ("NSTUTIL_STEPS", "TORCH_HOME"):
    if os.environ.get(_name):
        c.Spawner.environment[_name] = os.environ[_name]


def copy_course(spawner) -> None:
    """Before a student's server starts: give a new student the lessons and the exercises (never overwrite theirs)."""
    home = Path(spawner.home_dir)
    home.mkdir(parents=True, exist_ok=True)
    for folder, source in (("lessons", REPO / "notebooks"), ("exercises", REPO / "notebooks" / "exercises")):
        target = home / folder
        if target.exists():
            continue
        target.mkdir()
        for notebook in sorted(source.glob("*.ipynb")):
            shutil.copy2(notebook, target / notebook.name)


c.Spawner.pre_spawn_hook = copy_course

# -- stop idle servers (jupyterhub-idle-culler), so that a class's memory is given back after the lesson
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                    f"--timeout={int(_env('NSTUTIL_CLASS_CULL_AFTER', '1800'))}", "--cull-every=60"],
    }
]
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
