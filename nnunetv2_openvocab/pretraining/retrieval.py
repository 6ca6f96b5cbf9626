"""Image <-> report retrieval recall@k, the validation metric of the pretraining."""
from __future__ import annotations

from typing import Sequence

import torch
from torch.nn import functional as F


def recall_at_k(similarity: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    """similarity: (N, N), row i a query whose match is column i. Ties count against the match."""
    matched = similarity.diagonal()[:, None]
    rank = (similarity >= matched).sum(dim=1) - 1  # candidates scoring at least as high as the match
    return {k: (rank < k).float().mean().item() for k in ks}


def retrieval_recall(image_features: torch.Tensor, report_features: torch.Tensor,
                     ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """(N, D) image and report embeddings, row i paired -> {"image_to_report_R@k", "report_to_image_R@k"}.

    Chance level is k / N.
    """
    similarity = F.normalize(image_features.float(), dim=-1) @ F.normalize(report_features.float(), dim=-1).T
    results = {}
    for name, matrix in (("image_to_report", similarity), ("report_to_image", similarity.T)):
        results.update({f"{name}_R@{k}": value for k, value in recall_at_k(matrix, ks).items()})
    return results
