"""On-disk cache of prompt embeddings, shared by training and inference.

Layout: ``<root>/<encoder fingerprint[:24]>/<sha256(prompt)[:32]>.npy``, each a float32 array of shape
(embedding_dim,). The folder is keyed by the encoder's weight fingerprint, so a different (or fine-tuned)
model never reads another model's entries; the file name is keyed by the prompt as ``clean_prompt`` gives
it (surrounding whitespace dropped, case kept: "Liver" and "liver" are different entries). Files are written to a temp name and renamed,
so concurrent writers and crashes never leave a partial entry. The encoder itself is loaded only when a
prompt is missing, and must then have the expected fingerprint.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from nnunetv2_openvocab.prompts.prompt_text import clean_prompt
from nnunetv2_openvocab.text.encoder import FrozenTextEncoder

CACHE_ENV = "nnUNet_openvocab_cache"


class TextEncoderMismatchError(RuntimeError):
    pass


def default_cache_root() -> Path:
    root = os.environ.get(CACHE_ENV)
    return Path(root) if root else Path.home() / ".cache" / "nnunetv2_openvocab" / "text_embeddings"


class PromptEmbeddingCache:
    def __init__(self, text_encoder: str, fingerprint: str, root: Optional[str | Path] = None,
                 device: str | torch.device = "cpu"):
        self.text_encoder, self.fingerprint, self.device = text_encoder, fingerprint, device
        self.folder = Path(root or default_cache_root()) / fingerprint[:24]
        self._encoder: Optional[FrozenTextEncoder] = None

    @classmethod
    def for_encoder(cls, encoder: FrozenTextEncoder, root: Optional[str | Path] = None) -> "PromptEmbeddingCache":
        cache = cls(encoder.spec, encoder.fingerprint, root, encoder.device)
        cache._encoder = encoder
        return cache

    @property
    def encoder(self) -> FrozenTextEncoder:
        if self._encoder is None:
            encoder = FrozenTextEncoder(self.text_encoder, self.device)
            if encoder.fingerprint != self.fingerprint:
                raise TextEncoderMismatchError(
                    f"The text encoder {self.text_encoder!r} on disk (fingerprint {encoder.fingerprint[:12]}) is not the "
                    f"one the model was planned/trained with ({self.fingerprint[:12]}). Restore that model, or re-plan "
                    f"and retrain with nnUNetv2_openvocab_plan_and_preprocess --text-encoder.")
            self._encoder = encoder
        return self._encoder

    def _path(self, prompt: str) -> Path:
        return self.folder / (hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:32] + ".npy")

    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """(N,) prompts -> (N, embedding_dim) float32; encodes only the prompts not cached yet."""
        prompts = [clean_prompt(prompt) for prompt in prompts]
        vectors: list = [None] * len(prompts)
        missing = []
        for i, prompt in enumerate(prompts):
            path = self._path(prompt)
            if path.is_file():
                vectors[i] = np.load(path)
            else:
                missing.append(i)
        if missing:
            fresh = self.encoder.encode([prompts[i] for i in missing]).numpy()
            self.folder.mkdir(parents=True, exist_ok=True)
            for row, i in enumerate(missing):
                vectors[i] = fresh[row]
                self._write(self._path(prompts[i]), fresh[row])
        if not prompts:
            raise ValueError("No prompts to embed.")
        return torch.from_numpy(np.stack(vectors).astype(np.float32))

    @staticmethod
    def _write(path: Path, vector: np.ndarray) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, vector.astype(np.float32))
        os.replace(tmp, path)
