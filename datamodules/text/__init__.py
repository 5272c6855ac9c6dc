"""Text data: character-level person names and template NER sentences made with ``faker``
(offline), the news text shipped in ``gensim``'s test data, and readers of Penn Treebank and
WikiText-2 in their own on-disk formats. Hydra configs name them as
``datamodules.text.<Class>``."""
from datamodules.text.names import FakerNamesDataModule, collate_sequences, locale_names
from datamodules.text.ner import FakerNERDataModule, SentenceMaker, collate_tagged, tag_names
from datamodules.text.vocab import UnknownTokenError, Vocabulary, word_tokens
from datamodules.text.word_lm import (BPTTWindows, LeeCorpusDataModule, PennTreebankDataModule, WikiText2DataModule,
                                      WordLMDataModule, lee_corpus_path)

__all__ = [
    "FakerNamesDataModule", "FakerNERDataModule", "LeeCorpusDataModule", "PennTreebankDataModule",
    "WikiText2DataModule", "WordLMDataModule", "BPTTWindows", "SentenceMaker", "Vocabulary",
    "UnknownTokenError", "collate_sequences", "collate_tagged", "locale_names", "tag_names", "word_tokens",
    "lee_corpus_path",
]
from datamodules.text.sentiment import (IMDBDataModule, PolaritySentencesDataModule, SentimentDataModule,  # noqa: E402
                                        SST2DataModule, collate_labelled, polarity_path)

__all__ += ["IMDBDataModule", "PolaritySentencesDataModule", "SentimentDataModule", "SST2DataModule",
            "collate_labelled", "polarity_path"]
from datamodules.text.embeddings import (CooccurrenceDataModule, EmbeddingCorpusDataModule,  # noqa: E402
                                         SkipGramDataModule)

__all__ += ["CooccurrenceDataModule", "EmbeddingCorpusDataModule", "SkipGramDataModule"]
from datamodules.text.translation import (DateTranslationDataModule, Multi30kDataModule,  # noqa: E402
                                          NumberWordsDataModule, ParallelTextDataModule, collate_translation)
__all__ += ["DateTranslationDataModule", "NumberWordsDataModule", "ParallelTextDataModule", "Multi30kDataModule",
            "collate_translation"]
