"""One colour per prompt, shared by every output that draws prompts: the preview's overlay and legend, and the
RTSTRUCT's ROI display colours. Prompt k (0-based position in the case's prompt list, i.e. label k+1 of the
combined map's legend) gets matplotlib's tab10 colour k, or tab20 colour k mod 20 beyond ten prompts."""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps


def prompt_colours(count: int) -> np.ndarray:
    """(count, 3) RGB in [0, 1], row k for the k-th prompt."""
    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return np.array([palette(k % palette.N)[:3] for k in range(count)]).reshape(count, 3)


def prompt_colours_8bit(count: int) -> np.ndarray:
    """(count, 3) uint8 RGB, as DICOM's ROI Display Color stores it."""
    return np.round(prompt_colours(count) * 255).astype(np.uint8)
