"""Load released STU-Net weights (or any STUNet state dict) without executing pickled code.

Accepted files, told apart by what they contain (safetensors by its `.safetensors` suffix):
    nnU-Net v2 `.pth`     a dict whose `network_weights` is the state dict
    nnU-Net v1 `.model`   a dict whose `state_dict` is the state dict (STU-Net's releases)
    bare state dict       name -> tensor, from torch.save or a `.safetensors` file
Names may carry the `module.` (DDP) or `_orig_mod.` (torch.compile) prefix; it is removed.

Files are read by nnunetv2_openvocab.safe_loading (torch.load with weights_only=True, nnU-Net v1's pickled
numpy loss curves allow-listed); a file needing any other pickled object is refused with `UnsafeCheckpointError`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from nnunetv2_openvocab.safe_loading import read_safetensors, torch_load_weights_only

logger = logging.getLogger(__name__)

ENCODER_PREFIX = "conv_blocks_context."
SEGMENTATION_OUTPUT_PREFIX = "seg_outputs."
# key holding the state dict -> the format it marks
STATE_DICT_KEYS = {"network_weights": "nnU-Net v2 checkpoint", "state_dict": "nnU-Net v1 checkpoint"}
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class ShapeMismatch:
    name: str
    checkpoint_shape: tuple[int, ...]
    network_shape: tuple[int, ...]


@dataclass
class LoadReport:
    """What happened to every tensor of a checkpoint when it was loaded into a network.

    matched: loaded. skipped: left out on purpose (segmentation outputs, or non-encoder weights).
    mismatched: same name, different shape; not loaded. missing: wanted network tensors the
    checkpoint lacks; they keep their initialisation. unexpected: checkpoint tensors the network
    does not have.
    """

    source: str
    matched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    mismatched: list[ShapeMismatch] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self, max_names: int = 10) -> str:
        """Counts, then the names (and shapes) of every problem, up to `max_names` per kind."""
        lines = [f"Loaded {self.source}: {len(self.matched)} matched, {len(self.skipped)} skipped, "
                 f"{len(self.mismatched)} shape-mismatched, {len(self.missing)} missing, "
                 f"{len(self.unexpected)} unexpected."]
        problems = {
            "shape mismatch (checkpoint vs network)":
                [f"{m.name}: {list(m.checkpoint_shape)} vs {list(m.network_shape)}" for m in self.mismatched],
            "missing from checkpoint (kept initialised)": self.missing,
            "not in network (ignored)": self.unexpected,
        }
        for title, names in problems.items():
            if names:
                more = f" ... and {len(names) - max_names} more" if len(names) > max_names else ""
                lines.append(f"  {title}: " + ", ".join(names[:max_names]) + more)
        return "\n".join(lines)


EXTRA_STATE_SUFFIX = "_extra_state"


def _strip_wrapper_prefixes(name: str) -> str:
    while name.startswith(WRAPPER_PREFIXES):
        name = name.split(".", 1)[1]
    return name


def read_checkpoint_state_dict(checkpoint_path: str | Path) -> dict[str, torch.Tensor]:
    """The network state dict (on CPU) of an nnU-Net v1/v2 checkpoint, a saved state dict or a safetensors file."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist; check the path given as checkpoint.")
    content = read_safetensors(path) if path.suffix == ".safetensors" else torch_load_weights_only(path)
    if not isinstance(content, Mapping):
        raise ValueError(f"{path} holds a {type(content).__name__}, expected a dict: a state dict or an nnU-Net "
                         f"checkpoint with one of the keys {sorted(STATE_DICT_KEYS)}.")
    format_key = next((key for key in STATE_DICT_KEYS if key in content), None)
    state_dict = content if format_key is None else content[format_key]
    logger.info("Reading %s as %s", path, STATE_DICT_KEYS.get(format_key, "a bare state dict"))
    # `*._extra_state` is how torch stores a module's non-tensor state (our text head's prompt metadata).
    not_tensors = [name for name, value in state_dict.items()
                   if not isinstance(value, torch.Tensor) and not name.endswith(EXTRA_STATE_SUFFIX)]
    if not_tensors:
        raise ValueError(f"{path}: entries {not_tensors[:5]} are not tensors, so this is no state dict. Expected a "
                         f"state dict or a dict with one of the keys {sorted(STATE_DICT_KEYS)}; found keys "
                         f"{sorted(map(str, content))[:10]}.")
    return {_strip_wrapper_prefixes(name): tensor for name, tensor in state_dict.items()}


def load_matching_tensors(network: nn.Module, state_dict: Mapping[str, torch.Tensor],
                          is_wanted: Callable[[str], bool], source: str) -> LoadReport:
    """Copy the wanted tensors whose name and shape match into `network`; report everything else."""
    report = LoadReport(source=source)
    network_state = network.state_dict()
    state_dict = {_strip_wrapper_prefixes(name): tensor for name, tensor in state_dict.items()}
    to_load = {}
    for name, tensor in state_dict.items():
        if not is_wanted(name):
            report.skipped.append(name)
        elif name not in network_state:
            report.unexpected.append(name)
        elif isinstance(tensor, torch.Tensor) and tensor.shape != network_state[name].shape:
            report.mismatched.append(ShapeMismatch(name, tuple(tensor.shape), tuple(network_state[name].shape)))
        else:
            to_load[name] = tensor
            report.matched.append(name)
    report.missing = [name for name in network_state if is_wanted(name) and name not in state_dict]
    if not to_load:
        raise ValueError(f"No tensor of {source} matches the network by name and shape, so nothing was loaded; "
                         f"is it a checkpoint of this architecture?\n{report.summary()}")
    network.load_state_dict(to_load, strict=False)
    logger.info(report.summary())
    return report


def load_pretrained_stunet(network: nn.Module, checkpoint_path: str | Path,
                           skip_segmentation_outputs: bool = True) -> LoadReport:
    """Load a released STU-Net checkpoint (or any STUNet weights file) into `network`, a STUNet.

    The segmentation outputs (`seg_outputs.*`) are skipped by default because their class count
    belongs to the checkpoint's dataset. Mismatching shapes are reported, not loaded.
    """
    def is_wanted(name: str) -> bool:
        return not (skip_segmentation_outputs and name.startswith(SEGMENTATION_OUTPUT_PREFIX))

    return load_matching_tensors(network, read_checkpoint_state_dict(checkpoint_path), is_wanted,
                                 source=str(checkpoint_path))


def is_encoder_parameter(name: str) -> bool:
    """Whether a STUNet state-dict name belongs to the encoder (`conv_blocks_context.*`)."""
    return name.startswith(ENCODER_PREFIX)


def encoder_parameter_names(network: nn.Module) -> list[str]:
    """State-dict names of a STUNet's encoder, in network order (what `load_encoder_weights` may load)."""
    return [name for name in network.state_dict() if is_encoder_parameter(name)]


def load_encoder_weights(network: nn.Module, state_dict: Mapping[str, torch.Tensor],
                         source: str = "encoder state dict") -> LoadReport:
    """Load only the encoder (`conv_blocks_context.*`) of `state_dict` into `network`, a STUNet.

    For encoders pretrained elsewhere (e.g. contrastively): decoder and outputs stay as they are.
    Use `read_checkpoint_state_dict` to get `state_dict` from a file.
    """
    return load_matching_tensors(network, state_dict, is_encoder_parameter, source)
