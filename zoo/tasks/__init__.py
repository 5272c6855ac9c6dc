"""One LightningModule per training objective; the net is injected."""
from zoo.tasks.base import ZooTask, load_task
from zoo.tasks.classification import ClassificationTask

__all__ = ["ZooTask", "ClassificationTask", "load_task"]
