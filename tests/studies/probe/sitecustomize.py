"""A placement probe (test helper): with ``RNNBENCH_PROBE=FILE`` set, every Python process that
starts with this folder on ``PYTHONPATH`` appends one JSON line to FILE when it exits: the GPU,
thread and rank environment it was started with and the torch thread count it ran with.

Python imports ``sitecustomize`` by itself at start-up, so the probe sees real worker processes
(and the DDP ranks Lightning starts from them) without a line of rnnbench changed.
"""

import atexit
import json
import os
import sys

KEYS = ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
        "RNNBENCH_WORKER_THREADS", "LOCAL_RANK", "NODE_RANK", "RANK", "GROUP_RANK",
        "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
        "SLURM_NTASKS", "SLURM_PROCID", "RNNBENCH_DDP_TRIAL", "RNNBENCH_STORAGE")


def _record(path: str, env: dict) -> None:
    torch = sys.modules.get("torch")
    line = {"pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv, "env": env,
            "torch_threads": torch.get_num_threads() if torch is not None else None}
    with open(path, "a") as fh:  # one short write per process: lines do not interleave
        fh.write(json.dumps(line) + "\n")


if os.environ.get("RNNBENCH_PROBE"):
    atexit.register(_record, os.environ["RNNBENCH_PROBE"],
                    {k: os.environ.get(k) for k in KEYS})
