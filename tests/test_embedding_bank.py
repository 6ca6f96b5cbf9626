"""Embedding bank format: round trip in float16, encoder check, missing prompts named, unusable files refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunetv2_openvocab.text.embedding_bank import EmbeddingBankError, load_embedding_bank, save_embedding_bank


def test_round_trip_and_checks(tmp_path):
    vectors = torch.randn(3, 8)
    path = save_embedding_bank(tmp_path / "bank.npz", ["liver", "renal organs", "Liver"], vectors, "minilm", "ab" * 32)
    with np.load(path, allow_pickle=False) as raw:
        assert raw["embeddings"].dtype == np.float16 and list(raw["prompts"]) == ["liver", "renal organs", "Liver"]
    bank = load_embedding_bank(path)
    assert torch.allclose(bank.embed(["renal organs", "liver"]), vectors[[1, 0]], atol=2e-3)
    bank.check_encoder("ab" * 32, "minilm")
    with pytest.raises(EmbeddingBankError, match="made with text encoder 'minilm'"):
        bank.check_encoder("cd" * 32, "BioLORD")
    with pytest.raises(EmbeddingBankError, match=r"no embedding for \['banana'\]"):
        bank.embed(["liver", "banana"])
    assert [p.name for p in tmp_path.iterdir()] == ["bank.npz"]  # no temporary file left


def test_unusable_files(tmp_path):
    with pytest.raises(EmbeddingBankError, match="does not exist"):
        load_embedding_bank(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(EmbeddingBankError, match="not a readable"):
        load_embedding_bank(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(EmbeddingBankError, match="missing"):
        load_embedding_bank(tmp_path / "other.npz")
    with pytest.raises(EmbeddingBankError, match=".npz"):
        save_embedding_bank(tmp_path / "bank.bin", ["x"], torch.zeros(1, 2), "minilm", "ab")
