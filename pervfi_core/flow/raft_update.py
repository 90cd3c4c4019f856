"""RAFT update operator (Teed & Deng, ECCV 2020, §3.3 "Iterative Updates").

One iteration maps (hidden state h, context, correlation lookup, current flow) at 1/8 resolution to
(new h, Δflow[, upsampling mask]):

* motion encoder: correlation features and flow features -> motion features (the flow is appended);
* GRU, Eq. (4): z = σ(conv[h, x]), r = σ(conv[h, x]), q = tanh(conv[r·h, x]), h = (1-z)·h + z·q with
  x = [context, motion features]; RAFT large uses a separable pair (1×5 then 5×1), RAFT-small one 3×3;
* flow head: two 3×3 convolutions -> Δflow (B, 2, h, w) in 1/8-grid pixels;
* RAFT large also predicts the convex-upsampling weights, 0.25 · mask(h): (B, 9·factor², h, w) (§3.3).

Names follow the official checkpoints (``encoder.convc1``, ``gru.convz1``, ``flow_head.conv1``, ``mask.0``).
"""
from __future__ import annotations


import torch
from torch import nn


class ConvGRU(nn.Module):
    """Eq. (4) with 3×3 convolutions (RAFT-small). h (B, hidden, h, w), x (B, input, h, w)."""

    def __init__(self, *, hidden_dim: int, input_dim: int):
        super().__init__()
        self.convz = nn.Conv2d(hidden_dim + input_dim, hidden_dim, 3, padding=1)
        self.convr = nn.Conv2d(hidden_dim + input_dim, hidden_dim, 3, padding=1)
        self.convq = nn.Conv2d(hidden_dim + input_dim, hidden_dim, 3, padding=1)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return gru_step(self.convz, self.convr, self.convq, h, x)


class SepConvGRU(nn.Module):
    """Eq. (4) twice: 1×5 convolutions (horizontal), then 5×1 (vertical) (RAFT large)."""

    def __init__(self, *, hidden_dim: int, input_dim: int):
        super().__init__()
        total = hidden_dim + input_dim
        self.convz1 = nn.Conv2d(total, hidden_dim, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(total, hidden_dim, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(total, hidden_dim, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(total, hidden_dim, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(total, hidden_dim, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(total, hidden_dim, (5, 1), padding=(2, 0))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = gru_step(self.convz1, self.convr1, self.convq1, h, x)
        return gru_step(self.convz2, self.convr2, self.convq2, h, x)


def gru_step(convz: nn.Module, convr: nn.Module, convq: nn.Module, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. (4): one convolutional GRU update of ``h`` with input ``x``."""
    hx = torch.cat([h, x], dim=1)
    z = torch.sigmoid(convz(hx))
    r = torch.sigmoid(convr(hx))
    q = torch.tanh(convq(torch.cat([r * h, x], dim=1)))
    return (1 - z) * h + z * q


class FlowHead(nn.Module):
    """h (B, in, h, w) -> Δflow (B, 2, h, w): conv3×3 -> ReLU -> conv3×3."""

    def __init__(self, *, in_channels: int, hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 2, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class MotionEncoder(nn.Module):
    """corr (B, corr_planes, h, w), flow (B, 2, h, w) -> (B, out_channels, h, w), the flow in the last 2 channels.

    Correlation branch: a 1×1 conv to ``corr_widths[0]`` (``convc1``), then a 3×3 to ``corr_widths[1]``
    (``convc2``) when given; flow branch: 7×7 then 3×3 (``convf1``, ``convf2``) to ``flow_widths``; then a 3×3
    over both (``conv``), each followed by a ReLU. RAFT large: (256, 192), (128, 64), 128 out; RAFT-small:
    (96,), (64, 32), 82 out.
    """

    def __init__(self, *, corr_planes: int, corr_widths: tuple[int, ...], flow_widths: tuple[int, int],
                 out_channels: int):
        super().__init__()
        self.convc1 = nn.Conv2d(corr_planes, corr_widths[0], 1)
        self.convc2 = nn.Conv2d(corr_widths[0], corr_widths[1], 3, padding=1) if len(corr_widths) > 1 else None
        self.convf1 = nn.Conv2d(2, flow_widths[0], 7, padding=3)
        self.convf2 = nn.Conv2d(flow_widths[0], flow_widths[1], 3, padding=1)
        self.conv = nn.Conv2d(corr_widths[-1] + flow_widths[1], out_channels - 2, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, flow: torch.Tensor, corr: torch.Tensor) -> torch.Tensor:
        cor = self.relu(self.convc1(corr))
        if self.convc2 is not None:
            cor = self.relu(self.convc2(cor))
        flo = self.relu(self.convf2(self.relu(self.convf1(flow))))
        out = self.relu(self.conv(torch.cat([cor, flo], dim=1)))
        return torch.cat([out, flow], dim=1)


class BasicUpdateBlock(nn.Module):
    """RAFT-large update: SepConvGRU, flow head and convex-upsampling mask (9·factor² channels)."""

    def __init__(self, *, corr_planes: int, hidden_dim: int = 128, context_dim: int = 128, factor: int = 8):
        super().__init__()
        self.encoder = MotionEncoder(corr_planes=corr_planes, corr_widths=(256, 192), flow_widths=(128, 64),
                                     out_channels=128)
        self.gru = SepConvGRU(hidden_dim=hidden_dim, input_dim=context_dim + 128)
        self.flow_head = FlowHead(in_channels=hidden_dim, hidden=256)
        self.mask = nn.Sequential(
            nn.Conv2d(hidden_dim, 256, 3, padding=1), nn.ReLU(), nn.Conv2d(256, 9 * factor**2, 1)
        )

    def forward(self, net, inp, corr, flow) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (hidden state, upsampling mask (B, 9·factor², h, w), Δflow (B, 2, h, w))."""
        motion = self.encoder(flow, corr)
        net = self.gru(net, torch.cat([inp, motion], dim=1))
        # The 0.25 scale is part of the trained model: the checkpoints expect it.
        return net, 0.25 * self.mask(net), self.flow_head(net)


class SmallUpdateBlock(nn.Module):
    """RAFT-small update: ConvGRU and flow head; no mask (the flow is upsampled bilinearly)."""

    def __init__(self, *, corr_planes: int, hidden_dim: int = 96, context_dim: int = 64):
        super().__init__()
        self.encoder = MotionEncoder(corr_planes=corr_planes, corr_widths=(96,), flow_widths=(64, 32),
                                     out_channels=82)
        self.gru = ConvGRU(hidden_dim=hidden_dim, input_dim=context_dim + 82)
        self.flow_head = FlowHead(in_channels=hidden_dim, hidden=128)

    def forward(self, net, inp, corr, flow) -> tuple[torch.Tensor, None, torch.Tensor]:
        """-> (hidden state, None, Δflow (B, 2, h, w))."""
        motion = self.encoder(flow, corr)
        net = self.gru(net, torch.cat([inp, motion], dim=1))
        return net, None, self.flow_head(net)
