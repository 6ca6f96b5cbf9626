"""The ``train`` stage: contrastive epochs over the manifest, single process or under torchrun.

A run folder holds config.json (TrainConfig), run.json (image encoder and image source),
image_encoder.safetensors (the locked encoder, for export), checkpoint.pt (see checkpointing.py)
and the logs of run_log.py. Validation (image <-> report recall@1/5/10 on the held-out volumes)
runs at every epoch end.
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

from dataset_conversion.file_utils import write_json_atomic
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
from nnunetv2_openvocab.pretraining.manifest import ManifestEntry, read_manifest, split_train_validation
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
                train: list[ManifestEntry], validation: list[ManifestEntry]) -> ImageSide:
    if (cache is None) == (encoder_checkpoint is None):
        raise ValueError("Give exactly one image source: --cache (features from cache-features) or "
                         "--encoder-checkpoint (encode volumes on the fly).")
    if cache is not None:
        if config.unlock_image_encoder:
            raise ValueError("--unlock-image-encoder trains the encoder, so cached features cannot be used; pass "
                             "--encoder-checkpoint instead of --cache.")
        if preprocessing is not None:
            raise ValueError("The preprocessing is fixed by the cache (its cache.json); drop the preprocessing "
                             "options or pass --encoder-checkpoint to encode on the fly.")
        return cached_image_side(cache, train, validation)
    return on_the_fly_image_side(encoder_checkpoint, plans, configuration, preprocessing or PreprocessingConfig(),
                                 train, validation)


def _write_run_info(out: Path, config: TrainConfig, image_side: ImageSide, text_dim: int) -> None:
    write_json_atomic(out / CONFIG_NAME, config_to_dict(config))
    write_json_atomic(out / RUN_INFO, {"format": RUN_FORMAT, "image_encoder": dataclasses.asdict(image_side.info),
                                       "image_source": image_side.provenance, "sentence_embedding_dim": text_dim})
    if not config.unlock_image_encoder:
        save_tensors_atomic(out / ENCODER_WEIGHTS, image_side.initial_encoder_state,
                            metadata={"fingerprint": image_side.info.fingerprint})


@torch.no_grad()
def _validate(model: ContrastiveModel, image_side: ImageSide, locked_encoder, validation: list[ManifestEntry],
              device: torch.device) -> dict[str, float]:
    model.eval()
    encoder = model.image_encoder if model.image_encoder is not None else locked_encoder
    images = image_side.validation_features(len(validation), encoder, device)
    reports = [entry.report for entry in validation]
    texts = torch.cat([model.text_tower(reports[i:i + VALIDATION_BATCH])
                       for i in range(0, len(reports), VALIDATION_BATCH)])
    model.train()
    return retrieval_recall(images, texts)


def train(manifest: str | Path, out: str | Path, config: Optional[TrainConfig] = None,
          cache: Optional[str | Path] = None, encoder_checkpoint: Optional[str | Path] = None,
          plans: Optional[str | Path] = None, configuration: str = "3d_fullres",
          preprocessing: Optional[PreprocessingConfig] = None, device: str = "cpu", resume: bool = False,
          stop_after_steps: Optional[int] = None, num_workers: int = 2) -> Path:
    """Train (or with resume=True continue) the run in `out`; returns `out`.

    Image embeddings come from `cache`, or from `encoder_checkpoint` (nnU-Net model) encoding the volumes
    on the fly with `preprocessing`. `stop_after_steps` ends the call after that many steps in total,
    with a checkpoint to resume from. Under torchrun every process calls this with the same arguments.
    """
    context = init_distributed(device)
    out = Path(out)
    config = _settle_config(out, config, resume)
    train_entries, validation = split_train_validation(read_manifest(manifest), config.val_fraction)
    image_side = _image_side(config, cache, encoder_checkpoint, plans, configuration, preprocessing,
                             train_entries, validation)

    torch.manual_seed(config.seed)  # the projection's initialisation
    text_tower = build_text_tower(config, image_side.info.embedding_dim, context.device)
    locked_encoder = None
    if image_side.encoder is not None and not config.unlock_image_encoder:
        locked_encoder = lock(image_side.encoder).to(context.device)
    trainable_encoder = image_side.encoder if config.unlock_image_encoder else None
    model = ContrastiveModel(text_tower, trainable_encoder).to(context.device)
    loss_fn = build_loss(config, context.rank, context.world_size).to(context.device)
    optimizer = build_optimizer(config, model, loss_fn)
    sampler = GlobalBatchSampler(len(train_entries), config.batch_size, context.rank, context.world_size, config.seed)
    total_steps = config.epochs * sampler.batches_per_epoch
    scheduler = warmup_cosine_schedule(optimizer, config.warmup_steps, total_steps)
    torch.manual_seed(config.seed + context.rank)  # dropout differs between processes

    run_log = RunLog(out) if context.is_main else None
    step = 0
    if resume:
        state = load_checkpoint(out / CHECKPOINT_NAME)
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"], context)
        step = state["step"]
        if run_log is not None:
            run_log.truncate(step)
        logger.info("Resumed %s at step %d of %d.", out, step, total_steps)
    elif context.is_main:
        out.mkdir(parents=True, exist_ok=True)
        _write_run_info(out, config, image_side, sentence_embedding_dim(text_tower.sentence_model))
    context.barrier()

    def checkpoint() -> None:
        rng = gather_rng_states(context)  # collective
        if context.is_main:
            save_checkpoint(out / CHECKPOINT_NAME, {
                "step": step, "model": model.state_dict(), "loss": loss_fn.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng})
            run_log.flush()

    parallel_model = sum_gradients(model, context)
    dataset = ContrastiveDataset(train_entries, image_side.train_source, image_side.num_views,
                                 config.captions_per_sample, config.seed)
    last = min(total_steps, stop_after_steps if stop_after_steps is not None else total_steps)
    progress = tqdm(total=total_steps, initial=step, desc="contrastive pretraining", disable=not context.is_main)
    model.train()
    while step < last:
        epoch, start = divmod(step, sampler.batches_per_epoch)
        loader = DataLoader(dataset, batch_sampler=sampler.batches(epoch, start), collate_fn=collate,
                            num_workers=num_workers if image_side.yields_volumes else 0)
        tick = time.perf_counter()
        for batch in loader:
            losses = forward_backward(parallel_model, loss_fn, batch, context.device, locked_encoder)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            progress.update()
            progress.set_postfix(loss=f"{losses['loss']:.4f}")
            if run_log is not None:
                run_log.add_training({"step": step, "epoch": epoch, **losses,
                                      "logit_scale": loss_fn.scale().item(),
                                      "learning_rates": scheduler.get_last_lr(),
                                      "seconds": time.perf_counter() - tick})
            end_of_epoch = step % sampler.batches_per_epoch == 0
            if end_of_epoch and context.is_main and validation:
                recall = _validate(model, image_side, locked_encoder, validation, context.device)
                run_log.add_validation({"step": step, "epoch": epoch, **recall})
                logger.info("Epoch %d validation: %s", epoch, json.dumps(recall))
            if end_of_epoch or step == last or step % config.checkpoint_every_steps == 0:
                checkpoint()
            if step == last:
                break
            tick = time.perf_counter()
    progress.close()
    return out
