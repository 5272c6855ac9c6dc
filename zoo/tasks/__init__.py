"""One LightningModule per training objective; the net is injected."""
from zoo.tasks.base import ZooTask, load_task
from zoo.tasks.classification import ClassificationTask
from zoo.tasks.detection import DetectionTask
from zoo.tasks.language_model import LanguageModelTask
from zoo.tasks.localization import LocalizationTask
from zoo.tasks.metric_learning import MetricLearningTask
from zoo.tasks.multilabel import MultiLabelTask
from zoo.tasks.rcnn import RCNNTask
from zoo.tasks.segmentation import SegmentationTask
from zoo.tasks.style_transfer import StyleTransferTask
from zoo.tasks.tagging import TaggingTask

__all__ = ["ZooTask", "ClassificationTask", "DetectionTask", "LanguageModelTask", "LocalizationTask",
           "MetricLearningTask", "MultiLabelTask", "RCNNTask", "SegmentationTask", "StyleTransferTask",
           "TaggingTask", "load_task"]
from zoo.tasks.text_classification import TextClassificationTask  # noqa: E402

__all__ += ["TextClassificationTask"]
from zoo.tasks.embeddings import GloVeTask, SkipGramTask  # noqa: E402

__all__ += ["GloVeTask", "SkipGramTask"]
from zoo.tasks.trigger_word import TriggerWordTask  # noqa: E402

__all__ += ["TriggerWordTask"]
from zoo.tasks.seq2seq import Seq2SeqTask  # noqa: E402
__all__ += ["Seq2SeqTask"]
from zoo.tasks.ctc import CTCTask  # noqa: E402
__all__ += ["CTCTask"]
