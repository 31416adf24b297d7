"""``python -m mmdistill``, e.g. under ``torchrun --nproc_per_node 2 -m mmdistill distill ...``."""

from .parallel.context import exit_process, quiet_unless_main

quiet_unless_main()  # rank 0 prints
from .cli import main  # noqa: E402

exit_process(main())
