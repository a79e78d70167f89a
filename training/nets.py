"""The pix2pix networks: U-Net 256 generator and 70x70 PatchGAN discriminator (Isola et al. 2017).

Built like the reference implementation (pytorch-CycleGAN-and-pix2pix) so parameter counts match:
ngf 64 gives ~54.4 M generator parameters, ndf 64 ~2.77 M discriminator parameters.
"""

import torch
from torch import nn

NUM_DOWNS = 8  # 256 px -> 1 px bottleneck: the generator only takes 256 x 256 chips


# What the released generator is made of (issue 8), each chosen by measurement (docs/training.md):
# - upsample "bilinear": bilinear x2 + 3x3 convolution. A 4x4 stride-2 transposed convolution paints a
#   dot lattice (Odena et al. 2016); nearest x2 + 3x3 left a 2-px hatching over mountains.
# - norm "batch": BatchNorm, exported in eval mode = a fixed per-channel affine. InstanceNorm normalises
#   each chip by its own statistics, so neighbouring chips disagree in tone and the mosaic shows blocks.
# - padding "reflect": with zero padding every chip's border is darker/lighter than its interior and the
#   mosaic carries a band at every chip row even with a 64 px overlap; reflect padding removes it.
# - no dropout: with BatchNorm's running statistics, dropout in training shifts the variance the next
#   layer sees between train and eval mode, and the generator ignores that noise anyway (Isola et al.).
SEAMLESS = {"upsample": "bilinear", "norm": "batch", "padding": "reflect", "dropout": False}
# Checkpoints written before these options existed were built like this (the reference pix2pix).
REFERENCE = {"upsample": "transposed", "norm": "instance", "padding": "zeros", "dropout": True}
UPSAMPLES = ("transposed", "bilinear", "nearest")
NORMS = ("instance", "batch")
PADDINGS = ("zeros", "reflect")


def _norm(kind, channels):
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    # InstanceNorm without running statistics: train and eval mode normalise alike.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


def _down(in_nc, out_nc, padding, bias=True):
    return nn.Conv2d(in_nc, out_nc, 4, 2, 1, bias=bias, padding_mode=padding)


def _up(in_nc, out_nc, upsample, padding, bias=True):
    if upsample == "transposed":
        return [nn.ConvTranspose2d(in_nc, out_nc, 4, 2, 1, bias=bias)]
    # Resize, then convolve: every output pixel gets the same number of kernel taps, so no lattice.
    resize = nn.Upsample(scale_factor=2, mode=upsample, **({"align_corners": False} if upsample == "bilinear" else {}))
    return [resize, nn.Conv2d(in_nc, out_nc, 3, 1, 1, bias=bias, padding_mode=padding)]


class UnetBlock(nn.Module):
    """One down/up level with its skip connection, wrapping the deeper levels in ``inner``."""

    def __init__(self, outer_nc, inner_nc, in_nc=None, inner=None, outermost=False, innermost=False, dropout=False,
                 arch=REFERENCE):
        super().__init__()
        self.outermost = outermost
        in_nc = in_nc or outer_nc
        up_kind, norm, pad = arch["upsample"], arch["norm"], arch["padding"]
        # InstanceNorm has no affine shift, so convolutions before it keep their biases (as the reference
        # does); BatchNorm has its own shift, so a bias before it would be a wasted parameter.
        nb = norm != "batch"
        if outermost:
            up = [nn.ReLU(True), *_up(inner_nc * 2, outer_nc, up_kind, pad), nn.Tanh()]
            layers = [_down(in_nc, inner_nc, pad)] + [inner] + up
        elif innermost:
            # No norm at the 1x1 bottleneck: statistics of a single pixel are degenerate.
            up = [nn.ReLU(True), *_up(inner_nc, outer_nc, up_kind, pad, bias=nb), _norm(norm, outer_nc)]
            layers = [nn.LeakyReLU(0.2, True), _down(in_nc, inner_nc, pad)] + up
        else:
            down = [nn.LeakyReLU(0.2, True), _down(in_nc, inner_nc, pad, bias=nb), _norm(norm, inner_nc)]
            up = [nn.ReLU(True), *_up(inner_nc * 2, outer_nc, up_kind, pad, bias=nb), _norm(norm, outer_nc)]
            layers = down + [inner] + up + ([nn.Dropout(0.5)] if dropout else [])
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net 256: 8 downsamplings with skips; widths ngf*(1,2,4,8,8,8,8,8), optionally capped.

    ``max_channels`` caps every width (e.g. ngf 32, cap 128) for compact models; None = reference.
    ``dropout`` puts the reference's p=0.5 dropout in the three innermost decoder blocks after the
    bottleneck; it is active only in train mode. ``upsample``, ``norm`` and ``padding`` choose between
    the reference pix2pix (transposed, instance, zeros) and the seamless build (see SEAMLESS).
    """

    def __init__(self, in_nc=3, out_nc=3, ngf=64, max_channels=None, dropout=True, upsample="transposed",
                 norm="instance", padding="zeros"):
        super().__init__()
        for value, allowed in ((upsample, UPSAMPLES), (norm, NORMS), (padding, PADDINGS)):
            if value not in allowed:
                raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        self.config = {"ngf": ngf, "max_channels": max_channels, "dropout": dropout, "upsample": upsample,
                       "norm": norm, "padding": padding}
        arch = {"upsample": upsample, "norm": norm, "padding": padding}

        def width(mult):
            w = ngf * mult
            return min(w, max_channels) if max_channels else w

        block = UnetBlock(width(8), width(8), innermost=True, arch=arch)
        for _ in range(NUM_DOWNS - 5):
            block = UnetBlock(width(8), width(8), inner=block, dropout=dropout, arch=arch)
        block = UnetBlock(width(4), width(8), inner=block, arch=arch)
        block = UnetBlock(width(2), width(4), inner=block, arch=arch)
        block = UnetBlock(width(1), width(2), inner=block, arch=arch)
        self.model = UnetBlock(out_nc, width(1), in_nc=in_nc, inner=block, outermost=True, arch=arch)

    @classmethod
    def from_config(cls, cfg: dict) -> "UnetGenerator":
        """Rebuild from a ``config`` dict; keys a checkpoint predates take the reference's values."""
        return cls(**{**REFERENCE, **cfg})

    def forward(self, x):
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN (3 strided layers): one real/fake logit per overlapping 70 px patch.

    Conditional: it sees the input ramp image and the (real or generated) satellite image together.
    """

    def __init__(self, in_nc=6, ndf=64, n_layers=3):
        super().__init__()
        layers = [nn.Conv2d(in_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1), _norm("instance", ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, condition, image):
        return self.model(torch.cat([condition, image], 1))


def init_weights(net, gain=0.02, generator=None):
    """The paper's init: conv weights ~ N(0, 0.02), biases 0; BatchNorm scales ~ N(1, 0.02)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain, generator=generator)
            nn.init.zeros_(m.bias)
    return net


def build_generator(ngf=64, max_channels=None, **arch):
    """``arch``: dropout, upsample, norm, padding (defaults: the reference pix2pix)."""
    return init_weights(UnetGenerator(ngf=ngf, max_channels=max_channels, **arch))


def build_discriminator(ndf=64):
    return init_weights(PatchDiscriminator(ndf=ndf))


def count_params(net) -> int:
    return sum(p.numel() for p in net.parameters())
