"""Old home of the W&B helpers, kept so ``rnnbench.studies.tracking`` imports keep working.

W&B lives in :mod:`rnnbench.tracking`, the only module that imports wandb.
"""

from rnnbench.tracking import *  # noqa: F401,F403
from rnnbench.tracking import __all__  # noqa: F401
