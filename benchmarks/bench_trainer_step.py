"""Training-step time of nnUNetTrainerOpenVocab's step over the stock nnUNetTrainer's, same STUNet backbone.

Both steps run in this process on the same real-CT patches (bundled TotalSegmentator example, 3 mm),
alternating so that machine load affects both alike:
  * stock: STUNet with C+1 output channels, nnU-Net's DC_and_CE_loss under its deep-supervision wrapper;
  * ours: OpenVocabSTUNet with C prompts per sample (synonyms sampled, embeddings looked up), per-scale
    binary targets from the label map, BCE + Dice with masked back-propagation.
Prints ms per step and the ratio for C = 1, 8, 32, 117 (the goal at the dataset's own C is <= 1.10).

Usage: python benchmarks/bench_trainer_step.py [--width 8] [--patch 64] [--batch 2] [--repeats 5]
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import SimpleITK as sitk
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

from nnunetv2_openvocab.example_dataset import EXAMPLE_CT, EXAMPLE_SEGMENTATION
from nnunetv2_openvocab.network.openvocab_stunet import OpenVocabSTUNet
from nnunetv2_openvocab.network.stunet import STUNet, stunet_arch_kwargs
from nnunetv2_openvocab.prompts.dataset_prompts import DatasetPrompts
from nnunetv2_openvocab.training.loss import DeepSupervisionPromptLoss, PromptSegmentationLoss
from nnunetv2_openvocab.training.prompt_sampling import LabelTargets, PromptSampler

STRIDES = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 1, 1]]
EMBEDDING_DIM = 384


def real_patches(patch: int, batch: int, num_labels: int, rng):
    """Random crops of the real CT; its 61 structures are spread over `num_labels` label values."""
    ct = sitk.GetArrayFromImage(sitk.ReadImage(str(EXAMPLE_CT))).astype(np.float32)
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(EXAMPLE_SEGMENTATION))).astype(np.int64)
    seg = np.where(seg > 0, (seg - 1) % num_labels + 1, 0)
    ct = (np.clip(ct, -200, 300) - 50) / 100
    starts = [rng.integers(0, s - patch + 1, size=batch) for s in ct.shape]
    image = np.stack([ct[z:z + patch, y:y + patch, x:x + patch] for z, y, x in zip(*starts)])[:, None]
    labels = np.stack([seg[z:z + patch, y:y + patch, x:x + patch] for z, y, x in zip(*starts)])[:, None]
    return torch.from_numpy(image), torch.from_numpy(labels)


def downsampled_targets(labels: torch.Tensor):
    """Nearest-neighbour label maps at each deep-supervision scale (as nnU-Net's DownsampleSegForDSTransform)."""
    out, factor = [labels], 1
    for stride in STRIDES[1:-1]:
        factor *= stride[0]
        out.append(labels[..., ::factor, ::factor, ::factor])
    return out


def fake_dataset_prompts(num_labels: int) -> DatasetPrompts:
    names = [f"structure_{i}" for i in range(num_labels)]
    return DatasetPrompts({"labels": {"background": 0, **{n: i + 1 for i, n in enumerate(names)}},
                           "text_prompts": {n: [n, f"{n} synonym"] for n in names}})


def seconds(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def compare(num_labels: int, width: int, patch: int, batch: int, repeats: int) -> tuple[float, float]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    arch = {**stunet_arch_kwargs("B", width), "strides": STRIDES}
    stock_net = STUNet(1, num_labels + 1, deep_supervision=True, **arch)
    ours_net = OpenVocabSTUNet(1, num_labels + 1, EMBEDDING_DIM, num_labels, deep_supervision=True, **arch)
    stock_loss = DeepSupervisionWrapper(
        DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                       weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss),
        [1, 0.5, 0.25, 0.125, 0.0])
    ours_loss = DeepSupervisionPromptLoss(PromptSegmentationLoss(), 5)
    prompts = fake_dataset_prompts(num_labels)
    sampler, targets_of = PromptSampler(prompts, seed=0), LabelTargets(prompts)
    embedding_table = torch.randn(len(sampler.all_prompts), EMBEDDING_DIM)
    image, labels = real_patches(patch, batch, num_labels, rng)
    label_pyramid = downsampled_targets(labels)
    stock_opt = torch.optim.SGD(stock_net.parameters(), 1e-2, momentum=0.99, nesterov=True)
    ours_opt = torch.optim.SGD(ours_net.parameters(), 1e-2, momentum=0.99, nesterov=True)

    def stock_step():
        stock_opt.zero_grad(set_to_none=True)
        stock_loss(stock_net(image), label_pyramid).backward()
        stock_opt.step()

    def ours_step():
        indices, annotated = sampler.sample([f"case_{i}" for i in range(batch)])
        targets = [targets_of(level) for level in label_pyramid]
        ours_opt.zero_grad(set_to_none=True)
        ours_loss(ours_net(image, embedding_table[indices]), targets, annotated).backward()
        ours_opt.step()

    stock_step(), ours_step()  # warm-up
    stock_times, ours_times = [], []
    for _ in range(repeats):  # alternate so that background load hits both alike
        stock_times.append(seconds(stock_step))
        ours_times.append(seconds(ours_step))
    return float(np.median(stock_times)), float(np.median(ours_times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--labels", type=int, nargs="+", default=[1, 8, 32, 117])
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"STUNet-B width {args.width}, patch {args.patch}^3, batch {args.batch}")
    print("prompts/classes | stock ms/step | openvocab ms/step | ratio")
    for num_labels in args.labels:
        stock, ours = compare(num_labels, args.width, args.patch, args.batch, args.repeats)
        print(f"{num_labels:15d} | {stock * 1e3:13.0f} | {ours * 1e3:17.0f} | {ours / stock:.3f}")


if __name__ == "__main__":
    main()
