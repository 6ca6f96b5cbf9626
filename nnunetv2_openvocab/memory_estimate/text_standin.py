"""A sentence encoder's shape without its weights, for memory estimates of contrastive pretraining.

The estimate needs the text tower's parameters and activations, not its knowledge: a Hugging Face model
built from the encoder's config (random weights, fake tensors) stands in for the sentence-transformers
model, with a whitespace "tokenizer" (one token per word, padded to the longest text of a call, truncated at
max_seq_length, as sentence-transformers pads and truncates) and mean pooling. The text tower of
pretraining (ContrastiveTextTower) runs on it unchanged.
"""
from __future__ import annotations

import json
from typing import Sequence

import torch
from torch import nn

from nnunetv2_openvocab.text.encoder import DEFAULT_TEXT_ENCODER, resolve_sentence_encoder

# BioLORD-2023 is a fine-tuned all-mpnet-base-v2 (12 layers, width 768, max_seq_length 512)
DEFAULT_ENCODER_ARCHITECTURE = {DEFAULT_TEXT_ENCODER: ("mpnet", 512)}


def text_encoder_config(spec: str):
    """(transformers config, max_seq_length) of a text encoder spec: read from its folder when it resolves
    offline, else the published architecture of the default encoder; anything else must be available."""
    from transformers import AutoConfig

    try:
        folder, _ = resolve_sentence_encoder(spec)
    except (FileNotFoundError, ValueError):
        if spec not in DEFAULT_ENCODER_ARCHITECTURE:
            raise
        model_type, max_seq_length = DEFAULT_ENCODER_ARCHITECTURE[spec]
        return AutoConfig.for_model(model_type), max_seq_length
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    bert_settings = folder / "sentence_bert_config.json"
    max_seq_length = json.loads(bert_settings.read_text()).get("max_seq_length") if bert_settings.is_file() else None
    return config, int(max_seq_length or config.max_position_embeddings)


class StandInSentenceModel(nn.Module):
    """transformers_model(config) + mean pooling, with sentence-transformers' preprocess/forward interface."""

    def __init__(self, config, max_seq_length: int):
        super().__init__()
        from transformers import AutoModel

        self.transformers_model = AutoModel.from_config(config)
        self.max_seq_length = max_seq_length
        self.hidden_size = config.hidden_size

    def get_sentence_embedding_dimension(self) -> int:
        return self.hidden_size

    def preprocess(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        tokens = min(self.max_seq_length, max(len(text.split()) for text in texts) + 2)  # + [CLS], [SEP]
        return {"input_ids": torch.ones(len(texts), tokens, dtype=torch.long),
                "attention_mask": torch.ones(len(texts), tokens, dtype=torch.long)}

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hidden = self.transformers_model(**features).last_hidden_state  # (N, T, H)
        return {"sentence_embedding": hidden.mean(dim=1)}
