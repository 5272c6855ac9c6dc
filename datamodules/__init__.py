"""The zoo's DataModules: the base every modality shares (``datamodules.base``) and, by
modality, image data (``datamodules.vision``: embedded offline digits, detection and segmentation
canvases made from them, torchvision's datasets, Pascal VOC and COCO in their own layouts, your
own image folders). Hydra configs name them as ``datamodules.<Class>``. Files that come from
elsewhere are checked before they are trusted (``datamodules.vision.io``: IDX files and CIFAR-10
pickles; ``datamodules.vision.detection_data``: VOC's XML and masks, COCO's JSON;
``datamodules.archives.safe_extract``: downloaded archives); a file that fails a check raises
:class:`DataFileError` naming it and saying what to do."""
from datamodules.vision.augment import Compose, RandomAffine, RandomCropFlip, RandomElastic
from datamodules.archives import safe_extract
from datamodules.base import DataFileError
from datamodules.vision.base import DatasetNotFoundError, ImageClassificationDataModule, stratified_split
from datamodules.vision.canvas import DigitCanvasDataModule, make_canvases
from datamodules.vision.detection_data import (COCODetectionDataModule, VOCDetectionDataModule,
                                               VOCSegmentationDataModule)
from datamodules.vision.embedded import Digits8x8DataModule, MNIST5kDataModule
from datamodules.vision.folder import ImageFolderDataModule
from datamodules.vision.torchvision_data import CIFAR10DataModule, FashionMNISTDataModule, MNISTDataModule

__all__ = [
    "DatasetNotFoundError",
    "DataFileError",
    "safe_extract",
    "ImageClassificationDataModule",
    "stratified_split",
    "MNIST5kDataModule",
    "Digits8x8DataModule",
    "DigitCanvasDataModule",
    "make_canvases",
    "MNISTDataModule",
    "FashionMNISTDataModule",
    "CIFAR10DataModule",
    "VOCDetectionDataModule",
    "VOCSegmentationDataModule",
    "COCODetectionDataModule",
    "ImageFolderDataModule",
    "RandomAffine",
    "RandomCropFlip",
    "RandomElastic",
    "Compose",
]
