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
    make_examples,
    read_lines,
    read_words,
    split_words,
)
from makemore.data.files import atomic_write, file_sha256

__all__ = [
    "atomic_write",
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
