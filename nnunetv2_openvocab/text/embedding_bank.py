"""Prompt embedding bank: prompt embeddings exported once, so prediction needs no text-model files.

``bank.npz`` (numpy ``savez``, read with ``allow_pickle=False``)::

    prompts       (N,)   unicode   the exact prompt strings (no normalisation, as in the embedding cache)
    embeddings    (N, E) float16   the text encoder's embeddings, row i belongs to prompts[i]
    text_encoder  ()     unicode   the encoder spec the model was trained with (informative)
    fingerprint   ()     unicode   the encoder's weight fingerprint; a model only accepts a bank whose
                                   fingerprint equals its checkpoint's ``text_encoder_fingerprint``
    format        ()     int       FORMAT_VERSION

``nnUNetv2_openvocab_embed`` writes the requested prompts plus what a prediction of them needs besides: every
training prompt of the model (prompt report) and every taxonomy prompt (grounding's nearest-entry match).
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import torch

from nnunetv2_openvocab.atomic_files import atomic_path

FORMAT_VERSION = 1
KEYS = ("prompts", "embeddings", "text_encoder", "fingerprint", "format")


class EmbeddingBankError(ValueError):
    """A bank that is unreadable, from another encoder, or lacks a prompt."""


class EmbeddingBank:
    def __init__(self, vectors: Dict[str, np.ndarray], text_encoder: str, fingerprint: str, path: Path):
        self.vectors, self.text_encoder, self.fingerprint, self.path = vectors, text_encoder, fingerprint, path

    def check_encoder(self, fingerprint: str, model_text_encoder: str, embedding_dim: Optional[int] = None) -> None:
        """Refuse a bank of another encoder, or one whose vectors are not ``embedding_dim`` wide."""
        width = next((len(vector) for vector in self.vectors.values()), None)
        if embedding_dim is not None and width not in (None, embedding_dim):
            raise EmbeddingBankError(
                f"--embeddings {self.path}: its vectors have {width} values, the model's text encoder gives "
                f"{embedding_dim}. Export a bank for this model with nnUNetv2_openvocab_embed -m MODEL_FOLDER "
                f"--prompts ... -o bank.npz.")
        if fingerprint != self.fingerprint:
            raise EmbeddingBankError(
                f"{self.path} was made with text encoder {self.text_encoder!r} (fingerprint {self.fingerprint[:12]}), "
                f"but the model uses {model_text_encoder!r} ({fingerprint[:12]}). Export a bank for this model with "
                f"nnUNetv2_openvocab_embed -m MODEL_FOLDER --prompts ... -o bank.npz.")

    def embed(self, prompts: Sequence[str]) -> torch.Tensor:
        """(N,) prompts -> (N, E) float32; names every prompt the bank lacks."""
        missing = [p for p in prompts if p not in self.vectors]
        if missing:
            raise EmbeddingBankError(
                f"{self.path} has no embedding for {missing}. Re-export the bank including them: "
                f"nnUNetv2_openvocab_embed -m MODEL_FOLDER --prompts ... -o {self.path.name}.")
        return torch.from_numpy(np.stack([self.vectors[p] for p in prompts]).astype(np.float32))


def save_embedding_bank(path: Union[str, Path], prompts: Sequence[str], embeddings: torch.Tensor,
                        text_encoder: str, fingerprint: str) -> Path:
    """Write the bank atomically (temp file, verified by reading it back, then renamed)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise EmbeddingBankError(f"-o {path}: a bank is an .npz file; name it e.g. bank.npz.")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, prompts=np.array(list(prompts), dtype=str),
                     embeddings=embeddings.detach().cpu().numpy().astype(np.float16),
                     text_encoder=np.array(text_encoder), fingerprint=np.array(fingerprint),
                     format=np.array(FORMAT_VERSION))
        if len(_read(tmp)["prompts"]) != len(prompts):
            raise EmbeddingBankError(f"Writing {path} failed: the file read back differs from what was written.")
    return path


def _read(path: Path) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in KEYS if key not in data.files]
        if missing:
            raise EmbeddingBankError(f"{path} is not an embedding bank (missing {missing}). Export one with "
                                     f"nnUNetv2_openvocab_embed -m MODEL_FOLDER --prompts ... -o bank.npz.")
        if int(data["format"]) != FORMAT_VERSION:
            raise EmbeddingBankError(f"{path} has bank format {int(data['format'])}; this version reads "
                                     f"{FORMAT_VERSION}. Re-export it with nnUNetv2_openvocab_embed.")
        prompts, embeddings = data["prompts"], data["embeddings"]
        if prompts.ndim != 1 or embeddings.ndim != 2 or len(prompts) != len(embeddings) or \
                not np.issubdtype(embeddings.dtype, np.floating):
            raise EmbeddingBankError(f"{path}: expected prompts (N,) and float embeddings (N, E), found "
                                     f"{prompts.shape} and {embeddings.dtype} {embeddings.shape}. Re-export it with "
                                     f"nnUNetv2_openvocab_embed.")
        if not np.isfinite(embeddings).all():
            bad = [str(p) for p, row in zip(prompts, embeddings) if not np.isfinite(row).all()]
            raise EmbeddingBankError(f"{path}: the embeddings of {len(bad)} prompt(s) (e.g. {bad[:3]}) hold NaN or "
                                     f"infinite values. Re-export the bank with nnUNetv2_openvocab_embed.")
        return {"prompts": prompts, "embeddings": embeddings,
                "text_encoder": str(data["text_encoder"]), "fingerprint": str(data["fingerprint"])}


def load_embedding_bank(path: Union[str, Path]) -> EmbeddingBank:
    path = Path(path)
    if not path.is_file():
        raise EmbeddingBankError(f"--embeddings {path} does not exist. Export a bank with "
                                 f"nnUNetv2_openvocab_embed -m MODEL_FOLDER --prompts ... -o {path.name}.")
    try:
        content = _read(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # EOFError: an empty file
        if isinstance(error, EmbeddingBankError):
            raise
        raise EmbeddingBankError(f"--embeddings {path} is not a readable .npz bank ({error}). Re-export it with "
                                 f"nnUNetv2_openvocab_embed.") from None
    vectors = dict(zip((str(p) for p in content["prompts"]), content["embeddings"]))
    return EmbeddingBank(vectors, content["text_encoder"], content["fingerprint"], path)
