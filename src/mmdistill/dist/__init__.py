"""Former name of :mod:`mmdistill.parallel` (kept so that ``mmdistill.dist.context`` / ``.jobs`` imports keep
working): the submodules are the very same module objects. Import :mod:`mmdistill.parallel` in new code."""

import sys

from ..parallel import context, jobs

sys.modules[__name__ + ".context"] = context
sys.modules[__name__ + ".jobs"] = jobs
