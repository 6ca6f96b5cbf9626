"""caption_statistics and caption_plots on a small hand-made corpus."""
from caption_curation.anatomy_tagger import default_tagger
from caption_curation.caption_plots import plot_all
from caption_curation.caption_statistics import caption_statistics
from caption_curation.captions import Caption, CuratedReport
from caption_curation.reports import Report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def curated(volume, raw, kept, failure=None):
    captions = [Caption(text, text) for text in raw]
    return CuratedReport(Report(volume, "f", "", 1), captions,
                         [(c, ["term"]) for c in captions if c.text in kept], failure)


CORPUS = [
    curated("a", ["Liver is normal.", "No pleural effusion", "Clinical correlation"],
            {"Liver is normal.", "No pleural effusion"}),
    curated("b", ["liver is normal", "Emphysema in both lungs"], {"liver is normal", "Emphysema in both lungs"}),
    curated("c", ["Normal study"], set()),
    curated("d", [], set(), failure="malformed: empty answer"),
]


def test_counts_top_captions_and_organs():
    stats = caption_statistics(CORPUS, default_tagger())
    assert (stats["reports"], stats["failed_reports"], stats["reports_without_kept_captions"]) == (4, 1, 1)
    before, after = stats["captions_per_report"]["before_filter"], stats["captions_per_report"]["after_filter"]
    assert before["mean"] == 2.0 and before["histogram"] == {"1": 1, "2": 1, "3": 1}
    assert after == {"mean": round(4 / 3, 3), "median": 2.0, "min": 0, "max": 2, "histogram": {"0": 1, "2": 2}}
    assert stats["filter_keep_rate"] == round(4 / 6, 4)
    assert stats["top_captions"][0] == {"caption": "Liver is normal", "count": 2}  # case and full stop ignored
    organs = {entry["organ"]: entry for entry in stats["top_organs"]}
    assert organs["liver"]["captions"] == 2 and organs["liver"]["fraction"] == 0.5
    assert organs["lung"]["captions"] == 1 and organs["pleura"]["captions"] == 1


def test_plots_are_written_as_png(tmp_path):
    paths = plot_all(caption_statistics(CORPUS, default_tagger()), tmp_path)
    assert [p.name for p in paths] == ["top_captions.png", "top_organs.png", "captions_per_report.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert not list(tmp_path.glob(".*.tmp*"))  # atomic writes leave no temp files


def test_empty_corpus_still_gives_statistics_and_plots(tmp_path):
    stats = caption_statistics([], default_tagger())
    assert stats["reports"] == 0 and stats["top_captions"] == [] and stats["filter_keep_rate"] == 0.0
    assert all(p.is_file() for p in plot_all(stats, tmp_path))
