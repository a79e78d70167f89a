"""A model's ``metadata_props`` read straight from the ONNX file: no onnxruntime, no onnx package.

The QGIS algorithm lists the bundled model's looks when it is defined, and QGIS must list the algorithm even
where onnxruntime is missing (the plugin then says how to install it). An ONNX file is a protobuf
``ModelProto``; its metadata is top-level field 14, a list of {1: key, 2: value} strings. The other top-level
fields (the graph: most of the file) are skipped with a seek, so this reads a few hundred bytes.
"""

import os

from .errors import ModelError

METADATA_FIELD = 14
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


def _varint(read):
    shift = result = 0
    while True:
        byte = read(1)
        if not byte:
            raise EOFError
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _entry(data: bytes):
    """(key, value) of one StringStringEntryProto."""
    pos, fields = 0, {}

    def read(n):
        nonlocal pos
        chunk = data[pos : pos + n]
        pos += len(chunk)
        return chunk

    while pos < len(data):
        tag = _varint(read)
        if tag & 7 != _LENGTH:
            raise ValueError("unexpected wire type in a metadata entry")
        fields[tag >> 3] = read(_varint(read)).decode("utf-8")
    return fields.get(1, ""), fields.get(2, "")


def read_metadata_props(path) -> dict:
    """{key: value} of the ONNX file's ``metadata_props``; ModelError when the file is not a readable ONNX."""
    path = os.fspath(path)
    props = {}
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            while f.tell() < size:
                tag = _varint(f.read)
                field, wire = tag >> 3, tag & 7
                if wire == _VARINT:
                    _varint(f.read)
                elif wire == _FIXED64:
                    f.seek(8, os.SEEK_CUR)
                elif wire == _FIXED32:
                    f.seek(4, os.SEEK_CUR)
                elif wire == _LENGTH:
                    length = _varint(f.read)
                    if f.tell() + length > size:
                        raise ValueError("a field runs past the end of the file")
                    if field == METADATA_FIELD:
                        key, value = _entry(f.read(length))
                        props[key] = value
                    else:
                        f.seek(length, os.SEEK_CUR)
                else:
                    raise ValueError(f"wire type {wire}")
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror}") from None
    except (EOFError, ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{os.path.basename(path)} is not an ONNX model this plugin can read ({exc})") from None
    return props


def read_metadata(path):
    """The file's validated ``ModelMetadata`` (``schema.parse_metadata``), without loading the model."""
    from .schema import parse_metadata

    return parse_metadata(read_metadata_props(path))
