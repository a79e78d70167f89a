"""BatchNorm statistics recomputed over the training chips, for the exported (eval-mode) generator.

    python -m training.recalibrate --checkpoint runs/demo/checkpoints/last.pt

During training BatchNorm keeps a momentum average (0.1) of batch statistics: at the end of a run that is an
average over the last ~10 batches of jittered chips, i.e. ~40 chips of whichever regions came last, each
normalised by its own batch. The exported model uses those statistics for every chip of every user's DEM
(fixed statistics are what keeps the mosaic seam-free), so they should describe the whole training set as
the exported model sees it. This pass measures them over the training chips (unjittered, as the plugin
feeds them); the weights do not change (PreciseBN, Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021,
here layer by layer in eval mode).
"""

import argparse
import sys

import numpy as np
import torch

from . import checkpoint as ckpt
from .conditioning import conditioning_of
from .data import PairDataset, find_pairs, to_tensor, to_uint8

DEFAULT_BATCH = 8


def batchnorms(net):
    return [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


class _Enough(Exception):
    """Stops a forward pass once the layer being measured has seen its input."""


def _as_inputs(chip) -> tuple:
    """A chip is the generator's input tensor, or (input, conditioning planes) for a contract-2 generator."""
    return tuple(chip) if isinstance(chip, (tuple, list)) else (chip,)


def _forward_order(generator, chip):
    order = []
    handles = [m.register_forward_pre_hook(lambda m, args: order.append(m)) for m in batchnorms(generator)]
    try:
        generator(*(t.unsqueeze(0) for t in _as_inputs(chip)))
    finally:
        for h in handles:
            h.remove()
    return order


def recalibrate(generator, chips, batch_size=DEFAULT_BATCH) -> int:
    """Replace the running statistics of ``generator``'s BatchNorms by their inputs' mean and variance over
    ``chips``, as the exported model sees them.

    Layer by layer in forward order, with the whole network in eval mode: each BatchNorm's statistics are
    measured on the inputs it gets at inference, i.e. with every BatchNorm before it already recalibrated.
    Unlike a train-mode pass (batch statistics upstream, an average of per-batch variances), the result does
    not depend on the batch size or on the order of the chips. One pass per BatchNorm, each stopped at that
    layer. ``chips``: a sequence of input tensors ``[3, H, W]`` (or of (input, conditioning) pairs). Returns how many chips were used (0 when
    the generator has no BatchNorm, e.g. the InstanceNorm reference: nothing to recalibrate).
    """
    if not batchnorms(generator) or not len(chips):
        return 0
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            for norm in _forward_order(generator, chips[0]):
                moments = []

                def measure(module, args):
                    x = args[0].double()
                    moments.append((x.shape[0] * x[0].numel() // x.shape[1],
                                    x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3))))
                    raise _Enough

                handle = norm.register_forward_pre_hook(measure)
                try:
                    for start in range(0, len(chips), batch_size):
                        items = [_as_inputs(chips[i]) for i in range(start, min(start + batch_size, len(chips)))]
                        try:
                            generator(*(torch.stack(parts).to(device) for parts in zip(*items)))
                        except _Enough:
                            pass
                finally:
                    handle.remove()
                n = sum(m[0] for m in moments)
                mean = sum(m[1] for m in moments) / n
                var = (sum(m[2] for m in moments) / n - mean * mean).clamp_min(0)
                norm.running_mean.copy_(mean.to(norm.running_mean.dtype))
                norm.running_var.copy_(var.to(norm.running_var.dtype))
    finally:
        generator.train(was_training)
    return len(chips)


class _Inputs:
    """The elevation-colour inputs of a set of pairs, each decoded once and kept as uint8 (192 KiB a chip):
    recalibration goes over them once per BatchNorm (14 passes), and decoding the JPEG pairs again each time
    cost 0.87 s a pass of 384 pairs (measured, 384 chips, one thread, interleaved in one process: 42.3 and
    37.0 s decoding every pass, 32.1 s decoded once).

    With ``conditioning`` each chip also gets its conditioning planes, drawn once per chip (seeded) the way
    training draws them - look or auto, guide or none - so the statistics describe every way the model is run."""

    def __init__(self, pairs, conditioning=None, seed=0):
        self.dataset = PairDataset(pairs, conditioning=conditioning)
        self.conditioning, self.seed = conditioning, seed
        self.decoded = {}

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        if i not in self.decoded:
            self.decoded[i] = self._decode(i)
        x, *cond = self.decoded[i]
        return (to_tensor(x), *(torch.from_numpy(c) for c in cond)) if cond else to_tensor(x)

    def _decode(self, i):
        from .conditioning import training_cond
        from .data import Jitter, load_rgb, sample_latitude

        x = to_uint8(self.dataset[i][0])
        if self.conditioning is None:
            return (x,)
        spec, places = self.conditioning
        pair = self.dataset.pairs[i]
        lat = sample_latitude(places[pair.region], pair, Jitter(), spec.stride)
        satellite = np.asarray(load_rgb(pair.satellite), dtype=np.uint8)
        rng = np.random.default_rng([self.seed, i])
        return x, training_cond(spec, lat, satellite, pair.region, rng)


def training_inputs(data_folders, regions, limit=None, seed=0, conditioning=None):
    """The checkpoint's training chips (its training regions, unjittered), at most ``limit`` of them."""
    pairs = [p for p in find_pairs(data_folders) if p.region in set(regions)]
    if limit is not None and limit < len(pairs):
        keep = np.sort(np.random.default_rng(seed).permutation(len(pairs))[:limit])
        pairs = [pairs[i] for i in keep]
    return _Inputs(pairs, conditioning, seed)


def recalibrate_checkpoint(path, data=None, limit=None, batch_size=DEFAULT_BATCH, log=print) -> dict:
    """Recalibrate the generator in the checkpoint at ``path`` and write it back (atomically)."""
    state = ckpt.load(path)
    folders = data or state.get("args", {}).get("data")
    regions = state.get("train_regions")
    if not folders or not regions:
        raise SystemExit(f"{path}: the checkpoint does not say which data it trained on; pass --data")
    generator = ckpt.generator_from_checkpoint(state)
    chips = training_inputs(folders, regions, limit, conditioning=conditioning_of(state, folders))
    if not len(chips):
        raise SystemExit(f"no chips of the training regions {regions} in {folders}")
    n = recalibrate(generator, chips, batch_size)
    if n == 0:
        log(f"{path}: the generator has no BatchNorm; nothing to recalibrate")
        return {"chips": 0}
    state["generator"] = generator.state_dict()
    state["batchnorm_statistics"] = {"recalibrated_on_chips": n, "regions": sorted(regions)}
    ckpt.save(path, **state)
    log(f"{path}: BatchNorm statistics recomputed over {n} training chips ({', '.join(sorted(regions))})")
    return state["batchnorm_statistics"]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.recalibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a training checkpoint, rewritten in place (the old one is kept "
                                                       "as the previous checkpoint)")
    p.add_argument("--data", nargs="+", default=None, help="dataset folders (default: those the run trained on)")
    p.add_argument("--chips", type=int, default=None, help="use at most this many training chips (default: all)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help=f"chips per pass (default {DEFAULT_BATCH})")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's; 1 on a machine busy with other work, where two "
                        "OpenMP threads stall)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        recalibrate_checkpoint(a.checkpoint, a.data, a.chips, a.batch_size)
    except ckpt.CheckpointError as exc:
        sys.exit(str(exc))


if __name__ == "__main__":
    main()
