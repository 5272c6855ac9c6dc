"""One LightningModule per training objective; the net is injected."""
from zoo.tasks.base import ZooTask, load_task
from zoo.tasks.classification import ClassificationTask
from zoo.tasks.detection import DetectionTask
from zoo.tasks.localization import LocalizationTask
from zoo.tasks.multilabel import MultiLabelTask
from zoo.tasks.rcnn import RCNNTask
from zoo.tasks.segmentation import SegmentationTask

__all__ = ["ZooTask", "ClassificationTask", "DetectionTask", "LocalizationTask", "MultiLabelTask", "RCNNTask",
           "SegmentationTask", "load_task"]
