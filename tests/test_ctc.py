"""Speech recognition with CTC: greedy and prefix beam search decoding on hand-built probability
matrices (against the exact sum over alignments), the synthesized spoken-digit data (reproducible,
unseen voices held out, batch contract), the conv + bidirectional GRU model (shapes, padding
does not leak), the task, a fast_dev_run-sized training through zoo-train, zoo-predict on a WAV
file, and bad input."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import zoo
from datamodules.audio.features import AudioFileError, write_wav
from datamodules.audio.spoken_digits import (ALPHABET, DIGIT_WORDS, SpokenDigitsSynthDataModule, decode_ids,
                                             encode_text)
from datamodules.audio.trigger_word import TEST_VARIANTS, TRAIN_VARIANTS, VAL_VARIANTS
from zoo.ops.ctc_decoding import (beam_decode, collapse, greedy_decode, labelling_log_prob,
                                  prefix_beam_search)
from zoo.tasks.ctc import CTCTask, min_ctc_frames


# -- decoding ------------------------------------------------------------------------------------
def brute_force(probs: np.ndarray, blank: int = 0) -> dict[tuple[int, ...], float]:
    """Every labelling's probability, summed over every alignment (C^T of them)."""
    t, c = probs.shape
    out: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(c), repeat=t):
        lab = tuple(collapse(path, blank))
        out[lab] = out.get(lab, 0.0) + float(np.prod(probs[np.arange(t), list(path)]))
    return out


def test_collapse_and_greedy():
    assert collapse([1, 1, 0, 1, 2, 2, 0, 0, 3]) == [1, 1, 2, 3]
    assert collapse([0, 0, 0]) == []
    lp = torch.log(torch.tensor([[[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1],
                                  [0.1, 0.1, 0.8]]]))
    assert greedy_decode(lp) == [[1, 1, 2]]
    assert greedy_decode(lp, torch.tensor([3])) == [[1]]  # frames past the length are ignored


def test_beam_search_finds_the_labelling_greedy_misses():
    # two frames, blank 0.6 / 'a' 0.4 each: the best path is blank-blank ("" with 0.36), but "a" has
    # three alignments (a a, a -, - a) summing to 0.16 + 0.24 + 0.24 = 0.64
    probs = np.array([[0.6, 0.4], [0.6, 0.4]])
    lp = torch.log(torch.tensor(probs))[None]
    assert greedy_decode(lp) == [[]]
    best = prefix_beam_search(np.log(probs), beam_width=4)
    assert best[0][0] == (1,) and math.exp(best[0][1]) == pytest.approx(0.64)
    assert best[1][0] == () and math.exp(best[1][1]) == pytest.approx(0.36)
    assert beam_decode(lp, beam_width=4) == [[1]]
    # and where the best path does collapse to the best labelling, both agree:
    # P("a") = .35*.35 + 2*.35*.25 = 0.2975 < P("b") = .4*.4 + 2*.4*.25 = 0.36
    probs = np.array([[0.25, 0.35, 0.40], [0.25, 0.35, 0.40]])
    exact = brute_force(probs)
    assert exact[(1,)] == pytest.approx(0.2975) and exact[(2,)] == pytest.approx(0.36)
    assert greedy_decode(torch.log(torch.tensor(probs))[None]) == [[2]]
    assert prefix_beam_search(np.log(probs), 8)[0][0] == (2,)


def test_beam_search_beats_greedy_on_a_longer_matrix():
    # frame-wise argmax: a, -, b -> "ab", whose five alignments sum to 0.21; the labelling "a"
    # gathers 0.269 (every path over {-, a} but "- - -" and "a - a")
    probs = np.array([[0.25, 0.40, 0.35],
                      [0.50, 0.45, 0.05],
                      [0.25, 0.35, 0.40]])
    exact = brute_force(probs)
    greedy = tuple(greedy_decode(torch.log(torch.tensor(probs))[None])[0])
    best = max(exact, key=exact.get)
    assert greedy == (1, 2) and best == (1,) and exact[best] > exact[greedy]
    found, score = prefix_beam_search(np.log(probs), beam_width=16)[0]
    assert found == best and math.exp(score) == pytest.approx(exact[best])


def test_wide_beam_is_exact_and_matches_the_forward_algorithm():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=5)  # T=5, C=3: 243 alignments
    exact = brute_force(probs)
    beams = prefix_beam_search(np.log(probs), beam_width=1000)
    assert len(beams) == len(exact)
    for lab, score in beams:
        assert math.exp(score) == pytest.approx(exact[lab], rel=1e-9)
    assert sum(math.exp(s) for _, s in beams) == pytest.approx(1.0)
    # the CTC forward recursion, and torch's ctc_loss, agree on each labelling's probability
    lp = torch.log(torch.tensor(probs))
    for lab in [(1,), (1, 2), (2, 2), (1, 2, 1)]:
        assert math.exp(labelling_log_prob(lp, lab)) == pytest.approx(exact[lab], rel=1e-9)
        loss = F.ctc_loss(lp[:, None], torch.tensor([lab]), torch.tensor([5]), torch.tensor([len(lab)]),
                          reduction="sum")
        assert float(loss) == pytest.approx(-math.log(exact[lab]), rel=1e-6)


def test_pruned_beam_keeps_the_answer_and_bad_arguments_are_refused():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(30, 6)) * 3
    lp = torch.log_softmax(torch.tensor(logits), -1)
    full = prefix_beam_search(lp, 8)[0][0]
    assert prefix_beam_search(lp, 8, prune=math.log(1e-3))[0][0] == full
    with pytest.raises(ValueError, match="beam_width"):
        prefix_beam_search(lp, 0)
    with pytest.raises(ValueError, match=r"\(T, C\)"):
        prefix_beam_search(lp[None], 4)


def test_min_ctc_frames_counts_repeats():
    targets = torch.tensor([[1, 1, 2, 2, 2], [3, 4, 3, 0, 0]])
    assert min_ctc_frames(targets, torch.tensor([5, 3])).tolist() == [8, 3]


# -- text ----------------------------------------------------------------------------------------
@pytest.mark.bad_input
def test_text_encoding_and_its_errors():
    ids = encode_text("three one")
    assert decode_ids(ids) == "three one" and min(ids) >= 1 and max(ids) <= len(ALPHABET)
    with pytest.raises(ValueError, match="empty"):
        encode_text("")
    with pytest.raises(ValueError, match=r"outside the alphabet: \['3', 'T'\]"):
        encode_text("Three 3")


# -- data ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def speech_cache(tmp_path_factory):
    """One cache of synthesized words for the module's tests (each word is synthesized once)."""
    return str(tmp_path_factory.mktemp("synth_speech"))


def tiny_dm(cache, **kw):
    args = dict(train_utterances=6, val_utterances=2, test_utterances=2, train_voices=2, val_voices=1,
                test_voices=1, takes=1, min_digits=3, max_digits=4, phrase_fraction=0.0, batch_size=3,
                cache_dir=cache)
    args.update(kw)
    return SpokenDigitsSynthDataModule(**args)


def test_voices_of_val_and_test_are_never_heard_in_training():
    v = SpokenDigitsSynthDataModule(cache_dir=None).split_voices()
    variant = {s: {x.split("+")[1] for x in v[s]} for s in v}
    assert variant["train"] <= set(TRAIN_VARIANTS) and variant["val"] <= set(VAL_VARIANTS)
    assert variant["test"] <= set(TEST_VARIANTS)
    assert not variant["train"] & variant["val"] and not variant["train"] & variant["test"]
    assert len(v["train"]) == 40 and len(set(v["train"])) == 40


def test_utterances_are_reproducible_and_follow_the_batch_contract(speech_cache):
    a, b = tiny_dm(speech_cache), tiny_dm(speech_cache)
    a.setup()
    b.setup()
    wa, ta, sa = a.train_set.utterance(1)
    a.train_set.utterance(0)  # what was drawn before changes nothing
    wb, tb, sb = b.train_set.utterance(1)
    assert np.array_equal(wa, wb) and ta == tb and sa == sb
    words = ta.split()
    assert 3 <= len(words) <= 4 and set(words) <= set(DIGIT_WORDS) and [s[0] for s in sa] == words
    assert all(s1[2] <= s2[1] for s1, s2 in zip(sa, sa[1:]))  # words in order, never overlapping
    other = tiny_dm(speech_cache, seed=1)
    other.setup()
    assert not np.array_equal(other.train_set.utterance(1)[0][:2000], wa[:2000])
    batch = next(iter(a.train_dataloader()))
    n = batch["features"].shape[0]
    assert batch["features"].shape[2] == 40 and batch["lengths"].max() == batch["features"].shape[1]
    for i in range(n):
        assert decode_ids(batch["targets"][i, : batch["target_lengths"][i]].tolist()) == batch["text"][i]
        assert (batch["targets"][i, batch["target_lengths"][i]:] == 0).all()
    first = a.train_set[2]["features"]
    assert torch.equal(a.train_set[2]["features"], first)  # kept in memory
    assert first.mean(0).abs().max() < 0.05  # each band normalised over the utterance


def test_phrases_are_said_before_the_digits(speech_cache):
    dm = tiny_dm(speech_cache, phrase_fraction=1.0, phrases=["call"], train_utterances=2)
    dm.setup()
    assert dm.train_set.utterance(0)[1].startswith("call ")


@pytest.mark.bad_input
def test_bad_data_settings_are_named():
    with pytest.raises(ValueError, match="data.phrases entry 'Call'"):
        SpokenDigitsSynthDataModule(phrases=["Call"], cache_dir=None)
    with pytest.raises(ValueError, match="babble"):
        SpokenDigitsSynthDataModule(backgrounds=["babble"], cache_dir=None)
    with pytest.raises(ValueError, match="data.max_digits=2 is below data.min_digits=3"):
        SpokenDigitsSynthDataModule(max_digits=2, cache_dir=None)
    with pytest.raises(ValueError, match="data.train_utterances"):
        SpokenDigitsSynthDataModule(train_utterances=0, cache_dir=None)


# -- model and task ----------------------------------------------------------------------------------
def test_model_shapes_and_padding_does_not_leak():
    torch.manual_seed(0)
    net = zoo.create_model("ctc_conv_bigru", n_mels=16, num_classes=5, channels=8, hidden_size=8).eval()
    x, lengths = net.example_inputs(3)
    x = x[..., :16]
    out = net(x, lengths)
    assert out.shape == (3, net.output_lengths(120), 5) == (3, 60, 5)
    assert net.output_lengths(torch.tensor([1, 2, 3, 80])).tolist() == [1, 1, 2, 40]
    # the short utterance alone, unpadded, gives the same outputs on its real frames
    n = int(lengths[-1])
    alone = net(x[-1:, :n], lengths[-1:])
    m = int(net.output_lengths(n))
    assert torch.allclose(alone[0], out[-1, :m], atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, frames, 16\)"):
        net(torch.randn(2, 50, 40))


def test_task_step_decodes_and_refuses_impossible_alignments():
    torch.manual_seed(0)
    net = zoo.create_model("ctc_conv_bigru", n_mels=16, num_classes=len(ALPHABET) + 1, channels=8, hidden_size=8)
    task = CTCTask(net, alphabet=list(ALPHABET), decoder="beam", beam_width=4)
    texts = ["one two", "nine"]
    ids = [torch.tensor(encode_text(t)) for t in texts]
    targets = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True)
    batch = {"features": torch.randn(2, 40, 16), "lengths": torch.tensor([40, 30]), "targets": targets,
             "target_lengths": torch.tensor([len(i) for i in ids]), "text": texts}
    loss, hyps, refs = task.shared_step(batch, "val")
    assert loss.ndim == 0 and torch.isfinite(loss) and refs == texts and all(isinstance(h, str) for h in hyps)
    loss.backward()
    short = dict(batch, lengths=torch.tensor([10, 30]))  # 5 output frames for 7 characters
    with pytest.raises(ValueError, match="5 output frames.*needs at least 7"):
        task.shared_step(short, "train")
    empty = dict(batch, target_lengths=torch.tensor([7, 0]))
    with pytest.raises(ValueError, match="empty"):
        task.shared_step(empty, "train")
    with pytest.raises(ValueError, match="model.num_classes=29"):
        CTCTask(zoo.create_model("ctc_conv_bigru", num_classes=11), alphabet=list(ALPHABET))
    with pytest.raises(ValueError, match="decoder"):
        CTCTask(net, decoder="viterbi")


# -- training, prediction, bad files ---------------------------------------------------------------
def test_training_then_zoo_predict_on_a_wav(tmp_path, speech_cache, capsys):
    from conftest import compose_train
    from zoo.cli.predict import main, predict
    from zoo.cli.train import train

    cfg = compose_train(["experiment=ctc_digits_synth", "trainer=cpu", "trainer.max_epochs=1",
                         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "logger=none",
                         "data.train_utterances=6", "data.val_utterances=2", "data.test_utterances=2",
                         "data.batch_size=3", "data.train_voices=2", "data.val_voices=1", "data.test_voices=1",
                         "data.takes=1", "data.max_digits=4", "data.phrase_fraction=0",
                         f"data.cache_dir={speech_cache}", "model.channels=8", "model.hidden_size=8",
                         "task.decoder=beam"], tmp_path)
    rec = train(cfg)
    assert 0 <= rec["test"]["test/cer"] and 0 <= rec["test"]["test/wer"]
    ckpt = next((tmp_path / "run").rglob("best.ckpt"))
    dm = tiny_dm(speech_cache)
    dm.setup()
    wav, text, _ = dm.test_set.utterance(0)
    path = write_wav(tmp_path / "digits.wav", wav, 16000)
    (out,) = predict(str(ckpt), [path])
    assert out["file"] == str(path) and isinstance(out["transcript"], str) and out["decoder"] == "beam"
    assert out["seconds"] == pytest.approx(wav.size / 16000, abs=1e-3)
    # a WAV at another rate: one line naming the file and the rate, exit status 2
    slow = write_wav(tmp_path / "slow.wav", np.zeros(8000), 8000)
    assert main([str(ckpt), str(slow)]) == 2
    err = capsys.readouterr().err
    assert "slow.wav" in err and "8000 Hz" in err and "16000 Hz" in err


@pytest.mark.bad_input
def test_bad_wav_files_are_named(tmp_path):
    dm = SpokenDigitsSynthDataModule(cache_dir=None, max_input_seconds=2)
    with pytest.raises(AudioFileError, match="slow.wav is sampled at 8000 Hz"):
        dm.read_input(write_wav(tmp_path / "slow.wav", np.zeros(8000), 8000))
    with pytest.raises(ValueError, match="long.wav is 3.0 s long.*max_input_seconds=2"):
        dm.read_input(write_wav(tmp_path / "long.wav", np.zeros(48000), 16000))
    with pytest.raises(ValueError, match="too short"):
        dm.read_input(write_wav(tmp_path / "click.wav", np.zeros(100), 16000))
    with pytest.raises(FileNotFoundError, match="none.wav"):
        dm.read_input(tmp_path / "none.wav")


def test_the_published_ctc_weights_transcribe_held_out_utterances_by_name(tmp_path):
    """``zoo-predict ctc_conv_bigru.synth_digits <wav> ...`` on the first ten held-out test
    utterances (voices never heard in training): character error rate within the 10% bar."""
    from hydra.utils import instantiate
    from torchmetrics.text import CharErrorRate

    from zoo.cli.eval import task_from_weights
    from zoo.cli.predict import predict

    name = "ctc_conv_bigru.synth_digits"
    # the card's data config: the words it synthesizes are cached where the weight test's are
    dm = instantiate(dict(task_from_weights(name).run_config["data"]), _convert_="all")
    dm.setup("test")
    files, truths = [], []
    for i in range(10):
        wav, text, _ = dm.test_set.utterance(i)
        files.append(write_wav(tmp_path / f"utt{i}.wav", wav, dm.sample_rate))
        truths.append(text)
    got = [r["transcript"] for r in predict(name, files)]
    assert float(CharErrorRate()(got, truths)) <= 0.10, list(zip(got, truths))
