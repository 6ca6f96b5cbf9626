"""Test-only twins that train 1 epoch of 2 iterations: plumbing checks through the stock nnUNetv2_train.

``<Trainer>_CPUSmoke`` exists for the stock nnUNetTrainer and for every trainer of our registry, so a new
variant is smoke-testable without code here. The tests put this folder on ``nnUNet_extTrainer`` (conftest);
users never see these trainers.
"""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunetv2_openvocab import training
from nnunetv2_openvocab.training.cpu_variants import FixedSchedule, NoMirroring

SMOKE_SCHEDULE = (1, 2, 1)


def _smoke_twin(trainer: type) -> type:
    return type(f"{trainer.__name__}_CPUSmoke", (FixedSchedule, NoMirroring, trainer),
                {"schedule": SMOKE_SCHEDULE, "__module__": __name__,
                 "__doc__": f"{trainer.__name__}, {SMOKE_SCHEDULE[0]} epoch of {SMOKE_SCHEDULE[1]} iterations."})


_REGISTERED = [getattr(training, name) for name in training.__all__]
_TWINS = [_smoke_twin(trainer) for trainer in [nnUNetTrainer, *_REGISTERED] if not issubclass(trainer, FixedSchedule)]
globals().update({twin.__name__: twin for twin in _TWINS})
