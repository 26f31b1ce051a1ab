"""The ground floor (numpy only): datasets of one item per line (reading, vocabulary, split, examples, the flat
tokens of a split and the rows built from them on demand),
plus what every layer shares: user errors, safe atomic writes, the CLI runner.

The flat tokens (data.tokens) and the file writers (data.files) are imported on first use of one of their names
(PEP 562): the runtime's commands use neither, and their imports cost mm-gen's cold start.
"""

from typing import TYPE_CHECKING

from makemore.data.dataset import (
    BOUNDARY,
    SEED_MAX,
    Split,
    Vocab,
    bundled_names_path,
    check_seed,
    make_examples,
    read_lines,
    read_words,
    read_words_sha256,
    split_words,
)
from makemore.data.errors import DatasetError, UserError, first_line
from makemore.data.reader import (
    MAX_LINE_BYTES,
    MAX_VOCAB,
    input_file_problem,
    is_line_break,
    is_name_char,
    is_text,
    vocab_problem,
)

if TYPE_CHECKING:
    from makemore.data.files import OutputError, atomic_write, check_output_path, file_sha256
    from makemore.data.tokens import Tokens, token_dtype, tokenize

LAZY = {
    "OutputError": "files",
    "atomic_write": "files",
    "check_output_path": "files",
    "file_sha256": "files",
    "Tokens": "tokens",
    "token_dtype": "tokens",
    "tokenize": "tokens",
}

__all__ = [
    "atomic_write",
    "input_file_problem",
    "BOUNDARY",
    "SEED_MAX",
    "check_seed",
    "check_output_path",
    "DatasetError",
    "file_sha256",
    "first_line",
    "OutputError",
    "Split",
    "UserError",
    "Vocab",
    "bundled_names_path",
    "make_examples",
    "read_lines",
    "read_words",
    "read_words_sha256",
    "MAX_LINE_BYTES",
    "MAX_VOCAB",
    "is_line_break",
    "is_name_char",
    "is_text",
    "vocab_problem",
    "split_words",
    "Tokens",
    "token_dtype",
    "tokenize",
]


def __getattr__(name: str) -> object:
    """A name of data.files or data.tokens, imported on its first use."""
    if name not in LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{LAZY[name]}"), name)
