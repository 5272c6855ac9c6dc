"""Image-classification DataModules: embedded (offline) data and the full torchvision datasets."""
from datamodules.augment import Compose, RandomAffine, RandomCropFlip, RandomElastic
from datamodules.base import DatasetNotFoundError, ImageClassificationDataModule, stratified_split
from datamodules.embedded import Digits8x8DataModule, MNIST5kDataModule
from datamodules.torchvision_data import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule

__all__ = [
    "DatasetNotFoundError",
    "ImageClassificationDataModule",
    "stratified_split",
    "MNIST5kDataModule",
    "Digits8x8DataModule",
    "MNISTDataModule",
    "FashionMNISTDataModule",
    "CIFAR10DataModule",
    "RandomAffine",
    "RandomCropFlip",
    "RandomElastic",
    "Compose",
]
