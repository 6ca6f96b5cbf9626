"""AdamW with one learning rate per component and a linear-warmup cosine schedule."""
from __future__ import annotations

import math

from torch.optim import AdamW
from torch.optim.lr_scheduler import LambdaLR

from nnunetv2_openvocab.pretraining.config import TrainConfig
from nnunetv2_openvocab.pretraining.loss import ClipLoss
from nnunetv2_openvocab.pretraining.model import ContrastiveModel


def build_optimizer(config: TrainConfig, model: ContrastiveModel, loss_fn: ClipLoss) -> AdamW:
    """Sentence encoder at text_encoder_lr, projection and logit scale at head_lr (a fresh MLP learns faster than
    a pretrained encoder may move), image encoder (if unlocked) at image_encoder_lr. Weight decay applies to
    matrices and kernels only, not to biases, norm gains or the logit scale."""
    components = [(model.text_tower.sentence_model, config.text_encoder_lr),
                  (model.text_tower.projection, config.head_lr), (loss_fn, config.head_lr)]
    if model.image_encoder is not None:
        components.append((model.image_encoder, config.image_encoder_lr))
    groups = []
    for module, learning_rate in components:
        trainable = [parameter for parameter in module.parameters() if parameter.requires_grad]
        for decayed in (True, False):
            parameters = [p for p in trainable if (p.ndim >= 2) == decayed]
            if parameters:
                groups.append({"params": parameters, "lr": learning_rate,
                               "weight_decay": config.weight_decay if decayed else 0.0})
    return AdamW(groups)


def warmup_cosine_schedule(optimizer: AdamW, warmup_steps: int, total_steps: int) -> LambdaLR:
    """Learning rates rise linearly over warmup_steps, then follow a cosine to zero at total_steps."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return LambdaLR(optimizer, factor)
