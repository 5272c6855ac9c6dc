"""Audio data: speech synthesized offline with eSpeak NG (``datamodules.audio.espeak``) for the
notes' trigger-word detection, log-mel features with ``torch.stft``
(``datamodules.audio.features``), and Google Speech Commands in its own folder-of-WAVs layout."""
from datamodules.audio.espeak import SynthesisError, SynthesizerNotFoundError, synthesize
from datamodules.audio.features import AudioFileError, LogMel, mel_filterbank, read_wav, write_wav
from datamodules.audio.speech_commands import SpeechCommandsDataModule
from datamodules.audio.trigger_word import TriggerWordSynthDataModule, make_clip

__all__ = ["SynthesisError", "SynthesizerNotFoundError", "synthesize", "AudioFileError", "LogMel",
           "mel_filterbank", "read_wav", "write_wav", "TriggerWordSynthDataModule", "make_clip", "SpeechCommandsDataModule"]
