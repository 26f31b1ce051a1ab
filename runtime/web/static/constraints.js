// Exact constraints by masked decoding, as runtime/constraints.py: one automaton per request (the product of
// ends_with and contains as KMP automata and exclude as a trie, pruned), its table of live states
// live[L, s] = "a name of L characters in state s can still end accepted within [min_len, max_len]", and the
// mask of what every running row may draw next. The same masks as Python for the same request (the regular
// expression `match` is not supported here). The size bounds come from the site's JSON (site.limits).

const BOUNDARY = 0;
const DEAD = -1;
const FIELDS = ["min_len", "ends_with", "contains", "exclude"]; // the order constraints join the automaton (Python's)

/** An error naming the field at fault (SamplingError). */
export class ConstraintError extends Error {
  constructor(message, field) {
    super(message);
    this.field = field;
  }
}

const number = (n) => n.toLocaleString("en-US");

// What Python's str.isprintable() rejects (its repr escapes them): controls, formats, surrogates, private use,
// unassigned, and every separator but the space.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** Python's repr() of a string, cut to `width` characters (f"{text!r:.60}"). */
export function pyRepr(text, width = 60) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  const escapes = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", [quote]: `\\${quote}` };
  const body = Array.from(text, (ch) => {
    if (escapes[ch]) return escapes[ch];
    if (ch === " " || !UNPRINTABLE.test(ch)) return ch;
    const hex = ch.codePointAt(0).toString(16);
    return hex.length <= 2 ? `\\x${hex.padStart(2, "0")}` : hex.length <= 4 ? `\\u${hex.padStart(4, "0")}` : `\\U${hex.padStart(8, "0")}`;
  }).join("");
  return Array.from(`${quote}${body}${quote}`).slice(0, width).join("");
}

/** Python's order of strings (by code point; JavaScript's sort() goes by UTF-16 unit: 😀 before ！). */
export function byCodePoint(a, b) {
  const x = Array.from(a, (ch) => ch.codePointAt(0));
  const y = Array.from(b, (ch) => ch.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** A deterministic automaton: trans Int32Array [S * V] (DEAD: no move; column 0 always DEAD), accept Uint8Array [S]. */
function dfa(trans, accept, V) {
  return { trans, accept, V, states: accept.length };
}

/** The error naming `field` when an automaton of `states` states passes the site's bounds (check_size). */
export function checkSize(states, V, lengths, field, limits) {
  let bound;
  if (states * V > limits.automaton_cells) bound = `at most ${number(limits.automaton_cells)} states x characters`;
  else if (states * lengths > limits.automaton_cells) bound = `at most ${number(limits.automaton_cells)} states x (max_len + 1)`;
  else if (states * V * lengths > limits.automaton_work) {
    bound = `at most ${number(limits.automaton_work)} states x characters x (max_len + 1)`;
  } else return;
  throw new ConstraintError(
    `the constraints make an automaton of ${number(states)}+ states, too big for this vocabulary and max_len (${bound}):` +
      ` ${field} is where it grew too big`,
    field,
  );
}

function universal(V) {
  const trans = new Int32Array(V).fill(0);
  trans[BOUNDARY] = DEAD;
  return dfa(trans, Uint8Array.of(1), V);
}

/** The names ending with `ids` (absorbing false) or containing them (true): KMP's automaton. */
function kmp(ids, V, absorbing) {
  const m = ids.length;
  const trans = new Int32Array((m + 1) * V);
  trans[ids[0]] = 1;
  let fallback = 0;
  for (let j = 1; j <= m; j++) {
    trans.copyWithin(j * V, fallback * V, (fallback + 1) * V);
    if (j < m) {
      trans[j * V + ids[j]] = j + 1;
      fallback = trans[fallback * V + ids[j]];
    }
  }
  if (absorbing) trans.fill(m, m * V, (m + 1) * V);
  for (let s = 0; s <= m; s++) trans[s * V + BOUNDARY] = DEAD;
  const accept = new Uint8Array(m + 1);
  accept[m] = 1;
  return dfa(trans, accept, V);
}

/** The names NOT in `names`: a trie of them, and one last state for every text off the trie. */
function trie(names, index, V, limits) {
  const children = [new Map()];
  const ends = [0];
  for (const name of names) {
    const chars = Array.from(name);
    if (chars.length === 0 || chars.some((ch) => !index.has(ch))) continue;
    let node = 0;
    for (const ch of chars) {
      const ix = index.get(ch);
      let next = children[node].get(ix);
      if (next === undefined) {
        next = children.length;
        children[node].set(ix, next);
        children.push(new Map());
        ends.push(0);
      }
      node = next;
    }
    ends[node] = 1;
  }
  const off = children.length;
  checkSize(off + 1, V, 1, "exclude", limits);
  const trans = new Int32Array((off + 1) * V).fill(off);
  children.forEach((kids, node) => kids.forEach((next, ix) => (trans[node * V + ix] = next)));
  for (let s = 0; s <= off; s++) trans[s * V + BOUNDARY] = DEAD;
  const accept = Uint8Array.from([...ends, 0], (end) => 1 - end); // the state off the trie accepts
  return dfa(trans, accept, V);
}

/** The automaton without the states that reach no accepting state, renumbered (start still 0). */
function prune(a) {
  const { V, states } = a;
  const alive = Uint8Array.from(a.accept);
  for (let changed = true; changed; ) {
    changed = false;
    for (let s = states - 1; s >= 0; s--) {
      if (alive[s]) continue;
      for (let c = 0; c < V; c++) {
        const t = a.trans[s * V + c];
        if (t >= 0 && alive[t]) {
          alive[s] = 1;
          changed = true;
          break;
        }
      }
    }
  }
  if (!alive[0]) return dfa(new Int32Array(V).fill(DEAD), new Uint8Array(1), V);
  const renumber = new Int32Array(states).fill(DEAD);
  let count = 0;
  for (let s = 0; s < states; s++) if (alive[s]) renumber[s] = count++;
  const trans = new Int32Array(count * V);
  const accept = new Uint8Array(count);
  for (let s = 0; s < states; s++) {
    if (!alive[s]) continue;
    const row = renumber[s];
    accept[row] = a.accept[s];
    for (let c = 0; c < V; c++) {
      const t = a.trans[s * V + c];
      trans[row * V + c] = t >= 0 && alive[t] ? renumber[t] : DEAD;
    }
  }
  return dfa(trans, accept, V);
}

/** The names both accept: the pairs reachable from (0, 0), breadth first (each level's new pairs in key order). */
function product(a, b, field, limits) {
  const V = a.V;
  const index = new Map([[0, 0]]);
  const pairs = [0];
  const rows = [];
  let frontier = [0];
  while (frontier.length) {
    const fresh = new Set();
    for (const key of frontier) {
      const [sa, sb] = [Math.floor(key / b.states), key % b.states];
      const row = new Float64Array(V);
      for (let c = 0; c < V; c++) {
        const [ta, tb] = [a.trans[sa * V + c], b.trans[sb * V + c]];
        row[c] = ta >= 0 && tb >= 0 ? ta * b.states + tb : -1;
        if (row[c] >= 0 && !index.has(row[c])) fresh.add(row[c]);
      }
      rows.push(row);
    }
    frontier = [...fresh].sort((x, y) => x - y);
    for (const key of frontier) index.set(key, pairs.push(key) - 1);
    checkSize(pairs.length, V, 1, field, limits);
  }
  const trans = new Int32Array(pairs.length * V);
  rows.forEach((row, s) => row.forEach((key, c) => (trans[s * V + c] = key >= 0 ? index.get(key) : DEAD)));
  const accept = Uint8Array.from(pairs, (key) => a.accept[Math.floor(key / b.states)] & b.accept[key % b.states]);
  return prune(dfa(trans, accept, V));
}

/** The automaton of one constraint field, or null when it is unset (min_len is the table's, not a DFA). */
function component(field, request, index, V, limits, maxLen) {
  const value = request[field];
  if ((field === "ends_with" || field === "contains") && value && Array.from(value).length > maxLen) {
    throw new ConstraintError(`${field} is longer (${number(Array.from(value).length)}) than max_len (${number(maxLen)})`, field);
  }
  if ((field === "ends_with" || field === "contains") && value) {
    const bad = [...new Set(Array.from(value).filter((ch) => !index.has(ch)))].sort(byCodePoint);
    if (bad.length) {
      throw new ConstraintError(`${field} has characters outside the model's vocabulary: ${pyRepr(bad.join(""))}`, field);
    }
    return kmp(Array.from(value, (ch) => index.get(ch)), V, field === "contains");
  }
  if (field === "exclude" && value && value.length) {
    const drawable = value.filter((name) => Array.from(name).length <= maxLen); // longer names are never drawn
    const whole = trie(drawable, index, V, limits);
    checkSize(whole.states, V, maxLen + 1, field, limits); // checked before pruning, as Python's bounded_prune
    return prune(whole);
  }
  return null;
}

/** moves and accept padded with the dead state, and live [(maxLen + 2) * (S + 1)] (the last length all false). */
function liveTable(a, minLen, maxLen) {
  const { V } = a;
  const dead = a.states;
  const S = dead + 1;
  const moves = new Int32Array(S * V).fill(dead);
  for (let s = 0; s < dead; s++) {
    for (let c = 1; c < V; c++) moves[s * V + c] = a.trans[s * V + c] >= 0 ? a.trans[s * V + c] : dead;
  }
  const accept = new Uint8Array(S);
  accept.set(a.accept);
  const live = new Uint8Array((maxLen + 2) * S);
  for (let length = maxLen; length >= 0; length--) {
    const next = length + 1;
    for (let s = 0; s < S; s++) {
      let ok = length >= minLen && accept[s] === 1;
      for (let c = 0; c < V && !ok; c++) ok = live[next * S + moves[s * V + c]] === 1;
      live[length * S + s] = ok ? 1 : 0;
    }
  }
  return { moves, accept, live, S, V };
}

/** The automaton of the constraints `parts` (prefix, min_len and max_len always). */
function compileFields(request, V, maxLen, parts, limits) {
  let a = universal(V);
  for (const [field, part] of parts) {
    a = product(a, part, field, limits);
    checkSize(a.states, V, maxLen + 1, field, limits);
  }
  const minLen = Math.max(1, request.min_len || 1);
  const table = liveTable(a, minLen, maxLen);
  let start = 0;
  for (const ix of request.prefixIds) start = table.moves[start * V + ix];
  return { ...table, minLen, start, startLen: request.prefixIds.length };
}

const satisfiable = (auto) => auto.live[auto.startLen * auto.S + auto.start] === 1;

/** Whether a request sets a constraint beyond prefix and max_len (the loop then masks characters). */
export function constrained(request) {
  return Boolean(request.min_len || request.ends_with || request.contains || (request.exclude && request.exclude.length));
}

/** The request's constraints in words, for the refusal (describe). */
function describe(request, maxLen) {
  const parts = [`${Math.max(1, request.min_len || 1)} to ${maxLen} characters`];
  for (const field of ["prefix", "ends_with", "contains"]) {
    if (request[field]) parts.push(`${field}=${pyRepr(request[field])}`);
  }
  if (request.exclude && request.exclude.length) parts.push(`exclude=(${number(request.exclude.length)} names)`);
  return `(${parts.join(", ")})`;
}

/** The request's automaton, or null when it sets no constraint (no mask). `request`: {min_len, ends_with, contains,
 * exclude (distinct names), prefix, prefixIds}; `vocab`: the model's characters; `limits`: site.limits. A request no
 * name satisfies is a ConstraintError naming the first field (in Python's order) whose addition leaves no name. */
export function compileConstraints(request, vocab, maxLen, limits) {
  if (!constrained(request)) return null;
  const chars = Array.from(vocab);
  const V = chars.length + 1;
  const index = new Map(chars.map((ch, i) => [ch, i + 1]));
  const parts = [];
  for (const field of FIELDS) {
    const part = component(field, request, index, V, limits, maxLen);
    if (part !== null) {
      checkSize(part.states, V, maxLen + 1, field, limits);
      parts.push([field, part]);
    }
  }
  const auto = compileFields(request, V, maxLen, parts, limits);
  if (satisfiable(auto)) return auto;
  for (let count = 0; count <= parts.length; count++) {
    if (!satisfiable(compileFields(request, V, maxLen, parts.slice(0, count), limits))) {
      const field = count ? parts[count - 1][0] : (request.min_len || 1) > 1 ? "min_len" : "prefix";
      throw new ConstraintError(
        `no name satisfies ${field} with the constraints before it ${describe(request, maxLen)}`,
        field,
      );
    }
  }
  throw new Error("unsatisfiable automaton with satisfiable parts");
}

/** The automaton's state of every running row of one chunk (Constraint): allowed() before a draw, advance() after. */
export class Constraint {
  constructor(auto, rows) {
    this.auto = auto;
    this.states = new Int32Array(rows).fill(auto.start);
    this.length = auto.startLen;
  }

  /** Uint8Array [rows * V]: the characters that keep each row live; column 0 (the boundary): it may end here. */
  allowed() {
    const { moves, accept, live, S, V, minLen } = this.auto;
    const rows = this.states.length;
    const mask = new Uint8Array(rows * V);
    const next = (this.length + 1) * S;
    for (let r = 0; r < rows; r++) {
      const s = this.states[r];
      for (let c = 1; c < V; c++) mask[r * V + c] = live[next + moves[s * V + c]];
      mask[r * V + BOUNDARY] = accept[s] && this.length >= minLen ? 1 : 0;
    }
    return mask;
  }

  /** Every running row takes its pick; then only the rows where `running[i]` holds stay. */
  advance(picks, running) {
    const { moves, V } = this.auto;
    const states = [];
    picks.forEach((pick, i) => running[i] && states.push(moves[this.states[i] * V + pick]));
    this.states = Int32Array.from(states);
    this.length += 1;
  }
}
