"""Fast numerics on GPUs: TF32 matmuls/convolutions and cuDNN autotuning; nothing changes on CPUs."""

from __future__ import annotations

import torch


def configure(tf32: bool = True, cudnn_benchmark: bool = True, threads: int | None = None) -> None:
    if threads:
        torch.set_num_threads(threads)  # trials in parallel on one CPU must not fight over its cores
    if not torch.cuda.is_available():
        return
    if tf32:
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = cudnn_benchmark


def device_name() -> str:
    """The accelerator a job trains on, for reports: the GPU's name, else the CPU and its core count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    import os
    import platform

    return f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()}"
