"""nnU-Net's preprocessing of one case (plans' reader, crop, normalisation, resampling), at module level so that
background processes (-npp) can run it with the plans but without the network weights."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunetv2_openvocab.inference.input_images import read_case
from nnunetv2_openvocab.inference.patient_side import PatientFrame, patient_frame
from nnunetv2_openvocab.inference.prompt_jobs import PredictionJob


@dataclass
class PreprocessedCase:
    """A case after nnU-Net's preprocessing; ``image`` is the first input channel as read (statistics, previews);
    ``frame`` where the patient's left and midline are (side safety)."""

    data: Optional[np.ndarray]
    properties: dict
    image: Optional[np.ndarray] = None
    frame: Optional[PatientFrame] = None

    def take_data(self) -> np.ndarray:
        """Hand the preprocessed array over (this object keeps no reference), so it can be freed early."""
        data, self.data = self.data, None
        return data


def preprocess_array(data: np.ndarray, properties: dict, plans_manager: PlansManager,
                     configuration_manager: ConfigurationManager, dataset_json: dict) -> np.ndarray:
    """nnU-Net's preprocessing of (C, *spatial) ``data``; adds the crop/resampling record to ``properties``."""
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    preprocessed, _, _ = preprocessor.run_case_npy(data, None, properties, plans_manager, configuration_manager,
                                                   dataset_json)
    return preprocessed


def read_and_preprocess(job: PredictionJob, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                        dataset_json: dict, keep_image: bool) -> PreprocessedCase:
    """Read and preprocess one job's image (module level: it also runs in background processes, which get the
    plans but not the network weights)."""
    data, properties = read_case(job.case, plans_manager.image_reader_writer_class)
    image = data[0] if keep_image else None
    frame = patient_frame(data[0], properties)
    return PreprocessedCase(preprocess_array(data, properties, plans_manager, configuration_manager, dataset_json),
                            properties, image, frame)
