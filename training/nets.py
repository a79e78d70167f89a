"""The pix2pix networks: U-Net 256 generator and 70x70 PatchGAN discriminator (Isola et al. 2017).

Built like the reference implementation (pytorch-CycleGAN-and-pix2pix) so parameter counts match:
ngf 64 gives ~54.4 M generator parameters, ndf 64 ~2.77 M discriminator parameters.
"""

import torch
from torch import nn

NUM_DOWNS = 8  # 256 px -> 1 px bottleneck: the generator only takes 256 x 256 chips


def _norm(channels):
    # InstanceNorm without running statistics: train and eval mode normalise alike, so eval-mode
    # export and validation see exactly the network that was trained (dropout aside).
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class UnetBlock(nn.Module):
    """One down/up level with its skip connection, wrapping the deeper levels in ``inner``."""

    def __init__(self, outer_nc, inner_nc, in_nc=None, inner=None, outermost=False, innermost=False, dropout=False):
        super().__init__()
        self.outermost = outermost
        in_nc = in_nc or outer_nc
        # InstanceNorm has no affine shift, so the convolutions keep their biases (as the reference does).
        down = [nn.Conv2d(in_nc, inner_nc, 4, 2, 1, bias=True)]
        if outermost:
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1), nn.Tanh()]
            layers = down + [inner] + up
        elif innermost:
            # No norm at the 1x1 bottleneck: instance statistics of a single pixel are degenerate.
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=True), _norm(outer_nc)]
            layers = [nn.LeakyReLU(0.2, True)] + down + up
        else:
            down = [nn.LeakyReLU(0.2, True)] + down + [_norm(inner_nc)]
            up = [nn.ReLU(True), nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=True), _norm(outer_nc)]
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
    bottleneck; it is active only in train mode.
    """

    def __init__(self, in_nc=3, out_nc=3, ngf=64, max_channels=None, dropout=True):
        super().__init__()
        self.config = {"ngf": ngf, "max_channels": max_channels, "dropout": dropout}

        def width(mult):
            w = ngf * mult
            return min(w, max_channels) if max_channels else w

        block = UnetBlock(width(8), width(8), innermost=True)
        for _ in range(NUM_DOWNS - 5):
            block = UnetBlock(width(8), width(8), inner=block, dropout=dropout)
        block = UnetBlock(width(4), width(8), inner=block)
        block = UnetBlock(width(2), width(4), inner=block)
        block = UnetBlock(width(1), width(2), inner=block)
        self.model = UnetBlock(out_nc, width(1), in_nc=in_nc, inner=block, outermost=True)

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
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1), _norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, condition, image):
        return self.model(torch.cat([condition, image], 1))


def init_weights(net, gain=0.02, generator=None):
    """The paper's init: conv weights ~ N(0, 0.02), biases 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def build_generator(ngf=64, max_channels=None, dropout=True):
    return init_weights(UnetGenerator(ngf=ngf, max_channels=max_channels, dropout=dropout))


def build_discriminator(ndf=64):
    return init_weights(PatchDiscriminator(ndf=ndf))


def count_params(net) -> int:
    return sum(p.numel() for p in net.parameters())
