"""Prompt report: how far each prompt is from the prompts the model was trained with, in the text encoder's space.

For every prompt: the nearest training labels (best-matching synonym of each, from the checkpoint's
``text_prompts``) with their cosine similarity, a status and warnings. Saved as ``prompt_report.json`` and
``prompt_report.md`` next to the predictions.

Status, from the cosine of the nearest training prompt:
  * ``seen``: an exact training prompt (case-insensitive);
  * ``near``: >= ``distant_threshold`` (0.65);
  * ``distant``: >= ``far_threshold`` (0.50): loosely related, check the output;
  * ``far``: < ``far_threshold``: nothing like it was trained; the output is an extrapolation.
The defaults were measured with the offline MiniLM encoder on the example dataset's prompts (6 labels x 3
synonyms, nnunetv2_openvocab/data/example_prompts.json): held-out synonyms and merged prompts scored
0.69-0.98 ('hepatic system' 0.69, 'renal organs' 0.71, 'liver parenchyma' 0.94), except the Latin 'hepar'
(0.35); organs absent from training 0.32-0.63 ('left lung' 0.63, 'stomach' 0.54, 'heart' 0.53, 'pancreas'
0.45, 'femur' 0.38); non-anatomical text 0.12-0.30 ('banana' 0.28). Other encoders spread similarities
differently: recalibrate the thresholds for them (``--far-threshold``).

Laterality. General encoders barely separate sides (MiniLM: 'left kidney' vs 'right kidney' 0.87, 'kidney on
the left side' vs 'kidney on the right side' 0.99), so the report warns when
  (a) the prompt names no side and its two nearest labels differ only in side (kidney_left / kidney_right), or
  (b) the prompt names a side and the opposite-side twin of its nearest same-side label scores within
      ``laterality_margin`` (0.10) of it.
Exact training prompts and grounded prompts (answered by their labels' queries) get no laterality warning; the
former were trained on that very text and need no text
encoder: their nearest label is their own.

Each prompt also shows its grounding (route ``label``/``union``/``text``, the labels used and why; see
grounding.py), and after prediction the presence of each answer per case (``present``/``absent`` with the
maximum and mean foreground probability and the voxel count; see presence.py) and, for prompts that name a side,
the side check's result (passed / trimmed / emptied / not checked; see patient_side.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from nnunetv2_openvocab.atomic_files import write_json_atomic, write_text_atomic
from nnunetv2_openvocab.inference.patient_side import SideCheck
from nnunetv2_openvocab.inference.presence import PRESENT_CONFIDENCE, Presence
from nnunetv2_openvocab.prompts.dataset_prompts import TrainingPrompts
from nnunetv2_openvocab.prompts.grounding import Grounding
from nnunetv2_openvocab.prompts.laterality import SIDES, side_twin, sides
from nnunetv2_openvocab.prompts.normalisation import normalise_prompt

FAR_THRESHOLD = 0.50
DISTANT_THRESHOLD = 0.65
LATERALITY_MARGIN = 0.10
TOP_LABELS = 3
REPORT_JSON, REPORT_MARKDOWN = "prompt_report.json", "prompt_report.md"


@dataclass
class NearestLabel:
    label: str
    training_prompt: str
    cosine: float


@dataclass
class PromptAssessment:
    prompt: str
    status: str
    max_cosine: float
    nearest: List[NearestLabel]
    warnings: List[str] = field(default_factory=list)
    grounding: Optional[Grounding] = None


@dataclass
class PromptReport:
    text_encoder: str
    far_threshold: float
    distant_threshold: float
    laterality_margin: float
    prompts: List[PromptAssessment]
    presence: Dict[str, Dict[str, Presence]] = field(default_factory=dict)  # case -> prompt -> presence
    side_checks: Dict[str, Dict[str, SideCheck]] = field(default_factory=dict)  # case -> sided prompt -> check

    def to_dict(self) -> Dict:
        return asdict(self)

    def to_markdown(self) -> str:
        lines = [f"# Prompt report (text encoder `{self.text_encoder}`)", "",
                 f"Status by cosine of the nearest training prompt: seen (exact), near >= "
                 f"{self.distant_threshold:.2f}, distant >= {self.far_threshold:.2f}, far below (the output is an "
                 f"extrapolation).", "",
                 "| prompt | status | nearest training labels (cosine) | route | labels used | why | warnings |",
                 "|---|---|---|---|---|---|---|"]
        for a in self.prompts:
            nearest = "; ".join(f"{n.label} via '{n.training_prompt}' ({n.cosine:.2f})" for n in a.nearest)
            g = a.grounding
            route = (g.route_label, ", ".join(g.labels) or "-", g.reason) \
                if g else ("-", "-", "-")
            lines.append(f"| {a.prompt} | {a.status} | {nearest} | {' | '.join(route)} | {' '.join(a.warnings) or '-'} |")
        if self.presence:
            lines += ["", f"## Presence (absent: empty mask, or no voxel reaches probability {PRESENT_CONFIDENCE:.2f})", "",
                      "| case | prompt | status | voxels | max probability | mean probability |", "|---|---|---|---|---|---|"]
            for case, prompts in self.presence.items():
                for prompt, p in prompts.items():
                    mean = "-" if p.mean_probability is None else f"{p.mean_probability:.3f}"
                    lines.append(f"| {case} | {prompt} | {p.status} | {p.voxels} | {p.max_probability:.3f} | {mean} |")
        if any(self.side_checks.values()):
            lines += ["", "## Side check (prompts that name a side: the answer must lie on that side of the patient's "
                          "body midline, found from the image's direction cosines and body mask)", "",
                      "| case | prompt | side | result | voxels | beyond the midline | removed | detail |",
                      "|---|---|---|---|---|---|---|---|"]
            for case, checks in self.side_checks.items():
                for prompt, c in checks.items():
                    lines.append(f"| {case} | {prompt} | {c.side} | {c.status} | {c.voxels} | {c.voxels_other_side} "
                                 f"| {c.voxels_removed} | {c.detail} |")
        return "\n".join(lines) + "\n"

    def routes(self) -> Dict[str, str]:
        """{prompt: 'union of kidney_left + kidney_right'} (how grounding answered each prompt), for tables."""
        return {a.prompt: (a.grounding.route if a.grounding.route == "text"
                           else f"{a.grounding.route}: {' + '.join(a.grounding.labels)}")
                for a in self.prompts if a.grounding is not None}

    def to_text(self) -> str:
        lines = [f"Prompt report (text encoder {self.text_encoder}; far < {self.far_threshold:.2f} <= distant < "
                 f"{self.distant_threshold:.2f} <= near):"]
        for a in self.prompts:
            nearest = ", ".join(f"{n.label} {n.cosine:.2f}" for n in a.nearest)
            lines.append(f"  {a.prompt!r}: {a.status.upper()} (nearest: {nearest})")
            if a.grounding:
                labels = f" [{', '.join(a.grounding.labels)}]" if a.grounding.labels else ""
                lines.append(f"      route {a.grounding.route_label}{labels}: {a.grounding.reason}")
            lines.extend(f"      ! {w}" for w in a.warnings)
        return "\n".join(lines)


def _nearest_labels(similarities: torch.Tensor, training: Sequence[Tuple[str, str]]) -> List[NearestLabel]:
    """Best training prompt per label, best labels first."""
    best: Dict[str, NearestLabel] = {}
    for (label, text), cosine in zip(training, similarities.tolist()):
        if label not in best or cosine > best[label].cosine:
            best[label] = NearestLabel(label, text, round(float(cosine), 4))
    return sorted(best.values(), key=lambda n: -n.cosine)


def laterality_warnings(prompt: str, ranked: Sequence[NearestLabel], margin: float) -> List[str]:
    labels = [n.label for n in ranked]
    normalised = normalise_prompt(prompt)  # 'sinistral', 'L', 'on the left side' name a side too
    prompt_sides = {normalised.side} if normalised.side else set(SIDES) if normalised.both_sides else set()
    if not prompt_sides:
        if len(ranked) >= 2 and side_twin(ranked[0].label, labels) == ranked[1].label:
            return [f"Its nearest training prompts '{ranked[0].training_prompt}' ({ranked[0].cosine:.2f}) and "
                    f"'{ranked[1].training_prompt}' ({ranked[1].cosine:.2f}) differ only in side: the mask may "
                    f"cover one side, the other, or both. Name the side, or check the mask."]
        return []
    if len(prompt_sides) > 1:
        return []  # 'left and right ...' names both sides on purpose
    same_side = next((n for n in ranked if sides(n.label) == prompt_sides), None)
    twin_label = side_twin(same_side.label, labels) if same_side else None
    twin = next((n for n in ranked if n.label == twin_label), None)
    if same_side and twin and twin.cosine >= same_side.cosine - margin:
        return [f"The text encoder barely separates sides here: '{same_side.training_prompt}' {same_side.cosine:.2f} "
                f"vs '{twin.training_prompt}' {twin.cosine:.2f}. Check that the mask is on the "
                f"{next(iter(prompt_sides))} side."]
    return []


def build_prompt_report(prompts: Sequence[str], training_prompts: TrainingPrompts,
                        embed: Callable[[List[str]], torch.Tensor], text_encoder: str,
                        far_threshold: float = FAR_THRESHOLD, distant_threshold: float = DISTANT_THRESHOLD,
                        laterality_margin: float = LATERALITY_MARGIN, top_labels: int = TOP_LABELS,
                        groundings: Optional[Sequence[Grounding]] = None) -> PromptReport:
    """``embed``: prompts -> (N, E) embeddings of the model's text encoder (e.g. a PromptEmbeddingCache); called
    only when some prompt is not a training prompt. ``groundings``: one per prompt, shown beside it."""
    distant_threshold = max(distant_threshold, far_threshold)
    training = [(label.name, text) for label in training_prompts.labels for text in label.prompts]
    unseen = [p for p in prompts if not training_prompts.is_seen(p)]
    if unseen:
        query = torch.nn.functional.normalize(embed(unseen).float(), dim=-1)
        keys = torch.nn.functional.normalize(embed([text for _, text in training]).float(), dim=-1)
        similarities = dict(zip(unseen, query @ keys.T))
    assessments = []
    for index, prompt in enumerate(prompts):
        grounding = groundings[index] if groundings is not None else None
        if training_prompts.is_seen(prompt):
            label, text = training_prompts.seen_as(prompt)
            assessments.append(PromptAssessment(prompt, "seen", 1.0, [NearestLabel(label, text, 1.0)], [], grounding))
            continue
        ranked = _nearest_labels(similarities[prompt], training)
        best = ranked[0].cosine
        status = "near" if best >= distant_threshold else "distant" if best >= far_threshold else "far"
        # laterality warnings concern the text query; a grounded prompt is answered by its labels' queries
        grounded = grounding is not None and grounding.route != "text"
        warnings = [] if grounded else laterality_warnings(prompt, ranked, laterality_margin)
        if status == "far":
            warnings.insert(0, f"Far from every training prompt (best cosine {best:.2f} < {far_threshold:.2f}): "
                               f"the output is an extrapolation.")
        assessments.append(PromptAssessment(prompt, status, best, ranked[:top_labels], warnings, grounding))
    return PromptReport(text_encoder, far_threshold, distant_threshold, laterality_margin, assessments)


def write_prompt_report(report: PromptReport, folder: Path) -> Tuple[Path, Path]:
    json_path, markdown_path = folder / REPORT_JSON, folder / REPORT_MARKDOWN
    write_json_atomic(json_path, report.to_dict())
    write_text_atomic(markdown_path, report.to_markdown())
    return json_path, markdown_path
