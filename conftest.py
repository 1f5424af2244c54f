"""Test-session defaults shared by the unit tests and the notebooks run under nbval.

The notebooks read three environment variables (the widgets read the same ones); a lesson opened in class has none
of them set and works at 256 px with 300 evaluations per run and the best weights it can find:

- ``NSTUTIL_WEIGHTS`` -- which VGG19 weights ``nstutil.load_vgg19()`` loads; ``random`` (seeded, no download) here.
- ``NSTUTIL_SIZE``    -- the image size in pixels (longer side) a lesson works at; 256 in class, 64 here.
- ``NSTUTIL_STEPS``   -- how many loss evaluations a lesson's runs take; 300 in class, 20 here.
- ``MPLBACKEND``      -- ``Agg`` here: figures are drawn but not rendered to PNG (images are never compared).

They are only defaults (``os.environ.setdefault``): a value already set wins, e.g. ``NSTUTIL_SIZE=128 pytest``.
Only the cells tagged ``nbval-check-output`` are compared, and those print facts that do not depend on these
settings, so the notebook tests pass under any of them (at 64 px they are quickest). The kernels nbval starts
inherit this process's environment. ``notebooks/refresh.py`` imports ``NOTEBOOK_ENV`` from here so that stored
outputs are produced with exactly the settings they are compared under.
"""

from __future__ import annotations

import os
from pathlib import Path

NOTEBOOK_ENV = {
    "NSTUTIL_WEIGHTS": "random",
    "NSTUTIL_SIZE": "64",
    "NSTUTIL_STEPS": "20",
    "MPLBACKEND": "Agg",
}

for _name, _value in NOTEBOOK_ENV.items():
    os.environ.setdefault(_name, _value)


def pytest_configure(config):
    """Let ``--nbval-sanitize-with notebooks/sanitize.cfg`` (from pyproject's addopts) work from any directory."""
    option = getattr(config.option, "nbval_sanitize_with", None)
    if option and not Path(option).is_absolute() and not Path(option).exists():
        candidate = Path(config.rootpath) / option
        if candidate.exists():
            config.option.nbval_sanitize_with = str(candidate)
