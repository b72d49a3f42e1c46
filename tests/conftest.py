"""Shared fixtures: a tiny tokenizer and a tiny Llama model built in memory (no hub, ~0.1 s)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Never touch the hub from tests, even if the Makefile was bypassed.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

WORDS = [
    "i",
    "you",
    "he",
    "she",
    "we",
    "they",
    "am",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "have",
    "has",
    "had",
    "do",
    "did",
    "feel",
    "felt",
    "so",
    "very",
    "really",
    "happy",
    "sad",
    "angry",
    "afraid",
    "proud",
    "ashamed",
    "lonely",
    "excited",
    "nervous",
    "sorry",
    "glad",
    "great",
    "terrible",
    "good",
    "bad",
    "that",
    "this",
    "what",
    "why",
    "how",
    "when",
    "where",
    "the",
    "a",
    "an",
    "and",
    "but",
    "or",
    "to",
    "of",
    "in",
    "on",
    "for",
    "with",
    "my",
    "your",
    "me",
    "it",
    "not",
    "no",
    "yes",
    "dog",
    "cat",
    "job",
    "exam",
    "friend",
    "family",
    "home",
    "work",
    "day",
    "night",
    "today",
    "yesterday",
    "week",
    "hope",
    "wish",
    "think",
    "know",
    "oh",
    "wow",
]


def build_tiny_tokenizer():
    """A word-level tokenizer over a small vocabulary, with ChatML special tokens, pad/eos and a chat template."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<s>"]
    vocab = {
        tok: i
        for i, tok in enumerate(
            [*specials, "\n", *sorted(set(WORDS)), "system", "user", "assistant", ".", ",", "!", "?", "'"]
        )
    }
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        bos_token="<s>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = CHATML
    return tok


def build_tiny_model(vocab_size: int, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=3,
        bos_token_id=4,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny Llama model + tokenizer folder that ``from_pretrained`` (and empo's model specs) load."""
    out = tmp_path_factory.mktemp("tiny-llama")
    tok = build_tiny_tokenizer()
    model = build_tiny_model(len(tok))
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture()
def data_dir_env(monkeypatch, tmp_path) -> Path:
    """Point $EMPO_DATA_DIR and $EMPO_CACHE_DIR at temporary folders for one test."""
    monkeypatch.setenv("EMPO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EMPO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "data"
