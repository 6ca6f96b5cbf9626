"""Segmentations in the input's geometry, written atomically (nnunetv2_openvocab.atomic_files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from nnunetv2.imageio.base_reader_writer import BaseReaderWriter

from nnunetv2_openvocab.atomic_files import atomic_path


def write_segmentation(reader_writer: BaseReaderWriter, array: np.ndarray, path: Path, properties: dict) -> None:
    """A mask or label map in the input's geometry (``properties`` from the reader)."""
    with atomic_path(path) as temporary:
        reader_writer.write_seg(array, str(temporary), properties)
