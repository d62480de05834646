"""Fast numerics on GPUs: TF32 matmuls/convolutions and cuDNN autotuning; nothing changes on CPUs."""

from __future__ import annotations

import torch


def configure(tf32: bool = True, cudnn_benchmark: bool = True) -> None:
    if not torch.cuda.is_available():
        return
    if tf32:
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = cudnn_benchmark
