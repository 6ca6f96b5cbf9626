"""The CUDA-only branches, exercised on the CPU: which autocast, process-group backend and DDP device ids a
device gets (constants.mixed_precision, pretraining/distributed.py), and the code that CUDA's float16 autocast
runs, the sliding window over half-precision tiles, on CPU autocast; the GPU generator's state that dropout
replay and resumed pretraining save and restore (pretraining/rng_states.py), with torch.cuda's two calls recorded. The multi-process path itself runs
under gloo in test_pretraining_ddp.py and test_pretraining_gradient_cache.py; only the backend differs on GPUs.
"""
from __future__ import annotations

import warnings

import pytest
import torch

from nnunetv2_openvocab.constants import mixed_precision
from nnunetv2_openvocab.inference.prompt_readout import LogitReadout
from nnunetv2_openvocab.inference.sliding_window import SlidingWindow
from nnunetv2_openvocab.network.openvocab_stunet import OpenVocabSTUNet
from nnunetv2_openvocab.pretraining.distributed import ddp_device_ids, init_distributed, process_group_backend
from nnunetv2_openvocab.pretraining.rng_states import device_rng_state, restore_device_rng_state


def test_gpus_talk_nccl_and_cpu_processes_gloo():
    assert process_group_backend(torch.device("cuda", 1)) == "nccl"
    assert process_group_backend(torch.device("cuda")) == "nccl"
    assert process_group_backend(torch.device("cpu")) == "gloo"
    assert ddp_device_ids(torch.device("cuda", 3)) == [3]
    assert ddp_device_ids(torch.device("cpu")) is None


def test_a_single_process_joins_no_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    context = init_distributed("cpu")
    assert (context.rank, context.world_size, context.device, context.is_main) == (0, 1, torch.device("cpu"), True)


def test_cuda_autocasts_to_float16_and_the_cpu_stays_float32():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available": the context is inspected, never entered
        on_gpu = mixed_precision(torch.device("cuda", 0))
    assert isinstance(on_gpu, torch.autocast)
    assert (on_gpu.device, on_gpu.fast_dtype) == ("cuda", torch.float16)
    with mixed_precision(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.float32


def test_half_precision_tiles_blend_like_float32_ones():
    """Under CUDA's autocast the network's tiles come out float16; blending must take them as it takes float32.
    CPU autocast to float16 produces the same kind of tile here."""
    torch.manual_seed(0)
    network = OpenVocabSTUNet(1, 4, 16, 3, dims=(4, 8, 8), strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                              conv_kernel_sizes=[[3, 3, 3]] * 3, depth=(1, 1, 1), deep_supervision=False)
    network.apply(network.initialize)
    readout = LogitReadout(network.eval(), torch.randn(3, 16))
    window = SlidingWindow((16, 16, 16), 0.5, mirror_axes=(0,), show_progress=False)
    data = torch.randn(1, 24, 20, 18)
    blended = {}
    for name, context in (("float32", mixed_precision(torch.device("cpu"))),
                          ("float16", torch.autocast("cpu", dtype=torch.float16))):
        padded, volume = window.start(data, readout.num_channels)
        with context:
            tile = readout.tile_function(padded[(slice(None), *window.tiles(padded.shape[1:])[0])][None])
            window.accumulate(volume, padded, readout.tile_function)
        blended[name] = (tile.dtype, torch.stack([readout.prompt_logits(volume, i) for i in range(3)]))
    # where only a tile's far corners reach, the float16 sums are subnormal whatever the tiles (test_predictor.py)
    resolved = volume.weights[volume.unpad] >= 1e-4
    assert blended["float16"][0] == torch.float16 and blended["float32"][0] == torch.float32
    half, full = blended["float16"][1], blended["float32"][1]
    assert half.dtype == full.dtype and half.shape == full.shape == (3, 24, 20, 18)
    assert torch.isfinite(half).all() and resolved.float().mean() > 0.8
    error = (half - full)[:, resolved].abs().max()
    assert 0 < error < 1e-2 * float(full[:, resolved].abs().max())


def test_cuda_runs_save_and_restore_the_gpu_generator_too(monkeypatch):
    gpu = torch.device("cuda", 1)
    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: calls.append(("get", device)) or torch.ones(4))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: calls.append(("set", device, state.sum())))
    state = device_rng_state(gpu)
    assert set(state) == {"cpu", "cuda"} and calls == [("get", gpu)]
    torch.rand(3)  # moves the CPU generator
    restore_device_rng_state(state, gpu)
    assert calls[-1] == ("set", gpu, 4) and torch.equal(torch.get_rng_state(), state["cpu"])
    calls.clear()
    restore_device_rng_state(state, torch.device("cpu"))  # a GPU checkpoint resumed on the CPU
    assert calls == [] and set(device_rng_state(torch.device("cpu"))) == {"cpu"}
