"""The Residual U-Net of the seed's family, with configurable width and depth.

Each stage is conv–BN–act, then a residual body (conv–BN–act, conv–BN–act, conv–BN) added to it,
then conv–BN–act. The encoder uses LeakyReLU(0.2) and max-pooling; the decoder up-samples with a
transposed convolution (+ BN + ReLU), merges the skip connection by averaging and applies a ReLU
stage. Width 32 and depth 4 give the seed's 19.65 M parameters for four classes; width 8–16 suits
CPU use.

With ``aux_decoder`` the network has a second decoder of the same shape that reads the encoder's
features through dropout (p = 0.5, training only): the dual-branch network of Luo et al. (MICCAI
2022), whose two outputs mixed at random make each other's pseudo-labels
(``TrainConfig.mixed_pseudo_weight``). Only the first decoder predicts; the second is a training aid.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from napari_wss.errors import InputError


def _conv_bn_act(c_in: int, c_out: int, act: type[nn.Module]) -> nn.Sequential:
    module = nn.LeakyReLU(0.2, inplace=True) if act is nn.LeakyReLU else act(inplace=True)
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), module)


class _ResidualStage(nn.Module):
    def __init__(self, c_in: int, c_out: int, act: type[nn.Module]) -> None:
        super().__init__()
        self.head = _conv_bn_act(c_in, c_out, act)
        self.body = nn.Sequential(
            _conv_bn_act(c_out, c_out, act),
            _conv_bn_act(c_out, c_out, act),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.tail = _conv_bn_act(c_out, c_out, act)

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        return self.tail(h + self.body(h))


class _Decoder(nn.Module):
    """Up-sampling path: transposed convolution + BN + ReLU, skip averaged in, a ReLU stage; 3×3 head."""

    def __init__(self, widths: list[int], c: int, num_classes: int) -> None:
        super().__init__()
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for w in reversed(widths):
            self.upsample.append(
                nn.Sequential(
                    nn.ConvTranspose2d(c, w, 3, stride=2, padding=1, output_padding=1, bias=False),
                    nn.BatchNorm2d(w),
                    nn.ReLU(inplace=True),
                )
            )
            self.up.append(_ResidualStage(w, w, nn.ReLU))
            c = w
        self.head = nn.Conv2d(widths[0], num_classes, 3, padding=1)

    def forward(self, x: Tensor, skips: list[Tensor]) -> Tensor:
        return _decode(self, x, skips)


def _decode(decoder: nn.Module, x: Tensor, skips: list[Tensor]) -> Tensor:
    for upsample, stage, skip in zip(decoder.upsample, decoder.up, reversed(skips)):
        x = stage((upsample(x) + skip) * 0.5)
    return decoder.head(x)


class ResidualUNet(nn.Module):
    """Residual U-Net for 2D slices.

    Args:
        in_channels: input channels (1 for MRI).
        num_classes: output classes K, background included.
        width: channels of the first stage; stage ``i`` has ``width · 2^i``.
        depth: number of poolings. Inputs whose sides are not multiples of ``2^depth`` are
            reflect-padded internally and the output is cropped back, so any size at least
            ``2^depth`` works.
        aux_decoder: add the second, dropout-fed decoder (see the module's notes).

    Shapes:
        ``(B, in_channels, H, W) -> (B, num_classes, H, W)`` logits; with ``aux=True`` (a model
        built with ``aux_decoder``) the pair ``(main, auxiliary)``.
    """

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 32, depth: int = 4, aux_decoder: bool = False
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 2 or width < 1 or depth < 1:
            raise ValueError(
                f"need in_channels >= 1, num_classes >= 2, width >= 1, depth >= 1; got "
                f"{in_channels}, {num_classes}, {width}, {depth}"
            )
        self.in_channels, self.num_classes, self.width, self.depth = in_channels, num_classes, width, depth
        widths = [width * 2**i for i in range(depth)]
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.down.append(_ResidualStage(c, w, nn.LeakyReLU))
            c = w
        self.bridge = _ResidualStage(c, 2 * c, nn.LeakyReLU)
        main = _Decoder(widths, 2 * c, num_classes)  # its parts sit on the network itself (checkpoint keys)
        self.upsample, self.up, self.head = main.upsample, main.up, main.head
        self.aux = _Decoder(widths, 2 * c, num_classes) if aux_decoder else None

    @property
    def multiple(self) -> int:
        """Input sides are padded internally to a multiple of this."""
        return 2**self.depth

    def forward(self, x: Tensor, aux: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        if aux and self.aux is None:
            raise InputError("this network has no second decoder (build it with aux_decoder=True)")
        h, w = x.shape[-2:]
        m = self.multiple
        if h < m or w < m:
            raise InputError(
                f"image of {h}x{w} px is smaller than this network's minimum of {m}x{m} px "
                f"(depth {self.depth}); use a smaller depth or a larger image"
            )
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > max(pad_h, pad_w) else "replicate")
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bridge(x)
        out = _decode(self, x, skips)
        out = out[..., :h, :w] if (pad_h or pad_w) else out
        if not aux:
            return out
        drop = [F.dropout(s, 0.5, self.training) for s in skips]
        second = self.aux(F.dropout(x, 0.5, self.training), drop)  # type: ignore[misc]
        return out, (second[..., :h, :w] if (pad_h or pad_w) else second)


def build_model(
    num_classes: int, *, width: int, depth: int, in_channels: int = 1, arch: str = "unet", aux_decoder: bool = False
) -> nn.Module:
    """The network for a run: ``unet`` (:class:`ResidualUNet`) or ``shallow`` (toy experiments)."""
    if arch == "unet":
        return ResidualUNet(in_channels, num_classes, width=width, depth=depth, aux_decoder=aux_decoder)
    if aux_decoder:
        raise InputError("a second decoder needs arch 'unet'")
    if arch == "shallow":
        from napari_wss.models.shallow import ShallowCNN

        return ShallowCNN(in_channels, num_classes, width=width)
    raise InputError(f"arch must be 'unet' or 'shallow', got {arch!r}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
