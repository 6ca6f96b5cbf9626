"""How the shipped unseen-prompt sets are grounded with and without the hold-out (issue 20): per set, how many
prompts plain ``--grounding auto`` answers by an exact look-up of their own stored text, and the routes grounding
takes once the set is held out. Labels: every target of the set, prompted by the taxonomy's training prompts (the
converters' text_prompts); encoder: MiniLM (offline). Run: python benchmarks/held_out_grounding.py"""
from __future__ import annotations

import sys
import tempfile
from collections import Counter

from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts
from nnunetv2_openvocab.prompts.grounding import PromptGrounder
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy
from nnunetv2_openvocab.prompts.unseen_sets import load_unseen_set
from nnunetv2_openvocab.text.embedding_cache import PromptEmbeddingCache
from nnunetv2_openvocab.text.encoder import FrozenTextEncoder


def main(sets=("totalsegmentator_v1_merged", "totalsegmentator_v1_synonyms")) -> None:
    taxonomy = load_taxonomy()
    embed = PromptEmbeddingCache.for_encoder(FrozenTextEncoder("minilm"), tempfile.mkdtemp()).embed
    for name in sets:
        entries = load_unseen_set(name)["prompts"]
        labels = list(dict.fromkeys(t for e in entries for t in e["targets"]))
        training = TrainingPrompts.from_mapping({label: taxonomy.prompts_for(label) for label in labels}, labels)
        prompts = [e["prompt"] for e in entries]
        plain = PromptGrounder(training, embed).ground(prompts)
        held = PromptGrounder(training, embed, held_out=prompts).ground(prompts)
        correct = sum(set(g.labels) == set(e["targets"]) for g, e in zip(held, entries))
        print(f"{name}: {len(prompts)} prompts; auto: {sum('(exact match)' in g.reason for g in plain)} by exact "
              f"look-up of their own text, routes {dict(Counter(g.route for g in plain))}; held out: "
              f"{sum('(exact match)' in g.reason for g in held)} exact, routes {dict(Counter(g.route for g in held))}, "
              f"{correct} grounded to exactly their targets")


if __name__ == "__main__":
    main(*sys.argv[1:2] and [sys.argv[1:]])
