"""Where inference runs: the ``device`` and ``precision`` options of sampling, perturbation,
evaluation and calibration.

``device`` is ``auto`` (the first CUDA GPU where PyTorch sees one, else the CPU), ``cpu``,
``cuda`` or ``cuda:N``. ``precision`` is ``32`` (float32 throughout) or ``bf16``: the network's
matrix products under bfloat16 autocast, the diffusion's arithmetic in float32. torch is
imported where it is used, so that ``--help`` stays fast.

``THREAD_VARIABLES`` name the environment variables that set a CPU thread count.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from typing import Any

from gemdiff.common.errors import GemdiffError

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "NUMBA_NUM_THREADS")

DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"
PRECISIONS = ("32", "bf16")


def resolve_device(name: str | Any = "auto"):
    """The ``torch.device`` an option names; a clear error for a name that is not a device
    or a GPU that is not there."""
    import torch

    if isinstance(name, torch.device):
        return name
    name = str(name)
    if not re.match(DEVICE_PATTERN, name):
        raise GemdiffError(f"device={name!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else \
                f"built for CUDA {torch.version.cuda}"
            raise GemdiffError(f"device={name}: PyTorch sees no CUDA GPU here (torch "
                               f"{torch.__version__}, {build}); use device=cpu or device=auto")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise GemdiffError(f"device={name}: there are {torch.cuda.device_count()} CUDA "
                               f"GPUs here (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return torch.device(name)


def check_precision(precision: str | int) -> str:
    """``precision`` as ``"32"`` or ``"bf16"`` (Hydra reads ``precision=32`` as a number)."""
    value = str(precision)
    if value not in PRECISIONS:
        raise GemdiffError(f"precision={precision!r} is not one of 32, bf16")
    return value


def autocast(device, precision: str | int = "32"):
    """bfloat16 autocast on ``device`` for ``precision="bf16"``; nothing for ``"32"``."""
    import torch

    if check_precision(precision) == "32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
