"""Contrastive pretraining sidecar (OpenVocabCT section III-C): MGCL between CT images and reports/captions.

Stages (``nnUNetv2_openvocab_pretrain`` subcommands, each a plain function too):
  cache-features  cache_features.cache_features   locked STUNet encoder -> pooled embeddings (feature_cache.py)
  train           train.train                     text tower + projection, CLIP / MGCL loss, torchrun DDP
  export          export.export_aligned_checkpoint the aligned checkpoint the planner and trainer consume

Library pieces: config (JSON dataclasses), manifest, preprocessing (nnU-Net's, per plans), image_encoder,
text_tower, loss (gather_features, ClipLoss, MultiGranularityClipLoss), data (samples, global batch
order), distributed, checkpointing, retrieval (recall@k), run_log.
"""
