"""Release tools on tiny generators: int8 quantisation keeps the contract, data archives and split files
come back byte for byte."""

import io
import json
import os
import tarfile

import numpy as np
import onnx
import pytest
import torch

from terraform_plugin.core.model import TerraformModel
from training import pack
from training.export import to_onnx
from training.nets import REFERENCE, build_generator
from training.quantize import quantize, ramp_chips
from training.size_study import contract_model, macs_per_tile


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """An ngf-8 generator exported with the contract's metadata (what training.export writes)."""
    torch.manual_seed(0)
    net = build_generator(ngf=8, **REFERENCE).eval()  # contract 1: 256 px chips
    path = str(tmp_path_factory.mktemp("q") / "tiny.onnx")
    model = contract_model(to_onnx(net, path), "tiny", 8, None, "float32")
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def quantized(tiny_onnx, pairs_dir, tmp_path_factory):
    """{method: (path, report)}, each quantised once for all the tests below."""
    folder = tmp_path_factory.mktemp("int8")
    return {m: (str(folder / f"tiny_{m}.onnx"),
                quantize(tiny_onnx, str(folder / f"tiny_{m}.onnx"), method=m, calibration=[pairs_dir], chips=4))
            for m in ("weights", "static")}


@pytest.mark.parametrize("method", ["weights", "static"])
def test_quantize_keeps_contract_and_bounds_drift(tiny_onnx, quantized, method):
    out, report = quantized[method]

    src, got = onnx.load(tiny_onnx), onnx.load(out)
    before = {p.key: p.value for p in src.metadata_props}
    after = {p.key: p.value for p in got.metadata_props}
    for key, value in before.items():  # every contract key survives, unchanged except the weights note
        assert after[key] == value or key == "weights"
    assert json.loads(after["quantization"])["method"] == method
    assert "int8" in json.loads(after["weights"])
    # Conv weights really are int8 now.
    assert any(i.data_type == onnx.TensorProto.INT8 and np.prod(i.dims) > 1000 for i in got.graph.initializer)
    assert not any(i.data_type == onnx.TensorProto.FLOAT and np.prod(i.dims) > 1000 for i in got.graph.initializer)
    assert report["bytes"] < 0.4 * report["input_bytes"]

    model = TerraformModel(out, threads=1, use_gpu=False)  # the plugin's loader accepts it
    x = ramp_chips(None, n=3, seed=5)  # batch 3: the dynamic batch survived quantisation
    y = model.run(x)
    assert y.shape == x.shape and y.dtype == np.float32
    assert -1.0 <= y.min() and y.max() <= 1.0
    ref = TerraformModel(tiny_onnx, threads=1, use_gpu=False).run(x)
    assert np.abs(y - ref).mean() < 0.03
    assert report["mean_abs"] < 0.03 and report["max_abs"] < 0.5


def test_weight_only_int8_is_closer_than_static(quantized):
    """One reason weights is the default: on the same chips it drifts less than static QDQ."""
    assert quantized["weights"][1]["mean_abs"] < quantized["static"][1]["mean_abs"]


def test_quantize_refuses_excess_drift_and_leaves_nothing(tiny_onnx, tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(SystemExit, match="drift too large"):
        quantize(tiny_onnx, str(out), "weights", None, chips=2, max_mean_drift=1e-9)
    assert not out.exists() and not (tmp_path / "bad.onnx.tmp").exists()


def test_macs_count_the_reference_generator():
    # ngf 64 by hand: encoder 2.01 G + decoder 4.02 G multiply-accumulates per 256² tile (the decoder's
    # ConvTransposes see the skip-doubled channels); all but the RGB ends scale with ngf², so ngf 32 ~ 1/4.
    assert 1.45e9 < macs_per_tile(build_generator(32, **REFERENCE)) < 1.62e9


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz"])
def test_pack_unpack_round_trip_is_byte_identical(pairs_dir, tmp_path, suffix):
    archive = str(tmp_path / ("data" + suffix))
    report = pack.pack([pairs_dir], archive)
    assert report["pairs"] == 5 and len(report["regions"]) == 2
    again = str(tmp_path / ("again" + suffix))
    pack.pack([pairs_dir], again)
    assert pack.sha256_file(again) == report["archive_sha256"]  # deterministic: same data, same bytes

    out = tmp_path / "unpacked"
    manifest = pack.unpack(archive, str(out))
    dataset = os.path.basename(os.path.normpath(pairs_dir))
    for region in ("ALPHA", "BETA"):
        src_dir = os.path.join(pairs_dir, region)
        names = sorted(os.listdir(src_dir))
        assert sorted(os.listdir(out / dataset / region)) == names
        for n in names:
            with open(os.path.join(src_dir, n), "rb") as a, open(out / dataset / region / n, "rb") as b:
                assert a.read() == b.read()
    assert manifest["pairs"] == 5


def test_unpack_rejects_corruption_and_escapes(pairs_dir, tmp_path):
    archive = str(tmp_path / "data.tar")
    pack.pack([pairs_dir], archive)
    with tarfile.open(archive) as tar:
        last = tar.getmembers()[-1]
    raw = bytearray(open(archive, "rb").read())
    raw[last.offset_data + last.size // 2] ^= 0xFF  # one byte inside the last chip
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        pack.unpack(str(bad), str(tmp_path / "o1"))

    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        manifest = json.dumps({"entries": [{"name": "../x.jpg", "sha256": "0", "bytes": 1}]}).encode()
        info = tarfile.TarInfo(pack.MANIFEST)
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        info = tarfile.TarInfo("../x.jpg")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="refusing"):
        pack.unpack(str(evil), str(tmp_path / "o2"))
    assert not (tmp_path / "x.jpg").exists()


@pytest.mark.parametrize("size", [0, 1000, 4096, 10_000])
def test_split_join_round_trip(tmp_path, size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    src = tmp_path / "last.pt"
    src.write_bytes(data)
    index = pack.split(str(src), str(tmp_path / "parts"), part_bytes=4096)
    meta = json.load(open(index))
    assert len(meta["parts"]) == max(1, -(-size // 4096))
    assert all(p["bytes"] <= 4096 for p in meta["parts"])
    out = tmp_path / "joined.pt"
    pack.join(index, str(out))
    assert out.read_bytes() == data

    if size:  # a damaged or missing part is caught, not silently joined
        part = tmp_path / "parts" / meta["parts"][-1]["name"]
        part.write_bytes(b"\0" + part.read_bytes()[1:])
        with pytest.raises(ValueError, match="checksum"):
            pack.join(index, str(tmp_path / "j2.pt"))
        part.unlink()
        with pytest.raises(FileNotFoundError, match="part missing"):
            pack.join(index, str(tmp_path / "j3.pt"))
        assert not (tmp_path / "j3.pt").exists()
