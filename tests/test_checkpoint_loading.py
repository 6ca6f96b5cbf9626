"""Loading STU-Net checkpoints: nnU-Net v1/v2 formats, reports, encoder-only loading, refusal of unsafe pickles."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from nnunetv2_openvocab.network.checkpoint_loading import (
    encoder_parameter_names, load_encoder_weights, load_pretrained_stunet, read_checkpoint_state_dict)
from nnunetv2_openvocab.safe_loading import UnsafeCheckpointError
from nnunetv2_openvocab.network.stunet import STUNet, stunet_arch_kwargs

SHARED_DATA = Path(os.environ.get("OPENVOCAB_SHARED_DATA",
                                  Path(__file__).resolve().parents[1].parent / "shared" / "data"))
REFERENCE_FILE = SHARED_DATA / "stunet_reference" / "stunet_state_dict_shapes.json"
TINY_DIMS = [8, 16, 32, 64, 128, 128]
WRONG_SHAPE_NAME = "conv_blocks_localization.0.0.conv1.weight"


def tiny_stunet(num_classes: int, seed: int) -> STUNet:
    torch.manual_seed(seed)
    network = STUNet(1, num_classes, dims=TINY_DIMS)
    network.apply(network.initialize)
    return network


@pytest.fixture
def source_weights() -> dict[str, torch.Tensor]:
    """Weights of a 5-class tiny STUNet saved under DDP names, with one tensor of a wrong shape."""
    weights = {f"module.{name}": tensor for name, tensor in tiny_stunet(num_classes=5, seed=1).state_dict().items()}
    weights[f"module.{WRONG_SHAPE_NAME}"] = torch.zeros(128, 256, 1, 3, 3)
    return weights


def nnunet_v1_checkpoint(state_dict) -> dict:
    # nnU-Net v1 also pickled its loss curves and best-epoch bookkeeping as numpy values
    return {"epoch": 4000, "state_dict": state_dict, "optimizer_state_dict": {"state": {}, "param_groups": []},
            "plot_stuff": ([np.float64(0.9), np.float64(0.8)], [np.float32(0.7)], np.array([0.1, 0.2]), []),
            "best_stuff": (np.int64(3999), np.float64(0.5), None, None)}


def assert_loaded_all_but_outputs_and_wrong_shape(network, report, state_dict):
    loaded = {name.removeprefix("module."): tensor for name, tensor in state_dict.items()}
    assert sorted(report.skipped) == sorted(n for n in network.state_dict() if n.startswith("seg_outputs."))
    assert [(m.name, m.checkpoint_shape, m.network_shape) for m in report.mismatched] == [
        (WRONG_SHAPE_NAME, (128, 256, 1, 3, 3), (128, 256, 3, 3, 3))]
    assert report.missing == [] and report.unexpected == []
    assert len(report.matched) == len(network.state_dict()) - len(report.skipped) - 1
    for name in report.matched:
        torch.testing.assert_close(network.state_dict()[name], loaded[name])
    assert WRONG_SHAPE_NAME in report.summary() and "[128, 256, 1, 3, 3]" in report.summary()


def test_nnunet_v1_model_with_numpy_values(tmp_path, source_weights):
    path = tmp_path / "model_final_checkpoint.model"
    torch.save(nnunet_v1_checkpoint(source_weights), path)
    network = tiny_stunet(num_classes=3, seed=2)
    report = load_pretrained_stunet(network, path)
    assert_loaded_all_but_outputs_and_wrong_shape(network, report, source_weights)


def test_nnunet_v1_model_saved_under_numpy_1(tmp_path, source_weights):
    """Released STU-Net checkpoints name numpy 1.x's `numpy.core.multiarray`, which numpy 2 renamed."""
    path = tmp_path / "numpy1.model"
    # the legacy (non-zip) format keeps the pickle as plain bytes, so the module name can be rewritten
    torch.save(nnunet_v1_checkpoint(source_weights), path, _use_new_zipfile_serialization=False)
    pickled = path.read_bytes()
    assert b"cnumpy._core.multiarray\n" in pickled
    path.write_bytes(pickled.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    network = tiny_stunet(num_classes=3, seed=2)
    assert_loaded_all_but_outputs_and_wrong_shape(network, load_pretrained_stunet(network, path), source_weights)


def test_nnunet_v2_pth(tmp_path, source_weights):
    path = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": source_weights, "optimizer_state": {"state": {}, "param_groups": []},
                "init_args": {"plans": {"plans_name": "nnUNetPlans_STUNetB"}, "fold": 0},
                "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2),
                "logging": {"ema_fg_dice": [np.float64(0.5)]}}, path)
    network = tiny_stunet(num_classes=3, seed=2)
    assert_loaded_all_but_outputs_and_wrong_shape(network, load_pretrained_stunet(network, path), source_weights)


def test_safetensors_with_segmentation_outputs(tmp_path, source_weights):
    path = tmp_path / "weights.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in source_weights.items()}, path)
    network = tiny_stunet(num_classes=3, seed=2)
    report = load_pretrained_stunet(network, path, skip_segmentation_outputs=False)
    # 5-class outputs cannot go into a 3-class network: reported per tensor, weights and biases
    assert report.skipped == []
    assert sum(m.name.startswith("seg_outputs.") for m in report.mismatched) == 10


def test_pickled_code_is_refused_not_run(tmp_path, source_weights):
    marker = tmp_path / "executed"

    class RunsShellCommand:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "malicious.model"
    torch.save({"state_dict": source_weights, "payload": RunsShellCommand()}, path)
    with pytest.raises(UnsafeCheckpointError, match="system") as error:
        load_pretrained_stunet(tiny_stunet(num_classes=3, seed=2), path)
    assert str(path) in str(error.value) and "weights_only=False" not in str(error.value)
    assert not marker.exists()


def test_unrelated_file_is_rejected(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="No tensor of .*other.pth matches"):
        load_pretrained_stunet(tiny_stunet(num_classes=3, seed=2), path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="holds a Tensor, expected a dict"):
        read_checkpoint_state_dict(path)


def test_encoder_only_loading(source_weights):
    network = tiny_stunet(num_classes=3, seed=2)
    before = {name: tensor.clone() for name, tensor in network.state_dict().items()}
    report = load_encoder_weights(network, source_weights)
    encoder = encoder_parameter_names(network)
    assert encoder and all(name.startswith("conv_blocks_context.") for name in encoder)
    assert sorted(report.matched) == sorted(encoder)
    assert report.mismatched == [] and report.missing == []
    for name, tensor in network.state_dict().items():
        expected = source_weights[f"module.{name}"] if name in encoder else before[name]
        torch.testing.assert_close(tensor, expected)


@pytest.mark.skipif(not REFERENCE_FILE.is_file(), reason=f"{REFERENCE_FILE} not available")
def test_released_stunet_s_layout_loads_completely(tmp_path):
    """A checkpoint laid out exactly like the released STU-Net S (names and shapes from the reference)."""
    reference = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))["S"]["state_dict"]
    path = tmp_path / "small_ep4k.model"
    torch.save(nnunet_v1_checkpoint({name: torch.zeros(shape) for name, shape in reference.items()}), path)
    network = STUNet(1, 12, **stunet_arch_kwargs("S"))
    report = load_pretrained_stunet(network, path)
    assert len(report.matched) == len(reference) - 10 and len(report.skipped) == 10
    assert report.mismatched == [] and report.missing == [] and report.unexpected == []
