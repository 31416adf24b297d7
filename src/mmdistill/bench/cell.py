"""Run one benchmark cell in its own process and print its rows as JSON (peak RSS and CPU time are per cell).

``python -m mmdistill.bench.cell '<cell json>' [data_root]``
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .spec import KDCell, cell_from_dict


def run_any_cell(spec: dict[str, Any], data_root: str | None = None) -> list[dict[str, Any]]:
    """Rows of the cell ``spec`` describes (a distillation/selection cell or a KD cell)."""
    cell = cell_from_dict(spec)
    if isinstance(cell, KDCell):
        from .kd_cell import run_kd_cell

        return run_kd_cell(cell, data_root)
    from .distill_cell import run_distill_cell

    return run_distill_cell(cell, data_root)


def main() -> int:
    spec = json.loads(sys.argv[1])
    data_root = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    rows = run_any_cell(spec, data_root)
    sys.stdout.write("\n@@ROWS@@" + json.dumps(rows, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
