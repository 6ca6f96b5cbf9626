"""The ``train`` stage: contrastive epochs over the manifest, single process or under torchrun.

A run folder holds config.json (TrainConfig), run.json (image encoder and image source),
image_encoder.safetensors (the locked encoder, for export), checkpoint.pt (see checkpointing.py)
and the logs of run_log.py. Validation (image <-> report recall@1/5/10 on the held-out volumes)
runs at every epoch end; checkpoints are written every checkpoint_every_steps steps and at the end.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from nnunetv2_openvocab.atomic_files import write_json_atomic
from nnunetv2_openvocab.pretraining.checkpointing import (
    CHECKPOINT_NAME, gather_rng_states, load_checkpoint, restore_rng_state, save_checkpoint)
from nnunetv2_openvocab.pretraining.config import (
    PreprocessingConfig, TrainConfig, config_to_dict, differing_fields, load_config)
from nnunetv2_openvocab.pretraining.data import ContrastiveDataset, GlobalBatchSampler, collate
from nnunetv2_openvocab.pretraining.distributed import DistributedContext, init_distributed, sum_gradients
from nnunetv2_openvocab.pretraining.feature_cache import ENCODER_WEIGHTS, save_tensors_atomic
from nnunetv2_openvocab.pretraining.image_encoder import lock
from nnunetv2_openvocab.pretraining.image_side import ImageSide, cached_image_side, on_the_fly_image_side
from nnunetv2_openvocab.pretraining.loss import build_loss
from nnunetv2_openvocab.pretraining.manifest import (
    ManifestEntry, read_manifest, require_captions_for_mgcl, split_train_validation, with_report_section)
from nnunetv2_openvocab.pretraining.gradient_cache import cached_forward_backward
from nnunetv2_openvocab.pretraining.memory_options import MemoryOptions
from nnunetv2_openvocab.pretraining.model import ContrastiveModel, forward_backward
from nnunetv2_openvocab.pretraining.optimization import build_optimizer, warmup_cosine_schedule
from nnunetv2_openvocab.pretraining.retrieval import retrieval_recall
from nnunetv2_openvocab.pretraining.run_log import RunLog
from nnunetv2_openvocab.pretraining.text_tower import build_text_tower, sentence_embedding_dim

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
RUN_INFO = "run.json"
RUN_FORMAT = "nnunetv2_openvocab.pretrain_run/1"
VALIDATION_BATCH = 64


def _settle_config(out: Path, config: Optional[TrainConfig], resume: bool) -> TrainConfig:
    """The run's config: the saved one when resuming (a given config must equal it), else `config`."""
    path = out / CONFIG_NAME
    if not resume:
        if (out / CHECKPOINT_NAME).exists():
            raise FileExistsError(f"{out} already holds a run ({CHECKPOINT_NAME}); pass --resume to continue it or "
                                  f"choose another --out.")
        return config or TrainConfig()
    if not path.is_file():
        raise FileNotFoundError(f"--resume: {out} holds no run ({CONFIG_NAME} is missing); drop --resume to start one.")
    saved = load_config(TrainConfig, path)
    if config is not None and config != saved:
        raise ValueError(f"--resume continues {out} with its saved {path}, but the given config differs: "
                         f"{'; '.join(differing_fields(saved, config))}. Drop those settings or start a new run.")
    return saved


def _image_side(config: TrainConfig, cache, encoder_checkpoint, plans, configuration, preprocessing,
                train: list[ManifestEntry], validation: list[ManifestEntry], random_image_encoder: bool) -> ImageSide:
    if sum((cache is not None, encoder_checkpoint is not None, random_image_encoder)) != 1:
        raise ValueError("Give exactly one image source: --cache (features from cache-features), "
                         "--encoder-checkpoint (encode volumes on the fly) or --random-image-encoder with --plans.")
    if config.region_alignment:
        if not config.unlock_image_encoder:
            raise ValueError("--region-alignment pools the encoder's feature maps inside the regions, so the encoder "
                             "must run in training: add --unlock-image-encoder (and drop --cache).")
        if not any(entry.regions for entry in train):
            raise ValueError('--region-alignment: no training entry of the manifest has "regions" '
                             '([{"mask": path, "label": int, "caption": text}]); add them or drop the flag.')
    if cache is not None:
        if config.unlock_image_encoder:
            raise ValueError("--unlock-image-encoder trains the encoder, so cached features cannot be used; pass "
                             "--encoder-checkpoint instead of --cache.")
        if preprocessing is not None:
            raise ValueError("The preprocessing is fixed by the cache (its cache.json); drop the preprocessing "
                             "options or pass --encoder-checkpoint to encode on the fly.")
        return cached_image_side(cache, train, validation)
    if random_image_encoder:
        if plans is None or not Path(plans).is_file():
            raise ValueError(f"--random-image-encoder builds the STUNet of a plans file; --plans {plans} is no file. "
                             f"Pass the plans.json of nnUNetv2_openvocab_plan_and_preprocess (nnUNet_preprocessed).")
        if not config.unlock_image_encoder:
            raise ValueError("--random-image-encoder starts from random weights, so it must be trained: add "
                             "--unlock-image-encoder (Table VIII rows 2 to 4).")
    return on_the_fly_image_side(encoder_checkpoint, plans, configuration, preprocessing or PreprocessingConfig(),
                                 train, validation, config.seed, config.region_alignment)


class ContrastiveTraining:
    """One run's model, optimiser and position in the global batch order; `run` trains up to a step."""

    def __init__(self, config: TrainConfig, out: Path, context: DistributedContext, train_entries: list[ManifestEntry],
                 validation: list[ManifestEntry], image_side: ImageSide, memory: MemoryOptions = MemoryOptions()):
        self.config, self.out, self.context, self.memory = config, out, context, memory
        self.validation, self.image_side = validation, image_side
        torch.manual_seed(config.seed)  # the projection's initialisation
        text_tower = build_text_tower(config, image_side.info.embedding_dim, context.device)
        self.locked_encoder = None
        if image_side.encoder is not None and not config.unlock_image_encoder:
            self.locked_encoder = lock(image_side.encoder).to(context.device)
        trainable_encoder = image_side.encoder if config.unlock_image_encoder else None
        if trainable_encoder is not None:
            trainable_encoder.checkpoint_stages = memory.checkpoint_activations
        self.model = ContrastiveModel(text_tower, trainable_encoder).to(context.device)
        self.loss_fn = build_loss(config, context.rank, context.world_size).to(context.device)
        self.optimizer = build_optimizer(config, self.model, self.loss_fn)
        self.sampler = GlobalBatchSampler(len(train_entries), config.batch_size, context.rank, context.world_size,
                                          config.seed)
        self.total_steps = config.epochs * self.sampler.batches_per_epoch
        self.scheduler = warmup_cosine_schedule(self.optimizer, config.warmup_steps, self.total_steps)
        self.dataset = ContrastiveDataset(train_entries, image_side.train_source, image_side.num_views,
                                          config.captions_per_sample, config.seed, config.region_alignment)
        self.run_log = RunLog(out) if context.is_main else None
        self.step = 0
        torch.manual_seed(config.seed + context.rank)  # dropout differs between processes

    def start(self) -> None:
        """A new run: write its config, run info and (locked) encoder weights."""
        if self.context.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.out / CONFIG_NAME, config_to_dict(self.config))
            write_json_atomic(self.out / RUN_INFO, {
                "format": RUN_FORMAT, "image_encoder": dataclasses.asdict(self.image_side.info),
                "image_source": self.image_side.provenance,
                "sentence_embedding_dim": sentence_embedding_dim(self.model.text_tower.sentence_model)})
            if not self.config.unlock_image_encoder:
                save_tensors_atomic(self.out / ENCODER_WEIGHTS, self.image_side.initial_encoder_state,
                                    metadata={"fingerprint": self.image_side.info.fingerprint})
        self.context.barrier()

    def restore(self) -> None:
        """Continue from the checkpoint; the image side must be the one the run started with."""
        run_info = json.loads((self.out / RUN_INFO).read_text(encoding="utf-8"))
        started = (run_info["image_source"], run_info["image_encoder"]["fingerprint"])
        now = (json.loads(json.dumps(self.image_side.provenance)), self.image_side.info.fingerprint)  # tuples -> lists
        if started != now:
            raise ValueError(f"--resume: {self.out} was trained on other image embeddings (see its {RUN_INFO}: "
                             f"{json.dumps(run_info['image_source'])[:200]}); pass the same --cache or "
                             f"--encoder-checkpoint and preprocessing options as when it started.")
        state = load_checkpoint(self.out / CHECKPOINT_NAME)
        self.model.load_state_dict(state["model"])
        self.loss_fn.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"], self.context)
        self.step = state["step"]
        if self.run_log is not None:
            self.run_log.truncate(self.step)
        logger.info("Resumed %s at step %d of %d.", self.out, self.step, self.total_steps)

    def save(self) -> None:
        """Checkpoint and logs with curve (collective: every process calls it)."""
        rng = gather_rng_states(self.context)
        if self.context.is_main:
            save_checkpoint(self.out / CHECKPOINT_NAME, {
                "step": self.step, "model": self.model.state_dict(), "loss": self.loss_fn.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "rng": rng})
            self.run_log.flush(plot=True)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Image <-> report recall@1/5/10 over the held-out volumes (view 0), in eval mode."""
        self.model.eval()
        encoder = self.model.image_encoder if self.model.image_encoder is not None else self.locked_encoder
        images = self.image_side.validation_features(len(self.validation), encoder, self.context.device)
        reports = [entry.report for entry in self.validation]
        texts = torch.cat([self.model.text_tower(reports[i:i + VALIDATION_BATCH])
                           for i in range(0, len(reports), VALIDATION_BATCH)])
        self.model.train()
        return retrieval_recall(images, texts)

    def end_epoch(self, epoch: int) -> None:
        if self.validation:
            recall = self.validate()
            self.run_log.add_validation({"step": self.step, "epoch": epoch, **recall})
            logger.info("Epoch %d validation: %s", epoch, json.dumps(recall))
        self.run_log.flush(plot=False)

    def losses_and_gradients(self, parallel_model: torch.nn.Module, batch) -> dict[str, float]:
        """One batch forward and backward, in micro-batches when --micro-batch splits it."""
        if self.memory.micro_batch is not None and self.memory.micro_batch < len(batch.reports):
            return cached_forward_backward(parallel_model, self.loss_fn, batch, self.context.device, self.memory,
                                           self.locked_encoder)
        return forward_backward(parallel_model, self.loss_fn, batch, self.context.device, self.locked_encoder,
                                self.memory)

    def run(self, last_step: int, num_workers: int) -> None:
        """Train until step `last_step`, then checkpoint; `num_workers` preprocess volumes encoded on the fly."""
        parallel_model = sum_gradients(self.model, self.context)
        progress = tqdm(total=self.total_steps, initial=self.step, desc="contrastive pretraining",
                        disable=not self.context.is_main)
        self.model.train()
        while self.step < last_step:
            epoch, start = divmod(self.step, self.sampler.batches_per_epoch)
            # an own generator: a DataLoader otherwise draws its worker seed from the global RNG (= dropout's)
            loader = DataLoader(self.dataset, batch_sampler=self.sampler.batches(epoch, start), collate_fn=collate,
                                num_workers=num_workers if self.image_side.yields_volumes else 0,
                                generator=torch.Generator().manual_seed(self.config.seed + epoch))
            tick = time.perf_counter()
            for batch in loader:
                losses = self.losses_and_gradients(parallel_model, batch)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                progress.update()
                progress.set_postfix(loss=f"{losses['loss']:.4f}")
                if self.run_log is not None:
                    self.run_log.add_training({"step": self.step, "epoch": epoch, **losses,
                                               "logit_scale": self.loss_fn.scale().item(),
                                               "learning_rates": self.scheduler.get_last_lr(),
                                               "seconds": time.perf_counter() - tick})
                if self.step % self.sampler.batches_per_epoch == 0 and self.context.is_main:
                    self.end_epoch(epoch)
                if self.step == last_step or self.step % self.config.checkpoint_every_steps == 0:
                    self.save()
                if self.step == last_step:
                    break
                tick = time.perf_counter()
        progress.close()


def train(manifest: str | Path, out: str | Path, config: Optional[TrainConfig] = None,
          cache: Optional[str | Path] = None, encoder_checkpoint: Optional[str | Path] = None,
          plans: Optional[str | Path] = None, configuration: str = "3d_fullres",
          preprocessing: Optional[PreprocessingConfig] = None, device: str = "cpu", resume: bool = False,
          stop_after_steps: Optional[int] = None, num_workers: int = 2, random_image_encoder: bool = False,
          memory: MemoryOptions = MemoryOptions()) -> Path:
    """Train (or with resume=True continue) the run in `out`; returns `out`.

    Image embeddings come from `cache`, or from `encoder_checkpoint` (nnU-Net model) encoding the volumes
    on the fly with `preprocessing`, or with `random_image_encoder` from the STUNet of `plans`, randomly
    initialised (seeded by config.seed) and trained (config.unlock_image_encoder). `stop_after_steps` ends
    the call after that many steps in total, with a checkpoint to resume from. `memory` sets micro-batches,
    bf16 autocast and activation checkpointing (see memory_options.py). Under torchrun every process calls
    this with the same arguments.
    """
    context = init_distributed(device)
    out = Path(out)
    config = _settle_config(out, config, resume)
    entries = with_report_section(read_manifest(manifest), config.report_section)
    require_captions_for_mgcl(entries, config.loss, manifest)
    train_entries, validation = split_train_validation(entries, config.val_fraction)
    image_side = _image_side(config, cache, encoder_checkpoint, plans, configuration, preprocessing,
                             train_entries, validation, random_image_encoder)
    training = ContrastiveTraining(config, out, context, train_entries, validation, image_side, memory)
    if resume:
        training.restore()
    else:
        training.start()
    last_step = training.total_steps if stop_after_steps is None else min(training.total_steps, stop_after_steps)
    training.run(last_step, num_workers)
    return out
