"""The generator: an onnxruntime session plus its validated contract metadata."""

import os

import numpy as np

from .errors import DependencyError, ModelError
from .schema import ModelMetadata, parse_metadata

ORT_INSTALL_HINT = "onnxruntime is not installed for this Python"
MODEL_FILE = "terraform_generator.onnx"  # the bundled model's file name
# Where the bundled model is: terraform_plugin/models/ (the plugin build and the wheel put it there), else
# models/ beside the package (a checkout).
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_MODEL_DIRS = (os.path.join(_PACKAGE_DIR, "models"), os.path.join(os.path.dirname(_PACKAGE_DIR), "models"))


def bundled_model_path():
    """The bundled model's path (installed plugin or wheel first, then the checkout's), or None if neither."""
    for folder in BUNDLED_MODEL_DIRS:
        path = os.path.join(folder, MODEL_FILE)
        if os.path.isfile(path):
            return path
    return None


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise DependencyError(f"{ORT_INSTALL_HINT} ({exc})") from None
    return onnxruntime


def default_threads() -> int:
    # Inference is the hot loop; reading and writing run beside it in threads that mostly wait on I/O.
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


# onnxruntime's pool threads spin (busy-wait) between operators by default, burning the cycles the
# pipeline's reader and writer threads need on the same cores (and any other work on the machine). Measured
# on 484 chips of the bundled model on 2 shared cores: bare onnxruntime 12.5 CPU-s spinning vs 8.1 not, the
# whole pipeline 16.0 vs 10.8 CPU-s and 25.0 vs 21.4 s. bench/run.py reports bare onnxruntime both ways.
SPINNING = False


class TerraformModel:
    """Loads a Terraform ONNX, validates it against the contract, and runs batches of chips.

    Contract 1: one input, [N, 3, tile, tile]. Contract 2: the inputs its metadata declares, by name, the DEM's
    colours at the tile's size and the conditioning planes at 1/plane_stride of it, height and width dynamic;
    a call gives the conditioning planes by kind.
    """

    def __init__(self, path, threads=None, use_gpu=True, spinning=SPINNING, arena=None):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ModelError(f"model file not found: {path}")
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if arena is not None:  # None: onnxruntime's default (on); bench/run.py measures both
            options.enable_cpu_mem_arena = bool(arena)
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider",) if use_gpu and p in available]
        providers.append("CPUExecutionProvider")
        try:
            self.session = ort.InferenceSession(path, sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
            raise ModelError(f"cannot load {path} as an ONNX model: {exc}") from None
        self.path = path
        self.provider = self.session.get_providers()[0]
        self.threads = options.intra_op_num_threads
        try:
            self.metadata: ModelMetadata = parse_metadata(self.session.get_modelmeta().custom_metadata_map)
        except ModelError as exc:
            raise ModelError(f"{os.path.basename(path)}: {exc}") from None
        self._check_io()

    def _check_io(self):
        if self.metadata.tiling_independent:
            self._check_io_v2()
            return
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        tile = self.metadata.tile_size
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"model must have one input and one output, has {len(inputs)} and {len(outputs)}")
        shape = list(inputs[0].shape)
        if len(shape) != 4 or shape[1:] != [3, tile, tile] or inputs[0].type != "tensor(float)":
            raise ModelError(
                f"model input must be float32 [N, 3, {tile}, {tile}] (tile_size from its metadata), "
                f"got {inputs[0].type} {shape}"
            )
        self.input_name = inputs[0].name
        self.plane_names = {}
        # Models exported with a fixed batch still work, one fixed-size batch at a time.
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None

    def _check_io_v2(self):
        """Contract 2: the graph's inputs are exactly the declared ones, each float32 [N, channels, H, W] with
        the declared channels and dynamic H, W; one 3-channel output. Then one small call (a tile of twice the
        alignment, planes at 1/plane_stride) proves that the graph takes the planes at that scale."""
        meta = self.metadata
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        declared = {p.name: p for p in meta.inputs}
        graph = {i.name: i for i in inputs}
        lacking = [f"{n} ({p.kind})" for n, p in declared.items() if n not in graph]
        if lacking:
            raise ModelError(f"the model's metadata declares the input(s) {', '.join(lacking)}, which its graph "
                             f"lacks (graph inputs: {', '.join(graph)})")
        undeclared = [n for n in graph if n not in declared]
        if undeclared:
            raise ModelError(f"the model's graph input(s) {', '.join(undeclared)} are not declared in its metadata "
                             "inputs (the engine would not know what to feed them)")
        for name, spec in declared.items():
            shape, kind = list(graph[name].shape), graph[name].type
            scale = "the tile's" if spec.kind == "ramp_rgb" else f"1/{meta.plane_stride} of the tile's"
            fixed = [d for d in shape[2:] if isinstance(d, int)]
            if len(shape) != 4 or kind != "tensor(float)" or shape[1] != spec.channels or fixed:
                raise ModelError(
                    f"model input {name} ({spec.kind}) must be float32 [N, {spec.channels}, H, W] with dynamic H "
                    f"and W ({scale} height and width), got {kind} {shape}"
                )
        if len(outputs) != 1:
            raise ModelError(f"model must have one output (satellite RGB), has {len(outputs)}")
        out = list(outputs[0].shape)
        if len(out) != 4 or out[1] not in (3, None) and not isinstance(out[1], str):
            raise ModelError(f"model output must be [N, 3, H, W], got {out}")
        ramp = meta.plane("ramp_rgb")
        self.input_name = ramp.name
        self.plane_names = {p.kind: p.name for p in meta.inputs if p.kind != "ramp_rgb"}
        batch = list(graph[ramp.name].shape)[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        self._probe()

    def _probe(self):
        meta = self.metadata
        side = 2 * meta.alignment
        n = self.fixed_batch or 1
        x = np.zeros((n, 3, side, side), dtype=np.float32)
        planes = {
            p.kind: np.zeros((n, p.channels, side // meta.plane_stride, side // meta.plane_stride), np.float32)
            for p in meta.inputs if p.kind != "ramp_rgb"
        }
        try:
            self.run(x, planes)
        except ModelError as exc:
            raise ModelError(f"the model does not run on a {side} px tile with its planes at 1/{meta.plane_stride} "
                             f"({exc})") from None
        except Exception as exc:  # onnxruntime's own errors (shape mismatches inside the graph)
            raise ModelError(f"the model does not run on a {side} px tile with its planes at 1/{meta.plane_stride} "
                             f"as its metadata declares: {exc}") from None

    @property
    def name(self) -> str:
        return self.metadata.extra.get("name") or os.path.splitext(os.path.basename(self.path))[0]

    @property
    def tile_size(self) -> int:
        return self.metadata.tile_size

    @property
    def ramp(self):
        return self.metadata.ramp

    def run(self, x: np.ndarray, planes=None) -> np.ndarray:
        """Raw call: float32 NCHW in input_range -> float32 NCHW in output_range. ``planes``: a conditioned
        model's conditioning planes by kind ({"latitude": (N, 1, H/s, W/s), ...}), one for each it declares."""
        planes = planes or {}
        if self.fixed_batch and len(x) != self.fixed_batch:
            step = self.fixed_batch
            parts = [
                self.run(*self._pad_batch(x[i : i + step], {k: v[i : i + step] for k, v in planes.items()}))
                for i in range(0, len(x), step)
            ]
            return np.concatenate(parts)[: len(x)]
        feeds = {self.input_name: np.ascontiguousarray(x, dtype=np.float32)}
        if set(planes) != set(self.plane_names):
            raise ValueError(f"the model takes the planes {sorted(self.plane_names)}, given {sorted(planes)}")
        for kind, name in self.plane_names.items():
            feeds[name] = np.ascontiguousarray(planes[kind], dtype=np.float32)
        y = self.session.run(None, feeds)[0]
        if y.shape != x.shape:
            raise ModelError(f"model output shape {list(y.shape)} differs from its input {list(x.shape)}")
        return y

    def _pad_batch(self, x, planes):
        missing = self.fixed_batch - len(x)
        if not missing:
            return x, planes
        pad = lambda a: np.concatenate([a, np.repeat(a[-1:], missing, axis=0)])  # noqa: E731
        return pad(x), {k: pad(v) for k, v in planes.items()}

    @property
    def input_scaling(self) -> tuple:
        """(scale, offset), float32: model input = RGB (0-255) * scale + offset, per the metadata's input_range."""
        lo, hi = self.metadata.input_range
        return np.float32((hi - lo) / 255.0), np.float32(lo)

    @property
    def output_scaling(self) -> tuple:
        """(scale, offset), float32: RGB (0-255) = model output * scale + offset, per the output_range."""
        lo, hi = self.metadata.output_range
        scale = np.float32(255.0 / (hi - lo))
        return scale, np.float32(-lo * scale)

    def predict(self, rgb: np.ndarray, planes=None) -> np.ndarray:
        """uint8 chips (N, T, T, 3) -> float32 (N, T, T, 3) on the 0-255 scale, unrounded.

        For whole chips at a time (evaluation, tests); the streamed pipeline scales a chip row at once instead.
        """
        scale, offset = self.input_scaling
        x = rgb.transpose(0, 3, 1, 2).astype(np.float32)
        x *= scale
        x += offset
        y = self.run(x, planes)
        scale, offset = self.output_scaling
        y *= scale
        y += offset
        np.clip(y, 0.0, 255.0, out=y)
        return y.transpose(0, 2, 3, 1)

    def describe(self) -> str:
        meta = self.metadata
        if meta.tiling_independent:
            tiles = (f"tiling-independent (receptive radius {meta.receptive_radius} px, tiles of any multiple of "
                     f"{meta.alignment} px)")
        else:
            tiles = f"{self.tile_size} px chips"
        return (
            f"{self.name} v{meta.extra.get('version', '?')} ({os.path.basename(self.path)}), "
            f"{tiles} at {meta.resolution_m:g} m/pixel, {self.provider} with {self.threads} threads"
        )
