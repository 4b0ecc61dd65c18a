"""ps_plugin: person search as a Detectron2 plugin.

Detectron2 itself is installed by `make install` (tools/install_env.sh): an official build when
one is importable, otherwise the `pb1-detectron2==0.6` sdist with a placeholder extension.
"""
from setuptools import find_packages, setup

setup(
    name="ps_plugin",
    version="0.1.0",
    description="Person search (detection + re-identification) as a Detectron2 plugin",
    python_requires=">=3.11",
    packages=find_packages(include=["ps_plugin", "ps_plugin.*"]),
    install_requires=[
        "torch>=2.0",
        "torchvision",
        "fvcore",
        "pycocotools",
        "scipy",
        "scikit-learn",
        "timm",
        "opencv-python-headless<5",
        "tqdm",
        "matplotlib",
        "tensorboard",
        "Pillow<10",
        "h5py",
    ],
    extras_require={"dev": ["pytest", "pytest-timeout"]},
)
