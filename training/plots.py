"""Pictures people look at instead of numbers: the loss curve and image grids."""

import csv
import warnings

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers
# Debian's matplotlib beside the venv's makes mpl_toolkits (3-D axes, unused here) warn on import.
warnings.filterwarnings("ignore", message="Unable to import Axes3D")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def read_csv(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def _smooth(values, window):
    if len(values) < window or window < 2:
        return np.asarray(values, dtype=float)
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def loss_curve(loss_csv, val_csv, out_png, title="pix2pix training"):
    """Generator L1 (the number that tracks fidelity), GAN terms, and validation L1 against steps."""
    rows, val = read_csv(loss_csv), read_csv(val_csv)
    if not rows:
        return None
    steps = np.array([int(r["step"]) for r in rows])
    window = max(1, min(50, len(rows) // 10))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=90)
    l1 = [float(r["g_l1"]) for r in rows]
    ax1.plot(steps[window - 1 :], _smooth(l1, window), label=f"train L1 (mean of {window})")
    if val:
        ax1.plot([int(r["step"]) for r in val], [float(r["val_l1"]) for r in val], "o-", label="validation L1 (eval mode)")
    ax1.set_xlabel("step")
    ax1.set_ylabel("L1 on [-1, 1]")
    ax1.legend()
    ax1.grid(alpha=0.3)
    for key, label in (("g_gan", "G adversarial"), ("d", "D (real+fake)/2")):
        ax2.plot(steps[window - 1 :], _smooth([float(r[key]) for r in rows], window), label=label)
    ax2.set_xlabel("step")
    ax2.set_ylabel("BCE with logits")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return out_png


def image_grid(rows, out_png, scale=1.0, gap=4):
    """rows: list of lists of uint8 HWC images (e.g. input | real | generated) -> one PNG."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            canvas[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = img
    im = Image.fromarray(canvas)
    if scale != 1.0:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    im.save(out_png, optimize=True)
    return out_png
