"""Tokenizers (WordPiece trained on our descriptions, a checkpoint's saved one) and text flips."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from focusclip.core.errors import fail

SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(texts: Iterable[str], vocab_size: int, lowercase: bool = True):
    """A BERT-style WordPiece tokenizer trained on `texts` (the training descriptions), wrapped as a
    Hugging Face fast tokenizer so it saves/loads with `save_pretrained`/`AutoTokenizer`.

    The tokenizers trainer numbers the `##x` continuation tokens in hash-map order, and those ids
    break ties between equally frequent merges, so two runs on the same text can learn different
    vocabularies (huggingface/tokenizers#1794). Seeding every `##x` up front, in sorted order, fixes
    the ids and makes training deterministic; the seeds are plain vocabulary entries afterwards."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    chars = sorted({c for t in texts for c in normalizer.normalize_str(t) if not c.isspace()})
    seeds = [f"##{c}" for c in chars]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=max(vocab_size, len(SPECIAL) + 2 * len(chars)),
                                        special_tokens=list(SPECIAL) + seeds, min_frequency=1,
                                        show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    vocab = tok.get_vocab()
    out = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))   # without the seeds as added tokens
    out.normalizer = normalizer
    out.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    out.add_special_tokens(list(SPECIAL))
    out.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    out.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(tokenizer_object=out, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                                   padding_side="right")


def load_tokenizer(path: str | Path):
    """A tokenizer folder saved with `save_pretrained` (checkpoint `tokenizer/`), never downloading."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise fail("tokenizer folder not found", str(path), "the checkpoint is incomplete; re-save it")
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


_LR = re.compile(r"\b(left|right)\b", re.IGNORECASE)


def swap_left_right(text: str) -> str:
    """Swap the words left/right (keeping case) for a horizontally flipped image:
    'Left hand' → 'Right hand', 'RIGHT' → 'LEFT'."""
    def repl(m: re.Match) -> str:
        word = m.group(0)
        other = "right" if word.lower() == "left" else "left"
        if word.isupper():
            return other.upper()
        if word[0].isupper():
            return other.capitalize()
        return other
    return _LR.sub(repl, text)
