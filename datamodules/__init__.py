"""The zoo's DataModules: the base every modality shares (``datamodules.base``) and, by
modality, image data (``datamodules.vision``: embedded offline digits, torchvision's datasets,
your own image folders). Hydra configs name them as ``datamodules.<Class>``."""
from datamodules.vision.augment import Compose, RandomAffine, RandomCropFlip, RandomElastic
from datamodules.vision.base import DatasetNotFoundError, ImageClassificationDataModule, stratified_split
from datamodules.vision.embedded import Digits8x8DataModule, MNIST5kDataModule
from datamodules.vision.folder import ImageFolderDataModule
from datamodules.vision.torchvision_data import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule

__all__ = [
    "DatasetNotFoundError",
    "ImageClassificationDataModule",
    "stratified_split",
    "MNIST5kDataModule",
    "Digits8x8DataModule",
    "MNISTDataModule",
    "FashionMNISTDataModule",
    "CIFAR10DataModule",
    "ImageFolderDataModule",
    "RandomAffine",
    "RandomCropFlip",
    "RandomElastic",
    "Compose",
]
