"""Token log-probabilities recorded during `generate`, one vocabulary row of memory per sequence."""

from __future__ import annotations


class ChosenTokenLogprobs:
    """A logits processor that records the log-probability of each chosen token.

    At step t+1 it reads the token chosen at step t (the last input id) and looks it up
    in the log-softmax it kept from step t, so memory stays one vocabulary row per
    sequence (keeping every step's logits, as `output_logits` does, costs
    steps x batch x vocabulary floats: gigabytes for Gemma 4's 262k vocabulary).
    The distribution is the one the token was chosen from: the model's own for greedy
    decoding, after temperature/top-k/top-p when sampling. Values stay on the device
    until `collect` is called after generation (no host sync in the decode loop).
    """

    def __init__(self) -> None:
        self.previous = None
        self.values: list = []

    def __call__(self, input_ids, scores):
        import torch

        if self.previous is not None:
            self.values.append(self.previous.gather(-1, input_ids[:, -1:]).squeeze(-1))
        self.previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def collect(self, sequences, prompt_length: int) -> list[list[float]]:
        """Return per-row log-probs of the generated tokens in `sequences`."""
        import torch

        generated = sequences.shape[1] - prompt_length
        if self.previous is not None and len(self.values) < generated:
            chosen = sequences[:, prompt_length + len(self.values)].unsqueeze(-1)
            self.values.append(self.previous.gather(-1, chosen).squeeze(-1))
        if not self.values:
            return [[] for _ in range(sequences.shape[0])]
        return torch.stack(self.values[:generated], dim=1).tolist()
