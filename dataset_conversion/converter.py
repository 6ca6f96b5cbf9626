"""Convert a discovered list of cases into a prompt-ready nnU-Net raw dataset (the step every converter ends with)."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Optional, Sequence

from nnunetv2.configuration import default_num_processes

from dataset_conversion.case_conversion import REPORT_NAME, TRAIN, Case, ConversionJob, run_conversion
from dataset_conversion.dataset_json import build_dataset_json, write_dataset_json
from dataset_conversion.label_tables import LabelTable

logger = logging.getLogger(__name__)

# Bump when the per-case output format changes, so resumed runs redo cases converted by an older version.
CONVERTER_VERSION = "1"


def table_fingerprint(table: LabelTable) -> str:
    digest = hashlib.sha256(CONVERTER_VERSION.encode())
    digest.update(table.path.read_bytes())
    return digest.hexdigest()[:16]


def convert_dataset(table: LabelTable, cases: Sequence[Case], output_folder: Path,
                    num_processes: Optional[int] = None, description: str = "") -> Path:
    """Convert ``cases`` into ``output_folder`` (resumable) and write its dataset.json; return that path.

    Raises RuntimeError when no training case could be converted (the report says why).
    """
    table.check()
    output_folder = Path(output_folder)
    structure_values = {name: values[0] for name, values in table.labels.items()}
    job = ConversionJob(output_folder=output_folder, allowed_values=table.allowed_values,
                        label_table_path=table.path, fingerprint=table_fingerprint(table),
                        structure_values=structure_values)
    results = run_conversion(cases, job, num_processes or default_num_processes, title=f"Converting {table.dataset}")
    num_training = sum(r.converted and r.split == TRAIN for r in results)
    if num_training == 0:
        raise RuntimeError(f"No {table.dataset} training case could be converted; see {output_folder / REPORT_NAME}.")
    notes = f" Layout/label-table notes: {table.uncertain}" if table.uncertain else ""
    dataset_json = build_dataset_json(
        name=output_folder.name, labels=table.labels, num_training=num_training, provenance=table.provenance(),
        description=(description or f"{table.dataset} converted by nnUNetv2_openvocab_convert.") + notes,
        extra={"label_table": f"dataset_conversion/data/label_tables/{table.key}.json"})
    path = write_dataset_json(output_folder, dataset_json)
    logger.info("Wrote %s (%d training cases).", path, num_training)
    return path
