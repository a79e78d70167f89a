"""User-facing help for the Processing algorithms, kept out of the algorithms' code.

The sources wrap lines for reading; QGIS's help panel turns every newline into a line break, so ``_flow`` joins
each block into one line: one paragraph per ``<p>``, no hard breaks inside sentences.
"""

import re


def _flow(html: str) -> str:
    """Collapse every run of whitespace that contains a newline into one space; drop the outer blank lines."""
    return re.sub(r"\s*\n\s*", " ", html.strip())


SHORT_HELP = _flow("""
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
<code>qgis_process run terraform:terraformdem -- INPUT=dem.tif OUTPUT=out.tif</code>.</p>
<p>onnxruntime must be installed for QGIS's Python: Plugins › Terraform DEM › Install/repair Terraform DEM
dependencies does it (also in this Toolbox under Terraform › Setup, and offline from a wheel file). The log
names the execution provider that ran the model (CPU or CUDA).</p>

<h3>Data and licence</h3>
<p>The output is a synthetic, plausible-looking image, not a photograph: do not use it as imagery of the
place. The bundled model was trained on Sentinel-2 cloudless imagery ("Sentinel-2 cloudless -
https://s2maps.eu by EOX IT Services GmbH (Contains modified Copernicus Sentinel data 2020)", CC BY-NC-SA
4.0) paired with SRTM elevation; images it makes carry that attribution and are for non-commercial use.
See the model card (models/MODEL_CARD.md).</p>
""")


INSTALL_HELP = _flow("""
<p>Installs onnxruntime, which Terraform DEM needs, for the Python that QGIS itself runs, into this profile's
dependency folder (python/dependencies/terraform_dem in the profile folder; no administrator rights needed,
and it survives plugin upgrades). Run it again to repair a broken install or to switch between CPU and GPU.</p>
<p>It keeps the numpy that QGIS ships: the install uses pip with --no-deps, and the wheel's numpy requirement is
checked against QGIS's numpy first. It installs into a staging folder, checks the result in a separate Python
process (import, then the bundled model opened with the chosen execution provider) and only then replaces the
previous install, so a failed attempt changes nothing. The log reports every step and what was installed.</p>
<h3>Parameters</h3>
<ul>
<li><b>Use an NVIDIA GPU</b>: installs onnxruntime-gpu instead. It needs the CUDA and cuDNN libraries of its
release; the log says whether CUDA actually loaded, and Terraform DEM falls back to the CPU (and says so) when
it does not.</li>
<li><b>Wheel file</b>: for machines without internet: an onnxruntime (or onnxruntime_gpu) .whl downloaded
elsewhere for this QGIS's Python version and platform (the name contains e.g. cp311 or cp313). Empty: pip
downloads the pinned version, honouring pip's own configuration (index, proxy, certificates).</li>
<li><b>Also install Dask</b>: optional, for the Dask scheduler address parameter of Terraform DEM (runs on a
Dask cluster). Installs the pinned dask[distributed] with its dependencies (about 20 packages, 5 MB) into its
own folder beside onnxruntime's, which the plugin puts after QGIS's own modules: where QGIS's Python already has
one of Dask's dependencies, QGIS's copy stays in use. It is checked the same way (a separate Python process, a
one-task local cluster) before it replaces an earlier install.</li>
<li><b>Folder of Dask wheels</b>: for machines without internet: a folder holding the wheels of
dask[distributed] and its dependencies for this QGIS's Python (made elsewhere with pip download).</li>
</ul>
<p>Restart QGIS afterwards if Terraform DEM had already loaded onnxruntime (or Dask) in this session.</p>
""")
