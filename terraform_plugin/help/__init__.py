"""User-facing help for the Processing algorithm, kept out of the algorithm's code."""

SHORT_HELP = """
<p>Turns an elevation model (an Earth DEM such as SRTM, or a Mars MOLA layer) into an Earth-like
satellite image with a pix2pix generator. The elevations are coloured with the ramp the model was
trained on, cut into overlapping chips, passed through the model and blended back without seams.
The result is a georeferenced RGB + alpha GeoTIFF in the input's own CRS.</p>

<h3>Parameters</h3>
<ul>
<li><b>Elevation layer / Band</b>: the DEM and its elevation band (metres, or the layer's vertical unit).
The layer must have a CRS.</li>
<li><b>Model</b>: a Terraform ONNX generator. Leave empty to use the bundled model. A model declares its
chip size, ground resolution and colour ramp in its metadata; files without that metadata are refused.</li>
<li><b>Chip overlap</b> (advanced): pixels shared by neighbouring chips (default 64). More overlap gives
smoother joins and costs more chips.</li>
<li><b>No-data</b> (advanced): <i>transparent</i> (default) fills gaps for the model and makes them
transparent in the output; <i>ocean</i> paints them as sea.</li>
<li><b>Output resolution</b> (advanced): ground metres per output pixel. Empty = the model's own resolution
(the bundled model: 200 m/pixel, i.e. 256 px chips cover 51.2 km). Far from it the textures lose
their scale. Geographic CRSs (Earth or Mars) are converted with the CRS's own ellipsoid.</li>
<li><b>Sea level</b>: elevations below it become ocean (in the layer's units, default 0).</li>
<li><b>Vertical scale</b>: the colour ramp sees (elevation − sea level) × scale. The model was trained on
Earth relief of 0–9000 m.</li>
<li><b>Fit relief to Earth</b>: chooses the vertical scale from the data (high percentile of the land
near the top of Earth's range) and reports it in the log and the output's metadata.</li>
<li><b>Before/after preview</b>: optional PNG, colourised DEM beside the terraformed image.</li>
</ul>

<h3>Mars</h3>
<p>MOLA elevations run from about −8 km to +21 km relative to the areoid, far outside Earth's range.
Choose a sea level to place the oceans (e.g. −3000 m fills the northern lowlands, −1000 m floods more)
and either tick <i>Fit relief to Earth</i> or set a vertical scale around 0.3–0.5 so that Olympus Mons
does not saturate the ramp.</p>

<h3>Running it</h3>
<p>Works in batch mode, in the Model Designer and headless:
<code>qgis_process.bin run terraform:terraformdem -- INPUT=dem.tif OUTPUT=out.tif</code>.
onnxruntime must be installed for QGIS's Python; when it is missing the error says how.</p>

<h3>Data and licence</h3>
<p>The output is a synthetic, plausible-looking image, not a photograph: do not use it as imagery of the
place. The bundled model was trained on Sentinel-2 cloudless imagery ("Sentinel-2 cloudless -
https://s2maps.eu by EOX IT Services GmbH (Contains modified Copernicus Sentinel data 2020)", CC BY-NC-SA
4.0) paired with SRTM elevation; images it makes carry that attribution and are for non-commercial use.
See the model card (models/MODEL_CARD.md).</p>
"""
