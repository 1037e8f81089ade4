"""Tiny PyTorch modules for the loader tests, importable by path as ``"tiny_models:TinyNet"``.

A state_dict names no code, so the loader builds ``model_class(**model_kwargs)`` from an import
path; a whole pickled model names these classes inside the file. Both need the classes in a
module, not in a test function. Sized for ``digits``: 64 features, 10 classes, 8x8 images.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """``n_in -> hidden -> n_out``, with a ReLU: 1210 parameters at the defaults."""

    def __init__(self, n_in: int = 64, hidden: int = 16, n_out: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc2 = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class TinyCNN(nn.Module):
    """A convolution and batch norm over ``(1, 8, 8)`` images, then a linear layer."""

    def __init__(self, channels: int = 4, n_out: int = 10) -> None:
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(1, channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels * 8 * 8, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(h.reshape(-1, self.channels * 8 * 8))


class TinyNormNet(nn.Module):
    """``TinyNet`` with a batch norm between its layers, whose running statistics are buffers."""

    def __init__(self, n_in: int = 64, hidden: int = 16, n_out: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.bn(self.fc1(x))))
