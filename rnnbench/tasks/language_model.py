"""Language modelling on token streams: word level (perplexity) and character level (bpc)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.tasks.base import Task, masked_mean


class LanguageModelTask(Task):
    """Next-token prediction: embedding -> backbone -> (dropout) -> linear over the vocabulary.

    Args:
        vocab_size: Number of tokens.
        embedding_size: Embedding width (default: the backbone's hidden size, set by build).
        tie_weights: Share the embedding and output matrices (Press & Wolf 2017; Inan et al.
            2017); needs ``embedding_size`` equal to the backbone's output size.
        dropout: Dropout on the embedding output and on the backbone output (Zaremba et al.
            2014 apply it on every non-recurrent connection).
        level: ``"word"`` logs perplexity, ``"char"`` bits per character.
    """

    name = "lm"
    causal = True
    streaming = True
    loss_name = "nll"

    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        tie_weights: bool = False,
        dropout: float = 0.0,
        level: str = "word",
    ) -> None:
        super().__init__()
        if level not in ("word", "char"):
            raise ValueError(f"level must be 'word' or 'char', got {level!r}")
        self.level = level
        self.monitor = "ppl" if level == "word" else "bpc"
        self.vocab_size = int(vocab_size)
        self.embedding_size = int(embedding_size)
        self.tie_weights = tie_weights
        self.embedding = nn.Embedding(self.vocab_size, self.embedding_size)
        self.drop = nn.Dropout(dropout)
        self.decoder: nn.Linear | None = None

    @property
    def input_size(self) -> int:
        return self.embedding_size

    def build(self, backbone_output_size: int, bidirectional: bool) -> None:
        self.decoder = nn.Linear(backbone_output_size, self.vocab_size)
        if self.tie_weights:
            if backbone_output_size != self.embedding_size:
                raise ValueError(
                    f"tie_weights needs embedding_size ({self.embedding_size}) equal to the "
                    f"backbone output size ({backbone_output_size}); set them equal or turn "
                    "tie_weights off"
                )
            self.decoder.weight = self.embedding.weight

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.drop(self.embedding(inputs))  # (B, T, E)

    def forward(self, y, mask, lengths):
        return self.decoder(self.drop(y))  # (B, T, V)

    def loss(self, out, targets, mask):
        nll = F.cross_entropy(  # (B * T,)
            out.reshape(-1, out.size(-1)), targets.reshape(-1), reduction="none"
        )
        return masked_mean(nll, None if mask is None else mask.reshape(-1))  # (), ()

    def member_loss(self, out, targets, mask):
        k = out.size(0)
        nll = F.cross_entropy(  # (K * B * T,)
            out.reshape(-1, out.size(-1)), targets.reshape(-1), reduction="none"
        ).view(k, -1)  # (K, B * T)
        return masked_mean(nll, None if mask is None else mask.reshape(k, -1), members=True)

    def summarize(self, mean_loss):
        if self.level == "word":
            return {"nll": mean_loss, "ppl": torch.exp(mean_loss)}  # (), ()
        return {"nll": mean_loss, "bpc": mean_loss / math.log(2.0)}  # (), ()
