"""Shim imported by nnU-Net's trainer search (nnUNet_extTrainer points at this folder).

It exposes every trainer named in the registry ``nnunetv2_openvocab.training.__all__``; the classes keep
living in our package, so checkpoints and worker processes refer to their real module.
"""
from nnunetv2_openvocab import training

globals().update({name: getattr(training, name) for name in training.__all__})
