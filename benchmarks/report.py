"""Writing a benchmark's results: JSON (with the load average at the end) and an optional plot."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable


def write_results(result: dict, out: Path, plot: Callable[[dict, Path], None] | None = None) -> None:
    """Stamp ``machine.loadavg_end``, write ``out`` as JSON and, if given, ``plot`` to ``out``.png."""
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    if plot is not None:
        plot(result, out.with_suffix(".png"))
        print(f"wrote {out.with_suffix('.png')}")
