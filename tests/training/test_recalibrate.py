import json
import os
import shutil

import onnx
import pytest
import torch

from training import checkpoint as ckpt
from training.conditioning import conditioning_of
from training.nets import REFERENCE, SEAMLESS, build_generator
from training.recalibrate import batchnorms, main, recalibrate, training_inputs


def buffers(net):
    return {k: v.clone() for k, v in net.state_dict().items() if "running" in k}


def params(net):
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


@pytest.fixture
def chips(pairs_dir):
    return training_inputs([pairs_dir], ["ALPHA", "BETA"])


def test_statistics_depend_only_on_the_weights_and_the_chips(chips):
    torch.manual_seed(0)
    fresh = build_generator(4, **SEAMLESS)  # BatchNorm
    used = build_generator(4, **SEAMLESS)
    used.load_state_dict(fresh.state_dict())
    with torch.no_grad():  # a training history: momentum statistics of other inputs
        for _ in range(3):
            used(torch.randn(2, 3, 256, 256) * 3)
    used.eval()
    weights = params(used)
    assert not same(buffers(fresh), buffers(used))

    assert recalibrate(fresh, chips, batch_size=2) == recalibrate(used, chips, batch_size=2) == len(chips) == 5
    assert same(buffers(fresh), buffers(used))  # the history is gone
    assert same(params(used), weights)  # only statistics change
    assert not used.training  # the mode it was in


def test_statistics_do_not_depend_on_the_batch_size_or_the_order(chips):
    nets = [build_generator(4, **SEAMLESS) for _ in range(3)]
    for net in nets[1:]:
        net.load_state_dict(nets[0].state_dict())
    recalibrate(nets[0], chips, batch_size=1)
    recalibrate(nets[1], chips, batch_size=4)
    recalibrate(nets[2], [chips[i] for i in reversed(range(len(chips)))], batch_size=2)
    assert same(buffers(nets[0]), buffers(nets[1])) and same(buffers(nets[0]), buffers(nets[2]))


def test_eval_mode_then_normalises_each_layer_to_zero_mean_and_unit_variance(chips):
    net = build_generator(4, **SEAMLESS)
    for norm in batchnorms(net):
        norm.eps = 1e-12  # a fresh net's activations are small: BatchNorm's 1e-5 would dominate their variance
    recalibrate(net, chips)
    seen = {}
    for norm in batchnorms(net):  # what each BatchNorm outputs before its affine, over the same chips
        norm.register_forward_hook(lambda m, args, out, key=norm: seen.setdefault(key, []).append(
            ((out - m.bias[None, :, None, None]) / m.weight[None, :, None, None]).double()))
    net.eval()
    with torch.no_grad():
        net(torch.stack([chips[i] for i in range(len(chips))]))
    for outputs in seen.values():
        y = torch.cat(outputs)
        assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(1, dtype=y.dtype), atol=1e-3)
        assert torch.allclose(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(1, dtype=y.dtype), atol=2e-2)


def test_recalibrating_twice_gives_the_same_statistics(chips):
    net = build_generator(4, **SEAMLESS)
    recalibrate(net, chips, batch_size=2)
    once = buffers(net)
    recalibrate(net, chips, batch_size=2)
    assert same(once, buffers(net))


def test_the_instancenorm_reference_has_nothing_to_recalibrate(chips):
    net = build_generator(4, **REFERENCE)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert recalibrate(net, chips) == 0
    assert same(before, net.state_dict())


def test_a_run_ends_recalibrated_and_the_export_says_so(exported, pairs_dir):
    path, _, out = exported
    state = ckpt.load(os.path.join(out, "checkpoints", "last.pt"))
    assert state["batchnorm_statistics"]["recalibrated_on_chips"] == 3  # ALPHA's chips; BETA is held out
    assert state["batchnorm_statistics"]["regions"] == ["ALPHA"]
    net = ckpt.generator_from_checkpoint(state)
    saved = buffers(net)
    # The same chips with the same conditioning draws (seeded per chip) as the run's own recalibration.
    recalibrate(net, training_inputs([pairs_dir], ["ALPHA"], conditioning=conditioning_of(state)))
    assert same(saved, buffers(net))  # the checkpoint holds the training chips' statistics, not momentum ones
    meta = {p.key: json.loads(p.value) for p in onnx.load(path).metadata_props}
    assert meta["batchnorm_statistics"] == state["batchnorm_statistics"]


def test_the_command_rewrites_a_checkpoint_and_keeps_the_old_one(tiny_run, pairs_dir, tmp_path):
    out, _ = tiny_run
    path = str(tmp_path / "last.pt")
    shutil.copy(os.path.join(out, "checkpoints", "last.pt"), path)
    state = ckpt.load(path)
    recalibrated = {k: v for k, v in state["generator"].items() if "running" in k}
    for k in recalibrated:  # statistics as a run cut short would leave them
        state["generator"][k] = state["generator"][k] + 1.0
    del state["batchnorm_statistics"]
    ckpt.save(path, **state)

    main(["--checkpoint", path])
    after = ckpt.load(path)
    assert after["batchnorm_statistics"]["recalibrated_on_chips"] == 3
    assert same(recalibrated, {k: after["generator"][k] for k in recalibrated})
    assert "batchnorm_statistics" not in ckpt.load(ckpt.previous_path(path))  # the old one is kept


def test_the_command_names_a_checkpoint_without_its_data(tiny_run, tmp_path):
    out, _ = tiny_run
    state = ckpt.load(os.path.join(out, "checkpoints", "last.pt"))
    state["args"]["data"] = []
    path = str(tmp_path / "last.pt")
    ckpt.save(path, **state)
    with pytest.raises(SystemExit, match="does not say which data it trained on; pass --data"):
        main(["--checkpoint", path])
