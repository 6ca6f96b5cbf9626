"""Public CT datasets -> prompt-ready nnU-Net datasets, the shared structure taxonomy, merging, unseen-prompt sets.

- ``build_taxonomy``: regenerates the shared structure taxonomy (canonical structures, prompts, part-of relations),
  which lives in ``nnunetv2_openvocab.prompts.taxonomy`` (data: nnunetv2_openvocab/data/taxonomy.json) because
  inference grounds prompts with it.
- ``label_tables`` (data/label_tables/*.json): per-dataset native layout and label values.
- ``case_conversion``, ``converter``, ``discovery``, ``volume_checks``, ``problems``: the shared, resumable
  conversion framework; ``converters/``: one module per source dataset; ``registry``: the converters by name (the CLI is nnunetv2_openvocab/commands/convert.py).
- ``merge``, ``label_harmonisation``: partially labelled merged datasets (CLI: nnunetv2_openvocab/commands/merge.py).
- ``unseen_sets``: generates the unseen-prompt sets shipped in nnunetv2_openvocab/data/unseen_prompts.
"""
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
