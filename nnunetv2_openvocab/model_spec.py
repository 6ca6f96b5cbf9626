"""``OpenVocabSpec``: what rebuilds an OpenVocab model besides nnU-Net's own plans, in one place.

The planner writes it to the plans, the trainer reads it from there and writes it to every checkpoint,
the predictor reads it from the checkpoint. This module is the only reader of ``plans["openvocab"]``.

Plans, ``plans["openvocab"]``:
  {"text_encoder": model id or absolute folder, "text_encoder_fingerprint": sha256, "embedding_dim": int,
   "label_names": [...], "pretrained_checkpoint": path or null, "connector": {"kind": "mlp", **kwargs}}
Checkpoint, the text head's extra state (``text_query.seg_layers._extra_state`` in ``network_weights``):
  the same fields plus "text_prompts": {label: [canonical, synonym, ...]}.
Plans written before "connector" existed read as the MLP connector.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Optional, Tuple

from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts, foreground_label_names

PLANS_KEY = "openvocab"
DEFAULT_CONNECTOR = "mlp"
REPLAN_HINT = ("Plan the dataset with nnUNetv2_openvocab_plan_and_preprocess -d ID --stunet B --text-encoder MODEL "
               "and train with -p nnUNetPlans_STUNetB.")


class OpenVocabSpecError(ValueError):
    """The plans or checkpoint lack the OpenVocab spec, or it disagrees with dataset.json."""


@dataclass(frozen=True)
class OpenVocabSpec:
    text_encoder: str
    text_encoder_fingerprint: str
    embedding_dim: int
    label_names: Tuple[str, ...]
    pretrained_checkpoint: Optional[str] = None
    connector: str = DEFAULT_CONNECTOR
    connector_kwargs: Mapping = field(default_factory=dict)
    text_prompts: Optional[Mapping[str, Tuple[str, ...]]] = None  # checkpoint only: {label: prompts}

    # ---- plans ---------------------------------------------------------------------------------------------
    @classmethod
    def from_plans(cls, plans: Mapping, plans_name: str = "plans") -> "OpenVocabSpec":
        section = plans.get(PLANS_KEY)
        if not isinstance(section, Mapping):
            raise OpenVocabSpecError(f"Plans {plans_name!r} have no {PLANS_KEY!r} section. {REPLAN_HINT}")
        return cls._from_record(section, f"plans {plans_name!r}")

    def to_plans(self) -> dict:
        return {"text_encoder": self.text_encoder, "embedding_dim": self.embedding_dim,
                "text_encoder_fingerprint": self.text_encoder_fingerprint, "label_names": list(self.label_names),
                "pretrained_checkpoint": self.pretrained_checkpoint,
                "connector": {"kind": self.connector, **self.connector_kwargs}}

    # ---- checkpoint ----------------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, metadata: Optional[Mapping], source: str) -> "OpenVocabSpec":
        """``metadata``: the text head's extra state; ``source`` names the checkpoint in errors."""
        if not metadata or not metadata.get("text_prompts"):
            raise OpenVocabSpecError(f"{source} has no OpenVocab spec in its text head; it was not written by "
                                     f"nnUNetTrainerOpenVocab (or a variant). Retrain with one of those trainers.")
        spec = cls._from_record(metadata, source)
        return replace(spec, text_prompts={name: tuple(p) for name, p in metadata["text_prompts"].items()})

    def to_checkpoint(self) -> dict:
        if self.text_prompts is None:
            raise ValueError("The spec has no text prompts yet; call with_prompts(dataset_prompts) first.")
        return {**self.to_plans(), "text_prompts": {name: list(p) for name, p in self.text_prompts.items()}}

    @classmethod
    def _from_record(cls, record: Mapping, source: str) -> "OpenVocabSpec":
        missing = [k for k in ("text_encoder", "text_encoder_fingerprint", "embedding_dim", "label_names")
                   if k not in record]
        if missing:
            raise OpenVocabSpecError(f"{source}: the {PLANS_KEY!r} record lacks {', '.join(missing)}. {REPLAN_HINT}")
        connector = dict(record.get("connector") or {"kind": DEFAULT_CONNECTOR})
        return cls(text_encoder=record["text_encoder"], text_encoder_fingerprint=record["text_encoder_fingerprint"],
                   embedding_dim=int(record["embedding_dim"]), label_names=tuple(record["label_names"]),
                   pretrained_checkpoint=record.get("pretrained_checkpoint"), connector=connector.pop("kind"),
                   connector_kwargs=connector)

    # ---- derived specs and checks --------------------------------------------------------------------------
    def with_connector(self, kind: str, kwargs: Optional[Mapping] = None) -> "OpenVocabSpec":
        return replace(self, connector=kind, connector_kwargs=dict(kwargs or {}))

    def with_prompts(self, text_prompts: Mapping[str, Tuple[str, ...]]) -> "OpenVocabSpec":
        return replace(self, text_prompts={name: tuple(p) for name, p in text_prompts.items()})

    @property
    def training_prompts(self) -> TrainingPrompts:
        """The checkpoint's training prompts of every label, in the network's output order."""
        return TrainingPrompts.from_mapping(self.text_prompts, self.label_names)

    @property
    def canonical_prompts(self) -> list:
        return self.training_prompts.canonical_prompts

    def check_labels(self, dataset_json: Mapping, dataset_json_file: str, source: str) -> None:
        """The spec's labels must be dataset.json's foreground labels, in the same order (one output each)."""
        expected = foreground_label_names(dataset_json.get("labels", {}))
        if list(self.label_names) != expected:
            raise OpenVocabSpecError(
                f"{dataset_json_file} [labels]: the foreground labels {expected} differ from the {len(self.label_names)} "
                f"labels of {source} {list(self.label_names)}. Fix: re-plan after changing labels "
                f"(nnUNetv2_openvocab_plan_and_preprocess), or restore the dataset.json the model was planned with.")

