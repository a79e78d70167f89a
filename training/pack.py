"""Ship training data to a GPU slice in one archive, and bring large results back in small parts.

    python -m training.pack --data ../shared/data/seed-pairs [DIR ...] --out runs/ship/data.tar.gz
    python -m training.pack --unpack runs/ship/data.tar.gz --out /tmp/data
    python -m training.pack --split runs/gpu/checkpoints/last.pt --out $OUT [--part-mib 16]
    python -m training.pack --join runs/back/last.pt.parts.json --out runs/gpu/checkpoints/last.pt

A GPU slice gets the working tree (≤ 64 MiB, ignored paths only when carried) and returns files of
≤ 16 MiB (≤ 8 of them, ≤ 64 MiB together, per call). So:

- ``--data``: the seed-layout pairs of each folder (``<REGION>/<row>,<col>c.jpg`` + ``<row>,<col>.jpg``)
  in one tar, gzip-compressed when ``--out`` ends in ``.gz`` (the seed JPEGs still shrink 16 %: 25.2 ->
  21.2 MB), which Python's tarfile reads on the far side with no extra tools. Members are sorted and
  their owners/times zeroed (and the gzip header's time), so packing the same data twice gives the same
  bytes. ``MANIFEST.json`` (first member) lists every file's size and
  SHA-256, the regions and chip counts; ``--unpack`` refuses paths that escape ``--out`` and checks every
  file against it.
- ``--split``: FILE -> FILE.part000, FILE.part001, ... of at most ``--part-mib`` MiB, plus
  FILE.parts.json (part names, sizes, SHA-256 of each and of the whole); ``--join`` checks them all.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import time

from .data import find_pairs

MANIFEST = "MANIFEST.json"
MIB = 1 << 20
PART_MIB = 16


def sha256_file(path, chunk=4 * MIB) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# --- data archive ---------------------------------------------------------------------------------
def collect(dirs):
    """[(archive name, path)] of every pair file: ``<dataset>/<REGION>/<file>``, sorted."""
    members = {}
    for d in dirs:
        dataset = os.path.basename(os.path.normpath(d))
        for p in find_pairs([d]):
            region_dir = os.path.dirname(p.elevation)
            # A folder given directly as one region has no dataset level above it.
            prefix = dataset if os.path.normpath(region_dir) != os.path.normpath(d) else ""
            for path in (p.elevation, p.satellite):
                name = "/".join(x for x in (prefix, p.region, os.path.basename(path)) if x)
                if name in members and members[name] != path:
                    raise ValueError(f"two inputs would both be {name} in the archive: {members[name]} and {path}")
                members[name] = path
    return sorted(members.items())


def _tarinfo(name, size):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(dirs, out) -> dict:
    members = collect(dirs)
    files = []
    for name, path in members:
        files.append({"name": name, "bytes": os.path.getsize(path), "sha256": sha256_file(path)})
    regions = {}
    for f in files:
        if f["name"].endswith("c.jpg"):
            region = "/".join(f["name"].split("/")[:-1])
            regions[region] = regions.get(region, 0) + 1
    manifest = {"format": "terraform-dem seed-layout pairs", "files": len(files),
                "bytes": sum(f["bytes"] for f in files), "regions": regions, "pairs": sum(regions.values()),
                "sources": [os.path.basename(os.path.normpath(d)) for d in dirs], "entries": files}
    blob = json.dumps(manifest, indent=1, sort_keys=True).encode()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp"
    try:
        with open(tmp, "wb") as raw:
            # GzipFile(mtime=0) rather than tarfile's "w:gz", which stamps the current time into the header.
            stream = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if out.endswith(".gz") else raw
            with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(_tarinfo(MANIFEST, len(blob)), io.BytesIO(blob))
                for (name, path), f in zip(members, files):
                    with open(path, "rb") as src:
                        tar.addfile(_tarinfo(name, f["bytes"]), src)
            if stream is not raw:
                stream.close()
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, out)
    return {"archive": out, "archive_bytes": os.path.getsize(out), "archive_sha256": sha256_file(out),
            "pairs": manifest["pairs"], "regions": regions, "files": len(files)}


def unpack(archive, out) -> dict:
    """Extract into ``out`` and verify every file against the manifest; return the manifest."""
    root = os.path.realpath(out)
    with tarfile.open(archive, "r:*") as tar:
        first = tar.next()
        if first is None or first.name != MANIFEST:
            raise ValueError(f"{archive}: not a training.pack archive (no {MANIFEST} first)")
        manifest = json.load(tar.extractfile(first))
        expected = {e["name"]: e for e in manifest["entries"]}
        seen = set()
        for m in tar:
            if m.name == MANIFEST:
                continue
            target = os.path.realpath(os.path.join(root, m.name))
            if not m.isfile() or os.path.commonpath([root, target]) != root:
                raise ValueError(f"{archive}: refusing member {m.name!r} (not a plain file inside the output folder)")
            if m.name not in expected:
                raise ValueError(f"{archive}: {m.name} is not in the manifest")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            h = hashlib.sha256()
            with tar.extractfile(m) as src, open(target, "wb") as dst:
                for block in iter(lambda: src.read(4 * MIB), b""):
                    h.update(block)
                    dst.write(block)
            if h.hexdigest() != expected[m.name]["sha256"]:
                raise ValueError(f"{archive}: {m.name} does not match its manifest checksum (corrupt archive)")
            seen.add(m.name)
    missing = sorted(set(expected) - seen)
    if missing:
        raise ValueError(f"{archive}: {len(missing)} manifest files missing, e.g. {missing[0]}")
    return manifest


# --- split / join ---------------------------------------------------------------------------------
def split(path, out_dir=None, part_bytes=PART_MIB * MIB) -> str:
    """FILE -> FILE.partNNN (each ≤ part_bytes) + FILE.parts.json; returns the index's path."""
    if part_bytes <= 0:
        raise ValueError("part size must be positive")
    out_dir = out_dir or os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.basename(path)
    parts, whole = [], hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(part_bytes)
            if not block and parts:
                break
            name = f"{base}.part{len(parts):03d}"
            with open(os.path.join(out_dir, name), "wb") as p:
                p.write(block)
            whole.update(block)
            parts.append({"name": name, "bytes": len(block), "sha256": hashlib.sha256(block).hexdigest()})
            if len(block) < part_bytes:
                break
    index = {"file": base, "bytes": sum(p["bytes"] for p in parts), "sha256": whole.hexdigest(),
             "part_bytes": part_bytes, "parts": parts}
    index_path = os.path.join(out_dir, base + ".parts.json")
    with open(index_path, "w") as f:
        json.dump(index, f, indent=1)
    return index_path


def join(index_path, out) -> str:
    """Parts listed in ``index_path`` (looked up beside it) -> ``out``, every checksum verified."""
    with open(index_path) as f:
        index = json.load(f)
    folder = os.path.dirname(os.path.abspath(index_path))
    tmp, whole = out + ".tmp", hashlib.sha256()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    try:
        with open(tmp, "wb") as dst:
            for p in index["parts"]:
                path = os.path.join(folder, p["name"])
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"part missing: {path} (bring back every part listed in {index_path})")
                with open(path, "rb") as src:
                    block = src.read()
                if hashlib.sha256(block).hexdigest() != p["sha256"]:
                    raise ValueError(f"{path}: checksum mismatch (corrupt or from another split)")
                whole.update(block)
                dst.write(block)
        if whole.hexdigest() != index["sha256"]:
            raise ValueError(f"joined file does not match {index['file']}'s checksum")
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, out)
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.pack", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--data", nargs="+", help="seed-layout folders to pack into --out (.tar, or .tar.gz to compress)")
    mode.add_argument("--unpack", metavar="ARCHIVE", help="extract ARCHIVE into the folder --out, verified")
    mode.add_argument("--split", metavar="FILE", help="cut FILE into parts in the folder --out (default: beside it)")
    mode.add_argument("--join", metavar="INDEX", help="FILE.parts.json -> the file --out, verified")
    p.add_argument("--out", help="archive (--data), folder (--unpack, --split) or file (--join)")
    p.add_argument("--part-mib", type=float, default=PART_MIB, help="largest part for --split, MiB (default 16)")
    a = p.parse_args(argv)
    if not a.out and not a.split:
        p.error("--out is required")
    return a


def main(argv=None):
    a = parse_args(argv)
    t = time.perf_counter()
    if a.data:
        r = pack(a.data, a.out)
        print(f"packed {r['pairs']} pairs ({', '.join(f'{k} {v}' for k, v in r['regions'].items())}) into {a.out}: "
              f"{r['archive_bytes'] / MIB:.1f} MiB, sha256 {r['archive_sha256'][:16]}…")
        if r["archive_bytes"] > 48 * MIB:
            print("warning: over 48 MiB; a GPU slice carries at most 64 MiB of working tree in all", file=sys.stderr)
    elif a.unpack:
        m = unpack(a.unpack, a.out)
        print(f"unpacked {m['pairs']} pairs, {m['files']} files verified, into {a.out}")
    elif a.split:
        index = split(a.split, a.out, int(a.part_mib * MIB))
        with open(index) as f:
            n = len(json.load(f)["parts"])
        print(f"split {a.split} into {n} part(s) of ≤ {a.part_mib:g} MiB; index {index}")
    else:
        join(a.join, a.out)
        print(f"joined into {a.out}, checksum verified")
    print(f"({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    return True


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
