"""Generated from the config tree: every experiment composes and runs a fast_dev_run; every
config of every group composes. Real-data experiments run on tiny copies written in the real
on-disk formats (nothing is downloaded)."""
from __future__ import annotations

import hydra
import pytest
import torch

import zoo
from zoo.tasks import ZooTask

from conftest import ROOT, compose_train
from fakedata import write_cifar, write_mnist
from test_image_folder import write_split
from zoo.cli.train import train

EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
FAKE_WRITERS = {
    "datamodules.MNISTDataModule": lambda root: write_mnist(root, "MNIST"),
    "datamodules.FashionMNISTDataModule": lambda root: write_mnist(root, "FashionMNIST"),
    "datamodules.CIFAR10DataModule": write_cifar,
    # your own images: a folder of PNG and JPEG files, 12 per class, in the ImageFolder layout
    "datamodules.ImageFolderDataModule": lambda root: write_split(root / "images", "train", 12),
}
EVAL_BATCH = 16
# one-shot episodes are drawn within one evaluation batch: each unseen class needs two digits in it
WHOLE_EVAL_BATCH = {"datamodules.vision.oneshot.MNIST5kOneShotDataModule", "datamodules.vision.lfw.LFWDataModule"}
# where the writer's data is, for datamodules that are told (they have no default place)
DATA_ROOT = {"datamodules.ImageFolderDataModule": "images"}


def test_there_are_experiments():
    assert {"lenet5_mnist5k", "mlp_mnist5k", "softmax_mnist5k", "logreg_mnist5k",
            "lenet5_mnist", "mlp_fashion_mnist"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_fast_dev_run(tmp_path, experiment):
    overrides = [f"experiment={experiment}", "trainer=cpu", "trainer.fast_dev_run=true",
                 "trainer.enable_progress_bar=false", "logger=none"]
    data = compose_train(overrides, tmp_path).data
    if data._target_ in DATA_ROOT:
        overrides.append(f"data.root={tmp_path / 'data' / DATA_ROOT[data._target_]}")
    if "eval_batch_size" in data and data._target_ not in WHOLE_EVAL_BATCH:
        # one evaluation batch of 16 checks what one of 500 does (a 500-source greedy decode by
        # an untrained seq2seq net, or 64 synthesized clips, is most of the test's time)
        overrides.append(f"data.eval_batch_size={EVAL_BATCH}")
    cfg = compose_train(overrides, tmp_path)
    assert cfg.experiment_name == experiment
    writer = FAKE_WRITERS.get(cfg.data._target_)
    if writer is not None:
        (tmp_path / "data").mkdir()
        writer(tmp_path / "data")
    rec = train(cfg)
    assert rec["experiment"] == experiment
    assert rec["test"] and all(v == v for v in rec["test"].values())  # finite, not NaN


def test_default_experiment_is_lenet5_on_embedded_mnist(tmp_path):
    cfg = compose_train([], tmp_path)
    assert cfg.experiment_name == "lenet5_mnist5k"
    assert cfg.model.name == "lenet5" and cfg.data._target_ == "datamodules.MNIST5kDataModule"


GROUPS = ["model", "data", "augment", "task", "optimizer", "scheduler", "trainer", "logger", "callbacks", "finetune"]


def _instantiate_targets(node, where: str) -> int:
    """Instantiate every object of a composed group node (each mapping with a ``_target_``);
    returns how many. A broken ``_target_`` or argument fails here, not in a user's run."""
    from hydra.utils import get_class, get_method, instantiate
    from omegaconf import DictConfig

    if not isinstance(node, DictConfig):
        return 0
    if "_target_" not in node:
        return sum(_instantiate_targets(v, f"{where}.{k}") for k, v in node.items() if isinstance(v, DictConfig))
    target = str(node._target_)
    if where.startswith("trainer") and not torch.cuda.is_available() and \
            node.get("accelerator") in ("gpu", "cuda"):
        get_class(target)  # a GPU trainer cannot be built without a GPU: its class must exist
        return 1
    if where.startswith("model"):
        get_method(target)  # every registered net is built by tests/test_registry.py
        return 1
    obj = instantiate(node, _convert_="all")
    assert obj is not None, where
    return 1


# The image datasets that compose under the default experiment (LeNet-5 on 32x32 digits, with its
# image augmentation); every other data option is composed without it.
IMAGE_DATA = {"cifar10", "digits8x8", "fashion_mnist", "image_folder", "mnist", "mnist5k",
              "mnist5k_oneshot", "lfw", "style_crops"}


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_option_composes_and_instantiates(tmp_path, group):
    built = 0
    for option in sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")):
        overrides = [f"{group}={option}"]
        if group == "model" and option == "logistic_regression":
            overrides += ["data.positive_class=0", "data.num_classes=2"]
        if group == "data" and option == "image_folder":  # it has no default place: a tiny folder
            write_split(tmp_path / "images", "train", 3)
            overrides += [f"data.root={tmp_path / 'images'}"]
        if group == "data" and option not in IMAGE_DATA:  # detection, text and audio data: not under the
            overrides += ["~experiment"]  # default experiment's 32x32 digits and image augmentation
        if group == "task" and option != "classification":  # the default experiment tunes the
            overrides += ["~experiment"]  # classification task (label smoothing)
        cfg = compose_train(overrides, tmp_path)
        assert cfg is not None
        if group == "augment":  # the augment group fills data.augment
            built += _instantiate_targets(cfg.data.get("augment"), group)
            continue
        if group == "task" or group == "finetune":  # a task takes its net (and the finetune preset)
            # each task with a net of its kind (detection needs a grid net)
            net = zoo.create_model({"detection": "yolo_tiny", "rcnn": "faster_rcnn_mobilenet"}.get(option, "lenet5"))
            task = hydra.utils.instantiate(cfg.task, _convert_="all", net=net)
            assert isinstance(task, ZooTask)
            built += 1
            continue
        built += _instantiate_targets(cfg.get(group), group)
    if group not in ("logger", "callbacks"):  # none.yaml holds no object
        assert built > 0, group


def test_a_broken_target_in_a_group_option_is_caught(tmp_path):
    cfg = compose_train(["logger=tensorboard"], tmp_path)
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.logger.tensorboard._target_ = "lightning.pytorch.loggers.NoSuchLogger"
    with pytest.raises(Exception, match="NoSuchLogger"):
        _instantiate_targets(cfg.logger, "logger")


CNN_FAMILIES = {"alexnet", "vgg", "resnet", "nin", "googlenet", "mobilenet", "efficientnet", "densenet"}
CNNS = [n for n in zoo.list_models() if zoo.model_card(n).family in CNN_FAMILIES]


@pytest.mark.parametrize("name", CNNS)
def test_every_cnn_trains_through_zoo_train(tmp_path, name):
    """Every classic-CNN variant trains through the shared entry point: the CNN benchmark
    experiment with the model swapped (one batch of 4 digits, fast_dev_run)."""
    cfg = compose_train(["experiment=resnet20_mnist5k", f"model={name}", "trainer=cpu",
                         "trainer.fast_dev_run=true", "trainer.enable_progress_bar=false",
                         "trainer.enable_model_summary=false", "logger=none", "data.batch_size=4"],
                        tmp_path)
    rec = train(cfg)
    assert rec["model"] == name and rec["flops"] > 0
    assert all(v == v for v in rec["test"].values())
