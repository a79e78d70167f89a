"""Train the pix2pix generator on paired chips.

    python -m training.train --data ../shared/data/seed-pairs --out runs/demo --max-steps 300 \
        --ngf 16 --val-regions CALI

Writes into --out: losses.csv, val.csv, loss_curve.png, grids/step_*.png (input | real | generated,
eval mode, validation regions), checkpoints/last.pt (every --checkpoint-every steps and at the end),
summary.json. ``--resume`` continues from checkpoints/last.pt and ends with the same weights as a run
that was never stopped (same flags, same device). Checkpoints count ``images_seen``: the warm-start source's
own count plus this run's images, so training adds up across sessions.
"""

import argparse
import csv
import json
import math
import os
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from . import levers, plots
from .conditioning import ConditioningSpec
from .data import EpochSampler, PairDataset, find_pairs, split_by_region, to_uint8
from .levers import GAN_LOSSES
from .nets import NORMS, NUM_DOWNS, PADDINGS, SEAMLESS, UPSAMPLES, build_discriminator, build_generator, count_params
from .precision import choose_cpu_precision
from .recalibrate import recalibrate, training_inputs
from .regions import dataset_regions, region_geo
from .lineage import describe_source, widened_range
from .warm_start import load_discriminator_weights, load_generator_weights

# Model contract 2 by default: a 5-level U-Net (receptive radius 96 px, alignment 32) that sees latitude, look
# and colour guide. ``--num-downs 8`` trains the contract-1 U-Net 256 (no conditioning).
DEFAULT_NUM_DOWNS = 5

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train the pix2pix U-Net generator (default 5 levels: model contract 2; cGAN + 100*L1) on paired "
                    "elevation/satellite chips.",
    )
    p.add_argument("--data", nargs="+", required=True, help="dataset folders (region folders, or folders of them)")
    p.add_argument("--out", required=True, help="run folder: logs, plots, checkpoints")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="train this many passes over the training chips (default 200)")
    length.add_argument("--max-steps", type=int, help="train this many optimisation steps instead of epochs")
    p.add_argument("--batch-size", type=int, default=1, help="chips per step (paper: 1; default 1)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default auto: cuda if present")
    p.add_argument("--ngf", type=int, default=64, help="generator base width (reference 64: 54.4 M parameters)")
    p.add_argument("--max-channels", type=int, default=None,
                   help="cap every generator width at this many channels (compact models); default no cap")
    p.add_argument("--ndf", type=int, default=64, help="discriminator base width (default 64)")
    p.add_argument("--dropout", action=argparse.BooleanOptionalAction, default=SEAMLESS["dropout"],
                   help="the reference's p=0.5 dropout in the three innermost decoder blocks, train mode only "
                        "(default off: it shifts BatchNorm's statistics between train and eval)")
    p.add_argument("--upsample", choices=UPSAMPLES, default=SEAMLESS["upsample"],
                   help="decoder upsampling (default bilinear x2 + 3x3 conv; transposed = reference, paints a lattice)")
    p.add_argument("--norm", choices=NORMS, default=SEAMLESS["norm"],
                   help="generator normalisation (default batch: fixed statistics at inference, no per-chip tone)")
    p.add_argument("--padding", choices=PADDINGS, default=SEAMLESS["padding"],
                   help="generator convolution padding (default reflect: chip borders behave like the interior)")
    p.add_argument("--antialias", action=argparse.BooleanOptionalAction, default=False,
                   help="blur each encoder level's input before its strided convolution (anti-aliased "
                        "downsampling, against a pattern of the alignment's period; default off)")
    p.add_argument("--num-downs", type=int, default=DEFAULT_NUM_DOWNS, choices=range(5, NUM_DOWNS + 1),
                   metavar="{5..8}",
                   help="generator depth (default 5: model contract 2, tiling-independent, conditioned on latitude, "
                        "look and colour guide; 8: the contract-1 U-Net 256 on 256 px chips, unconditioned)")
    p.add_argument("--init-from", default=None, metavar="PATH",
                   help="warm start: weights from a checkpoint or the shipped trainable weights (.pt: generator and "
                        "discriminator) or an exported model (.onnx: generator only); tensors are matched by name, "
                        "and a conditioned layer that gained input channels (a new look) keeps the old ones")
    p.add_argument("--lambda-l1", type=float, default=100.0, help="weight of the L1 term (default 100)")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (default 2e-4)")
    texture = p.add_argument_group("texture levers (training.levers; each off by default: the measured recipe)")
    texture.add_argument("--gan-loss", choices=GAN_LOSSES, default="bce",
                         help="adversarial objective (default bce, the paper's; lsgan; hinge)")
    texture.add_argument("--feature-matching", type=float, default=0.0, metavar="W",
                         help="weight of discriminator feature matching, pix2pixHD (default 0: off)")
    texture.add_argument("--spectrum-loss", type=float, default=0.0, metavar="W",
                         help="weight of the L1 between log-amplitude spectra, phase-free (default 0: off)")
    texture.add_argument("--diff-augment", action=argparse.BooleanOptionalAction, default=False,
                         help="the same random translation + cutout on each (input, image) pair before the "
                              "discriminator, real and generated (DiffAugment; default off)")
    texture.add_argument("--lr-d", type=float, default=None,
                         help="the discriminator's learning rate, on the same schedule (TTUR; default: --lr)")
    p.add_argument("--decay-start", type=float, default=0.5,
                   help="fraction of the run at which the learning rate starts its linear decay to 0 (default 0.5)")
    p.add_argument("--val-regions", nargs="*", default=[], help="whole regions held out for validation")
    p.add_argument("--val-chips", type=int, default=64, help="validation chips scored per validation (default 64)")
    p.add_argument("--val-every", type=int, default=None,
                   help="validate, plot and draw a grid every N steps (default: every epoch) and at the end")
    p.add_argument("--checkpoint-every", type=int, default=500, help="write checkpoints/last.pt every N steps")
    p.add_argument("--recalibrate", action=argparse.BooleanOptionalAction, default=True,
                   help="at the end, measure BatchNorm's statistics over all training chips (default on; "
                        "see training/recalibrate.py)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    p.add_argument("--amp", nargs="?", const="auto", choices=["auto", "bf16", "fp16"], default=None,
                   help="CUDA mixed precision: bf16 where supported, else fp16 with loss scaling")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="CPU arithmetic (default auto: bf16 autocast only where oneDNN has native bf16 and a "
                        "timed step shows it faster; without AVX-512 BF16 it is ~30x slower)")
    p.add_argument("--compile", action="store_true", help="torch.compile both nets (CUDA; slower start, faster steps)")
    p.add_argument("--workers", type=int, default=None, help="data-loader processes (default 4 on CUDA, 0 on CPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is faster on a CPU shared with other jobs)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, data order, jitter and dropout")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)  # tests: simulate a kill
    args = p.parse_args(argv)
    if args.epochs is None and args.max_steps is None:
        args.epochs = 200
    return args


def pick_device(name):
    if name == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device is visible to torch")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def amp_dtype(args, device):
    if device.type != "cuda":
        if args.amp:
            print("--amp is for CUDA; on the CPU --precision chooses", file=sys.stderr)
        return None
    if not args.amp:
        return None
    if args.amp == "fp16" or (args.amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def data_resolution_m(folders):
    """Ground size of a chip pixel: what ``training.prepare`` recorded in its manifest, else the seed's.

    Export writes it into the model's metadata, so a model trained on 30 m chips does not claim 200 m.
    """
    from .prepare import MANIFEST, SEED_RESOLUTION_M, read_manifest

    found = set()
    for folder in folders:
        path = os.path.join(folder, MANIFEST)
        if os.path.isfile(path):
            found |= {float(r["resolution_m"]) for r in read_manifest(path)["regions"].values() if "resolution_m" in r}
    if len(found) > 1:
        sys.exit(f"--data mixes chip resolutions {sorted(found)} m: one model learns one ground scale")
    return found.pop() if found else SEED_RESOLUTION_M


def learning_rate(step, total, base, decay_start):
    """Constant, then linear to 0 at the last step (the paper's 100 + 100 epochs, in steps)."""
    start = int(total * decay_start)
    if step < start:
        return base
    return base * (1.0 - (step - start) / max(1, total - start))


def pick_val_chips(pairs, n):
    """Evenly spaced over the validation set: every region is scored, and always the same chips."""
    if not pairs:
        return []
    idx = np.unique(np.linspace(0, len(pairs) - 1, min(n, len(pairs))).round().astype(int))
    return [pairs[i] for i in idx]


class Trainer:
    def __init__(self, args):
        self.args = args
        self.device = pick_device(args.device)
        self.cuda = self.device.type == "cuda"
        os.makedirs(os.path.join(args.out, "checkpoints"), exist_ok=True)
        os.makedirs(os.path.join(args.out, "grids"), exist_ok=True)
        self.ckpt_path = os.path.join(args.out, "checkpoints", "last.pt")

        pairs = find_pairs(args.data)
        self.train_pairs, self.val_pairs = split_by_region(pairs, args.val_regions)
        # What the warm-start source passes on besides weights: its looks (labels too), latitude range, images seen.
        self.source = describe_source(args.init_from) if args.init_from and os.path.isfile(args.init_from) else None
        self.images_seen = self.source["images_seen"] if self.source else 0
        self.conditioning = self.spec = None
        if args.num_downs < NUM_DOWNS:
            self.spec, places = self.conditioning_spec(args, pairs, self.source)
            self.conditioning = (self.spec, places)
        self.dataset = PairDataset(self.train_pairs, jitter=True, seed=args.seed, conditioning=self.conditioning)
        self.steps_per_epoch = len(self.train_pairs) // args.batch_size
        if self.steps_per_epoch == 0:
            sys.exit(f"--batch-size {args.batch_size} exceeds the {len(self.train_pairs)} training chips")
        self.total = args.max_steps or args.epochs * self.steps_per_epoch
        self.val_every = args.val_every or self.steps_per_epoch
        # Held-out places as a user would run them: their own latitude, look "auto", no guide.
        self.val_set = PairDataset(pick_val_chips(self.val_pairs, args.val_chips), conditioning=self.conditioning)
        # Without held-out regions the grid still shows progress, on (unjittered) training chips.
        self.grid_set = PairDataset(pick_val_chips(self.val_pairs or self.train_pairs, 4), conditioning=self.conditioning)

        if args.threads:
            # Oversubscribed OpenMP threads spin at barriers: measured 2-4x slower steps on a busy 2-core box.
            torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        if self.cuda:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        cond = {"num_downs": args.num_downs, "cond_nc": self.spec.channels} if self.spec else {}
        self.G = build_generator(args.ngf, args.max_channels, dropout=args.dropout, upsample=args.upsample,
                                 norm=args.norm, padding=args.padding, antialias=args.antialias,
                                 **cond).to(self.device)
        self.D = build_discriminator(args.ndf).to(self.device)
        self.warm_start = None
        if args.init_from and not (args.resume and os.path.isfile(self.ckpt_path)):
            self.warm_start = load_generator_weights(self.G, args.init_from)
            d = load_discriminator_weights(self.D, args.init_from)
            if d:
                self.warm_start["discriminator"] = d
            elif self.source and self.source["ndf"]:
                print(f"note: {args.init_from} has a discriminator of --ndf {self.source['ndf']}; this run's "
                      f"--ndf {args.ndf} does not fit it, so the discriminator starts fresh", file=sys.stderr)
            if self.source:
                self.warm_start["images_seen"] = self.source["images_seen"]
                if self.source["images_seen_estimated"]:
                    self.warm_start["images_seen_estimated"] = True  # steps x batch of the source: a lower bound
            print(f"warm start from {args.init_from}: {self.warm_start}")
        self.resolution_m = data_resolution_m(args.data)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=args.lr, betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=args.lr, betas=(0.5, 0.999))
        self.amp = amp_dtype(args, self.device)
        self.cpu_precision = None
        if not self.cuda:
            self.cpu_precision = choose_cpu_precision(args.precision, self._timed_step)
            self.amp = torch.bfloat16 if self.cpu_precision == "bf16" else None
        # Loss scaling only for fp16: bf16 has fp32's exponent range.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)
        self.augment_rng = torch.Generator().manual_seed(args.seed + 1)  # DiffAugment's draws (--diff-augment)
        self.step = 0
        self.batchnorm_statistics = None
        self.G_run, self.D_run = self.G, self.D
        if args.compile:
            self.G_run, self.D_run = torch.compile(self.G), torch.compile(self.D)

    @staticmethod
    def conditioning_spec(args, pairs, source=None):
        """The looks (the training regions; a warm start's own looks first, in their order, so their channels
        keep their meaning) and the trained |latitude| range (widened to the warm start's: a fine-tune on one
        region must not clamp the others' latitudes), with every region's place."""
        known = dataset_regions(args.data)
        places = {r: known.get(r) or region_geo(r) for r in sorted({p.region for p in pairs})}
        train_regions = sorted({p.region for p in pairs} - {r.upper() for r in args.val_regions} - set(args.val_regions))
        before = [lk["id"] for lk in source["looks"]] if source else []
        looks = tuple(before + [r for r in train_regions if r not in before])
        spans = [places[r].latitude_range() for r in train_regions]
        low = min(0.0 if s < 0 < n else min(abs(s), abs(n)) for s, n in spans)
        high = max(max(abs(s), abs(n)) for s, n in spans)
        low, high = widened_range((low, high), source["latitude_range"] if source else None)
        return ConditioningSpec(looks, (round(low, 2), round(high, 2))), places

    # --- checkpoints -------------------------------------------------------------------------------
    def save(self):
        ckpt.save(
            self.ckpt_path,
            step=self.step,
            total_steps=self.total,
            generator=self.G.state_dict(),
            discriminator=self.D.state_dict(),
            opt_G=self.opt_G.state_dict(),
            opt_D=self.opt_D.state_dict(),
            scaler=self.scaler.state_dict(),
            rng=ckpt.rng_state(),
            generator_config=self.G.config,
            args=vars(self.args),
            train_regions=sorted({p.region for p in self.train_pairs}),
            val_regions=sorted({p.region for p in self.val_pairs}),
            train_chips=len(self.train_pairs),
            resolution_m=self.resolution_m,
            cpu_precision=self.cpu_precision,
            warm_start=self.warm_start,
            val_chips=len(self.val_pairs),
            batchnorm_statistics=self.batchnorm_statistics,
            conditioning=self.conditioning_record(),
            images_seen=self.images_seen,
        )

    def conditioning_record(self):
        """What export needs to declare the planes and looks (None for a contract-1 generator)."""
        if self.spec is None:
            return None
        _, places = self.conditioning
        inherited = {lk["id"]: lk for lk in (self.source or {}).get("looks", [])}  # looks this data lacks
        return {"looks": [places[r].describe() if r in places else inherited.get(r, {"id": r, "label": r})
                          for r in self.spec.looks],
                "latitude_range": list(self.spec.latitude_range), "stride": self.spec.stride,
                "coarse_px": self.spec.coarse_px,
                "regions": {r: places[r].describe() for r in sorted(places)}}

    def resume(self):
        if not os.path.isfile(self.ckpt_path) and not os.path.isfile(ckpt.previous_path(self.ckpt_path)):
            sys.exit(f"--resume: no checkpoint at {self.ckpt_path}")
        # CPU first: RNG states must stay CPU byte tensors; load_state_dict moves weights to the device.
        # A damaged last.pt (a disk that filled, a copy cut short) falls back to the previous checkpoint.
        try:
            state, source = ckpt.load_latest(self.ckpt_path, map_location="cpu",
                                             warn=lambda m: print(f"--resume: {m}", file=sys.stderr))
        except ckpt.CheckpointError as exc:
            sys.exit(f"--resume: {exc}")
        if state["generator_config"] != self.G.config:
            sys.exit(f"--resume: checkpoint generator {state['generator_config']} differs from {self.G.config}")
        if state["total_steps"] != self.total:
            print(f"note: run length changed from {state['total_steps']} to {self.total} steps; "
                  "the learning-rate schedule follows the new length", file=sys.stderr)
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        self.step = state["step"]
        # A checkpoint from before the count: the source's images plus this run's steps so far.
        self.images_seen = state.get("images_seen", self.images_seen + self.step * state["args"].get(
            "batch_size", self.args.batch_size))
        self.warm_start = state.get("warm_start")  # where the run began, not this restart (which skips --init-from)
        # Training on from a recalibrated end goes back to momentum statistics (recalibrated again at the end).
        self.batchnorm_statistics = state.get("batchnorm_statistics") if self.step == self.total else None
        kept = state.get("cpu_precision")
        if self.cpu_precision and kept and kept != self.cpu_precision and self.args.precision == "auto":
            # The straight run's arithmetic, not a new timing's (which a busy machine can tip either way):
            # that is what makes a resumed run end with the same weights.
            print(f"precision {kept}: kept from the checkpoint (this start timed {self.cpu_precision} faster)")
            self.cpu_precision = kept
            self.amp = torch.bfloat16 if kept == "bf16" else None
        # A killed run may have logged steps past its last checkpoint; they will be redone.
        for name in ("losses.csv", "val.csv"):
            path = os.path.join(self.args.out, name)
            rows = [r for r in plots.read_csv(path) if int(r["step"]) <= self.step]
            if rows:
                with open(path, "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
                    w.writeheader()
                    w.writerows(rows)
            elif os.path.exists(path):
                os.remove(path)  # _append writes the header again with the first row
        print(f"resumed from {source} at step {self.step}")

    # --- one optimisation step ---------------------------------------------------------------------
    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None)

    def train_step(self, x, y, lr, cond=None):
        a = self.args
        for opt, rate in ((self.opt_G, lr), (self.opt_D, lr * (a.lr_d / a.lr if a.lr_d else 1.0))):
            for group in opt.param_groups:
                group["lr"] = rate
        with self.autocast():
            fake = self.G_run(x, cond)
        # D first, on a detached fake: its gradients must not reach G.
        self.D.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        with self.autocast():
            xa, real, generated = self.augment(x, y, fake.detach())
            pred_fake = self.D_run(xa, generated)
            pred_real = self.D_run(xa, real)
            loss_d, d_real, d_fake = levers.d_loss(a.gan_loss, pred_real, pred_fake)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_D)
        # Then G: fool the (just updated, now frozen) D and stay close to the real image.
        self.D.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        extra = {}
        with self.autocast():
            xa, generated, real = self.augment(x, fake, y)
            if a.feature_matching:
                features = self.D.features(xa, generated)
                pred_fake = features[-1]
                with torch.no_grad():
                    targets = self.D.features(xa, real)
                extra["g_fm"] = levers.feature_matching(targets[:-1], features[:-1])
            else:
                pred_fake = self.D_run(xa, generated)
            g_gan = levers.g_loss(a.gan_loss, pred_fake)
            g_l1 = torch.mean(torch.abs(fake.float() - y))
            if a.spectrum_loss:
                extra["g_spectrum"] = levers.spectrum_loss(fake, y)
            loss_g = g_gan + a.lambda_l1 * g_l1
            loss_g = loss_g + a.feature_matching * extra.get("g_fm", 0.0) + a.spectrum_loss * extra.get("g_spectrum", 0.0)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_G)
        self.scaler.update()
        return {"d": loss_d.item(), "d_real": d_real.item(), "d_fake": d_fake.item(),
                "g_gan": g_gan.item(), "g_l1": g_l1.item(), **{k: v.item() for k, v in extra.items()}}

    def augment(self, x, *images):
        """(x, *images), each pair moved and cut the same way (``levers.diff_augment``) when --diff-augment."""
        if not self.args.diff_augment:
            return (x, *images)
        return levers.diff_augment(x, *images, generator=self.augment_rng)

    def _timed_step(self, dtype, repeats=2):
        """Seconds per G + D step in ``dtype`` on a throwaway copy of the nets (the run's own stay untouched)."""
        import copy

        g, d = copy.deepcopy(self.G), copy.deepcopy(self.D)
        opt_g, opt_d = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())
        x = torch.zeros(self.args.batch_size, 3, 256, 256)
        cond = torch.zeros(self.args.batch_size, self.spec.channels, 256 // self.spec.stride,
                           256 // self.spec.stride) if self.spec else None
        times = []
        for _ in range(repeats + 1):  # the first pays for warm-up
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                fake = g(x, cond)
                loss = d(x, fake).float().mean() + fake.float().abs().mean()
            opt_g.zero_grad()
            opt_d.zero_grad()
            loss.backward()
            opt_g.step()
            opt_d.step()
            times.append(time.perf_counter() - t)
        return min(times[1:])

    # --- validation --------------------------------------------------------------------------------
    def recalibrate(self):
        """The final BatchNorm statistics: measured over all training chips, not the last ~10 batches."""
        regions = sorted({p.region for p in self.train_pairs})
        n = recalibrate(self.G, training_inputs(self.args.data, regions, conditioning=self.conditioning))
        if n:
            self.batchnorm_statistics = {"recalibrated_on_chips": n, "regions": regions}
            tqdm.write(f"step {self.step}: BatchNorm statistics recomputed over {n} training chips")

    @torch.no_grad()
    def validate(self):
        """Eval mode (no dropout), as the exported model runs: L1 on held-out regions and a grid."""
        self.G.eval()
        try:
            val_l1 = None
            if len(self.val_set):
                total = 0.0
                for i in range(len(self.val_set)):
                    x, y, *cond = (t.unsqueeze(0).to(self.device) for t in self.val_set[i])
                    with self.autocast():
                        total += torch.mean(torch.abs(self.G(x, *cond).float() - y)).item()
                val_l1 = total / len(self.val_set)
                self._append("val.csv", {"step": self.step, "val_l1": f"{val_l1:.5f}"})
            rows = []
            for i in range(len(self.grid_set)):
                x, y, *cond = self.grid_set[i]
                with self.autocast():
                    g = self.G(x.unsqueeze(0).to(self.device), *(c.unsqueeze(0).to(self.device) for c in cond))[0]
                rows.append([to_uint8(x), to_uint8(y), to_uint8(g)])
            grid = os.path.join(self.args.out, "grids", f"step_{self.step:07d}.png")
            plots.image_grid(rows, grid)
            plots.loss_curve(os.path.join(self.args.out, "losses.csv"), os.path.join(self.args.out, "val.csv"),
                             os.path.join(self.args.out, "loss_curve.png"))
            return val_l1
        finally:
            self.G.train()

    def _append(self, name, row):
        path = os.path.join(self.args.out, name)
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row.keys()))
            if new:
                w.writeheader()
            w.writerow(row)

    # --- the loop ----------------------------------------------------------------------------------
    def loader(self, epoch, start_batch):
        self.dataset.epoch = epoch  # read by the workers' copies at iterator creation
        workers = self.args.workers if self.args.workers is not None else (4 if self.cuda else 0)
        sampler = EpochSampler(len(self.dataset), self.args.seed, epoch, start_batch * self.args.batch_size)
        return torch.utils.data.DataLoader(
            self.dataset, batch_size=self.args.batch_size, sampler=sampler, drop_last=True,
            num_workers=workers, pin_memory=self.cuda, persistent_workers=False,
            # Its own generator: a DataLoader otherwise draws its base seed from the global RNG, which also
            # drives dropout, so a resumed run (one extra loader mid-epoch) would drift from a straight one.
            generator=torch.Generator().manual_seed(self.args.seed * 100003 + epoch),
        )

    def run(self):
        a = self.args
        if a.resume:
            self.resume()
        print(f"device {self.device}{' amp ' + str(self.amp).split('.')[-1] if self.amp else ''}"
              f"{' precision ' + self.cpu_precision if self.cpu_precision else ''}; "
              f"generator {self.G.config}; "
              f"G {count_params(self.G) / 1e6:.2f} M params (ngf {a.ngf}, cap {a.max_channels}), "
              f"D {count_params(self.D) / 1e6:.2f} M; train {len(self.train_pairs)} chips "
              f"({', '.join(sorted({p.region for p in self.train_pairs}))}), "
              f"validation {len(self.val_pairs)} ({', '.join(a.val_regions) or 'none'}); "
              f"{self.total} steps of batch {a.batch_size}")
        self.G.train()
        self.D.train()
        bar = tqdm(total=self.total, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        timed_images, timed_seconds, t_last = 0, 0.0, time.perf_counter()
        while self.step < self.total:
            epoch, start = divmod(self.step, self.steps_per_epoch)
            for x, y, *cond in self.loader(epoch, start):
                x = x.to(self.device, non_blocking=True)
                y = y.to(self.device, non_blocking=True)
                cond = cond[0].to(self.device, non_blocking=True) if cond else None
                lr = learning_rate(self.step, self.total, a.lr, a.decay_start)
                losses = self.train_step(x, y, lr, cond)
                self.images_seen += x.shape[0]
                if self.cuda:
                    torch.cuda.synchronize()  # honest timings
                now = time.perf_counter()
                dt, t_last = now - t_last, now
                if self.step > 0 or a.resume:  # the first step pays for warm-up / compilation
                    timed_images += x.shape[0]
                    timed_seconds += dt
                self.step += 1
                self._append("losses.csv", {"step": self.step, "epoch": epoch, "lr": f"{lr:.3g}",
                                            **{k: f"{v:.5f}" for k, v in losses.items()}, "seconds": f"{dt:.4f}"})
                ips = timed_images / timed_seconds if timed_seconds else float("nan")
                bar.set_postfix(D=f"{losses['d']:.3f}", G_gan=f"{losses['g_gan']:.3f}",
                                L1=f"{losses['g_l1']:.3f}", img_s=f"{ips:.2f}")
                bar.update(1)
                if not all(math.isfinite(v) for v in losses.values()):
                    sys.exit(f"step {self.step}: a loss is not finite ({losses}); lower --lr or drop --amp fp16")
                if self.step == self.total and a.recalibrate:
                    self.recalibrate()
                    t_last = time.perf_counter()
                end_of_epoch = self.step % self.steps_per_epoch == 0
                if self.step % self.val_every == 0 or (end_of_epoch and a.val_every is None) or self.step == self.total:
                    val_l1 = self.validate()
                    if val_l1 is not None:
                        bar.write(f"step {self.step}: validation L1 {val_l1:.4f} (eval mode, {len(self.val_set)} chips)")
                    t_last = time.perf_counter()  # validation time is not training throughput
                if self.step % a.checkpoint_every == 0 or self.step == self.total:
                    self.save()
                    t_last = time.perf_counter()
                if a.stop_after is not None and self.step >= a.stop_after:
                    bar.close()
                    return None
                if self.step >= self.total:
                    break
        bar.close()
        ips = timed_images / timed_seconds if timed_seconds else float("nan")
        summary = {"steps": self.step, "images_per_second": ips, "seconds_per_step": 1 / ips * a.batch_size if ips else None,
                   "device": str(self.device), "amp": str(self.amp), "cpu_precision": self.cpu_precision,
                   "compile": a.compile, "batch_size": a.batch_size,
                   "generator_params": count_params(self.G), "discriminator_params": count_params(self.D),
                   "images_seen": self.images_seen, "checkpoint": self.ckpt_path}
        with open(os.path.join(a.out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        print(f"done: {self.step} steps, {ips:.2f} images/second on {self.device}; checkpoint {self.ckpt_path}")
        return summary


def main(argv=None):
    return Trainer(parse_args(argv)).run()


if __name__ == "__main__":
    main()
