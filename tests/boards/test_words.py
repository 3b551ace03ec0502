import random

import pytest

from nnfab.boards.words import BytesToWords, WordsToBytes, word_bytes

from ..streams import run_stream


@pytest.mark.parametrize("width", [1, 8, 13, 24])
def test_words_through_bytes_and_back(width):
    """Words to little-endian bytes and bytes back to words, with idle inputs and
    back-pressure: every byte and word exact, none lost or repeated."""
    seed = 100 + width
    rng = random.Random(seed)
    words = [rng.getrandbits(width) for _ in range(20)] + [0, (1 << width) - 1]
    n = word_bytes(width)
    data = [(w >> (8 * k)) & 0xFF for w in words for k in range(n)]
    run = run_stream(WordsToBytes(width), words, rng=random.Random(seed), p_idle=0.3,
                     p_stall=0.3, n_outputs=len(data), drain_cycles=10)
    assert run.outputs == data and not run.extra, f"seed {seed}"
    run = run_stream(BytesToWords(width), data, rng=random.Random(seed), p_idle=0.3,
                     p_stall=0.3, n_outputs=len(words), drain_cycles=10)
    assert run.outputs == words and not run.extra, f"seed {seed}"


def test_word_bytes():
    assert [word_bytes(w) for w in (1, 8, 9, 16, 773)] == [1, 1, 2, 2, 97]
