"""An installed zoo (a wheel, not the editable checkout) carries everything it needs: every
package, the published weights and the config tree (``conf/``, installed as ``zoo/_conf``)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


def test_the_package_list_names_every_package_folder():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for top in ("zoo", "datamodules") for p in (ROOT / top).rglob("__init__.py")}
    assert listed - {"zoo._conf"} == found, f"unlisted: {found - listed}; listed, not found: {listed - found - {'zoo._conf'}}"


def test_a_wheel_install_finds_its_configs_and_weights(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("zoo", "datamodules", "conf"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "dist")], cwd=src, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("zoo-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(site)
    assert "zoo/_conf/train.yaml" in names and "zoo/_conf/experiment/lenet5_mnist5k.yaml" in names
    assert any(n.startswith("zoo/weights/") and n.endswith(".safetensors") for n in names)
    probe = (
        "import zoo.conf, zoo.weights\n"
        "from hydra import compose, initialize_config_dir\n"
        "print(zoo.conf.CONF_DIR)\n"
        "with initialize_config_dir(config_dir=str(zoo.conf.CONF_DIR), version_base='1.3'):\n"
        "    cfg = compose(config_name='train', overrides=['experiment=mlp_mnist5k', 'paths.output_dir=x'])\n"
        "print(cfg.experiment_name, cfg.model.name)\n"
        "print(len(zoo.weights.list_weights()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    conf_dir, composed, n_weights = done.stdout.strip().splitlines()[-3:]
    assert conf_dir == str(site / "zoo" / "_conf")  # the installed copy, not the checkout's
    assert composed == "mlp_mnist5k mlp"
    assert int(n_weights) > 0
