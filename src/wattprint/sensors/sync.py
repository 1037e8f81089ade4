"""Waiting for a device's queued work before a window edge is read, without loading a backend.

The meter calls :func:`cuda_synchronize` at each edge when it measures GPUs (``sync_cuda``): CUDA
kernels run asynchronously, so energy read before they finish is billed to the wrong window. It
lives apart from the NVML backend so that the meter imports it without importing a sensor.
"""

from __future__ import annotations

import sys

__all__ = ["cuda_synchronize"]


def cuda_synchronize() -> None:
    """Wait for the CUDA work queued by this process on every visible GPU, through torch.

    Does nothing unless torch is already imported and has initialised CUDA: it never imports
    torch, and never initialises CUDA just to wait for nothing. GPUs on which this process has no
    CUDA context yet are skipped where torch can tell (``torch._C._cuda_hasPrimaryContext``):
    synchronising one would create a context there, costing time and GPU memory.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return
    cuda = torch.cuda
    if not (cuda.is_available() and cuda.is_initialized()):
        return
    has_context = getattr(getattr(torch, "_C", None), "_cuda_hasPrimaryContext", None)
    for device in range(cuda.device_count()):
        if has_context is None or has_context(device):
            cuda.synchronize(device)
