"""Re-run lessons and store their checked outputs, in the settings the tests compare them under.

    python notebooks/refresh.py                       # every notebooks/*.ipynb
    python notebooks/refresh.py 03_gram_matrices      # just these (name, file name or path)

Run it after an intended change to nstutil or to a lesson, look at ``git diff notebooks/``, then commit. Each
notebook is executed top to bottom in a fresh ``python3`` kernel whose working directory is ``notebooks/`` (as when
opened in JupyterLab), with the test settings from the repository's ``conftest.py`` forced on (``NSTUTIL_WEIGHTS``,
``NSTUTIL_SIZE``, ``NSTUTIL_STEPS``, ``MPLBACKEND``): outputs stored with other settings would not compare. A
notebook that raises is not written.

Only the cells tagged ``nbval-check-output`` keep their outputs; those are the ones the tests compare, and they
print facts that do not depend on the settings (seeded tensors, fixed sizes, booleans). Every other cell is stored
without outputs, so that a lesson opened fresh never shows the small test settings (64 px, random weights) as if
they were the class's. Widget state is never stored.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHECK_TAG = "nbval-check-output"  # nbval compares these cells' outputs under --nbval-lax


def _test_env() -> dict:
    sys.path.insert(0, str(ROOT))
    try:
        from conftest import NOTEBOOK_ENV
    finally:
        sys.path.pop(0)
    return dict(NOTEBOOK_ENV)


def _find(name: str) -> Path:
    for candidate in (Path(name), HERE / name, HERE / f"{name}.ipynb"):
        if candidate.is_file() and candidate.suffix == ".ipynb":
            return candidate.resolve()
    matches = sorted(HERE.glob(f"{name}*.ipynb"))
    if len(matches) == 1:
        return matches[0]
    raise SystemExit(f"refresh.py: no single notebook matches {name!r} in {HERE}")


def refresh(path: Path, timeout: int) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout, record_timing=False,
                            store_widget_state=False, resources={"metadata": {"path": str(HERE)}})
    client.execute()
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code" and CHECK_TAG not in cell.metadata.get("tags", []):
            cell.outputs = []
            cell.execution_count = None
    nbformat.validate(nb)
    nbformat.write(nb, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="names or paths (default: every notebooks/*.ipynb)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    os.environ.update(_test_env())
    paths = [_find(n) for n in args.notebooks] or sorted(HERE.glob("*.ipynb"))
    settings = ", ".join(f"{k}={v}" for k, v in _test_env().items())
    print(f"refreshing {len(paths)} notebook(s) with {settings}")
    failed = 0
    for path in paths:
        start = time.perf_counter()
        try:
            refresh(path, args.timeout)
        except CellExecutionError as exc:
            failed += 1
            print(f"FAILED {path.name} (not written):\n{exc}", file=sys.stderr)
            continue
        print(f"  {path.name}: {time.perf_counter() - start:.0f} s")
    if not failed:
        print("now check: python -m pytest notebooks/  (and git diff notebooks/)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
