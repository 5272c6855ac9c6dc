"""Published weights: every shipped weight loads by name with its hash verified and reproduces,
on its held-out split, the metrics in its card (counts exactly, losses within a stated tolerance); damaged, truncated and pickle-based files
are refused; the predict command; head replacement for another class count."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import zoo
from conftest import compose_train
from zoo import weights as W
from zoo.cli.eval import evaluate
from zoo.reproducibility import AP_MATCH, DECODE_MATCH, EXACT, compare_metrics, tolerances_of

SHIPPED = W.list_weights()


def test_weights_are_shipped_inside_the_package_and_small():
    assert SHIPPED, "no weights under zoo/weights/"
    total = sum(W.weight_card(n).size for n in SHIPPED)
    assert total < 50e6, f"shipped weights total {total / 1e6:.1f} MB"
    for n in SHIPPED:
        card = W.weight_card(n)
        assert n == f"{card.architecture}.{card.tag}" and card.architecture in zoo.list_models()
        assert card.metrics and card.commit and card.command.startswith("zoo-train") and card.license
        assert card.preprocessing.get("_target_", "").startswith("datamodules.")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weight_reproduces_its_recorded_metrics(tmp_path, name):
    """On any machine: the count-based metrics (accuracy, F1) exactly, the loss -- a float32 sum
    whose order depends on the CPU's kernels and thread count -- within FLOAT_SUM (its reason is
    stated in zoo.reproducibility)."""
    card = W.weight_card(name)
    W.verify_file(W.PACKAGE_DIR / card.file, card.sha256, card.size)
    cfg = compose_train(["trainer=cpu", f"weights={name}", "split=test",
                         "trainer.enable_progress_bar=false"], tmp_path, config_name="eval")
    metrics = evaluate(cfg)
    checks = compare_metrics(metrics, card.metrics, card.tolerances())
    assert {c.key for c in checks if c.tolerance is EXACT} >= {"test/acc", "test/f1"} & set(card.metrics)
    assert all(c.ok for c in checks), "\n".join(c.line() for c in checks)


def test_the_tolerances_catch_what_they_should():
    """Exact metrics refuse a one-ulp change; the loss tolerance takes a last-bits change of a sum
    (the 4.2e-7 relative measured across kernels and thread counts) and refuses one image's
    worth of change (0.01 on one of 500 losses)."""
    import numpy as np

    acc = float(np.float32(0.986))
    assert not compare_metrics({"test/acc": float(np.nextafter(np.float32(acc), np.float32(1)))},
                               {"test/acc": acc}, {"acc": EXACT})[0].ok
    loss = 0.5378056168556213
    assert compare_metrics({"test/loss": loss * (1 + 4.2e-7)}, {"test/loss": loss}, {"acc": EXACT})[0].ok
    assert not compare_metrics({"test/loss": loss + 0.01 / 500}, {"test/loss": loss}, {"acc": EXACT})[0].ok
    # mean average precision: the 9.1e-6 measured between two CPUs passes, one box's worth fails
    ap = 0.59438556432724
    assert compare_metrics({"test/map": 0.5943765044212341}, {"test/map": ap}, {"map": AP_MATCH})[0].ok
    assert not compare_metrics({"test/map": ap - 1e-3}, {"test/map": ap}, {"map": AP_MATCH})[0].ok
    # ... and only for the metrics a task names as such: a name alone decides nothing
    assert not compare_metrics({"test/mape": 0.5943765044212341}, {"test/mape": ap})[0].ok
    yolo = W.weight_card("yolo_tiny.digit_canvas")
    assert {k for k, t in yolo.tolerances().items() if t is AP_MATCH} >= {"map", "map50"}
    assert yolo.reproducibility()["test/map"].startswith("within rel 0 / abs 0.0001")
    # a frame-by-frame decode's error rate: the one character edit of 10,147 measured between two
    # CPUs passes; 30 edits fail, and so does another seed's weights, by their loss
    cer, ctc = 0.03853355720639229, W.weight_card("ctc_conv_bigru.synth_digits")
    assert {k for k, t in ctc.tolerances().items() if t is DECODE_MATCH} == {"cer", "wer"}
    assert compare_metrics({"test/cer": 0.0386321097612381}, {"test/cer": cer}, ctc.tolerances())[0].ok
    assert not compare_metrics({"test/cer": cer + 30 / 10147}, {"test/cer": cer}, ctc.tolerances())[0].ok
    assert not compare_metrics({"test/cer": 0.0386321097612381}, {"test/cer": cer}, {"cer": EXACT})[0].ok
    seed1 = {"test/loss": 0.20476335287094116, "test/cer": 0.03922341763973236, "test/wer": 0.08935361355543137}
    assert [c.ok for c in compare_metrics(seed1, ctc.metrics, ctc.tolerances())] == [False, True, False]
    assert ctc.reproducibility()["test/cer"].startswith("within rel 0 / abs 0.0025")
    card = W.weight_card(SHIPPED[0])
    assert card.reproducibility()["test/acc"].startswith("exact")
    assert card.reproducibility()["test/loss"].startswith("within rel")



def test_every_task_gives_each_metric_one_tolerance():
    """Each task's metric kinds become one name-to-tolerance mapping; a metric named in two kinds
    is refused, naming both."""
    import importlib
    import inspect
    import pkgutil

    import zoo.tasks
    from zoo.tasks.base import ZooTask

    modules = [importlib.import_module(f"zoo.tasks.{m.name}") for m in pkgutil.iter_modules(zoo.tasks.__path__)]
    found = {c for m in modules for _, c in inspect.getmembers(m, inspect.isclass)
             if issubclass(c, ZooTask) and c is not ZooTask}
    assert len(found) >= 15, sorted(c.__name__ for c in found)
    for cls in found:
        mapping = tolerances_of(cls)
        assert all(mapping[n] is EXACT for n in cls.exact_metrics), cls
        assert all(mapping[n] is AP_MATCH for n in cls.ap_metrics), cls
        assert all(mapping[n] is DECODE_MATCH for n in cls.decoded_metrics), cls
        assert len(mapping) == len({*cls.exact_metrics, *cls.ap_metrics, *cls.decoded_metrics}), cls

    class Confused(ZooTask):
        exact_metrics = ("acc", "cer")
        decoded_metrics = ("cer",)

    with pytest.raises(ValueError, match=r"'cer' in both exact_metrics and decoded_metrics"):
        tolerances_of(Confused)


# -- refusals -------------------------------------------------------------------------------------

@pytest.fixture
def toy_weights(tmp_path, monkeypatch):
    """A published toy weight (softmax regression on 28x28) in a private package folder."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    monkeypatch.setattr(W, "PACKAGE_DIR", pkg)
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    net = zoo.create_model("softmax_regression")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(pkg / "softmax_regression.toy.safetensors"))
    path = pkg / "softmax_regression.toy.safetensors"
    card = W.WeightCard(name="softmax_regression.toy", architecture="softmax_regression", model_kwargs={},
                        file=path.name, sha256=W.sha256_of(path), size=path.stat().st_size,
                        num_classes=10, license="Apache-2.0")
    (pkg / "softmax_regression.toy.json").write_text(json.dumps(asdict(card)))
    return net, path


def test_toy_weight_loads_by_name(toy_weights):
    net, _ = toy_weights
    loaded = zoo.create_model("softmax_regression", pretrained="toy")
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_a_changed_byte_is_refused(toy_weights):
    _, path = toy_weights
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(W.WeightsError, match="sha256 .* does not match"):
        zoo.create_model("softmax_regression", pretrained="toy")


def test_a_truncated_file_is_refused(toy_weights):
    _, path = toy_weights
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(W.WeightsError, match="truncated"):
        zoo.create_model("softmax_regression", pretrained="toy")


def test_a_pickle_file_is_refused_even_with_a_matching_card(toy_weights, tmp_path):
    net, path = toy_weights
    torch.save(net.state_dict(), path)  # a pickle-based (zip) checkpoint under the same name
    card = W.weight_card("softmax_regression.toy")
    card.sha256, card.size = W.sha256_of(path), path.stat().st_size
    (W.PACKAGE_DIR / "softmax_regression.toy.json").write_text(json.dumps(asdict(card)))
    with pytest.raises(W.WeightsError, match="pickle-based"):
        zoo.create_model("softmax_regression", pretrained="toy")


def test_unknown_weights_and_missing_files_say_what_to_do(toy_weights):
    with pytest.raises(W.UnknownWeightsError, match="has these tags: toy"):
        zoo.create_model("softmax_regression", pretrained="cifar10")
    _, path = toy_weights
    path.unlink()
    with pytest.raises(W.WeightsError, match="put it at"):
        zoo.create_model("softmax_regression", pretrained="toy")


def test_another_class_count_replaces_the_head_and_says_so(toy_weights, caplog):
    net = zoo.create_model("softmax_regression", pretrained="toy", num_classes=3)
    assert sorted(net.pretrained_reinitialised) == ["fc.bias", "fc.weight"]
    assert "re-initialised 2 tensor(s)" in caplog.text


# -- predict --------------------------------------------------------------------------------------

def _digit_image(path: Path, dark_on_light: bool = False):
    from PIL import Image, ImageDraw

    im = Image.new("L", (56, 56), 255 if dark_on_light else 0)
    ImageDraw.Draw(im).line([(28, 8), (28, 48)], fill=0 if dark_on_light else 255, width=6)  # a "1"
    im.save(path)


@pytest.mark.skipif(not any(n.startswith("lenet5.") for n in SHIPPED), reason="lenet5 weights not shipped")
def test_predict_reads_png_and_jpeg_and_rejects_other_files(tmp_path, capsys):
    from zoo.cli.predict import main

    _digit_image(tmp_path / "one.png")
    _digit_image(tmp_path / "one.jpg", dark_on_light=True)
    assert main(["lenet5.mnist5k", str(tmp_path / "one.png"), str(tmp_path / "one.jpg"), "--json", "--top", "3"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["inverted"] for r in results] == [False, True]
    assert all(len(r["top"]) == 3 and r["top"][0]["class"] == "1" for r in results)
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["lenet5.mnist5k", str(tmp_path / "notes.txt")]) == 2
    assert "is not an image" in capsys.readouterr().err


# -- foreign (torchvision) weights ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["resnet18", "vgg16"])
def test_torchvision_weights_through_the_foreign_path_match_torchvision(tmp_path, name):
    """torchvision's model with random weights, saved as torchvision publishes them (a state
    dict .pth); loaded into ours by `pretrained="imagenet"` from that file; same outputs."""
    from zoo.weights.torchvision import torchvision_model

    torch.manual_seed(0)
    ref = torchvision_model(name).eval()
    path = tmp_path / f"{name}-local.pth"
    torch.save(ref.state_dict(), path)
    ours = zoo.create_model(name, pretrained="imagenet", pretrained_path=str(path)).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # the same function, float32 ops in another order: 1e-5 on outputs of order 1
        assert torch.allclose(ours(x), ref(x), atol=1e-5)
    assert ours.pretrained_reinitialised == []


def test_torchvision_weights_offline_error_names_the_file(tmp_path, monkeypatch):
    import torch.hub

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("network unreachable")))
    with pytest.raises(FileNotFoundError, match=r"resnet18-f37072fd\.pth.*hub.*checkpoints"):
        zoo.create_model("resnet18", pretrained="imagenet")


def test_a_hub_cache_file_with_the_wrong_hash_is_refused(tmp_path, monkeypatch):
    import torch.hub

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save({"fc.weight": torch.zeros(1)}, tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    with pytest.raises(ValueError, match="sha256 does not start with f37072fd"):
        zoo.create_model("resnet18", pretrained="imagenet")


def test_imagenet_weights_with_a_new_head(tmp_path):
    from zoo.weights.torchvision import torchvision_model

    path = tmp_path / "resnet18.pth"
    torch.save(torchvision_model("resnet18").state_dict(), path)
    net = zoo.create_model("resnet18", pretrained="imagenet", pretrained_path=str(path), num_classes=10)
    assert net.pretrained_reinitialised == ["fc.bias", "fc.weight"]


def test_export_is_byte_reproducible_and_loads_by_name(tmp_path, monkeypatch):
    """Publishing the same checkpoint twice gives the same file (the same sha256), and the card
    it writes loads by name, hash-verified, to the checkpoint's own tensors."""
    from zoo.cli.train import train
    from zoo.tasks import load_task

    cfg = compose_train(["experiment=mlp_digits8x8", "trainer=cpu", "trainer.max_epochs=1", "record=true",
                         "trainer.enable_progress_bar=false", "logger=none", "callbacks=default"], tmp_path)
    rec = train(cfg)
    cards = [W.export_run(cfg.paths.output_dir, rec["best_checkpoint"], "toy", out_dir=tmp_path / f"w{i}")
             for i in range(3)]
    # the recorded run names its folder <run>; its checkpoint, still where it was trained, is its own
    recorded = tmp_path / "reports" / "runs" / "mlp_digits8x8" / "seed0"
    assert "<run>" in (recorded / "config.yaml").read_text()
    cards.append(W.export_run(recorded, rec["best_checkpoint"], "toy", out_dir=tmp_path / "w3"))
    assert len({c.sha256 for c in cards}) == 1
    # a record of another configuration is not this checkpoint's: refused, nothing written
    other = tmp_path / "other_record"
    shutil.copytree(recorded, other)
    (other / "config.yaml").write_text((other / "config.yaml").read_text().replace("seed: 0", "seed: 7"))
    with pytest.raises(W.WeightsError, match="was not written by the run recorded in .*other_record"):
        W.export_run(other, rec["best_checkpoint"], "toy", out_dir=tmp_path / "w4")
    assert not (tmp_path / "w4").exists()
    assert (tmp_path / "w0" / cards[0].file).read_bytes() == (tmp_path / "w2" / cards[0].file).read_bytes()
    monkeypatch.setattr(W, "PACKAGE_DIR", tmp_path / "w1")
    state, card = W.load_weights(cards[0].name, download=False)
    expected = load_task(rec["best_checkpoint"]).net.state_dict()
    assert card.metrics == rec["test"] and set(state) == set(expected)
    assert all(torch.equal(state[k], expected[k]) for k in expected)
