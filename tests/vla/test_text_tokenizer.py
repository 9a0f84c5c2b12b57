"""The tiny preset's byte-level BPE: size, InternVL's special tokens, deterministic, loads via AutoTokenizer."""
from transformers import AutoTokenizer

from beingh0.vla.config import TINY_SPECIAL_TOKENS, TINY_TEXT_VOCAB
from beingh0.vla.text_tokenizer import tiny_tokenizer, training_corpus


def test_size_and_special_tokens():
    tok = tiny_tokenizer()
    assert len(tok) == TINY_TEXT_VOCAB
    assert tok.convert_tokens_to_ids(list(TINY_SPECIAL_TOKENS)) == list(range(len(TINY_SPECIAL_TOKENS)))
    assert (tok.pad_token, tok.eos_token) == ("<|endoftext|>", "<|im_end|>")
    assert (tok.start_image_token, tok.end_image_token, tok.context_image_token) == ("<img>", "</img>", "<IMG_CONTEXT>")
    ids = tok("<|im_start|>user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\nhi<|im_end|>", add_special_tokens=False)["input_ids"]
    assert ids[:1] == [1] and ids[4:8] == [3, 5, 5, 4] and ids[-1] == 2  # special tokens are never split


def test_round_trip_and_compression():
    tok = tiny_tokenizer()
    corpus = training_corpus()
    text = corpus[len(corpus) // 2]
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    odd = "Ünïcödé and a 🤖 never seen in training"
    assert tok.decode(tok(odd, add_special_tokens=False)["input_ids"]) == odd  # byte level: any text
    n_chars = sum(len(t) for t in corpus[:200])
    n_tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in corpus[:200])
    assert n_chars / n_tokens > 3.0  # the BPE learned the pipeline's language


def test_deterministic_and_independent_copies():
    a, b = tiny_tokenizer(), tiny_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    a.add_tokens(["<x>"])
    assert len(b) == TINY_TEXT_VOCAB  # each call returns a fresh tokenizer


def test_saved_tokenizer_loads_with_auto_tokenizer(tmp_path):
    tok = tiny_tokenizer()
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "<|im_start|>user\nPick up the red cup.<|im_end|>"
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.context_image_token == "<IMG_CONTEXT>"
