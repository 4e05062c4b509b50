"""Figures of modules run with ``plot=True``: Plotly figure JSON, written without Plotly.

A figure is one row of panels, each an image shown as a heatmap (large images
are reduced first so that a figure stays small enough for a browser).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

#: longest side of an image in a figure; larger images are subsampled
MAX_SIDE = 512

#: Plotly colour scales by kind of image
COLORSCALES = {"intensity": "Greys", "mask": "Greys", "label": "Viridis"}


def _reduce(image: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil(max(image.shape[:2]) / MAX_SIDE)))
    return np.asarray(image)[::step, ::step]


def image_figure(panels: Sequence[tuple[str, np.ndarray, str]]) -> str:
    """Plotly JSON of images side by side.

    Parameters
    ----------
    panels : sequence of (title, image, kind)
        `image` has shape (M, N), any numeric or bool dtype; `kind` is
        ``intensity``, ``mask`` or ``label`` (picks the colour scale).

    Returns
    -------
    str
        A Plotly figure (``{"data": [...], "layout": {...}}``) as JSON.
    """
    data, layout = [], {"title": {"text": ""}, "showlegend": False}
    width = 1.0 / max(len(panels), 1)
    for i, (title, image, kind) in enumerate(panels, start=1):
        if kind not in COLORSCALES:
            raise ValueError(f"unknown kind of image {kind!r}; use {', '.join(COLORSCALES)}")
        reduced = _reduce(image).astype(np.float64)
        suffix = "" if i == 1 else str(i)
        data.append(
            {
                "type": "heatmap",
                "z": np.round(reduced, 3).tolist(),
                "colorscale": COLORSCALES[kind],
                "showscale": False,
                "xaxis": f"x{suffix}",
                "yaxis": f"y{suffix}",
                "name": title,
            }
        )
        layout[f"xaxis{suffix}"] = {"domain": [(i - 1) * width, i * width - 0.02],
                                    "showticklabels": False}  # fmt: skip
        layout[f"yaxis{suffix}"] = {"autorange": "reversed", "scaleanchor": f"x{suffix}",
                                    "showticklabels": False}  # fmt: skip
        layout.setdefault("annotations", []).append(
            {
                "text": title,
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": (i - 0.5) * width,
                "y": 1.05,
            }  # fmt: skip
        )
    return json.dumps({"data": data, "layout": layout})
