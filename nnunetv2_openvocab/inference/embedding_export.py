"""A model's prompt embedding bank (text/embedding_bank.py) for a list of prompts: the requested prompts plus
everything a prediction of them may embed besides (the model's training prompts for the prompt report, the
taxonomy's prompts for grounding's nearest-entry match), so ``--embeddings`` runs without a text encoder."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Union

from nnunetv2_openvocab.inference.model_loading import DEFAULT_CHECKPOINT, load_trained_model
from nnunetv2_openvocab.inference.prompt_jobs import PromptError
from nnunetv2_openvocab.json_input import read_json_file
from nnunetv2_openvocab.prompts.grounding import taxonomy_entries
from nnunetv2_openvocab.prompts.taxonomy import load_taxonomy
from nnunetv2_openvocab.text.embedding_bank import save_embedding_bank
from nnunetv2_openvocab.text.embedding_cache import PromptEmbeddingCache


def read_prompts_file(path: Union[str, Path]) -> List[str]:
    path = Path(path)
    if path.suffix == ".json":
        content = read_json_file(path, what="--prompts-file")
        jobs = content.get("jobs") if isinstance(content, dict) else None
        if isinstance(jobs, list) and all(isinstance(job, dict) and isinstance(job.get("prompts", []), list)
                                          for job in jobs):
            return [prompt for job in jobs for prompt in job.get("prompts", [])]
        raise PromptError(f'{path}: expected the jobs file of nnUNetv2_openvocab_predict ({{"jobs": [{{"image": '
                          f'..., "prompts": [...]}}]}}), or a text file with one prompt per line.')
    if not path.is_file():
        raise PromptError(f"--prompts-file {path} does not exist or is not a file; pass a text file, one prompt "
                          f"per line.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PromptError(f"Cannot read --prompts-file {path} as UTF-8 text ({error}).") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def export_bank(model_folder: Union[str, Path], prompts: Sequence[str], output: Union[str, Path],
                checkpoint_name: str = DEFAULT_CHECKPOINT, folds=None) -> Path:
    """Embed ``prompts`` and the texts a prediction needs besides, with the model's own text encoder."""
    spec = load_trained_model(model_folder, folds, checkpoint_name).spec
    training = spec.training_prompts.all_prompts
    taxonomy = [text for text, _ in taxonomy_entries(load_taxonomy())]
    texts = list(dict.fromkeys([*prompts, *training, *taxonomy]))
    cache = PromptEmbeddingCache(spec.text_encoder, spec.text_encoder_fingerprint)
    return save_embedding_bank(output, texts, cache.embed(texts), spec.text_encoder, spec.text_encoder_fingerprint)
