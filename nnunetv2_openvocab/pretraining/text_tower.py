"""The text side: a sentence-transformers encoder, trainable in full or in its last N layers, plus the MLP.

Texts are embedded exactly as ``FrozenTextEncoder`` embeds prompts after export: sentence
embedding, L2-normalised, then ``TextProjection``; the loss normalises the projection output.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from nnunetv2_openvocab.pretraining.config import TrainConfig
from nnunetv2_openvocab.text.encoder import load_sentence_transformer, resolve_sentence_encoder
from nnunetv2_openvocab.text.projection import TextProjection


def sentence_embedding_dim(sentence_model) -> int:
    get_dim = getattr(sentence_model, "get_embedding_dimension", None) or sentence_model.get_sentence_embedding_dimension
    return int(get_dim())


def transformer_layers(sentence_model) -> nn.ModuleList:
    """The transformer blocks of a BERT-family sentence encoder (BERT, MPNet, RoBERTa: `encoder.layer`)."""
    layers = getattr(getattr(getattr(sentence_model, "transformers_model", None), "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError("text_trainable_layers = N > 0 needs a BERT-style sentence encoder whose Hugging Face model "
                         "has encoder.layer; this one has none. Use text_trainable_layers -1 (all) or 0 (projection only).")
    return layers


def set_trainable_layers(sentence_model: nn.Module, trainable_layers: int) -> None:
    """-1: everything trains; 0: nothing; N > 0: only the last N transformer blocks."""
    sentence_model.requires_grad_(trainable_layers < 0)
    if trainable_layers > 0:
        layers = transformer_layers(sentence_model)
        if trainable_layers > len(layers):
            raise ValueError(f"text_trainable_layers is {trainable_layers} but the encoder has {len(layers)} layers.")
        for layer in layers[-trainable_layers:]:
            layer.requires_grad_(True)


class ContrastiveTextTower(nn.Module):
    """(N texts) -> (N, D) projections into the image-embedding space.

    With a fully frozen sentence encoder (text_trainable_layers = 0) the encoder stays in eval mode
    and each distinct text is encoded once and remembered, so epochs cost only the projection.
    """

    def __init__(self, sentence_model: nn.Module, projection: TextProjection):
        super().__init__()
        self.sentence_model = sentence_model
        self.projection = projection
        self._frozen_embeddings: dict[str, torch.Tensor] = {}

    @property
    def encoder_frozen(self) -> bool:
        return not any(parameter.requires_grad for parameter in self.sentence_model.parameters())

    def train(self, mode: bool = True) -> "ContrastiveTextTower":
        super().train(mode)
        if self.encoder_frozen:
            self.sentence_model.eval()
        return self

    def _encode(self, texts: Sequence[str]) -> torch.Tensor:
        device = self.projection.layers[0].weight.device
        features = self.sentence_model.preprocess(list(texts))
        features = {name: value.to(device) if torch.is_tensor(value) else value for name, value in features.items()}
        return F.normalize(self.sentence_model(features)["sentence_embedding"], dim=-1)

    def sentence_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """(N texts) -> (N, sentence dim), L2-normalised."""
        if not self.encoder_frozen:
            return self._encode(texts)
        new_texts = [text for text in dict.fromkeys(texts) if text not in self._frozen_embeddings]
        if new_texts:
            with torch.no_grad():
                self._frozen_embeddings.update(zip(new_texts, self._encode(new_texts)))
        return torch.stack([self._frozen_embeddings[text] for text in texts])

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        return self.projection(self.sentence_embeddings(texts))


def build_text_tower(config: TrainConfig, image_embedding_dim: int, device: str | torch.device) -> ContrastiveTextTower:
    """Load the sentence encoder named by config.text_encoder (offline) and add a fresh projection."""
    sentence_model = load_sentence_transformer(resolve_sentence_encoder(config.text_encoder)[0], device)
    if config.max_text_tokens is not None:
        sentence_model.max_seq_length = config.max_text_tokens
    if config.text_dropout is not None:
        for module in sentence_model.modules():
            if isinstance(module, nn.Dropout):
                module.p = config.text_dropout
    set_trainable_layers(sentence_model, config.text_trainable_layers)
    projection = TextProjection(sentence_embedding_dim(sentence_model),
                                config.projection_hidden_dim or image_embedding_dim, image_embedding_dim)
    return ContrastiveTextTower(sentence_model, projection.to(device))
