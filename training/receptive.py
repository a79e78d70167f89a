"""The receptive radius of a fully convolutional generator, measured: how far an output pixel reaches.

Contract 2 promises that every output pixel depends only on the input within ``receptive_radius`` pixels; the
plugin's tiles keep margins at least that wide. The radius is a property of the architecture, so it is
measured on a fresh copy of the network with random weights and random BatchNorm statistics (trained weights
could hide a path behind a dead ReLU and under-report it): the union, over several output pixels, of the input
pixels whose gradient is not zero, rounded up to a multiple of ``round_to``. Strided convolutions make the reach
depend on where the pixel sits against the alignment (measured on the shipped 5-level build: 94 px at one phase,
124 at another), so every phase is tried.
"""

import copy

import torch

from .nets import UnetGenerator, init_weights


def receptive_radius(generator, round_to=8) -> int:
    side = 8 * generator.alignment
    while True:
        reach = _reach(generator, side, generator.alignment)
        if reach < side // 2 - generator.alignment:  # the mirrored padding at the borders was out of reach
            return -(-reach // round_to) * round_to
        side *= 2


def _reach(generator, side, phases):
    net = init_weights(UnetGenerator.from_config(copy.deepcopy(generator.config))).double().eval()
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1, generator=gen)
            m.running_var.uniform_(0.5, 1.5, generator=gen)
    stride = getattr(net, "cond_stride", 1)
    reach = 0
    for t in range(phases):
        x = torch.randn(1, 3, side, side, dtype=torch.float64, generator=gen, requires_grad=True)
        cond = None
        if net.cond_nc:
            cond = torch.randn(1, net.cond_nc, side // stride, side // stride, dtype=torch.float64, generator=gen,
                               requires_grad=True)
        y = net(x, cond)
        cy, cx = side // 2 + t, side // 2 + (t * 7) % phases
        y[0, :, cy, cx].sum().backward()
        rows, cols = torch.nonzero(x.grad.abs().sum(1)[0] > 0, as_tuple=True)
        reach = max(reach, int((rows - cy).abs().max()), int((cols - cx).abs().max()))
        if cond is not None:  # a plane pixel stands for a stride x stride block: its farthest image pixel
            rows, cols = torch.nonzero(cond.grad.abs().sum(1)[0] > 0, as_tuple=True)
            for idx, centre in ((rows, cy), (cols, cx)):
                near, far = idx.min() * stride, idx.max() * stride + stride - 1
                reach = max(reach, int(centre - near), int(far - centre))
    return reach
