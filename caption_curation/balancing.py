"""MetaCLIP's balancing of RadLex-matched captions, so that no term floods the caption corpus.

MetaCLIP (Xu et al., "Demystifying CLIP Data", 2023, Algorithm 1) counts how many texts of the whole pool
match each metadata entry. An entry matched by at most ``t`` texts (a tail entry) keeps all of them; a head
entry, matched ``count > t`` times, keeps each with probability ``t / count``. A text is kept when the draw
succeeds for at least one of its entries, so a caption naming a rare term survives even if it also says
"lung". Here the pool is every caption of the run that matched RadLex, and the entries are its matched terms.

Each draw is a uniform number derived from a hash of (seed, volume, caption index, caption, term): a seeded
counter-based RNG, so a caption's fate does not depend on report order, worker count or sharding, and the
same seed always keeps the same captions.

``t``: MetaCLIP used t = 20,000 for 400M pairs. Term counts grow with the corpus, so unless ``t`` is given
it is scaled with the number of reports (``DEFAULT_T_PER_REPORT`` per report, at least 1); this keeps the
kept share per term the same from the 800 shared reports to the 50,188 of CT-RATE. A sharded run balances
each shard with its own counts; the final unsharded (merge) run balances the whole corpus.
"""
from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass
from typing import Optional, Sequence

from caption_curation.caption_statistics import count_summary
from caption_curation.captions import Caption, CuratedReport
from caption_curation.offline_decomposer import is_negated

# t = reports / 80 (10 for the 800 shared reports): a median of 3 kept captions per report on the shared
# CT-RATE reports with the full RadLex list, as the paper reports (benchmarks/bench_caption_balancing.py)
DEFAULT_T_PER_REPORT = 1 / 80
TOP_TERMS = 20


@dataclass(frozen=True)
class BalanceSettings:
    t: Optional[int] = None  # captions per term before sampling starts; None: DEFAULT_T_PER_REPORT x reports
    seed: int = 0

    def __post_init__(self):
        if self.t is not None and self.t < 1:
            raise ValueError(f"balancing t must be >= 1 (got {self.t}); pass --no-balance to keep every match")

    def threshold(self, n_reports: int) -> tuple[int, str]:
        """(t, how it was chosen) for a run over ``n_reports`` reports."""
        if self.t is not None:
            return self.t, "given"
        t = max(1, math.ceil(DEFAULT_T_PER_REPORT * n_reports))
        return t, f"auto: ceil({DEFAULT_T_PER_REPORT:g} x {n_reports} reports)"


def uniform_draw(seed: int, volume: str, index: int, caption: str, term: str) -> float:
    """A uniform number in [0, 1) that depends only on its arguments."""
    key = "\x1f".join((str(seed), volume, str(index), caption, term)).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64


def term_counts(curated: Sequence[CuratedReport]) -> Counter:
    """Matched captions per RadLex term over the whole pool."""
    return Counter(term for item in curated for _, terms in item.kept for term in terms)


def _keeps(item: CuratedReport, index: int, caption: Caption, terms: Sequence[str], counts: Counter,
           t: int, seed: int) -> bool:
    return any(
        counts[term] <= t or uniform_draw(seed, item.report.volume, index, caption.text, term) < t / counts[term]
        for term in terms
    )


def _negated_share(captions: list[Caption]) -> float:
    return round(sum(is_negated(caption.text) for caption in captions) / len(captions), 4) if captions else 0.0


def balance_captions(curated: Sequence[CuratedReport], settings: BalanceSettings) -> tuple[list[CuratedReport], dict]:
    """The reports with their matched captions balanced, and the statistics for caption_stats.json."""
    t, t_rule = settings.threshold(len(curated))
    counts = term_counts(curated)
    balanced = [
        CuratedReport(item.report, item.raw_captions, [
            (caption, terms) for index, (caption, terms) in enumerate(item.kept)
            if _keeps(item, index, caption, terms, counts, t, settings.seed)
        ], item.failure)
        for item in curated
    ]
    kept_counts = term_counts(balanced)
    succeeded = [(before, after) for before, after in zip(curated, balanced) if before.failure is None]
    stats = {
        "method": "MetaCLIP: a term matched by count > t captions keeps each with probability t/count; "
                  "a caption is kept when any of its terms keeps it",
        "t": t,
        "t_rule": t_rule,
        "seed": settings.seed,
        "matched_terms": len(counts),
        "head_terms": sum(count > t for count in counts.values()),
        "matched_captions_per_report": count_summary([len(before.kept) for before, _ in succeeded]),
        "negated_share": {
            "raw": _negated_share([c for before, _ in succeeded for c in before.raw_captions]),
            "matched": _negated_share([c for before, _ in succeeded for c, _ in before.kept]),
            "kept": _negated_share([c for _, after in succeeded for c, _ in after.kept]),
        },
        "top_terms": [
            {"term": term, "matched": count, "kept": kept_counts[term], "kept_share": round(kept_counts[term] / count, 4)}
            for term, count in counts.most_common(TOP_TERMS)
        ],
    }
    return balanced, stats
