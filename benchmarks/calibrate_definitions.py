"""Calibrate grounding's definition route (prompts/definition_route.py) for one text encoder on the CALIBRATION half
of the paraphrase set (benchmarks/paraphrase_set.py, split by structure family), and write the threshold to
nnunetv2_openvocab/data/definition_calibration.json, where the predictor reads it.

Candidates: EVERY calibration-half paraphrase, scored against the definitions as if no name route had reached it
(names of structures that have no RadLex definition, 'gluteal muscles', are the hard negatives: any definition
they reach is wrong), and the non-anatomical negatives of calibrate_grounding.py, on the 117 TotalSegmentator v2
labels with their taxonomy prompts. A candidate is routed at threshold t when its nearest RadLex definition (same
side rule) has cosine >= t; correct when the labels that structure answers with are its targets (never, for a
negative). In use the name routes come first, so this is stricter than what the route meets. The chosen
threshold is the lowest t from which on every higher t keeps precision >= --precision.

    OPENVOCAB_SHARED_DATA=/work/shared/data python benchmarks/calibrate_definitions.py [--text-encoder minilm]
"""
from __future__ import annotations

import argparse
import datetime
import json
from typing import List, Optional, Tuple

from calibrate_grounding import NEGATIVES
from dataset_conversion.label_tables import load_label_table
from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts
from nnunetv2_openvocab.prompts.definition_route import DEFINITION_CALIBRATION_PATH
from nnunetv2_openvocab.prompts.grounding import TEXT, PromptGrounder
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy
from second_encoder import benchmark_embed
from paraphrase_set import CALIBRATION, build_paraphrase_set

THRESHOLDS = [x / 100 for x in range(30, 100)]


def totalsegmentator_grounder(text_encoder: str, definition_threshold: Optional[float]) -> PromptGrounder:
    taxonomy = load_taxonomy()
    labels = list(load_label_table("totalsegmentator_v2").labels)
    embed = benchmark_embed(text_encoder)
    training = TrainingPrompts.from_mapping({n: taxonomy.prompts_for(n) for n in labels})
    return PromptGrounder(training, embed, taxonomy, definition_threshold=definition_threshold)


def definition_candidates(grounder: PromptGrounder, entries: List[Tuple[str, frozenset]]
                          ) -> List[Tuple[str, float, bool]]:
    """(prompt, cosine of its nearest definition, whether that answer is right) for every prompt."""
    targets = dict(entries)
    grounder.definition_threshold = -1.0  # every prompt gets its nearest definition
    out = []
    for prompt, match in grounder.described(list(targets)).items():
        answer = grounder.ground_structure(prompt, match.structure, match.reason)
        out.append((prompt, match.cosine, answer.route != TEXT and frozenset(answer.labels) == targets[prompt]))
    return out


def precision_at(candidates: List[Tuple[str, float, bool]], threshold: float) -> Tuple[int, int, float]:
    routed = [right for _, cosine, right in candidates if cosine >= threshold]
    return len(routed), sum(routed), sum(routed) / len(routed) if routed else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text-encoder", default="minilm", help="minilm, or the second encoder "
                        "paraphrase-minilm-l3-v2 (benchmarks/second_encoder.py)")
    parser.add_argument("--precision", type=float, default=0.98)
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the calibration file")
    args = parser.parse_args()
    entries = [(e["prompt"], frozenset(e["targets"])) for e in build_paraphrase_set() if e["half"] == CALIBRATION]
    entries += [(negative, frozenset()) for negative in NEGATIVES]
    candidates = definition_candidates(totalsegmentator_grounder(args.text_encoder, None), entries)
    print(f"encoder {args.text_encoder}: {len(entries)} calibration prompts ({len(NEGATIVES)} negatives), "
          f"read like a definition, scored against the definitions alone\n| threshold | routed | correct | precision |\n|---:|---:|---:|---:|")
    for threshold in THRESHOLDS:
        routed, correct, precision = precision_at(candidates, threshold)
        if routed:
            print(f"| {threshold:.2f} | {routed} | {correct} | {precision:.3f} |")
    safe = [t for t in THRESHOLDS if all(precision_at(candidates, u)[2] >= args.precision for u in THRESHOLDS
                                         if u >= t)]
    chosen = safe[0]
    routed, correct, precision = precision_at(candidates, chosen)
    print(f"chosen definition threshold {chosen:.2f}: {correct} of {routed} routed correct ({precision:.3f})")
    for prompt, cosine, right in sorted(candidates, key=lambda c: -c[1]):
        print(f"  {'ok ' if right else 'BAD'} {cosine:.3f} {prompt}")
    if not args.dry_run:
        calibration = json.loads(DEFINITION_CALIBRATION_PATH.read_text(encoding="utf-8")) \
            if DEFINITION_CALIBRATION_PATH.is_file() else {"encoders": {}}
        calibration["encoders"][args.text_encoder] = {
            "threshold": chosen, "calibration_prompts": len(entries), "reading_like_a_definition": len(candidates),
            "routed": routed, "correct": correct, "precision": round(precision, 4),
            "target_precision": args.precision, "date": datetime.date.today().isoformat(),
            "command": "benchmarks/calibrate_definitions.py (calibration half of benchmarks/paraphrase_set.py)"}
        write_json_atomic(DEFINITION_CALIBRATION_PATH, calibration)
        print(f"written {DEFINITION_CALIBRATION_PATH}")


if __name__ == "__main__":
    main()
