"""The lessons' times, once: what each lesson's "How to run" box and the teacher's guide (notebooks/README.md) say
is written from this table, and tests/test_lesson_times.py checks that they still say it.

    python notebooks/lesson_times.py           # rewrite the boxes' sentence from TIMES (then run make_exercises.py)
    python notebooks/lesson_times.py --check   # exit 1 if a box or the guide's table says something else

The numbers are measurements (LESSON_TIMES.md says how): Run All Cells at the class settings, kernel start
included, on :data:`MACHINE` using both cores, and the CPU time one core needed. A lesson whose idle time was not
measured (the machine was never idle when it was run) has ``None`` there, and its box and the guide say so rather
than guess it from the one-core time.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
MACHINE = "an idle 2-core AVX2 machine (AMD EPYC, 2026-11-24; lessons 10 and 11: with AVX-512, 2026-12-03)"

# lesson: (Run All on MACHINE, seconds, or None where not measured; one core's CPU time, seconds)
TIMES: Dict[str, Tuple[Optional[float], float]] = {
    "01_images": (9.9, 16),
    "02_features": (9.2, 18),
    "03_gram_matrices": (6.8, 10),
    "04_losses": (16.1, 29),
    "05_optimisation": (403.4, 927),
    "06_feature_maps": (8.1, 12),
    "07_layers_keep": (211.8, 507),
    "08_control": (589.7, 1310),
    # Lessons 10 and 11 on the AVX-512 machine of 2026-12-03: one core under load, Run All idle (LESSON_TIMES.md).
    "10_feed_forward": (221.8, 391),
    "11_any_style": (659.5, 1112),
    "12_playground": (15.8, 37),
}

# The sentence in each "How to run" box that states the time (the blockquote may break it across lines).
_BOX = re.compile(r"(It takes|about) (about )?\*\*[^*]+\*\*( in all)? on (a|an|one)\s*(?:\n>\s*)?"
                  r"(laptop's CPU|idle 2-core CPU \([^)]*\)|busy core of a 2-core CPU \([^)]*\))")
NOT_MEASURED = "not measured"  # the guide's idle column where TIMES has None


def duration(seconds: float) -> str:
    """How the guide writes a time: "10 s" below a minute, "6.7 min" above."""
    if seconds < 60:
        return f"{math.floor(seconds + 0.5)} s"
    return f"{math.floor(seconds / 6 + 0.5) / 10:.1f} min"  # halves round up, as the guide's table does


def box_sentence(lesson: str) -> str:
    """What a lesson's box says, e.g. "It takes **10 s** on an idle 2-core CPU (one busy core: 16 s; ...)", or,
    where the idle time was not measured, "It takes **12.5 min** on one busy core of a 2-core CPU (...)"."""
    idle, one = TIMES[lesson]
    lead = "about" if lesson == "12_playground" else "It takes"
    if idle is None:
        return (f"{lead} **{duration(one)}** on one busy core of a 2-core CPU (measured, see LESSON_TIMES.md; "
                f"on an idle 2-core CPU: not measured yet)")
    return (f"{lead} **{duration(idle)}**{' in all' if lesson == '12_playground' else ''} on an idle 2-core CPU "
            f"(one busy core: {duration(one)}; measured, see LESSON_TIMES.md)")


def _box_cell(nb: dict) -> Tuple[int, str]:
    for i, cell in enumerate(nb["cells"][:3]):
        text = "".join(cell["source"])
        if "How to run this lesson" in text:
            return i, text
    raise SystemExit("no 'How to run this lesson' box in the first cells")


def problems() -> List[str]:
    """Where a box or the guide's table says another time than TIMES."""
    found = []
    guide = (HERE / "README.md").read_text(encoding="utf-8")
    for lesson, (idle, one) in TIMES.items():
        _, text = _box_cell(json.loads((HERE / f"{lesson}.ipynb").read_text(encoding="utf-8")))
        if box_sentence(lesson) not in text.replace("\n> ", " "):
            found.append(f"{lesson}.ipynb: its box does not say '{box_sentence(lesson)}'")
        row = next((line for line in guide.splitlines() if line.startswith(f"| `{lesson}.ipynb`")), "")
        cells = [c.strip() for c in row.strip("|").split("|")]
        idle_text = NOT_MEASURED if idle is None else duration(idle)
        if len(cells) < 2 or cells[-2] != idle_text or not cells[-1].startswith(duration(one)):
            found.append(f"notebooks/README.md: the row of {lesson} does not end | {idle_text} | "
                         f"{duration(one)} |")
    return found


def write() -> None:
    """Rewrite each box's time sentence from TIMES (keeps the notebook's JSON layout)."""
    for lesson in TIMES:
        path = HERE / f"{lesson}.ipynb"
        nb = json.loads(path.read_text(encoding="utf-8"))
        i, text = _box_cell(nb)
        new, count = _BOX.subn(box_sentence(lesson), text, count=1)
        if not count:
            raise SystemExit(f"{path.name}: the time sentence of its box was not found")
        lines = new.split("\n")
        nb["cells"][i]["source"] = [line + "\n" for line in lines[:-1]] + [lines[-1]]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(nb, f, indent=1, ensure_ascii=False)
            f.write("\n")


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        issues = problems()
        print("\n".join(issues) or "the boxes and the guide agree with notebooks/lesson_times.py")
        sys.exit(1 if issues else 0)
    write()
