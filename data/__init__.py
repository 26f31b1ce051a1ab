"""Datasets of one item per line: reading, vocabulary, split and training examples.

Pure Python + numpy (no torch): the runtime uses it too.
"""

from makemore.data.dataset import (
    BOUNDARY,
    DatasetError,
    Split,
    UserError,
    Vocab,
    bundled_names_path,
    file_sha256,
    make_examples,
    read_lines,
    read_words,
    split_words,
)

__all__ = [
    "BOUNDARY",
    "DatasetError",
    "Split",
    "UserError",
    "Vocab",
    "bundled_names_path",
    "file_sha256",
    "make_examples",
    "read_lines",
    "read_words",
    "split_words",
]
