"""Audio: the eSpeak NG synthesizer (deterministic), the synthesized trigger-word clips (label
placement, no overlap, reproducible), the log-mel front end against a direct DFT, the event
matching rule, the trigger-word model and task, the zoo-trigger command, and Speech Commands on
a tiny copy in its own layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo
from datamodules.audio import espeak
from datamodules.audio.espeak import SynthesisError, SynthesizerNotFoundError, cached_synthesize, synthesize
from datamodules.audio.features import AudioFileError, LogMel, mel_filterbank, read_wav, write_wav
from datamodules.audio.speech_commands import SpeechCommandsDataModule
from datamodules.audio.trigger_word import (TRIGGER, TriggerWordSynthDataModule, UtteranceBank, insert_ones,
                                            make_clip, place_segments, TEST_VARIANTS, TRAIN_VARIANTS,
                                            VAL_VARIANTS)
from datamodules.base import DatasetNotFoundError
from zoo.tasks.trigger_word import EventCounts, TriggerWordTask, match_events, runs


def test_synthesis_is_deterministic_and_cached(tmp_path):
    a = synthesize("activate", "en-us+f2", 150, 60)
    b = synthesize("activate", "en-us+f2", 150, 60)
    synthesize("hello there", "en+m3", 190, 30)  # state from another utterance changes nothing
    c = synthesize("activate", "en-us+f2", 150, 60)
    assert a.dtype == np.int16 and a.size > 0.2 * espeak.SAMPLE_RATE
    assert np.array_equal(a, b) and np.array_equal(a, c)
    assert not np.array_equal(a[: 5000], synthesize("activate", "en-us+f2", 150, 30)[: 5000])
    d = cached_synthesize(tmp_path, "activate", "en-us+f2", 150, 60)
    assert np.array_equal(a, d) and len(list(tmp_path.glob("*.npy"))) == 1
    assert np.array_equal(cached_synthesize(tmp_path, "activate", "en-us+f2", 150, 60), a)


@pytest.mark.bad_input
def test_bad_synthesis_requests_are_clear():
    with pytest.raises(SynthesisError, match="no voice 'xx-nope'"):
        synthesize("activate", "xx-nope")
    with pytest.raises(SynthesisError, match="empty"):
        synthesize("   ")
    with pytest.raises(SynthesisError, match="rate 20"):
        synthesize("hi", rate=20)


@pytest.mark.bad_input
def test_a_missing_synthesizer_says_how_to_install_one(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wheel(name, *args, **kwargs):
        if name == "espeakng_loader":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wheel)
    monkeypatch.setattr(espeak.shutil, "which", lambda name: None)
    espeak.find_backend.cache_clear()
    try:
        with pytest.raises(SynthesizerNotFoundError, match="pip install espeakng-loader"):
            synthesize("activate")
    finally:
        espeak.find_backend.cache_clear()


def test_voice_variants_are_disjoint_across_splits():
    assert not set(TRAIN_VARIANTS) & set(VAL_VARIANTS)
    assert not set(TRAIN_VARIANTS) & set(TEST_VARIANTS) and not set(VAL_VARIANTS) & set(TEST_VARIANTS)
    dm = TriggerWordSynthDataModule(cache_dir=None)
    v = dm.split_voices()
    train_vars = {x.split("+")[1] for x in v["train"]}
    assert not train_vars & {x.split("+")[1] for x in v["test"]}


def test_segments_never_overlap():
    rng = np.random.default_rng(0)
    for _ in range(50):
        spans = [s for s in place_segments(rng, rng.integers(1000, 20000, 6).tolist(), 100_000, 500) if s]
        spans.sort()
        assert all(a[1] + 500 <= b[0] for a, b in zip(spans, spans[1:]))


def test_labels_follow_each_trigger_word():
    labels = np.zeros(247, np.uint8)
    insert_ones(labels, 2.0, 10.0, 9)  # step floor(2.0 / 10 * 247) = 49, then 9 ones from 50
    assert labels.nonzero()[0].tolist() == list(range(50, 59))
    insert_ones(labels, 9.99, 10.0, 9)  # cut at the end of the clip
    assert labels[-1] == 0 and labels.sum() == 9  # step 246 is the word's end itself


def _tiny_bank(tmp_path):
    return UtteranceBank(["en+m1", "en-us+f2"], takes=1, seed=0, sample_rate=8000, cache_dir=str(tmp_path))


def test_clip_assembly_is_reproducible_and_labelled(tmp_path):
    bank = _tiny_bank(tmp_path)
    a = make_clip(np.random.default_rng(3), bank, 8000, 4.0, 97, 4, max_positives=2, max_negatives=2)
    b = make_clip(np.random.default_rng(3), bank, 8000, 4.0, 97, 4, max_positives=2, max_negatives=2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    wav, labels, segments = a
    assert wav.shape == (32000,) and np.abs(wav).max() <= 1
    ends = [e for w, s, e in segments if w == TRIGGER]
    assert len(runs(labels > 0)) == len(ends)
    for e in ends:
        assert labels[int(e / 4.0 * 97) + 1] == 1
    assert all(s1[2] <= s2[1] for s1, s2 in zip(segments, segments[1:]))  # no overlap


def test_logmel_matches_a_direct_dft_on_a_tone():
    sr, n_fft, hop = 8000, 256, 128
    t = np.arange(2048) / sr
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    lm = LogMel(sr, n_fft, hop, n_mels=20, f_min=0.0)
    power = lm.power(torch.from_numpy(x)).numpy()  # (frames, bins)
    # frame 4 (centred at sample 512, inside the signal): the DFT by its definition
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    seg = x[4 * hop - n_fft // 2: 4 * hop + n_fft // 2] * window
    k, n = np.arange(n_fft // 2 + 1)[:, None], np.arange(n_fft)[None]
    dft = (seg[None] * np.exp(-2j * np.pi * k * n / n_fft)).sum(1)
    np.testing.assert_allclose(power[4], np.abs(dft) ** 2, rtol=1e-3, atol=1e-3)
    assert power[4].argmax() == 1000 * n_fft // sr
    fb = mel_filterbank(n_fft // 2 + 1, 20, sr, 0.0)
    assert fb.shape == (129, 20) and torch.all(fb.max(0).values > 0.5)
    assert lm(torch.from_numpy(x)).shape == (lm.frames(2048), 20)


def test_event_matching_on_hand_made_sequences():
    assert runs([0, 1, 1, 0, 0, 1, 0, 1]) == [(1, 3), (5, 6), (7, 8)]
    assert runs([0, 1, 1, 0, 0, 1, 0, 1], merge_gap=2) == [(1, 3), (5, 8)]
    truths = [(10, 19), (50, 59)]
    assert match_events([(12, 15), (52, 60)], truths) == (2, 0, 0)
    assert match_events([(12, 15), (13, 14), (80, 82)], truths) == (1, 2, 1)
    assert match_events([(20, 22)], truths, tolerance=0) == (0, 1, 2)
    assert match_events([(20, 22)], truths, tolerance=2) == (1, 0, 1)
    m = EventCounts("f1", threshold=0.5)
    probs = torch.zeros(2, 60)
    labels = torch.zeros(2, 60)
    labels[0, 10:19] = 1
    labels[1, 50:59] = 1
    probs[0, 11:16] = 0.9  # a hit
    probs[1, 30:33] = 0.9  # a false alarm; the trigger word in clip 1 is missed
    m.update(probs, labels)
    assert (int(m.tp), int(m.fp), int(m.fn)) == (1, 1, 1) and float(m.compute()) == pytest.approx(0.5)


def test_model_shapes_and_task_step():
    net = zoo.create_model("trigger_word_gru", n_mels=16, filters=8, hidden_size=8)
    x = torch.randn(3, 101, 16)
    assert net(x).shape == (3, net.output_steps(101)) == (3, 22)
    task = TriggerWordTask(net)
    y = torch.zeros(3, 22)
    y[:, 5:8] = 1
    loss, probs, target = task.shared_step({"features": x, "labels": y}, "val")
    assert loss.ndim == 0 and probs.shape == y.shape
    with pytest.raises(ValueError, match="conv_kernel"):
        task.shared_step({"features": x, "labels": torch.zeros(3, 30)}, "val")


@pytest.mark.bad_input
def test_wav_files_wrong_rate_and_format(tmp_path):
    p = write_wav(tmp_path / "a.wav", np.zeros(800), 8000)
    assert read_wav(p, 8000).shape == (800,)
    with pytest.raises(AudioFileError, match="8000 Hz.*16000 Hz"):
        read_wav(p, 16000)
    (tmp_path / "b.wav").write_bytes(b"not a wav")
    with pytest.raises(AudioFileError, match="b.wav"):
        read_wav(tmp_path / "b.wav")


def _tiny_checkpoint(tmp_path):
    from conftest import compose_train
    from zoo.cli.train import train

    cfg = compose_train(["experiment=trigger_word_synth", "trainer=cpu", "trainer.max_epochs=1",
                         "trainer.enable_progress_bar=false", "logger=none", "data.train_clips=4",
                         "data.val_clips=2", "data.test_clips=2", "data.batch_size=2", "data.train_voices=2",
                         "data.val_voices=1", "data.test_voices=1", "data.takes=1", "data.clip_seconds=3",
                         "data.max_positives=2", "data.max_negatives=1", "data.backgrounds=[noise,hum]",
                         "model.filters=8", "model.hidden_size=8"], tmp_path)
    rec = train(cfg)
    assert 0 <= rec["test"]["test/event_f1"] <= 1
    return next((tmp_path / "run").rglob("best.ckpt"))


def test_zoo_trigger_writes_chimed_wav_and_plot(tmp_path):
    from zoo.cli.trigger import main, run

    ckpt = _tiny_checkpoint(tmp_path)
    wav = write_wav(tmp_path / "speech.wav", 0.01 * np.random.default_rng(0).standard_normal(32000), 16000)
    rec = run(ckpt, wav, threshold=0.01)  # an untrained net: a low threshold makes detections
    out = read_wav(rec["output"], 16000)
    assert out.shape == (32000,) and rec["detections_s"]
    assert (tmp_path / "speech_chimed.png").stat().st_size > 1000
    bad = write_wav(tmp_path / "slow.wav", np.zeros(8000), 8000)
    assert main([str(ckpt), str(bad)]) == 2  # a wrong sample rate: one line, exit 2
    assert main([str(tmp_path / "missing.ckpt"), str(wav)]) == 2  # neither a file nor a published weight


def _write_speech_commands(root, words=("yes", "no"), per_word=4):
    rng = np.random.default_rng(0)
    val, test = [], []
    for w in words:
        for i in range(per_word):
            write_wav(root / w / f"spk{i}_nohash_0.wav", 0.1 * rng.standard_normal(12000 + 1000 * i), 16000)
        val.append(f"{w}/spk1_nohash_0.wav")
        test.append(f"{w}/spk2_nohash_0.wav")
    (root / "_background_noise_").mkdir()
    write_wav(root / "_background_noise_" / "white.wav", np.zeros(16000), 16000)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")


def test_speech_commands_tiny_copy(tmp_path):
    _write_speech_commands(tmp_path / "sc")
    dm = SpeechCommandsDataModule(root=str(tmp_path / "sc"), batch_size=2)
    dm.setup()
    assert dm.class_names == ["no", "yes"] and len(dm.train_set) == 4 and len(dm.val_set) == 2
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 101, 40) and y.dtype == torch.int64


@pytest.mark.bad_input
def test_speech_commands_missing_files_are_named(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="no Speech Commands folder"):
        SpeechCommandsDataModule(root=str(tmp_path / "none")).setup()
    _write_speech_commands(tmp_path / "sc")
    (tmp_path / "sc" / "testing_list.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match="testing_list.txt"):
        SpeechCommandsDataModule(root=str(tmp_path / "sc")).setup()


def test_the_published_trigger_word_weights_chime_after_each_activate_of_held_out_clips(tmp_path):
    """``zoo-trigger <published name> <wav>`` on the first held-out test clips that hold the
    trigger word (voices never heard in training): one chime per "activate", each just after the
    word ends, and none for the other words."""
    from hydra.utils import instantiate

    from zoo.cli.eval import task_from_weights
    from zoo.cli.trigger import run

    name = "trigger_word_gru.synth_activate"
    # the card's data config: the words it synthesizes are cached where the weight test's are
    dm = instantiate(dict(task_from_weights(name).run_config["data"]), _convert_="all")
    dm.setup("test")
    checked = 0
    for i in range(len(dm.test_set)):
        wav, _, segments = dm.test_set.clip(i)
        ends = [end for word, _, end in segments if word == TRIGGER]
        if not ends:
            continue
        path = write_wav(tmp_path / f"clip{i}.wav", wav, dm.sample_rate)
        rec = run(name, path)
        assert len(rec["detections_s"]) == len(ends), (i, segments, rec["detections_s"])
        for end, t in zip(ends, rec["detections_s"]):
            assert -0.1 < t - end < 0.5, (i, end, t)
        checked += 1
        if checked == 3:
            break
    assert checked == 3
