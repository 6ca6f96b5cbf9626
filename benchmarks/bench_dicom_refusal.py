"""Time from the start of a prediction run to the refusal of an unusable DICOM series (issue 22, acceptance: < 5 s).

Each unusable variation of the tests' DICOM corpus (tests/dicom_variations.py, a 64 x 64 x 12 crop of the bundled
CT) is given to the console command in a fresh process, as a user would run it, with ``--output-type`` dicom_seg
and dicom_rtstruct; prints the wall time from process start to exit (Python, torch and nnU-Net imports
included), the exit code and the one-line message, and the time of the same run inside one process that has
imported them already (``main`` called to refusal: model loading and the input checks). ::

    python benchmarks/bench_dicom_refusal.py MODEL_FOLDER
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dicom_variations import REFUSED, build  # noqa: E402  (the tests' corpus)
from nnunetv2_openvocab.commands.predict import main as predict_main  # noqa: E402


def refusal(series: Path, output: Path, model_folder: str, output_type: str):
    arguments = ["-i", str(series), "-o", str(output), "-m", model_folder, "-f", "all", "-device", "cpu",
                 "--output-type", output_type, "--prompts", "liver"]
    start = time.perf_counter()
    done = subprocess.run(["nnUNetv2_openvocab_predict", *arguments], capture_output=True, text=True)
    process_seconds = time.perf_counter() - start
    start = time.perf_counter()
    try:
        predict_main(arguments)
    except SystemExit:
        pass
    return process_seconds, time.perf_counter() - start, done.returncode, done.stderr.strip().splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for name in REFUSED:
            series = build(name, Path(scratch) / name / "series")
            for output_type in ("dicom_seg", "dicom_rtstruct"):
                seconds, in_process, code, lines = refusal(series, Path(scratch) / name / output_type,
                                                           args.model_folder, output_type)
                print(f"{name:26s} {output_type:15s} {seconds:5.2f} s ({in_process:4.2f} s imported)  exit {code}  "
                      f"{len(lines)} line(s): {lines[-1][:140] if lines else ''}")


if __name__ == "__main__":
    main()
