"""Install anywhere: the built wheel carries the bundled images, and the command line runs from another folder.

The wheel is built offline (``pip wheel --no-deps --no-build-isolation --no-index``) from a copy of the sources,
installed with ``pip install --no-deps --target``, and run with random weights at a tiny size. Skipped, with the
reason, where a wheel cannot be built (no setuptools able to build wheels).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PICTURES = sorted(p.name for p in (ROOT / "images").iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def _pip(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args, "--no-deps", "--no-index", "--quiet",
                           "--disable-pip-version-check"], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the repository's package sources (the checkout is left untouched)."""
    base = tmp_path_factory.mktemp("install")
    source = base / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "nstutil", source / "nstutil", ignore=ignore)
    shutil.copytree(ROOT / "images", source / "images", ignore=ignore)
    built = _pip("wheel", "--no-build-isolation", "-w", str(base / "dist"), str(source), cwd=base)
    if built.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {(built.stderr.strip().splitlines() or ['?'])[-1]}")
    return next((base / "dist").glob("nstutil-*.whl"))


def test_wheel_holds_the_package_and_the_bundled_images(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for picture in PICTURES + ["CREDITS.md"]:
        assert f"nstutil/bundled_images/{picture}" in names, picture
    # Every module and subpackage of the checkout is in the wheel (a package missing from pyproject's list
    # would only show up after installing).
    for module in (ROOT / "nstutil").rglob("*.py"):
        assert module.relative_to(ROOT).as_posix() in names, module
    assert not any(n.startswith(("tests/", "notebooks/", "images/")) for n in names)


def test_installed_command_line_runs_from_any_folder(wheel, tmp_path):
    site = tmp_path / "site"
    installed = _pip("install", "--target", str(site), str(wheel), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Only the installed copy is importable: not the checkout (the working directory is elsewhere).
    env = {**os.environ, "PYTHONPATH": str(site), "NSTUTIL_WEIGHTS": "random", "COLUMNS": "1000"}  # no wrapping
    script = site / "bin" / "nstutil"
    helped = subprocess.run([sys.executable, str(script), "--help"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    # The defaults shown are the installed package's own images.
    assert str(site / "nstutil" / "bundled_images" / "chelsea.png") in helped.stdout
    run = subprocess.run([sys.executable, "-m", "nstutil", "--size", "32", "--steps", "2", "-q", "-o", "out.png",
                          "--style", "waves"], cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("wrote out.png") and (elsewhere / "out.png").stat().st_size > 0
    from PIL import Image

    with Image.open(elsewhere / "out.png") as picture:
        assert max(picture.size) == 32
