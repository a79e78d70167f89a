"""The pix2pix networks: U-Net generator and 70x70 PatchGAN discriminator (Isola et al. 2017).

Built like the reference implementation (pytorch-CycleGAN-and-pix2pix) so parameter counts match:
ngf 64 gives ~54.4 M generator parameters, ndf 64 ~2.77 M discriminator parameters.

Two depths matter here. ``num_downs`` 8 is the paper's U-Net 256: its 1 px bottleneck sees the whole chip, so
each chip decides its own palette and the picture depends on where the chip grid falls (model contract 1).
A shallower U-Net is fully convolutional with a bounded receptive field (``receptive_radius``): run on tiles
whose margins cover that radius and whose origins sit on multiples of ``alignment`` = 2 ** num_downs, it gives
the same pixels wherever the tiles fall (model contract 2). Contract-2 generators also take conditioning
planes (latitude, look, colour guide): ``cond_nc`` channels concatenated to the input of every encoder level,
average-pooled to that level's resolution.
"""

import torch
import torch.nn.functional as F
from torch import nn

NUM_DOWNS = 8  # the paper's U-Net 256: 256 px -> 1 px bottleneck, only 256 x 256 chips


# What the released generator is made of, each chosen by measurement (docs/training.md):
# - upsample "bilinear": bilinear x2 + 3x3 convolution. A 4x4 stride-2 transposed convolution paints a
#   dot lattice (Odena et al. 2016); nearest x2 + 3x3 left a 2-px hatching over mountains.
# - norm "batch": BatchNorm, exported in eval mode = a fixed per-channel affine. InstanceNorm normalises
#   each chip by its own statistics, so neighbouring chips disagree in tone and the mosaic shows blocks.
# - padding "reflect": with zero padding every chip's border is darker/lighter than its interior and the
#   mosaic carries a band at every chip row even with a 64 px overlap; reflect padding removes it.
# - no dropout: with BatchNorm's running statistics, dropout in training shifts the variance the next
#   layer sees between train and eval mode, and the generator ignores that noise anyway (Isola et al.).
SEAMLESS = {"upsample": "bilinear", "norm": "batch", "padding": "reflect", "dropout": False}
# Checkpoints written before these options existed were built like this (the reference pix2pix U-Net 256): the
# defaults of UnetGenerator, which ``from_config`` fills in for the keys a checkpoint's config lacks.
REFERENCE = {"upsample": "transposed", "norm": "instance", "padding": "zeros", "dropout": True,
             "num_downs": NUM_DOWNS}
# The trainer's default depth (training/train.py's DEFAULT_NUM_DOWNS; tests/training/test_nets.py keeps them
# equal): 5 levels, model contract 2 (tiling-independent, receptive radius 128 px, alignment 32).
DEFAULT_NUM_DOWNS = 5
UPSAMPLES = ("transposed", "bilinear", "nearest")
NORMS = ("instance", "batch")
PADDINGS = ("zeros", "reflect")


def _norm(kind, channels):
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    # InstanceNorm without running statistics: train and eval mode normalise alike.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


def _down(in_nc, out_nc, padding, bias=True, antialias=False):
    return (BlurDown if antialias else nn.Conv2d)(in_nc, out_nc, 4, 2, 1, bias=bias, padding_mode=padding)


class BlurDown(nn.Conv2d):
    """The 4x4 stride-2 convolution of an encoder level after a fixed 3x3 binomial blur of its input
    (anti-aliased downsampling, Zhang 2019): a stride-2 sampling of an unblurred input lets the network behave
    differently at even and odd positions, at every level - a pattern locked to the grid, with the period of a
    level's stride, in the output (measured in the trained models' mosaics: 4 and 8 px, a tenth of a grey level). The blur is a depthwise convolution with fixed weights; the learnt weight and bias
    keep the plain convolution's names, so weights carry over either way (``training.warm_start``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = (taps[:, None] * taps[None, :] / 16.0).expand(self.in_channels, 1, 3, 3).contiguous()
        self.register_buffer("blur", kernel, persistent=False)  # not in the state dict: names as a plain conv's

    def forward(self, x):
        mode = "reflect" if self.padding_mode == "reflect" else "constant"
        blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode=mode), self.blur.to(x.dtype), groups=self.in_channels)
        return super().forward(blurred)


def _up(in_nc, out_nc, upsample, padding, bias=True):
    if upsample == "transposed":
        return [nn.ConvTranspose2d(in_nc, out_nc, 4, 2, 1, bias=bias)]
    # Resize, then convolve: every output pixel gets the same number of kernel taps, so no lattice.
    resize = nn.Upsample(scale_factor=2, mode=upsample, **({"align_corners": False} if upsample == "bilinear" else {}))
    return [resize, nn.Conv2d(in_nc, out_nc, 3, 1, 1, bias=bias, padding_mode=padding)]


class UnetBlock(nn.Module):
    """One down/up level with its skip connection, wrapping the deeper levels in ``inner``.

    With ``cond_nc`` > 0 the level's down convolution also sees the conditioning planes, average-pooled by
    ``cond_pool`` from their own resolution to this level's input, concatenated after the activation. The
    module names stay those of the unconditioned block, so weights carry over between the two
    (``warm_start`` pads the extra input channels with zeros).
    """

    def __init__(self, outer_nc, inner_nc, in_nc=None, inner=None, outermost=False, innermost=False, dropout=False,
                 arch=REFERENCE, cond_nc=0, cond_pool=1):
        super().__init__()
        self.outermost = outermost
        self.cond_nc, self.cond_pool = cond_nc, cond_pool
        in_nc = in_nc or outer_nc
        up_kind, norm, pad = arch["upsample"], arch["norm"], arch["padding"]
        aa = arch.get("antialias", False)
        # InstanceNorm has no affine shift, so convolutions before it keep their biases (as the reference
        # does); BatchNorm has its own shift, so a bias before it would be a wasted parameter.
        nb = norm != "batch"
        if outermost:
            up = [nn.ReLU(True), *_up(inner_nc * 2, outer_nc, up_kind, pad), nn.Tanh()]
            layers = [_down(in_nc + cond_nc, inner_nc, pad, antialias=aa)] + [inner] + up
            self._act, self._down, self._inner = None, 0, 1
        elif innermost:
            # No norm at the bottleneck: at the paper's depth it is 1x1, and statistics of one pixel are degenerate.
            up = [nn.ReLU(True), *_up(inner_nc, outer_nc, up_kind, pad, bias=nb), _norm(norm, outer_nc)]
            layers = [nn.LeakyReLU(0.2, True), _down(in_nc + cond_nc, inner_nc, pad, antialias=aa)] + up
            self._act, self._down, self._inner = 0, 1, None
        else:
            down = [nn.LeakyReLU(0.2, True), _down(in_nc + cond_nc, inner_nc, pad, bias=nb, antialias=aa),
                    _norm(norm, inner_nc)]
            up = [nn.ReLU(True), *_up(inner_nc * 2, outer_nc, up_kind, pad, bias=nb), _norm(norm, outer_nc)]
            layers = down + [inner] + up + ([nn.Dropout(0.5)] if dropout else [])
            self._act, self._down, self._inner = 0, 1, 3
        self.model = nn.Sequential(*layers)

    def forward(self, x, cond=None):
        """``cond``: the conditioning planes at their own resolution (passed down unchanged), or None."""
        if cond is None:
            return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)
        layers = list(self.model)
        h = layers[self._act](x) if self._act is not None else x
        if self.cond_nc:
            here = F.avg_pool2d(cond, self.cond_pool) if self.cond_pool > 1 else cond
            h = torch.cat([h, here], 1)
        h = layers[self._down](h)
        rest = layers[self._down + 1 :]
        if self._inner is not None:
            for layer in layers[self._down + 1 : self._inner]:  # the down path's norm
                h = layer(h)
            h = layers[self._inner](h, cond)
            rest = layers[self._inner + 1 :]
        for layer in rest:
            h = layer(h)
        return h if self.outermost else torch.cat([x, h], 1)


class UnetGenerator(nn.Module):
    """U-Net with ``num_downs`` downsamplings and skips; widths ngf*(1,2,4,8,8,...), optionally capped.

    ``max_channels`` caps every width (e.g. ngf 32, cap 128) for compact models; None = reference.
    ``dropout`` puts the reference's p=0.5 dropout in the (up to three) decoder blocks of width ngf*8 between the
    bottleneck and the ngf*4 level; it is active only in train mode. ``upsample``, ``norm`` and ``padding`` choose
    between the reference pix2pix (transposed, instance, zeros) and the seamless build (see SEAMLESS).
    ``num_downs`` 5-8; below 8 the network is tiling-independent (see the module's docstring). ``antialias``
    blurs each encoder level's input before its strided convolution (``BlurDown``). ``cond_nc``
    conditioning channels come at 1/``cond_stride`` of the input's resolution (``forward(x, cond)``) and go to
    every encoder level whose input is that coarse or coarser: they carry palette (latitude, look, a colour
    guide averaged over kilometres), not texture, and full-resolution planes would cost most of a forward.
    """

    def __init__(self, in_nc=3, out_nc=3, ngf=64, max_channels=None, dropout=True, upsample="transposed",
                 norm="instance", padding="zeros", num_downs=NUM_DOWNS, cond_nc=0, cond_stride=8, antialias=False):
        super().__init__()
        for value, allowed in ((upsample, UPSAMPLES), (norm, NORMS), (padding, PADDINGS)):
            if value not in allowed:
                raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        if not 5 <= num_downs <= NUM_DOWNS:
            raise ValueError(f"num_downs must be 5-{NUM_DOWNS}, got {num_downs}")
        self.config = {"ngf": ngf, "max_channels": max_channels, "dropout": dropout, "upsample": upsample,
                       "norm": norm, "padding": padding}
        if cond_nc and (cond_stride < 1 or cond_stride & (cond_stride - 1) or cond_stride >= 2**num_downs):
            raise ValueError(f"cond_stride must be a power of two below 2 ** num_downs, got {cond_stride}")
        if num_downs != NUM_DOWNS or cond_nc:  # older checkpoints' configs lack these keys: they are the defaults
            self.config.update(num_downs=num_downs, cond_nc=cond_nc, cond_stride=cond_stride)
        if antialias:  # configs without the key: plain strided convolutions
            self.config["antialias"] = True
        self.num_downs, self.cond_nc, self.cond_stride = num_downs, cond_nc, cond_stride
        arch = {"upsample": upsample, "norm": norm, "padding": padding, "antialias": antialias}

        def width(mult):
            w = ngf * mult
            return min(w, max_channels) if max_channels else w

        def cond(level):
            """(channels, pooling) of the conditioning that level ``level`` (1 = outermost) sees."""
            scale = 2 ** (level - 1)  # the level's input is 1/scale of the full resolution
            return (cond_nc, scale // cond_stride) if cond_nc and scale >= cond_stride else (0, 1)

        widths = [width(1), width(2), width(4)] + [width(8)] * (num_downs - 3)
        level = num_downs
        def level_cond(level):
            return dict(zip(("cond_nc", "cond_pool"), cond(level)))

        block = UnetBlock(widths[-2], widths[-1], innermost=True, arch=arch, **level_cond(num_downs))
        for level in range(num_downs - 1, 1, -1):
            # The reference's dropout: the ngf*8 levels between the bottleneck and level 4.
            block = UnetBlock(widths[level - 2], widths[level - 1], inner=block, dropout=dropout and level >= 5,
                              arch=arch, **level_cond(level))
        self.model = UnetBlock(out_nc, width(1), in_nc=in_nc, inner=block, outermost=True, arch=arch, **level_cond(1))

    @classmethod
    def from_config(cls, cfg: dict) -> "UnetGenerator":
        """Rebuild from a ``config`` dict; keys a checkpoint predates take the reference's values."""
        return cls(**{**REFERENCE, **cfg})

    @property
    def alignment(self) -> int:
        """Tile sides and origins must be multiples of this for the output not to depend on the tiling."""
        return 2**self.num_downs

    def forward(self, x, cond=None):
        if self.cond_nc:
            if cond is None or cond.shape[1] != self.cond_nc:
                raise ValueError(f"this generator takes {self.cond_nc} conditioning channels")
            return self.model(x, cond)
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

    def features(self, condition, image) -> list:
        """The activations after each LeakyReLU (feature matching, ``training.levers``), then the logits."""
        out, x = [], torch.cat([condition, image], 1)
        for layer in self.model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                out.append(x)
        return out + [x]


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
    """A freshly initialised generator. ``arch``: dropout, upsample, norm, padding, num_downs, cond_nc,
    cond_stride, antialias; the defaults are the trainer's (``SEAMLESS`` at ``DEFAULT_NUM_DOWNS`` levels: contract 2,
    unconditioned unless ``cond_nc``). ``**REFERENCE`` builds the paper's U-Net 256 (UnetGenerator's own
    defaults, which a checkpoint's config leaves out)."""
    return init_weights(UnetGenerator(ngf=ngf, max_channels=max_channels,
                                      **{**SEAMLESS, "num_downs": DEFAULT_NUM_DOWNS, **arch}))


def build_discriminator(ndf=64):
    return init_weights(PatchDiscriminator(ndf=ndf))


def count_params(net) -> int:
    return sum(p.numel() for p in net.parameters())
