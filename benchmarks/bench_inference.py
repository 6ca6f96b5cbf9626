"""Inference speed and memory of OpenVocabPredictor against nnU-Net's stock nnUNetPredictor (issue 4, item 3).

Model: the demo's width-8 STU-Net B trained on the bundled real CT (run ``nnUNetv2_openvocab_demo`` first, or
pass ``--model-folder``). Image: that CT (3 mm, 122x101x112) and the same CT resampled to 1 mm (366x303x336).
Prompts: the first N TotalSegmentator structure names (``--prompts N``: 32 by default, 117 = the whole
vocabulary). The stock predictor gets the same network in nnU-Net's default mode with those N prompts as its
classes (N + 1 output channels with background).

  (a) time with N prompts / time with 1 prompt (``predict_single_image``: read, preprocess, sliding window,
      masks in the original geometry), at 3 mm and at 1 mm. Goal <= 1.10 at 32 prompts; at 117, <= 1.15 at 3 mm
      and <= 1.30 at 1 mm.
  (b) peak RSS of ours / the stock predictor's, N prompts = N classes, ``--rss-spacing`` input (default 1 mm),
      each in its own subprocess that reads the file and writes its outputs; ``--probabilities`` adds our run
      with ``save_probabilities``. Goal <= 0.5 at 32 prompts, <= 0.35 at 117.
  (c) sliding-window prediction (preprocessed volume -> N masks in the original geometry, written) / the summed
      bare forward passes ``network(tile, N embeddings)`` of the same tiles, at 3 mm and 1 mm. Goal <= 1.25.

Usage: python benchmarks/bench_inference.py [--model-folder DIR] [--checkpoint checkpoint_best.pth] [--repeats 3]
       [--parts a b c] [--images 3mm 1mm] [--prompts 117] [--rss-spacing 1.5] [--probabilities]
       (--parts: a subset of the three measurements). Shared cores make single runs noisy (the same run varies by
       up to 1.5x here), so (a) alternates 1 and N prompts --repeats times and prints every run, the ratio of the
       best runs and the median of the paired ratios. The stock predictor's peak grows with N x the original
       volume in float32 (about 18 GB at 117 classes and 1 mm), so on small machines pass --rss-spacing 1.5.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk
import torch

from nnunetv2_openvocab.example_dataset import CLASS_MAP, EXAMPLE_CT
from nnunetv2_openvocab.inference.outputs.case_outputs import CaseOutputWriter, OutputOptions
from nnunetv2_openvocab.inference.input_images import find_cases, read_case
from nnunetv2_openvocab.inference.predictor import OpenVocabPredictor
from nnunetv2_openvocab.inference.sliding_window import SlidingWindow
from nnunetv2_openvocab.network.openvocab_stunet import OpenVocabSTUNet, build_openvocab_stunet

DEMO_MODEL = Path("openvocab_demo/nnUNet_results/Dataset990_OpenVocabExample/"
                  "nnUNetTrainerOpenVocab_CPUShort__nnUNetPlans_STUNetB_width8__3d_fullres")
NUM_PROMPTS = 32
# (time ratio at 3 mm, time ratio at 1 mm, peak RSS ratio) goals per prompt count (issues 4 and 15)
GOALS = {32: (1.10, 1.10, 0.5), 117: (1.15, 1.30, 0.35)}


def benchmark_prompts(count: int = NUM_PROMPTS) -> list:
    names = list(json.loads(CLASS_MAP.read_text(encoding="utf-8")).values())[:count]
    return [name.replace("_", " ") for name in names]


def checkpoint_name(model_folder: Path, requested: str | None) -> str:
    if requested:
        return requested
    return next(n for n in ("checkpoint_final.pth", "checkpoint_best.pth") if (model_folder / "fold_all" / n).is_file())


def make_predictor(model_folder: Path, checkpoint: str) -> OpenVocabPredictor:
    return OpenVocabPredictor(0.5, use_mirroring=False, device=torch.device("cpu"), show_progress=False) \
        .initialize_from_trained_model_folder(model_folder, ("all",), checkpoint)


def resampled_ct(folder: Path, spacing: float = 1.0) -> Path:
    ct = sitk.ReadImage(str(EXAMPLE_CT))
    size = [int(round(n * s / spacing)) for n, s in zip(ct.GetSize(), ct.GetSpacing())]
    resampled = sitk.Resample(ct, size, sitk.Transform(), sitk.sitkLinear, ct.GetOrigin(), (spacing,) * 3,
                              ct.GetDirection(), -1024, ct.GetPixelID())
    path = folder / f"ct_{spacing:g}mm.nii.gz"
    sitk.WriteImage(resampled, str(path))
    return path


def seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def ratio_many_over_1(predictor: OpenVocabPredictor, image: Path, prompts: list, repeats: int) -> tuple:
    """Times of ``repeats`` runs with 1 and with all prompts, alternating, so that a drift in machine speed
    (shared cores) affects both sides alike, after one untimed run (the first run in a process was up to 1.4x
    slower)."""
    one, many = [], []
    predictor.predict_single_image(image, prompts)  # untimed warm-up: grounding, allocator, lazy imports
    for _ in range(repeats):
        one.append(seconds(lambda: predictor.predict_single_image(image, prompts[:1])))
        many.append(seconds(lambda: predictor.predict_single_image(image, prompts)))
    return one, many


def sliding_window_overhead(predictor: OpenVocabPredictor, image: Path, prompts: list, output: Path) -> tuple:
    """(our time from preprocessed volume to written masks, summed bare forward time of the same tiles, tiles)."""
    model = predictor.model
    case = find_cases(image, ".nii.gz")[0]
    data, properties = read_case(case, model.plans_manager.image_reader_writer_class)
    preprocessed = predictor.preprocess(data, properties)
    window = SlidingWindow(model.configuration_manager.patch_size, predictor.tile_step_size, None, show_progress=False)
    padded, _ = window.padded(torch.from_numpy(preprocessed))
    embeddings = predictor.embed(prompts)
    forward_time, slicers = 0.0, window.tiles(padded.shape[1:])
    with torch.inference_mode():
        for slicer in slicers:
            tile = padded[(slice(None), *slicer)][None].clone()
            start = time.perf_counter()
            model.network(tile, embeddings)
            forward_time += time.perf_counter() - start
    writer = CaseOutputWriter(output, case.case_id, prompts, ".nii.gz", model.plans_manager.image_reader_writer_class(),
                              properties, OutputOptions())
    start = time.perf_counter()
    for index, mask in predictor.masks_from_preprocessed(preprocessed, properties, prompts):
        writer.add(index, mask)
    return time.perf_counter() - start, forward_time, len(slicers)


def default_mode_network(predictor: OpenVocabPredictor, prompts: list) -> OpenVocabSTUNet:
    """The same weights with the prompts as default classes: what nnU-Net's own predictor can run."""
    model = predictor.model
    spec = dataclasses.replace(model.spec, label_names=tuple(prompts))
    network = build_openvocab_stunet(spec, model.configuration_manager.network_arch_init_kwargs,
                                     model.num_input_channels, len(prompts) + 1, deep_supervision=False)
    weights = {k: v for k, v in model.network.state_dict().items() if not k.endswith("default_embeddings")}
    network.load_state_dict(weights, strict=False)
    network.head.default_embeddings.copy_(predictor.embed(prompts))
    return network.eval()


def run_child(kind: str, model_folder: Path, checkpoint: str, image: Path, output: Path, count: int) -> None:
    """One prediction in this process; prints its peak RSS (MB) and wall time as JSON."""
    prompts = benchmark_prompts(count)
    predictor = make_predictor(model_folder, checkpoint)
    predictor.embed(prompts)  # text encoding is not what is measured
    output.mkdir(parents=True, exist_ok=True)  # nnU-Net's predictor writes its settings there first
    start = time.perf_counter()
    if kind in ("ours", "ours_probabilities"):
        predictor.predict_from_files(image, output, prompts,
                                     options=OutputOptions(save_probabilities=kind == "ours_probabilities"))
    else:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

        model = predictor.model
        dataset_json = {**model.dataset_json, "labels": {"background": 0, **{p: i + 1 for i, p in enumerate(prompts)}}}
        stock = nnUNetPredictor(0.5, True, False, False, torch.device("cpu"), allow_tqdm=False)
        network = default_mode_network(predictor, prompts)
        stock.manual_initialization(network, model.plans_manager, model.configuration_manager,
                                    [network.state_dict()], dataset_json, model.trainer_name, None)
        stock.predict_from_files_sequential([[str(image)]], str(output), save_probabilities=False)
    seconds = time.perf_counter() - start
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": seconds}))


def child_peak(kind: str, model_folder: Path, checkpoint: str, image: Path, output: Path, count: int) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", kind, "--model-folder", str(model_folder),
                             "--checkpoint", checkpoint, "--image", str(image), "--output", str(output),
                             "--prompts", str(count)],
                            capture_output=True, encoding="utf-8", errors="replace", check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-folder", type=Path, default=DEMO_MODEL)
    parser.add_argument("--checkpoint", default=None, help="default: checkpoint_final.pth, else checkpoint_best.pth")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", nargs="+", choices=["a", "b", "c"], default=["a", "b", "c"])
    parser.add_argument("--prompts", type=int, default=NUM_PROMPTS, choices=sorted(GOALS),
                        help="number of prompts (= stock classes), default %(default)s")
    parser.add_argument("--images", nargs="+", choices=["3mm", "1mm"], default=["3mm", "1mm"],
                        help="inputs of (a) and (c), default both")
    parser.add_argument("--rss-spacing", type=float, default=1.0, help="input spacing (mm) of (b), default 1")
    parser.add_argument("--probabilities", action="store_true", help="(b) also with save_probabilities")
    parser.add_argument("--child", choices=["ours", "ours_probabilities", "stock"], help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (args.model_folder / "plans.json").is_file():
        sys.exit(f"No model in {args.model_folder}: run nnUNetv2_openvocab_demo (in this folder) first, or pass "
                 f"--model-folder with a model trained on the example dataset.")
    checkpoint = checkpoint_name(args.model_folder, args.checkpoint)
    if args.child:
        run_child(args.child, args.model_folder, checkpoint, args.image, args.output, args.prompts)
        return
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads; model {args.model_folder} ({checkpoint})")
    count = args.prompts
    goal_3mm, goal_1mm, goal_rss = GOALS[count]
    prompts = benchmark_prompts(count)
    predictor = make_predictor(args.model_folder, checkpoint)
    predictor.embed(prompts)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        images = {"3 mm": EXAMPLE_CT, "1 mm": resampled_ct(folder)}
        chosen = {name: image for name, image in images.items() if name.replace(" ", "") in args.images}
        for name, image in chosen.items() if "a" in args.parts else ():
            ones, manys = ratio_many_over_1(predictor, image, prompts, args.repeats)
            one, many = min(ones), min(manys)
            paired = statistics.median(m / o for o, m in zip(ones, manys))
            goal = goal_3mm if name == "3 mm" else goal_1mm
            print(f"(a) {name}: 1 prompt {one:.1f} s, {count} prompts {many:.1f} s (best of {args.repeats}) -> "
                  f"ratio {many / one:.3f}; median of the {args.repeats} paired ratios {paired:.3f} (goal <= {goal}; "
                  f"{count} single-prompt runs would take {count * one:.0f} s); all runs: 1 prompt "
                  f"{', '.join(f'{t:.1f}' for t in ones)}, {count} prompts {', '.join(f'{t:.1f}' for t in manys)}")
        for name, image in chosen.items() if "c" in args.parts else ():
            for n in (1, count):
                ours, forward, tiles = sliding_window_overhead(predictor, image, prompts[:n],
                                                               folder / f"masks_{name[0]}_{n}")
                print(f"(c) {name}, {n} prompt(s): sliding window + export {ours:.1f} s / bare forward of {tiles} "
                      f"tiles {forward:.1f} s -> ratio {ours / forward:.3f} (goal <= 1.25)")
        if "b" not in args.parts:
            return
        rss_image = images["1 mm"] if args.rss_spacing == 1.0 else resampled_ct(folder, args.rss_spacing)
        kinds = ("ours", "ours_probabilities", "stock") if args.probabilities else ("ours", "stock")
        peaks = {kind: child_peak(kind, args.model_folder, checkpoint, rss_image, folder / kind, count)
                 for kind in kinds}
        stock = peaks["stock"]["peak_rss_mb"]
        for kind in kinds[:-1]:
            print(f"(b) {args.rss_spacing:g} mm, {count} prompts/classes: peak RSS {kind} "
                  f"{peaks[kind]['peak_rss_mb']:.0f} MB ({peaks[kind]['seconds']:.1f} s), stock nnUNetPredictor "
                  f"{stock:.0f} MB ({peaks['stock']['seconds']:.1f} s) -> ratio {peaks[kind]['peak_rss_mb'] / stock:.3f} "
                  f"(goal <= {goal_rss})")


if __name__ == "__main__":
    main()
