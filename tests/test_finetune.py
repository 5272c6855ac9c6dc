"""Fine-tuning presets (which parameters train, at which rate), head reset, and the datamodule
options the transfer benchmark uses (class subsets, foreign normalisation)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import zoo
from conftest import compose_train
from datamodules import MNIST5kDataModule
from zoo.tasks.finetune import CutNet, FinetuneSpec, apply_freezing, body_groups, param_groups, split_head
from zoo.cli.train import train


def test_head_is_the_classifier():
    head, body = split_head(zoo.create_model("lenet5"))
    assert head == ["classifier.3.weight", "classifier.3.bias"]
    head, _ = split_head(zoo.create_model("resnet20_cifar", num_classes=10))
    assert head == ["fc.weight", "fc.bias"]
    groups = body_groups(body, 4)
    assert len(groups) == 4 and [n for g in groups for n in g] == body


def test_linear_probe_freezes_the_body_and_its_batch_norm():
    net = zoo.create_model("resnet20_cifar", num_classes=10).train()
    frozen = apply_freezing(net, FinetuneSpec(mode="linear_probe"), epoch=0)
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable == ["fc.weight", "fc.bias"] and len(frozen) == sum(1 for _ in net.parameters()) - 2
    assert not net.stem.bn.training  # running statistics stay the pretrained ones


def test_gradual_unfreezing_adds_one_group_from_the_top():
    net = zoo.create_model("lenet5")
    spec = FinetuneSpec(mode="gradual_unfreeze", groups=4, unfreeze_every=2)
    _, body = split_head(net)
    groups = body_groups(body, 4)
    counts = []
    for epoch in range(0, 12, 2):
        frozen = apply_freezing(net, spec, epoch)
        counts.append(len(body) - len(frozen))
    assert counts[0] == 0 and counts[-1] == len(body)
    assert counts[1] == len(groups[-1])  # the group next to the head comes first
    assert counts == sorted(counts)


def test_discriminative_rates_decay_away_from_the_head():
    net = zoo.create_model("lenet5")
    groups = param_groups(net, 0.1, FinetuneSpec(mode="discriminative", groups=3, layer_decay=0.5))
    lrs = {g["name"]: g["lr"] for g in groups}
    # 0.1 x 0.5^k: halving is exact in binary, approx's 1e-6 only covers the written decimals
    assert lrs == pytest.approx({"head": 0.1, "body2": 0.05, "body1": 0.025, "body0": 0.0125})
    assert sum(len(g["params"]) for g in groups) == sum(1 for _ in net.parameters())


def test_probe_at_cuts_the_net_and_keeps_the_pretrained_body():
    net = zoo.create_model("lenet5", pretrained="mnist5k_0to4").eval()
    cut = CutNet(net, "features.7", num_classes=5).eval()  # LeNet-5's S4: 16 maps of 5x5
    assert (cut.head.in_features, cut.head.out_features) == (400, 5)
    x = torch.randn(3, 1, 32, 32)
    assert cut(x).shape == (3, 5)
    assert [t.shape for t in cut.example_inputs(batch_size=3)] == [x.shape]
    with torch.no_grad():  # the body computes what the net computed at that point
        assert torch.equal(cut.body(x)["features.7"], net.features[:8](x))
    state, original = cut.state_dict(), net.state_dict()
    body = [k for k in state if k.startswith("body.")]
    assert body and all(torch.equal(state[k], original[k.removeprefix("body.")]) for k in body)
    assert not any(k.startswith("body.classifier") or k.startswith("body.features.8") for k in body)
    head, _ = split_head(cut)
    assert head == ["head.weight", "head.bias"]
    apply_freezing(cut, FinetuneSpec(mode="linear_probe", probe_at="features.7"), epoch=0)
    assert [n for n, p in cut.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]


def test_probe_at_an_unknown_module_names_the_modules():
    with pytest.raises(ValueError, match=r"not a module of LeNet5.*features\.7"):
        CutNet(zoo.create_model("lenet5"), "features.77", num_classes=5)


def test_probe_at_a_net_that_does_not_trace_is_refused_clearly():
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

        def forward(self, x):
            h = self.a(x)
            return self.b(h if h.sum() > 0 else -h)  # data-dependent: torch.fx cannot trace it

        def example_inputs(self, batch_size=2):
            return (torch.randn(batch_size, 4),)

    with pytest.raises(ValueError, match="cannot cut Branchy after 'a': its forward does not trace"):
        CutNet(Branchy(), "a", num_classes=3)


def test_bad_preset_is_refused():
    with pytest.raises(ValueError, match="finetune mode"):
        FinetuneSpec(mode="half")


def test_linear_probe_run_changes_only_the_head(tmp_path):
    """Through zoo-train: the transfer experiment with a short schedule; the saved body equals
    the published weights, the head moved from its fresh start."""
    from zoo.tasks import load_task
    from zoo.weights import load_weights

    cfg = compose_train(["experiment=mnist5k_5to9_10shot_linear_probe", "trainer=cpu", "trainer.max_epochs=2",
                         "trainer.enable_progress_bar=false", "logger=none", "callbacks=default"], tmp_path)
    assert cfg.task.finetune.probe_at == "features.7"  # the experiment probes LeNet-5's S4
    rec = train(cfg)
    task = load_task(rec["best_checkpoint"])  # rebuilt from the checkpoint: the cut net again
    pretrained, _ = load_weights("lenet5.mnist5k_0to4")
    state = task.net.state_dict()
    body = {k.removeprefix("body."): v for k, v in state.items() if k.startswith("body.")}
    assert body and set(body) < set(pretrained)  # the layers above S4 are gone
    for k, v in body.items():
        assert torch.equal(v, pretrained[k]), k  # body: frozen
    assert state["head.weight"].shape == (5, 400)
    assert rec["model"] == "lenet5" and rec["trainable_params"] == 400 * 5 + 5
    x = torch.randn(2, 1, 32, 32)
    task.eval()
    with torch.no_grad():
        assert task(x).shape == (2, 5)
    from zoo.weights import WeightsError, export_run  # a cut net is no registry architecture

    with pytest.raises(WeightsError, match="not a registry architecture"):
        export_run(cfg.paths.output_dir, rec["best_checkpoint"], "probe", out_dir=tmp_path / "weights")
    assert not (tmp_path / "weights").exists() or not any((tmp_path / "weights").iterdir())


def test_class_subset_is_relabelled():
    dm = MNIST5kDataModule(classes=[5, 6, 7, 8, 9], num_classes=5)
    dm.setup("fit")
    y = torch.cat([dm.train_set.tensors[1], dm.val_set.tensors[1], dm.test_set.tensors[1]])
    assert sorted(y.unique().tolist()) == [0, 1, 2, 3, 4] and len(y) == 2500
    assert dm.class_names == ["5", "6", "7", "8", "9"] and dm.describe()["dataset"] == "mnist5k[5,6,7,8,9]"
    with pytest.raises(ValueError, match="at least two distinct"):
        MNIST5kDataModule(classes=[3, 3])


def test_normalize_override():
    a = MNIST5kDataModule(normalize=[[0.5], [0.25]])
    assert a.mean == (0.5,) and a.std == (0.25,)
    with pytest.raises(ValueError, match="normalize"):
        MNIST5kDataModule(normalize=[[0.5], [0.0]])


def test_a_net_that_declares_its_head_is_fine_tuned_there():
    """A net whose last parameters are not its classifier (a detector's box regressor, say)
    names its head; the presets split there, not at the last module."""
    from zoo.tasks.finetune import head_module, split_head

    class TwoHeads(nn.Module):
        head_name = "cls"

        def __init__(self):
            super().__init__()
            self.body = nn.Linear(4, 8)
            self.cls = nn.Linear(8, 3)
            self.box = nn.Linear(8, 4)  # last, but not the head

    net = TwoHeads()
    assert head_module(net)[0] == "cls"
    head, _ = split_head(net)
    assert head == ["cls.weight", "cls.bias"]
    net.head_name = "nothing"
    with pytest.raises(ValueError, match="not one of its modules"):
        head_module(net)
