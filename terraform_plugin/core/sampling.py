"""Whole-band looks at a reduced size (nearest neighbour, so the values are real elevations), read in strips.

A decimated read still decompresses, and keeps in GDAL's block cache, every source block a sampled row touches:
with a sample every 16-45 source rows, that is every block. Strips are therefore bounded by the source they
cover (``STRIP_SOURCE_BYTES``, at least one block row) rather than by the buffer, and the band's blocks are
dropped after each one, so that these looks cost the same memory on a 32768 x 8192 raster as on a small one.
(Before, the elevation scan held half the raster's blocks at a time: 490 MB of cache at 32768 x 8192.)
"""

from osgeo import gdal

STRIP_SOURCE_BYTES = 32 * 2**20


def decimated_strips(band, buf_h: int, parts: int = 1) -> list:
    """[(r0, r1, y0, y1)]: buffer rows r0..r1 of a ``buf_h``-row look at ``band`` come from source rows y0..y1
    (the same rounding for every strip, so the strips tile the raster side by side; where a buffer row is not a
    whole number of source rows, a strip's nearest rows may be one source row away from one read's); each covers
    at most ``STRIP_SOURCE_BYTES`` of source, or one block row; at least ``parts`` strips when the buffer has
    the rows (``parts``: threads sharing the work)."""
    height = band.YSize
    row_bytes = max(1, band.XSize * gdal.GetDataTypeSize(band.DataType) // 8)
    block_h = max(1, band.GetBlockSize()[1])
    source_rows = max(block_h, STRIP_SOURCE_BYTES // row_bytes // block_h * block_h)
    step = max(1, min(source_rows * buf_h // height, -(-buf_h // max(1, parts))))
    return [
        (r0, min(buf_h, r0 + step), r0 * height // buf_h, min(buf_h, r0 + step) * height // buf_h)
        for r0 in range(0, buf_h, step)
    ]


def read_strip(band, strip, buf_w: int):
    """One strip of ``decimated_strips`` at ``buf_w`` columns (nearest), or None where GDAL cannot read it; the
    band's cached blocks are dropped afterwards."""
    r0, r1, y0, y1 = strip
    try:
        return band.ReadAsArray(0, y0, band.XSize, y1 - y0, buf_xsize=buf_w, buf_ysize=r1 - r0,
                                resample_alg=gdal.GRIORA_NearestNeighbour)
    finally:
        band.FlushCache()
