"""The receptive radius of a fully convolutional generator, measured: how far an output pixel reaches.

Contract 2 promises that every output pixel depends only on the input within ``receptive_radius`` pixels; the
plugin's tiles keep margins at least that wide. The radius is a property of the architecture, so it is
measured on a fresh copy of the network with random weights and random BatchNorm statistics (trained weights
could hide a path behind a dead ReLU and under-report it): the input pixels whose gradient is not zero, for
output pixels at every phase of the alignment (strided convolutions make the reach depend on where a pixel sits
against it: measured on the shipped 5-level build, 94 px at one phase and 124 at another), rounded up to a
multiple of ``round_to``. One backward pass: each phase is its own image of one batch (BatchNorm in eval mode
keeps the images independent).
"""

import copy

import torch

from .nets import UnetGenerator, init_weights


def receptive_radius(generator, round_to=8) -> int:
    side = 4 * generator.alignment
    while True:
        reach = _reach(generator, side)
        if reach < side // 2 - generator.alignment:  # the mirrored padding at the borders was out of reach
            return -(-reach // round_to) * round_to
        side *= 2


def _reach(generator, side):
    net = init_weights(UnetGenerator.from_config(copy.deepcopy(generator.config))).eval()
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1, generator=gen)
            m.running_var.uniform_(0.5, 1.5, generator=gen)
    phases, stride = net.alignment, net.cond_stride if net.cond_nc else 1
    x = torch.randn(phases, 3, side, side, generator=gen, requires_grad=True)
    cond = None
    if net.cond_nc:
        cond = torch.randn(phases, net.cond_nc, side // stride, side // stride, generator=gen, requires_grad=True)
    y = net(x, cond)
    centres = [(side // 2 + t, side // 2 + (t * 7) % phases) for t in range(phases)]
    torch.stack([y[t, :, cy, cx].sum() for t, (cy, cx) in enumerate(centres)]).sum().backward()
    reach = 0
    for t, (cy, cx) in enumerate(centres):
        rows, cols = torch.nonzero(x.grad[t].abs().sum(0) > 0, as_tuple=True)
        reach = max(reach, int((rows - cy).abs().max()), int((cols - cx).abs().max()))
        if cond is not None:  # a plane pixel stands for a stride x stride block: its farthest image pixel
            rows, cols = torch.nonzero(cond.grad[t].abs().sum(0) > 0, as_tuple=True)
            for idx, centre in ((rows, cy), (cols, cx)):
                near, far = int(idx.min()) * stride, int(idx.max()) * stride + stride - 1
                reach = max(reach, centre - near, far - centre)
    return reach
