"""CaptionCache: append-only, fsync'ed JSONL records that survive a torn write."""
from caption_curation.caption_cache import STATUS_MALFORMED, STATUS_OK, CachedAnswer, CaptionCache, cache_key
from caption_curation.captions import Caption


def answer(key, status=STATUS_OK, captions=(Caption("Normal liver", "Liver is normal."),), raw=""):
    return CachedAnswer(key, "model-a", "v1:abc", status, tuple(captions), "" if status == STATUS_OK else "bad", raw)


def test_key_depends_on_report_model_and_prompt():
    base = cache_key("report", "model-a", "v1:abc")
    assert base == cache_key("report", "model-a", "v1:abc") and len(base) == 64
    assert len({base, cache_key("report!", "model-a", "v1:abc"), cache_key("report", "model-b", "v1:abc"),
                cache_key("report", "model-a", "v2:def")}) == 4


def test_records_round_trip_across_writers_and_later_records_win(tmp_path):
    first = CaptionCache(tmp_path, "answers.shard-000-of-002.jsonl")
    first.append(answer("k1", STATUS_MALFORMED, captions=(), raw="not json"))
    first.append(answer("k2"))
    first.close()
    second = CaptionCache(tmp_path, "answers.shard-001-of-002.jsonl")
    second.append(answer("k1"))  # a retried failure, answered by another writer
    second.close()
    loaded = CaptionCache(tmp_path).load()
    assert set(loaded) == {"k1", "k2"}
    assert loaded["k1"].status == STATUS_OK and loaded["k2"] == answer("k2")


def test_torn_last_line_is_ignored_and_fenced_off(tmp_path, caplog):
    cache = CaptionCache(tmp_path)
    cache.append(answer("k1"))
    cache.close()
    with open(cache.path, "a", encoding="utf-8") as handle:
        handle.write(answer("k2").to_json()[:40])  # what a kill -9 in the middle of a write leaves
    assert set(CaptionCache(tmp_path).load()) == {"k1"}
    assert "unreadable cache record" in caplog.text
    resumed = CaptionCache(tmp_path)
    resumed.append(answer("k3"))
    resumed.close()
    assert set(CaptionCache(tmp_path).load()) == {"k1", "k3"}


def test_empty_or_missing_folder_loads_nothing(tmp_path):
    assert CaptionCache(tmp_path / "not-yet").load() == {}
