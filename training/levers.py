"""The texture levers issue 19 asks to measure one at a time, each off by default (the recipe stays the one
measured: BCE + 100 x L1, one learning rate).

- ``gan_loss``: the adversarial objective - "bce" (the paper's), "lsgan" (least squares, Mao et al. 2017) or
  "hinge" (Lim & Ye 2017; SAGAN, BigGAN).
- ``feature_matching``: L1 between the discriminator's intermediate activations on the real and the generated
  image (pix2pixHD, Wang et al. 2018): a denser, steadier signal than one logit per patch.
- ``spectrum_loss``: L1 between the log-amplitude spectra of the generated and the real image. The amplitude
  at each frequency says how much texture there is at that scale; the phase (where it lies) is left free,
  which an L1 on pixels cannot do - it averages unpredictable texture away.
- ``diff_augment``: the same random translation and cutout applied to an (input, image) pair before the
  discriminator sees it, real and generated alike, differentiably (Zhao et al. 2020, DiffAugment): on a
  thousand chips the discriminator otherwise memorises the real images.

Two learning rates (TTUR) are the trainer's ``--lr-d``.
"""

import torch
import torch.nn.functional as F

GAN_LOSSES = ("bce", "lsgan", "hinge")
# The trainer's options for them (``training.train``), recorded with the weights (``training.trainable``) and
# passed on by a fine-tune (``training.finetune``); absent from weights trained before they existed: the recipe.
LEVERS = ("gan_loss", "feature_matching", "spectrum_loss", "diff_augment", "lr_d")
TRANSLATE = 1 / 8  # DiffAugment's defaults: shifts up to 1/8 of the side, a cutout of half the side
CUTOUT = 1 / 2
_EPS = 1e-3  # in the log of amplitudes: flat areas have (near) zero energy at high frequencies


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor):
    """(loss, real term, fake term) of the discriminator on its logits for real and generated pairs; the loss is
    the terms' mean for BCE and LSGAN (the paper's slowed-down D), their sum for the hinge."""
    real, fake = real.float(), fake.float()
    if kind == "bce":
        terms = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real)),
                 F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    elif kind == "lsgan":
        terms = (torch.mean((real - 1) ** 2), torch.mean(fake**2))
    elif kind == "hinge":
        terms = (torch.mean(F.relu(1 - real)), torch.mean(F.relu(1 + fake)))
        return terms[0] + terms[1], terms[0], terms[1]
    else:
        raise ValueError(f"unknown GAN loss {kind!r}: one of {', '.join(GAN_LOSSES)}")
    return 0.5 * (terms[0] + terms[1]), terms[0], terms[1]


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss on the discriminator's logits for its pairs."""
    fake = fake.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "lsgan":
        return torch.mean((fake - 1) ** 2)
    if kind == "hinge":
        return -torch.mean(fake)
    raise ValueError(f"unknown GAN loss {kind!r}: one of {', '.join(GAN_LOSSES)}")


def feature_matching(real_features, fake_features) -> torch.Tensor:
    """Mean over layers of the L1 between activations; the real ones are targets (no gradient)."""
    terms = [torch.mean(torch.abs(f.float() - r.detach().float())) for r, f in zip(real_features, fake_features)]
    return sum(terms) / len(terms)


def log_amplitude(images: torch.Tensor) -> torch.Tensor:
    """log(|FFT| + eps) of each channel of (N, C, H, W) images, over the real-input half-spectrum."""
    return torch.log(torch.abs(torch.fft.rfft2(images.float(), norm="ortho")) + _EPS)


def spectrum_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 between log-amplitude spectra: 0 for any circular shift of the real image (phase-free)."""
    return torch.mean(torch.abs(log_amplitude(fake) - log_amplitude(real.detach())))


def diff_augment(condition: torch.Tensor, *images: torch.Tensor, generator=None) -> tuple:
    """(condition, *images), each moved by one random translation (zero fill) and cut by one cutout per sample,
    the same for the condition and every image of that sample (a pair stays a pair; a real and a generated
    image of one input get the same draw); differentiable. ``generator``: a torch.Generator for the draws."""
    n, _, h, w = condition.shape
    stack = torch.cat([condition, *images], 1)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * torch.tensor([h * TRANSLATE, w * TRANSLATE])
    shift = shift.round().long().tolist()
    ch, cw = int(h * CUTOUT + 0.5), int(w * CUTOUT + 0.5)
    corner = (torch.rand(n, 2, generator=generator) * torch.tensor([h - ch + 1, w - cw + 1])).long().tolist()
    out = []
    for k in range(n):
        dy, dx = shift[k]
        moved = F.pad(stack[k], (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
        moved = moved[:, max(-dy, 0) : max(-dy, 0) + h, max(-dx, 0) : max(-dx, 0) + w]
        keep = torch.ones(1, h, w, dtype=stack.dtype, device=stack.device)
        y0, x0 = corner[k]
        keep[:, y0 : y0 + ch, x0 : x0 + cw] = 0
        out.append(moved * keep)
    out = torch.stack(out)
    sizes = [condition.shape[1]] + [im.shape[1] for im in images]
    return tuple(torch.split(out, sizes, dim=1))
