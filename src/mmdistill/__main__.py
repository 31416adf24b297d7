"""``python -m mmdistill``, e.g. under ``torchrun --nproc_per_node 2 -m mmdistill distill ...`` (ecosystem.md §C)."""

from .cli import main
from .dist.context import exit_process

exit_process(main())
