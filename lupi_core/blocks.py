"""Restormer building blocks (the paper's Transformer Block, appendix A.1).

LayerNorm over channels, MDTA (multi-Dconv head transposed attention), GDFN
(gated-Dconv feed-forward network), the pre-norm Transformer Block, and the
pixel-(un)shuffle resamplers. Parameter-for-parameter the official Restormer.

The forward passes are arranged for channels-last tensors on CPU, exactly
equivalent to Restormer's: 1x1 convs run as matmuls over pixels, the GDFN's two
branches are computed apart so GELU sees contiguous memory, and MDTA divides
the C x C Gram matrix by the norms instead of normalising the C x HW maps.
Together with `cpu.keep_freed_memory` this halves CPU inference time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pointwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A bias-free 1x1 conv as a matmul over pixels: PyTorch sends batch-1 1x1 convs to a slow path."""
    return F.linear(x.permute(0, 2, 3, 1), weight[:, :, 0, 0]).permute(0, 3, 1, 2)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of each pixel (Restormer's `WithBias` / `BiasFree`)."""

    def __init__(self, channels: int, with_bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.permute(0, 2, 3, 1).float()  # fp32 statistics under bf16 autocast; a no-op in fp32
        if self.bias is not None:
            x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, eps=1e-5)
        else:  # BiasFree divides x itself, not x - mean, by the standard deviation.
            x = x * torch.rsqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5) * self.weight
        return x.permute(0, 3, 1, 2).to(dtype)


def attention_sums(q: torch.Tensor, k: torch.Tensor) -> list[torch.Tensor]:
    """The sums over pixels MDTA's attention is made of: q^T k and the squared channel norms."""
    return [q.transpose(-2, -1) @ k, torch.linalg.vector_norm(q, dim=2).square(),
            torch.linalg.vector_norm(k, dim=2).square()]


class MDTA(nn.Module):
    """Multi-Dconv head Transposed Attention: attention across channels, not pixels."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)
        self.shared: SharedAttention | None = None  # set while the tiles of one image run

    def channel_attention(self, gram: torch.Tensor, q_square: torch.Tensor, k_square: torch.Tensor) -> torch.Tensor:
        """softmax(temperature * cos(q_i, k_j)) from sums over pixels: the Gram matrix q^T k and
        the squared norms of q's and k's channels (F.normalize's floor on the norms)."""
        q_norm, k_norm = q_square.float().sqrt().clamp_min(1e-12), k_square.float().sqrt().clamp_min(1e-12)
        cosine = gram.float() / (q_norm[..., :, None] * k_norm[..., None, :])
        return (cosine * self.temperature).softmax(dim=-1).to(gram.dtype)  # softmax in fp32 under autocast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = self.qkv_dwconv(pointwise(x, self.qkv.weight)).chunk(3, dim=1)
        # b x head x (h w) x c views of the channels-last maps: no copies
        q, k, v = (t.permute(0, 2, 3, 1).reshape(b, h * w, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        if self.shared is None:
            attn = self.channel_attention(*attention_sums(q, k))
        else:
            attn = self.shared.attention(self, q, k, (h, w))
        out = (v @ attn.transpose(-2, -1)).transpose(1, 2).reshape(b, h, w, -1).permute(0, 3, 1, 2)
        return pointwise(out, self.project_out.weight)


class GDFN(nn.Module):
    """Gated-Dconv Feed-forward Network: GELU(x1) * x2 after a depthwise 3x3."""

    def __init__(self, dim: int, expansion: float):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.project_out.in_channels
        gate, value = (F.conv2d(pointwise(x, self.project_in.weight[half]), self.dwconv.weight[half],
                                padding=1, groups=hidden)
                       for half in (slice(0, hidden), slice(hidden, None)))
        return pointwise(F.gelu(gate) * value, self.project_out.weight)


class SharedAttention:
    """One image's MDTA state, shared by its tiles so that they restore as the whole image would.

    MDTA's channel attention is a function of sums over *every* pixel of a feature map; a tile
    restored alone sums over its own pixels only, and a dark or hazy tile then comes out with a
    brightness of its own (a seam). The sums are additive, so they can be collected tile by tile:
    while `collecting`, each MDTA adds the sums over the pixels the current tile owns (`region`,
    in input pixels, scaled to the layer's resolution) and attends with the attention of the
    previous pass (`fixed`), or its own when there is none; `fix()` turns the sums into the
    attention the next pass uses. Inference only.
    """

    def __init__(self) -> None:
        self.fixed: dict[MDTA, torch.Tensor] = {}
        self.sums: dict[MDTA, list[torch.Tensor]] = {}
        self.collecting = False
        self.region: tuple[int, int, int, int] | None = None  # (y0, y1, x0, x1) owned; None: all
        self.input_size: tuple[int, int] = (0, 0)

    def attention(self, layer: MDTA, q: torch.Tensor, k: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.collecting:
            sums = attention_sums(self._owned(q, size), self._owned(k, size))
            if layer in self.sums:
                for total, part in zip(self.sums[layer], sums):
                    total += part
            else:
                self.sums[layer] = sums
        if layer in self.fixed:
            return self.fixed[layer]
        return layer.channel_attention(*attention_sums(q, k))

    def _owned(self, t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The rows of a b x head x (h w) x c map that lie in the owned region."""
        if self.region is None:
            return t
        h, w = size
        scale = self.input_size[0] // h
        y0, y1, x0, x1 = (edge // scale for edge in self.region)
        b, heads, _, c = t.shape
        return t.reshape(b, heads, h, w, c)[:, :, y0:y1, x0:x1].reshape(b, heads, -1, c)

    def fix(self) -> None:
        """The collected sums become the attention every MDTA uses from now on."""
        self.fixed = {layer: layer.channel_attention(*sums) for layer, sums in self.sums.items()}
        self.sums = {}

    def attach(self, model: nn.Module) -> None:
        for module in model.modules():
            if isinstance(module, MDTA):
                module.shared = self

    @staticmethod
    def detach(model: nn.Module) -> None:
        for module in model.modules():
            if isinstance(module, MDTA):
                module.shared = None


class TransformerBlock(nn.Module):
    """TB: x + MDTA(LN(x)), then x + GDFN(LN(x))."""

    def __init__(self, dim: int, heads: int, expansion: float, with_bias: bool = True):
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim, with_bias)
        self.attn = MDTA(dim, heads)
        self.norm2 = ChannelLayerNorm(dim, with_bias)
        self.ffn = GDFN(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def transformer_stage(dim: int, depth: int, heads: int, expansion: float, with_bias: bool) -> nn.Sequential:
    return nn.Sequential(*(TransformerBlock(dim, heads, expansion, with_bias) for _ in range(depth)))


class Downsample(nn.Sequential):
    """Halve resolution, double channels: 3x3 conv to C/2, then PixelUnshuffle(2)."""

    def __init__(self, channels: int):
        super().__init__(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))


class Upsample(nn.Sequential):
    """Double resolution, halve channels: 3x3 conv to 2C, then PixelShuffle(2)."""

    def __init__(self, channels: int):
        super().__init__(nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))
