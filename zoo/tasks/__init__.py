"""One LightningModule per training objective; the net is injected."""
from zoo.tasks.base import ZooTask, load_task
from zoo.tasks.classification import ClassificationTask
from zoo.tasks.detection import DetectionTask
from zoo.tasks.localization import LocalizationTask
from zoo.tasks.metric_learning import MetricLearningTask
from zoo.tasks.multilabel import MultiLabelTask
from zoo.tasks.rcnn import RCNNTask
from zoo.tasks.segmentation import SegmentationTask
from zoo.tasks.style_transfer import StyleTransferTask

__all__ = ["ZooTask", "ClassificationTask", "DetectionTask", "LocalizationTask", "MetricLearningTask",
           "MultiLabelTask", "RCNNTask", "SegmentationTask", "StyleTransferTask", "load_task"]
