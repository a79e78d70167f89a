"""What a warm-started run inherits from its source besides weights: looks, latitude range, images seen.

A source is a training checkpoint, the shipped trainable weights (training.trainable) or an exported ONNX model.
Its looks keep their channels and labels (a fine-tune appends the user's region after them), its trained
latitude range stays inside the new one (the weights learned it; narrowing would clamp the old regions'
latitudes), and its count of images seen is where the new run's count starts, so a release says how many
images it has seen across every session that built it.
"""

import json


def _onnx_source(path) -> dict:
    import onnx

    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}

    def value(key, default=None):
        try:
            return json.loads(props[key]) if key in props else default
        except ValueError:
            return default

    latitude = next((e.get("range_deg") for e in value("inputs", []) if e.get("kind") == "latitude"), None)
    return {"looks": value("looks", []), "latitude_range": latitude, "images_seen": value("images_seen"),
            "steps": value("steps"), "batch_size": (value("training") or {}).get("batch_size"), "ndf": None}


def _checkpoint_source(path) -> dict:
    from . import checkpoint as ckpt

    state = ckpt.load(path)
    record = state.get("conditioning") or {}
    return {"looks": record.get("looks", []), "latitude_range": record.get("latitude_range"),
            "images_seen": state.get("images_seen"), "steps": state.get("step"),
            "batch_size": (state.get("args") or {}).get("batch_size"),
            "ndf": (state.get("args") or {}).get("ndf") if "discriminator" in state else None}


def describe_source(path) -> dict:
    """{"looks": [{"id", "label", ...}], "latitude_range": [low, high] or None, "images_seen": int,
    "images_seen_estimated": bool, "ndf": its discriminator's width or None (it has none)} of a warm-start source.

    A source that predates the count is credited with its own steps x batch size: a lower bound (its own
    warm start is not counted), and said so (``images_seen_estimated``)."""
    try:
        record = _onnx_source(path) if path.lower().endswith(".onnx") else _checkpoint_source(path)
    except Exception as exc:  # a truncated or foreign file: say which, not a protobuf/pickle trace
        raise SystemExit(f"--init-from {path}: cannot read weights ({type(exc).__name__}: {exc})") from None
    estimated = record["images_seen"] is None
    if estimated:
        record["images_seen"] = int(record["steps"] or 0) * int(record["batch_size"] or 1)
    return {"looks": list(record["looks"] or []), "latitude_range": record["latitude_range"],
            "images_seen": int(record["images_seen"]), "images_seen_estimated": estimated, "ndf": record["ndf"]}


def widened_range(own, source) -> tuple:
    """The |latitude| range (low, high) that covers both ``own`` and ``source`` (None: just ``own``)."""
    if not source:
        return tuple(own)
    return min(own[0], float(source[0])), max(own[1], float(source[1]))
