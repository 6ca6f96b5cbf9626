"""On-disk cache of prompt embeddings, shared by training and inference.

Layout: ``<root>/<encoder fingerprint[:24]>/<sha256(prompt)[:32]>.npy``, each a float32 array of shape
(embedding_dim,). The folder is keyed by the encoder's weight fingerprint, so a different (or fine-tuned)
model never reads another model's entries; the file name is keyed by the prompt as ``clean_prompt`` gives
it (surrounding whitespace dropped, case kept: "Liver" and "liver" are different entries). Entries are
written through atomic_files (temporary name, read back, renamed; mode 0644 so that a shared cache serves every user), so concurrent
writers, crashes and full disks never leave a partial entry. An entry that does not load as a finite 1-D
float32 vector (damaged by other means) is named in a warning and recomputed. The encoder itself is loaded
only when a prompt is missing, and must then have the expected fingerprint.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from nnunetv2_openvocab.atomic_files import save_npy_atomic
from nnunetv2_openvocab.prompts.prompt_text import clean_prompt
from nnunetv2_openvocab.text.encoder import FrozenTextEncoder
from nnunetv2_openvocab.user_errors import UserError

logger = logging.getLogger(__name__)

CACHE_ENV = "nnUNet_openvocab_cache"


class TextEncoderMismatchError(UserError, RuntimeError):
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
        """A cache over an encoder already loaded (notebooks, benchmarks and tests; prediction loads it lazily)."""
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
            vectors[i] = self._read(self._path(prompt))
            if vectors[i] is None:
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
    def _read(path: Path) -> Optional[np.ndarray]:
        """The cached vector, or None when there is none or it is damaged (then it is recomputed)."""
        if not path.is_file():
            return None
        try:
            vector = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            vector, reason = None, str(error)
        else:
            reason = (f"holds {vector.dtype} {vector.shape}" if vector.ndim != 1 or vector.dtype != np.float32
                      else "" if np.isfinite(vector).all() else "holds NaN or Inf")
        if reason:
            logger.warning("Prompt embedding cache entry %s is damaged (%s); recomputing it.", path, reason)
            return None
        return vector

    @staticmethod
    def _write(path: Path, vector: np.ndarray) -> None:
        save_npy_atomic(path, vector.astype(np.float32))
