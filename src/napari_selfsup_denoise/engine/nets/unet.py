"""2D/3D U-Net for the Noise2Void family, with the N2V2 variant.

N2V2 (Hoeck et al. 2022) replaces max pooling by max-blur pooling and drops the
top skip connection, which removes the checkerboard artefacts of N2V. With no
full-resolution path it learns fine detail ~4x slower than N2V (issue 12, camera
128^2 at sigma 25, batch 4 x 32^2, depth 2, 16 channels, CPU seeds 0-4: 2.98 dB
median gain at 300 steps, 4 of 5 runs over-smoothed and flagged; 5.32 at 1200
steps, none flagged; N2V 5.58 at 300). Kept it gains 6.38 at 300 steps: the
skip, not max-blur pooling, bilinear upsampling or median masking, is the cause.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(ndim: int) -> type[nn.Module]:
    return nn.Conv3d if ndim == 3 else nn.Conv2d


def _norm(ndim: int) -> type[nn.Module]:
    return nn.BatchNorm3d if ndim == 3 else nn.BatchNorm2d


class ConvBlock(nn.Sequential):
    """Two 3x3(x3) convolutions, each followed by optional batch norm and ReLU."""

    def __init__(self, ndim: int, cin: int, cout: int, batch_norm: bool) -> None:
        layers: list[nn.Module] = []
        for i in range(2):
            layers.append(_conv(ndim)(cin if i == 0 else cout, cout, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(_norm(ndim)(cout))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class MaxBlurPool(nn.Module):
    """Max pooling with stride 1, then a [1, 2, 1] blur with stride 2 (anti-aliased)."""

    def __init__(self, ndim: int, channels: int) -> None:
        super().__init__()
        self.ndim = ndim
        k1 = torch.tensor([1.0, 2.0, 1.0])
        k = k1[:, None] * k1[None, :] if ndim == 2 else k1[:, None, None] * k1[None, :, None] * k1[None, None, :]
        k = (k / k.sum()).expand(channels, 1, *k.shape).contiguous()
        self.kernel: torch.Tensor
        self.register_buffer("kernel", k)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = F.max_pool3d if self.ndim == 3 else F.max_pool2d
        conv = F.conv3d if self.ndim == 3 else F.conv2d
        pad = (0, 1) * self.ndim
        x = pool(F.pad(x, pad, mode="replicate"), kernel_size=2, stride=1)
        return conv(x, self.kernel.to(x.dtype), stride=2, padding=1, groups=self.channels)


class UpShuffle(nn.Module):
    """A 2x2(x2) stride-2 transposed convolution computed as a 1x1 convolution + pixel shuffle.

    The same linear map as ``ConvTranspose(cin, cout, 2, stride=2)``, but its backward pass is a
    plain matrix product: on the CPU the transposed convolution's backward cost ~27 % of a step.
    """

    def __init__(self, ndim: int, cin: int, cout: int) -> None:
        super().__init__()
        self.ndim, self.cout = ndim, cout
        self.conv = _conv(ndim)(cin, cout * 2**ndim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Upsample ``(B, cin, *S)`` to ``(B, cout, *2S)``."""
        if self.ndim == 2:
            return F.pixel_shuffle(self.conv(x), 2)
        b, _, d, h, w = x.shape
        y = self.conv(x).reshape(b, self.cout, 2, 2, 2, d, h, w)
        return y.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, self.cout, 2 * d, 2 * h, 2 * w)


class UNet(nn.Module):
    """U-Net with ``depth`` poolings and ``base * 2**level`` channels.

    Parameters
    ----------
    ndim : int
        2 or 3 spatial dimensions.
    in_channels, out_channels : int
        Image channels in and out.
    depth : int
        Number of down-samplings; inputs must be multiples of ``2**depth``.
    base : int
        Channels at full resolution.
    batch_norm, residual : bool
        Batch normalisation after convolutions; add the input to the output.
    n2v2 : bool
        Max-blur pooling and no top skip connection.
    """

    def __init__(
        self,
        ndim: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 3,
        base: int = 32,
        batch_norm: bool = False,
        residual: bool = False,
        n2v2: bool = False,
    ) -> None:
        super().__init__()
        self.ndim, self.depth, self.n2v2 = ndim, depth, n2v2
        self._upmode = "trilinear" if ndim == 3 else "bilinear"
        self.residual = residual and in_channels == out_channels
        ch = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(
            ConvBlock(ndim, in_channels if i == 0 else ch[i - 1], ch[i], batch_norm) for i in range(depth)
        )
        self.pools = nn.ModuleList(
            MaxBlurPool(ndim, ch[i]) if n2v2 else (nn.MaxPool3d(2) if ndim == 3 else nn.MaxPool2d(2))
            for i in range(depth)
        )
        self.bottom = ConvBlock(ndim, ch[depth - 1], ch[depth], batch_norm)
        # N2V2 upsamples linearly (no top skip, so the output must not be blocky); N2V uses
        # the original U-Net's 2x2 transposed convolution (as UpShuffle), which halves the channels before
        # the skip is concatenated (cheaper than nearest upsampling + a wider first conv).
        self.upconvs = nn.ModuleList(nn.Identity() if n2v2 else UpShuffle(ndim, ch[i + 1], ch[i]) for i in range(depth))
        up_in = [(ch[i + 1] + (0 if i == 0 else ch[i])) if n2v2 else 2 * ch[i] for i in range(depth)]
        self.up = nn.ModuleList(ConvBlock(ndim, up_in[i], ch[i], batch_norm) for i in range(depth))
        self.head = _conv(ndim)(ch[0], out_channels, 1)

    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this."""
        return 2**self.depth

    @property
    def margin(self) -> int:
        """Pixels of context per side that fully cover the receptive field (multiple of 2**depth)."""
        r = 2 * 2**self.depth
        for lv in range(self.depth):
            r += 5 * 2**lv + (2 ** (lv + 1) if self.n2v2 else 0)
        m = self.multiple
        return -(-r // m) * m

    def _upsample(self, h: torch.Tensor) -> torch.Tensor:
        """N2V2's linear 2x upsampling, in float32 whatever the activations' precision.

        CPU autocast already runs it in float32; CUDA autocast would run it in bf16, and its backward pass adds
        each input's gradient up from 16 (2D) or 64 (3D) outputs by atomic adds in bf16: on the H200 that made
        N2V2 lose ~2 dB at equal steps (session 7, benchmarks/gpu_precision.py). The forward values are the same.
        """
        return F.interpolate(h.float(), scale_factor=2.0, mode=self._upmode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise a batch ``(B, C, *spatial)``; sizes must be multiples of :attr:`multiple`."""
        skips = []
        h = x
        for block, pool in zip(self.down, self.pools):
            h = block(h)
            skips.append(h)
            h = pool(h)
        h = self.bottom(h)
        for i in reversed(range(self.depth)):
            h = self._upsample(h) if self.n2v2 else self.upconvs[i](h)
            if not (self.n2v2 and i == 0):
                h = torch.cat([h, skips[i]], dim=1)
            h = self.up[i](h)
        out = self.head(h)
        return out + x if self.residual else out
