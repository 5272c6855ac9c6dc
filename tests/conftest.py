import os
import sys
from pathlib import Path

# tests import their helpers (fakedata.py) by module name
sys.path.insert(0, str(Path(__file__).parent))
# never let a test talk to a wandb account or server
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DISABLE_GIT", "true")

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402

from zoo.conf import CONF_DIR  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def compose_train(overrides: list[str], tmp_path: Path, config_name: str = "train"):
    """Compose a config as ``zoo-train`` would, with every output under ``tmp_path``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        extra = ["command=pytest"] if config_name == "train" else []
        cfg = compose(config_name=config_name, overrides=[
            *overrides,
            f"paths.output_dir={tmp_path / 'run'}",
            f"paths.reports_dir={tmp_path / 'reports'}",
            f"paths.data_dir={tmp_path / 'data'}",
            *extra,
        ])
    return cfg


@pytest.fixture
def quick():
    """Overrides that make a training run take about a second on 2 CPU cores."""
    return [
        "trainer=cpu",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=4",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ]


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs ``-n auto``) the workers share the machine's cores:
    each takes its share of torch threads (its subprocesses too, through ``OMP_NUM_THREADS``), so
    two workers on 2 cores run one thread each rather than four threads fighting over two."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if os.environ.get("PYTEST_XDIST_WORKER") and workers > 1:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need a CUDA device: skipped, and said, where there is none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
