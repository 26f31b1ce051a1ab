"""Exact constraints by masked decoding: one automaton per request, masking every row's logits inside the loop.

A request's constraints (SamplingOptions: min_len, max_len, prefix, ends_with, contains, match, exclude) compile
into ONE deterministic automaton over the vocabulary's characters: the product of a DFA per constraint (ends_with
and contains as KMP automata, match as interegular's DFA of the regular expression, exclude as a trie). Its table
of live states, live[L, s] = "a name of L characters in state s can still end accepted within max_len (and at
least min_len)", is computed once by dynamic programming backwards from max_len. At every step a row may take a
character only into a live state, and may end only in an accepting state at a length in [min_len, max_len]: so
every name drawn satisfies every constraint, and a running row always has a way out (sampling never gets stuck).
A request no name can satisfy is refused before sampling, naming the constraint that empties it.

The automaton's size is bounded (data.bounds.AUTOMATON_CELLS, AUTOMATON_WORK, MAX_REGEX, MAX_EXCLUDE_CHARS).
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from makemore.data import BOUNDARY, Vocab
from makemore.data.bounds import AUTOMATON_CELLS, AUTOMATON_WORK, MAX_REGEX_STATES, MAX_REGEX_WORK
from makemore.runtime.options import SamplingError, SamplingOptions

DEAD = -1  # no transition (in a component DFA's table)
FIELDS = ("min_len", "ends_with", "contains", "match", "exclude")  # the order constraints join the automaton


@dataclass(frozen=True)
class Dfa:
    """A deterministic automaton over a vocabulary: trans [S, V] int32 (column 0, the boundary, and missing moves
    are DEAD), accept [S] bool, start state 0."""

    trans: np.ndarray
    accept: np.ndarray

    @property
    def states(self) -> int:
        return len(self.accept)


def universal(size: int) -> Dfa:
    """The automaton accepting every name."""
    trans = np.zeros((1, size), dtype=np.int32)
    trans[:, BOUNDARY] = DEAD
    return Dfa(trans, np.ones(1, dtype=bool))


def kmp(ids: list[int], size: int, absorbing: bool) -> Dfa:
    """The names ending with `ids` (absorbing False) or containing them (True): state j = the longest suffix read
    that is a prefix of `ids` has j characters."""
    m = len(ids)
    trans = np.zeros((m + 1, size), dtype=np.int32)
    trans[0, ids[0]] = 1
    fallback = 0
    for j in range(1, m + 1):
        trans[j] = trans[fallback]
        if j < m:
            trans[j, ids[j]] = j + 1
            fallback = int(trans[fallback, ids[j]])
    if absorbing:
        trans[m] = m
    trans[:, BOUNDARY] = DEAD
    accept = np.zeros(m + 1, dtype=bool)
    accept[m] = True
    return Dfa(trans, accept)


def trie(names: tuple[str, ...], vocab: Vocab) -> Dfa:
    """The names NOT in `names`: a trie of them (state 0 the root), and one last state for every text off the trie;
    only a node where an excluded name ends rejects. Names with characters outside the vocabulary are never drawn
    anyway and are left out."""
    children: list[dict[int, int]] = [{}]
    ends = [False]
    index = vocab.index
    for name in names:
        if not name or any(ch not in index for ch in name):
            continue
        node = 0
        for ch in name:
            ix = index[ch]
            nxt = children[node].get(ix)
            if nxt is None:
                nxt = len(children)
                children[node][ix] = nxt
                children.append({})
                ends.append(False)
            node = nxt
        ends[node] = True
    off = len(children)
    check_size(off + 1, vocab.size, 1, "exclude")
    trans = np.full((off + 1, vocab.size), off, dtype=np.int32)
    for node, kids in enumerate(children):
        if kids:
            trans[node, list(kids)] = list(kids.values())
    trans[:, BOUNDARY] = DEAD
    return Dfa(trans, ~np.array([*ends, False]))


class _Crawl(threading.local):
    limit: int | None = None  # states of one automaton
    work: int = 0  # the work of this thread's crawls so far ...
    work_limit: int | None = None  # ... and its bound (states' sizes x transitions, summed over every crawl)


CRAWL = _Crawl()


def freeze(state: Any) -> Any:
    """A hashable stand-in for an interegular crawl state (sets, dicts and lists of states, nested)."""
    if isinstance(state, (set, frozenset)):
        return frozenset(freeze(item) for item in state)
    if isinstance(state, dict):
        return ("dict", frozenset((freeze(k), freeze(v)) for k, v in state.items()))
    if isinstance(state, (list, tuple)):
        return (type(state).__name__, tuple(freeze(item) for item in state))
    return state


def size(state: Any) -> int:
    """The number of plain values in an interegular crawl state (its nested sets, dicts and lists flattened)."""
    if isinstance(state, (set, frozenset, list, tuple)):
        return 1 + sum(size(item) for item in state)
    if isinstance(state, dict):
        return 1 + sum(size(k) + size(v) for k, v in state.items())
    return 1


def charge(state: Any, transitions: int) -> None:
    """Count following `state` on `transitions` transitions; SamplingError naming `match` past CRAWL.work_limit."""
    CRAWL.work += size(state) * transitions
    if CRAWL.work_limit is not None and CRAWL.work > CRAWL.work_limit:
        raise SamplingError("match takes too much work to build its automaton (a simpler expression?)", "match")


def bounded_crawl(alphabet: Any, initial: Any, final: Callable[[Any], bool], follow: Callable[[Any, Any], Any]) -> Any:
    """interegular's crawl (the subset construction behind every FSM operation), its states looked up in a dict
    rather than a list, and stopped with a SamplingError past this thread's CRAWL.limit states or CRAWL.work_limit
    work."""
    import interegular.fsm as fsm

    states, index, finals = [initial], {freeze(initial): 0}, set()
    moves: dict[int, dict[Any, int]] = {}
    i = 0
    while i < len(states):
        state = states[i]
        charge(state, len(alphabet.by_transition))
        if final(state):
            finals.add(i)
        moves[i] = {}
        for transition in alphabet.by_transition:
            try:
                new = follow(state, transition)
            except fsm.OblivionError:
                continue
            key = freeze(new)
            j = index.get(key)
            if j is None:
                j = index[key] = len(states)
                states.append(new)
                if CRAWL.limit is not None and len(states) > CRAWL.limit:
                    message = f"match makes an automaton of more than {CRAWL.limit:,} states (a simpler expression?)"
                    raise SamplingError(message, "match")
            moves[i][transition] = j
        i += 1
    return fsm.FSM(alphabet=alphabet, states=range(len(states)), initial=0, finals=finals, map=moves)


SENTINEL = "\ue000"  # a private-use character: the first one outside the vocabulary stands for "no character"
UNSUPPORTED = {
    "AT": "anchors (^ $ \\A \\Z \\b \\B; the expression already matches the whole name)",
    "GROUPREF": "backreferences",
    "GROUPREF_EXISTS": "conditional groups",
    "ATOMIC_GROUP": "atomic groups",
    "POSSESSIVE_REPEAT": "possessive repeats",
}


def sre() -> tuple[Any, Any, Any]:
    """Python's own regular-expression parser, compiler and constants (re._parser and co. from Python 3.11 on)."""
    try:
        from re import _compiler, _constants, _parser  # type: ignore[attr-defined]  # private: no stubs
    except ImportError:  # pragma: no cover (Python 3.10: the same modules under their old names)
        import sre_compile as _compiler
        import sre_constants as _constants
        import sre_parse as _parser
    return _parser, _compiler, _constants


def rewrite(pattern: str, vocab: Vocab) -> tuple[str, np.ndarray]:
    """`pattern` as Python's re parses it, written for interegular (see emit) over the representatives of Letters,
    and each vocabulary character's representative (an index into vocab.chars)."""
    parser, _, _ = sre()
    tree = parser.parse(pattern)
    letters = Letters(vocab)
    emit(list(tree), tree.state.flags, letters)  # the first pass finds the classes
    letters.group()
    return emit(list(tree), tree.state.flags, letters), letters.alias


def whole_name_fsm(parsed: Any) -> Any:
    """interegular's automaton of a parsed pattern matched against a whole name: interegular lets a lookahead at
    the end peek at text after the match (a lexer's view), re.fullmatch has none, so the top-level alternatives
    are built with nothing after them (a lookahead needing more text then matches nothing)."""
    for option in getattr(parsed, "options", ()):
        object.__setattr__(option, "_prefix_cache", (0, 0))
    return parsed.to_fsm(prefix_postfix=(0, 0))


class Letters:
    """The vocabulary's characters grouped by the classes of one expression: characters that no class tells apart
    share a group, written as its first character (so the expression interegular reads holds a character per
    group at most, however big the vocabulary). Filled by a first pass of emit, then `group`."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.masks: dict[str, np.ndarray] = {}
        self.spelled: dict[str, str] | None = None
        self.alias = np.zeros(len(vocab.chars), dtype=np.int64)

    def leaf(self, node: Any, flags: int) -> str:
        """The class of a one-character node under `flags` (empty in the first pass, which records its characters)."""
        key = repr((node, flags))
        if self.spelled is None:
            if key not in self.masks:
                chosen = set(matching(node, flags, self.vocab))
                self.masks[key] = np.array([ch in chosen for ch in self.vocab.chars], dtype=bool)
            return ""
        return self.spelled[key]

    def group(self) -> None:
        """Group the characters by the classes recorded, and spell each class over the groups' representatives."""
        chars = self.vocab.chars
        masks = np.array(list(self.masks.values()), dtype=bool).reshape(len(self.masks), len(chars))
        _, first, inverse = np.unique(masks.T, axis=0, return_index=True, return_inverse=True)
        self.alias = first[inverse.reshape(-1)]
        reps = sorted(first.tolist())
        self.spelled = {
            key: spell([chars[i] for i in reps if mask[i]], [chars[i] for i in reps], self.vocab)
            for key, mask in self.masks.items()
        }


def matching(node: Any, flags: int, vocab: Vocab) -> list[str]:
    """The vocabulary's characters the one-character parse-tree node matches under `flags`, as re decides."""
    parser, compiler, _ = sre()
    alone = parser.State()  # compile ORs in its state's flags: a fresh one, so that (?-i:...) holds
    alone.flags = flags
    machine = compiler.compile(parser.SubPattern(alone, [node]), flags)
    found: list[str] = machine.findall(vocab.chars)  # one character per match: the node has no context
    return found


def spell(chars: list[str], universe: list[str], vocab: Vocab) -> str:
    """A class matching exactly `chars` among the characters of `universe`, in interegular's syntax (none of the
    vocabulary's characters when `chars` is empty)."""

    def escaped(group: list[str]) -> str:
        return "".join("\\" + ch if ch.isascii() and not ch.isalnum() else ch for ch in group)

    if not chars:
        return "[" + escaped([next(chr(c) for c in range(ord(SENTINEL), 0x10FFFF) if chr(c) not in vocab.index)]) + "]"
    chosen = set(chars)
    rest = [ch for ch in universe if ch not in chosen]
    if not rest and "\n" not in vocab.index:
        return "."
    if len(rest) < len(chars) and "\n" not in vocab.index:
        return "[^" + escaped(rest) + "]"
    return "[" + escaped(chars) + "]"


def emit(items: Any, flags: int, letters: Letters, nested: bool = False) -> str:
    """The parse tree `items` of Python's re (re._parser) written in a syntax interegular reads as re does:
    character sets spelled out over the vocabulary, groups non-capturing, flags applied; SamplingError naming
    `match` for what has no automaton here, and for a lookahead `nested` in a group, alternative or repeat
    (interegular confines one there to the group, where re lets it see the rest of the name)."""
    _, _, codes = sre()
    out = []
    for op, av in items:
        name = str(op)
        if op in (codes.LITERAL, codes.NOT_LITERAL, codes.ANY, codes.IN):
            out.append(letters.leaf((op, av), flags))
        elif op is codes.BRANCH:
            out.append("(?:" + "|".join(emit(alt, flags, letters, True) for alt in av[1]) + ")")
        elif op is codes.SUBPATTERN:
            out.append("(?:" + emit(av[3], (flags | av[1]) & ~av[2], letters, True) + ")")
        elif op in (codes.MAX_REPEAT, codes.MIN_REPEAT):
            high = "" if av[1] == codes.MAXREPEAT else str(av[1])
            out.append("(?:" + emit(av[2], flags, letters, True) + f"){{{av[0]},{high}}}")
        elif op in (codes.ASSERT, codes.ASSERT_NOT) and av[0] == 1 and not nested:
            out.append(("(?=" if op is codes.ASSERT else "(?!") + emit(av[1], flags, letters, True) + ")")
        else:
            what = UNSUPPORTED.get(name, name)
            if op in (codes.ASSERT, codes.ASSERT_NOT):
                what = "lookbehinds" if av[0] != 1 else "a lookahead inside a group, alternative or repeat"
            raise SamplingError(f"match is not supported ({what})", "match")
    return "".join(out)


def regex(pattern: str, vocab: Vocab) -> Dfa:
    """The names `pattern` matches whole (re.fullmatch), over the vocabulary's characters, via interegular's DFA;
    SamplingError naming `match` when Python or interegular cannot compile it, or an automaton on the way passes
    MAX_REGEX_STATES states."""
    import interegular
    import interegular.fsm as fsm

    try:
        with warnings.catch_warnings():  # re's FutureWarnings (a possible nested set) are no error: not printed
            warnings.simplefilter("ignore")
            re.compile(pattern)
            canonical, alias = rewrite(pattern, vocab)
    except (re.error, RecursionError, OverflowError) as err:
        raise SamplingError(f"match is not a regular expression ({str(err)[:120]})", "match") from None
    if fsm.crawl is not bounded_crawl:
        fsm.crawl = bounded_crawl  # its FSM operations look crawl up as a module global
    CRAWL.limit, CRAWL.work, CRAWL.work_limit = MAX_REGEX_STATES, 0, MAX_REGEX_WORK
    try:
        machine = whole_name_fsm(interegular.parse_pattern(canonical))
    except SamplingError:
        raise
    except Exception as err:  # interegular raises Unsupported, InvalidSyntax and plain Exceptions
        raise SamplingError(f"match is not supported ({type(err).__name__}: {str(err)[:120]})", "match") from None
    finally:
        CRAWL.limit = CRAWL.work_limit = None
    return table(machine, vocab, alias)


def table(machine: Any, vocab: Vocab, alias: np.ndarray) -> Dfa:
    """interegular's automaton as a Dfa over the vocabulary: a table over its own symbols (a few), then one column
    per character gathered from it (the column of its representative, `alias`: see Letters); SamplingError naming
    `match` past the bounds before any work per character."""
    order = sorted(machine.states, key=lambda state: state != machine.initial)
    check_size(len(order), vocab.size, 1, "match")
    number = {state: ix for ix, state in enumerate(order)}
    symbols = {symbol: ix for ix, symbol in enumerate(sorted(set(machine.alphabet.by_transition), key=str))}
    small = np.full((len(order), len(symbols) + 1), DEAD, dtype=np.int32)  # the last column: a symbol not known
    for state in order:
        for symbol, target in machine.map.get(state, {}).items():
            if symbol in symbols:
                small[number[state], symbols[symbol]] = number[target]
    reps = np.unique(alias)
    column = {int(r): symbols.get(machine.alphabet[vocab.chars[r]], len(symbols)) for r in reps}
    columns = np.array([column[int(r)] for r in reps], dtype=np.int64)[np.searchsorted(reps, alias)]
    trans = np.full((len(order), vocab.size), DEAD, dtype=np.int32)
    trans[:, 1:] = small[:, columns]
    return Dfa(trans, np.array([state in machine.finals for state in order], dtype=bool))


def prune(dfa: Dfa, horizon: int) -> Dfa:
    """The automaton without the states that reach no accepting state within `horizon` characters (a request's
    max_len: no name of it goes through them), moves into them DEAD, renumbered with the start state still 0; a
    single rejecting state when the start state is among them. At most `horizon` passes over the table."""
    alive = dfa.accept.copy()
    for _ in range(horizon):
        nxt = alive | (np.where(dfa.trans >= 0, alive[np.maximum(dfa.trans, 0)], False)).any(axis=1)
        if (nxt == alive).all():
            break
        alive = nxt
    if not alive[0]:
        trans = np.full((1, dfa.trans.shape[1]), DEAD, dtype=np.int32)
        return Dfa(trans, np.zeros(1, dtype=bool))
    number = np.cumsum(alive) - 1
    trans = dfa.trans[alive]
    trans = np.where((trans >= 0) & alive[np.maximum(trans, 0)], number[np.maximum(trans, 0)], DEAD)
    return Dfa(trans.astype(np.int32), dfa.accept[alive])


def product(a: Dfa, b: Dfa, field: str, horizon: int) -> Dfa:
    """The names both accept: the states of the pair reachable from (0, 0), found breadth first (vectorised per
    level), pruned; SamplingError naming `field` past AUTOMATON_CELLS."""
    size = a.trans.shape[1]
    known = {0}
    pairs = [0]
    frontier = np.zeros(1, dtype=np.int64)
    rows: list[np.ndarray] = []  # each level's moves as pair keys (-1: dead), numbered once all pairs are known
    while frontier.size:
        na, nb = a.trans[frontier // b.states], b.trans[frontier % b.states]
        keys = np.where((na >= 0) & (nb >= 0), na.astype(np.int64) * b.states + nb, -1)
        fresh = [key for key in np.unique(keys[keys >= 0]).tolist() if key not in known]
        known.update(fresh)
        pairs.extend(fresh)
        check_size(len(pairs), size, horizon + 1, field)  # before pruning: its passes are bounded too
        rows.append(keys)
        frontier = np.array(fresh, dtype=np.int64)
    order = np.argsort(pairs)
    sorted_keys = np.array(pairs, dtype=np.int64)[order]
    raw = np.concatenate(rows)
    found = order[np.searchsorted(sorted_keys, np.maximum(raw, 0))]
    trans = np.where(raw >= 0, found, DEAD).astype(np.int32)
    keys = np.array(pairs, dtype=np.int64)
    accept = a.accept[keys // b.states] & b.accept[keys % b.states]
    return prune(Dfa(trans, accept), horizon)


class AutomatonTooBig(SamplingError):
    """Constraints whose automaton passes the size bounds (AUTOMATON_CELLS, AUTOMATON_WORK)."""


def check_size(states: int, size: int, lengths: int, field: str) -> None:
    """SamplingError naming `field` when an automaton of `states` states passes the bounds for this vocabulary
    and (max_len + 1) `lengths`."""
    if states * size > AUTOMATON_CELLS:
        bound = f"at most {AUTOMATON_CELLS:,} states x characters"
    elif states * lengths > AUTOMATON_CELLS:
        bound = f"at most {AUTOMATON_CELLS:,} states x (max_len + 1)"
    elif states * size * lengths > AUTOMATON_WORK:
        bound = f"at most {AUTOMATON_WORK:,} states x characters x (max_len + 1)"
    else:
        return
    raise AutomatonTooBig(
        f"the constraints make an automaton of {states:,}+ states, too big for this vocabulary and max_len ({bound}):"
        f" {field} is where it grew too big",
        field,
    )


def bounded_prune(dfa: Dfa, vocab: Vocab, max_len: int, field: str) -> Dfa:
    """prune(dfa, max_len), once its size is checked: its work is within the bounds (AUTOMATON_WORK)."""
    check_size(dfa.states, vocab.size, max_len + 1, field)
    return prune(dfa, max_len)


def component(field: str, options: SamplingOptions, vocab: Vocab, max_len: int) -> Dfa | None:
    """The automaton of one constraint field for names of at most `max_len` characters, or None when it is unset
    (min_len is the table's, not a DFA)."""
    value = getattr(options, field)
    if field in ("ends_with", "contains") and len(value) > max_len:
        raise SamplingError(f"{field} is longer ({len(value):,}) than max_len ({max_len:,})", field)
    if field in ("ends_with", "contains") and value:
        bad = sorted(set(value) - set(vocab.chars))
        if bad:
            raise SamplingError(f"{field} has characters outside the model's vocabulary: {''.join(bad)!r:.60}", field)
        return kmp(vocab.encode(value), vocab.size, absorbing=field == "contains")
    if field == "match" and value:
        return bounded_prune(regex(value, vocab), vocab, max_len, field)
    if field == "exclude" and value:
        return bounded_prune(trie(tuple(name for name in value if len(name) <= max_len), vocab), vocab, max_len, field)
    return None


@dataclass(frozen=True)
class Automaton:
    """A request's compiled constraints: moves [S + 1, V] (state S is dead and stays dead), accept [S + 1],
    live [max_len + 2, S + 1] (see the module's docstring), the state after the prefix and its length."""

    moves: np.ndarray
    accept: np.ndarray
    live: np.ndarray
    min_len: int
    start: int
    start_len: int

    def runner(self) -> Constraint:
        """A fresh per-chunk constraint over this automaton."""
        return Constraint(self)

    def walk(self, ids: list[int]) -> int:
        """The state after reading `ids` from the start."""
        state = 0
        for ix in ids:
            state = int(self.moves[state, ix])
        return state


def live_table(dfa: Dfa, min_len: int, max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """moves and accept padded with the dead state, and live[L, s] for L in 0 .. max_len + 1 (the last all False)."""
    dead = dfa.states
    moves = np.vstack([np.where(dfa.trans >= 0, dfa.trans, dead), np.full((1, dfa.trans.shape[1]), dead)])
    moves = moves.astype(np.int32)
    moves[:, BOUNDARY] = dead
    accept = np.append(dfa.accept, False)
    live = np.zeros((max_len + 2, dead + 1), dtype=bool)
    for length in range(max_len, -1, -1):
        ends = accept if length >= min_len else np.zeros_like(accept)
        live[length] = ends | live[length + 1][moves].any(axis=1)
    return moves, accept, live


def components(options: SamplingOptions, vocab: Vocab, max_len: int) -> list[tuple[str, Dfa]]:
    """The automaton of each constraint field set, in FIELDS order, each within the bounds."""
    parts = []
    for field in FIELDS:
        part = component(field, options, vocab, max_len)
        if part is not None:
            check_size(part.states, vocab.size, max_len + 1, field)
            parts.append((field, part))
    return parts


def compile_fields(options: SamplingOptions, vocab: Vocab, max_len: int, parts: list[tuple[str, Dfa]]) -> Automaton:
    """The automaton of the constraints `parts` (prefix, min_len and max_len always), unchecked."""
    dfa = universal(vocab.size)
    for field, part in parts:
        dfa = product(dfa, part, field, max_len)
        check_size(dfa.states, vocab.size, max_len + 1, field)
    min_len = max(1, options.min_len or 1)
    moves, accept, live = live_table(dfa, min_len, max_len)
    prefix = options.prefix_ids(vocab)
    automaton = Automaton(moves, accept, live, min_len, 0, len(prefix))
    return Automaton(moves, accept, live, min_len, automaton.walk(prefix), len(prefix))


def satisfiable(automaton: Automaton) -> bool:
    """Whether some name satisfies the automaton's constraints."""
    return bool(automaton.live[automaton.start_len, automaton.start])


CONSTRAINT_FIELDS = ("prefix", "min_len", "ends_with", "contains", "match", "exclude")  # what an automaton reads


def compile_constraints(options: SamplingOptions, vocab: Vocab, max_len: int) -> Automaton | None:
    """The request's automaton, or None when it sets no constraint beyond prefix and max_len (no mask: the names
    are those of the unconstrained loop). A request no name satisfies is a SamplingError naming the first field
    (in FIELDS order) whose addition leaves no name.

    The last automaton made is kept (one, at most AUTOMATON_CELLS states x characters): a server asked again and
    again for the same constraints, as `novel` with its training names is, compiles them once."""
    if not options.constrained:
        return None
    key = (tuple(getattr(options, name) for name in CONSTRAINT_FIELDS), vocab.chars, max_len)
    return LAST.get(key) or LAST.keep(key, _compile(options, vocab, max_len))


class LastAutomaton:
    """The last automaton compiled and its key (thread-safe; one at a time, so memory stays bounded)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last: tuple[tuple[Any, ...], Automaton] | None = None

    def get(self, key: tuple[Any, ...]) -> Automaton | None:
        with self.lock:
            last = self.last
        return last[1] if last is not None and last[0] == key else None

    def keep(self, key: tuple[Any, ...], automaton: Automaton) -> Automaton:
        with self.lock:
            self.last = (key, automaton)
        return automaton


LAST = LastAutomaton()


def _compile(options: SamplingOptions, vocab: Vocab, max_len: int) -> Automaton:
    """compile_constraints' work, uncached."""
    parts = components(options, vocab, max_len)
    automaton = compile_fields(options, vocab, max_len, parts)
    if satisfiable(automaton):
        return automaton
    for count in range(len(parts) + 1):
        if not satisfiable(compile_fields(options, vocab, max_len, parts[:count])):
            field = parts[count - 1][0] if count else "min_len" if (options.min_len or 1) > 1 else "prefix"
            what = describe(options, max_len)
            raise SamplingError(f"no name satisfies {field} with the constraints before it {what}", field)
    raise AssertionError("unsatisfiable automaton with satisfiable parts")  # pragma: no cover (the last is the whole)


def describe(options: SamplingOptions, max_len: int) -> str:
    """The request's constraints in words, for the refusal."""
    parts = [f"{max(1, options.min_len or 1)} to {max_len} characters"]
    for field in ("prefix", "ends_with", "contains", "match"):
        if getattr(options, field):
            parts.append(f"{field}={getattr(options, field)!r:.60}")
    if options.exclude:
        parts.append(f"exclude=({len(options.exclude):,} names)")
    return "(" + ", ".join(parts) + ")"


class Constraint:
    """The automaton's state of every running row of one chunk: what each may draw next (see Decoder: the same
    start / keep protocol, with `allowed` before each draw and `advance` after it)."""

    def __init__(self, automaton: Automaton) -> None:
        self.automaton = automaton
        self.states = np.zeros(0, dtype=np.int32)
        self.length = automaton.start_len

    def start(self, rows: int) -> None:
        """Begin `rows` names after the prefix."""
        self.states = np.full(rows, self.automaton.start, dtype=np.int32)
        self.length = self.automaton.start_len

    def allowed(self) -> np.ndarray:
        """bool [running rows, V]: the characters that keep each row live; column 0 (the boundary): it may end here."""
        auto = self.automaton
        allowed: np.ndarray = auto.live[self.length + 1][auto.moves[self.states]]
        allowed[:, BOUNDARY] = auto.accept[self.states] & (self.length >= auto.min_len)
        return allowed

    def advance(self, picks: np.ndarray) -> None:
        """Every running row takes its pick (a boundary leads to the dead state: the row is about to leave)."""
        self.states = self.automaton.moves[self.states, picks]
        self.length += 1

    def keep(self, rows: np.ndarray) -> None:
        """Keep the rows where the bool mask is true, or gather the rows of an int index array (beam search)."""
        self.states = self.states[rows]
