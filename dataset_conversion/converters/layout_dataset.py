"""Conversion of datasets whose cases are fully described by the file patterns of their label table."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional

from dataset_conversion.converter import convert_dataset
from dataset_conversion.discovery import cases_from_layout
from dataset_conversion.label_tables import load_label_table


def convert_by_layout(table_key: str, native_folder: Path, output_folder: Path, num_processes: Optional[int] = None,
                      keep_id: Callable[[str], bool] = lambda _: True,
                      split_override: Optional[Dict[str, str]] = None) -> Path:
    """Discover cases with ``data/label_tables/<table_key>.json`` 'layout' and convert them; return dataset.json."""
    table = load_label_table(table_key)
    cases = cases_from_layout(Path(native_folder), table, keep_id=keep_id, split_override=split_override)
    return convert_dataset(table, cases, Path(output_folder), num_processes)
