"""``nnUNetv2_openvocab_reproduce``: a paper table's experiment run at smoke scale (steps.py runs the real commands
with resume, smoke_data.py prepares the bundled CT and captions, tables.py is the table registry and writers) or
written as paper-scale shell commands (paper_tables.py)."""
