"""The streamed run: read a window -> colourise -> infer chips in batches -> blend -> write finished rows.

STUB — the API is fixed; the implementation belongs to the engine work.
"""

from dataclasses import dataclass
from typing import Callable, Optional

NODATA_MODES = ("transparent", "ocean")


@dataclass
class TerraformRequest:
    input_path: str
    output_path: str  # GeoTIFF; written to a temporary file beside it, moved into place when complete
    model_path: str
    band: int = 1
    overlap: int = 64  # pixels shared by neighbouring chips
    nodata_mode: str = "transparent"  # transparent: model sees a filled surface, alpha 0; ocean: nodata is sea
    resolution_m: Optional[float] = None  # ground metres per output pixel; None = the model's resolution_m
    sea_level: float = 0.0
    vertical_scale: float = 1.0
    fit_to_earth: bool = False  # choose vertical_scale from the data (overrides vertical_scale)
    preview_path: Optional[str] = None  # before/after PNG (colourised DEM | terraformed)
    batch_size: int = 8
    threads: Optional[int] = None  # onnxruntime intra-op threads; None = all cores


@dataclass
class TerraformResult:
    output_path: str
    width: int
    height: int
    chips: int
    vertical_scale: float  # the one used (chosen by fit_to_earth, or the request's)
    resolution_m: float
    model_name: str
    provider: str  # onnxruntime execution provider that ran
    elapsed_s: float
    preview_path: Optional[str] = None


def run(
    request: TerraformRequest,
    progress: Optional[Callable[[float], None]] = None,  # percent 0-100
    log: Optional[Callable[[str], None]] = None,  # one info line per call
    cancelled: Optional[Callable[[], bool]] = None,  # polled between batches
    model=None,  # an already loaded TerraformModel (batch runs reuse one session)
) -> TerraformResult:
    """Terraform one DEM. Raises TerraformError subclasses with user-facing messages; Cancelled on cancel.

    On any error or cancel nothing is left at ``output_path`` (nor a temporary file).
    """
    raise NotImplementedError
