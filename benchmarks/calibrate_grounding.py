"""Calibrate grounding's nearest-entry threshold (grounding.MATCH_THRESHOLD) on the shipped unseen-prompt sets.

For every prompt of the shipped sets (``example`` on the example dataset's labels and training prompts; the
three TotalSegmentator sets on the 117 TotalSegmentator v2 labels with their taxonomy prompts) the nearest
taxonomy entry is found with the prompt's own text held out of the taxonomy (otherwise every held-out synonym
would be an exact match, and the embedding route would never be tested). A grounding is accepted when its cosine
reaches the threshold and the structure resolves to training labels; it is correct when those labels are the
prompt's targets. Non-anatomical prompts are added as negatives (any acceptance is wrong). Prints precision and
recall per threshold, and the lowest threshold with precision >= --precision.

    python benchmarks/calibrate_grounding.py [--text-encoder minilm] [--precision 0.95]
"""
from __future__ import annotations

import argparse
from typing import Dict, List, Sequence, Tuple

import torch

from dataset_conversion.label_tables import load_label_table
from nnunetv2_openvocab.prompts.unseen_sets import load_unseen_set
from nnunetv2_openvocab.example_dataset import DEFAULT_STRUCTURES, example_prompts
from nnunetv2_openvocab.prompts.grounding import PromptGrounder
from nnunetv2_openvocab.prompts.prompt_text import prompt_identity
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy
from nnunetv2_openvocab.text.embedding_cache import PromptEmbeddingCache
from nnunetv2_openvocab.text.encoder import FrozenTextEncoder
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts

TOTALSEGMENTATOR_SETS = ("totalsegmentator_merged", "totalsegmentator_synonyms", "totalsegmentator_taxonomy")
NEGATIVES = ("banana", "car engine", "a photo of a cat", "kitchen table", "hello world", "the weather today",
             "guitar string", "mountain river")


def held_out_groundings(grounder: PromptGrounder, entries: Sequence[Tuple[str, frozenset]]) -> List[Tuple]:
    """(prompt, cosine, grounded labels or None, targets) with the prompt's own text held out."""
    prompts = [prompt for prompt, _ in entries]
    similarities = grounder.similarities(prompts)
    out = []
    for (prompt, targets), row in zip(entries, similarities):
        row = row.clone()
        for j, (text, _) in enumerate(grounder.entries):
            if prompt_identity(text) == prompt_identity(prompt):
                row[j] = -2.0
        text, structure, cosine = grounder.nearest_entry(prompt, row)
        grounding = grounder.ground_structure(prompt, structure, "")
        out.append((prompt, cosine, frozenset(grounding.labels) or None, targets, text))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text-encoder", default="minilm")
    parser.add_argument("--precision", type=float, default=0.95)
    args = parser.parse_args()
    encoder = FrozenTextEncoder(args.text_encoder)
    embed = PromptEmbeddingCache.for_encoder(encoder).embed
    taxonomy = load_taxonomy()
    results = []
    totalseg = list(load_label_table("totalsegmentator_v2").labels)
    example_training = TrainingPrompts.from_mapping(example_prompts(), DEFAULT_STRUCTURES)
    totalseg_training = TrainingPrompts.from_mapping({n: taxonomy.prompts_for(n) for n in totalseg})
    grounders = {"example": PromptGrounder(example_training, embed, taxonomy),
                 "totalsegmentator": PromptGrounder(totalseg_training, embed, taxonomy)}
    sets: Dict[str, dict] = {"example": load_unseen_set("example")}
    sets.update((name, load_unseen_set(name)) for name in TOTALSEGMENTATOR_SETS)
    for name, content in sets.items():
        grounder = grounders["example" if name == "example" else "totalsegmentator"]
        entries = [(p["prompt"], frozenset(p["targets"])) for p in content["prompts"]]
        entries += [(n, frozenset()) for n in NEGATIVES]
        results += [(name, *r) for r in held_out_groundings(grounder, entries)]
    print(f"{len(results)} prompts ({sum(1 for r in results if not r[4])} negatives), encoder {args.text_encoder}")
    print("threshold | accepted | correct | precision | recall (of the positives)")
    positives = sum(1 for r in results if r[4])
    chosen = None
    for threshold in [x / 100 for x in range(50, 100, 2)]:
        accepted = [r for r in results if r[2] >= threshold and r[3] is not None]
        correct = [r for r in accepted if r[3] == r[4]]
        precision = len(correct) / len(accepted) if accepted else 1.0
        if chosen is None and precision >= args.precision:
            chosen = threshold
        print(f"{threshold:.2f} | {len(accepted)} | {len(correct)} | {precision:.3f} | {len(correct) / positives:.3f}")
    print(f"lowest threshold with precision >= {args.precision}: {chosen}")
    print("Full grounding at the shipped MATCH_THRESHOLD (nothing held out): resolved / correct / prompts per set")
    for name, content in sets.items():
        grounder = grounders["example" if name == "example" else "totalsegmentator"]
        groundings = grounder.ground([p["prompt"] for p in content["prompts"]])
        resolved = [(g, p) for g, p in zip(groundings, content["prompts"]) if g.route != "text"]
        correct = sum(set(g.labels) == set(p["targets"]) for g, p in resolved)
        print(f"  {name}: {len(resolved)} / {correct} / {len(groundings)}")
    wrong = [r for r in results if chosen is not None and r[2] >= chosen and r[3] is not None and r[3] != r[4]]
    for r in wrong:
        print(f"  wrong at {chosen}: {r[0]} ({r[1]}) -> {r[5]!r} {sorted(r[3])} cos {r[2]:.2f}")


if __name__ == "__main__":
    main()
