"""Tiny PyTorch modules for the loader tests, importable by path as ``"tiny_models:TinyNet"``.

A state_dict names no code, so the loader builds ``model_class(**model_kwargs)`` from an import
path; a whole pickled model names these classes inside the file. Both need the classes in a
module, not in a test function. Sized for ``digits``: 64 features, 10 classes, 8x8 images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


class TinyNet(nn.Module):
    """``n_in -> hidden -> n_out``, with a ReLU: 1210 parameters at the defaults."""

    def __init__(self, n_in: int = 64, hidden: int = 16, n_out: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc2 = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class TinyCNN(nn.Module):
    """A convolution and batch norm over ``(1, 8, 8)`` images, then a linear layer."""

    def __init__(self, channels: int = 4, n_out: int = 10) -> None:
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(1, channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels * 8 * 8, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return self.fc(h.reshape(-1, self.channels * 8 * 8))


class TinyNormNet(nn.Module):
    """``TinyNet`` with a batch norm between its layers, whose running statistics are buffers."""

    def __init__(self, n_in: int = 64, hidden: int = 16, n_out: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


class TinyImageCNN(nn.Module):
    """A convolution over ``(3, size, size)`` RGB images (NCHW), then a linear layer to 2
    classes; ``channels_last`` takes ``(size, size, 3)`` images (NHWC) instead, as Keras does."""

    def __init__(self, n_out: int = 2, channels_last: bool = False, size: int = 16) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.fc = nn.Linear(4 * size * size, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        return self.fc(torch.relu(self.conv(x)).flatten(1))


# -- Hugging Face folders, built from configs (nothing is downloaded) ----------------------------

#: The vocabulary of :func:`word_tokenizer`: special tokens first, then a few words.
HF_WORDS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on",
            "mat", "ran", "fast", "slow", "good", "bad", "is", "was", "not")


def word_tokenizer(folder: Path) -> Any:
    """A word-piece tokenizer over :data:`HF_WORDS` (lower-cased, no special tokens added),
    from a vocab file written into ``folder``; ``[SEP]`` is its end token."""
    import tokenizers
    import transformers

    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(HF_WORDS) + "\n")
    tok = tokenizers.Tokenizer(tokenizers.models.WordPiece.from_file(str(vocab),
                                                                     unk_token="[UNK]"))
    tok.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[SEP]")


def tiny_t5(seed: int = 1) -> Any:
    """A one-layer T5 over :data:`HF_WORDS` (width 16), its language-model head tied to the
    shared embeddings; weights drawn from N(0, 1), so that greedy generation varies its
    tokens (T5's own small initialisation makes a tiny model repeat one token)."""
    import transformers

    config = transformers.T5Config(
        vocab_size=len(HF_WORDS), d_model=16, d_kv=8, d_ff=32, num_layers=1,
        num_decoder_layers=1, num_heads=2, pad_token_id=0, decoder_start_token_id=0,
        eos_token_id=HF_WORDS.index("[SEP]"), tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = transformers.T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 1.0)
    return model


def tiny_vit(seed: int = 0, num_labels: int = 3) -> Any:
    """A one-layer ViT classifier of 16x16 RGB images (patches of 8x8, width 16)."""
    import transformers

    config = transformers.ViTConfig(
        image_size=16, patch_size=8, num_channels=3, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=32, num_labels=num_labels)
    torch.manual_seed(seed)
    return transformers.ViTForImageClassification(config).eval()
