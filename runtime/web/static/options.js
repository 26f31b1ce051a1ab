// The page's inputs as sampling options, checked against the bounds mm-gen uses (data/bounds.py, written into the
// site's JSON as `site.bounds`: no copy of them here), one message per mistake.

import { byCodePoint, pyRepr } from "./constraints.js";

const WHOLE = /^\d+$/;
const DECIMAL = /^\+?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
// Python's str.strip() whitespace (str.isspace, as data/reader.py strips a line), which JavaScript's trim() is not.
const SPACE = "\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_SPACE = new RegExp(`^[${SPACE}]+|[${SPACE}]+$`, "g");

function clip(text) {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}\u2026` : text);
}

/** A bound's end as a BigInt (a seed's high end comes as a string of digits: it is beyond 2**53), or null. */
function end(value) {
  return value === null || value === undefined ? null : BigInt(String(value));
}

function whole(name, text, low, high) {
  const value = WHOLE.test(text) ? BigInt(text) : null;
  if (value === null || value < BigInt(low) || (high !== null && value > BigInt(high))) {
    const range = high === null ? `of at least ${low}` : `from ${low} to ${high.toLocaleString("en-US")}`;
    throw new Error(`${name} must be a whole number ${range}, got ${clip(text)}`);
  }
  return value;
}

function decimal(name, text, { low, high = null, what }) {
  const value = DECIMAL.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(value) || value <= low || (high !== null && value > high)) {
    throw new Error(`${name} must be ${what}, got ${clip(text)}`);
  }
  return value;
}

const min = (a, b) => (a < b ? a : b);

/** A random seed of 64 bits (what mm-gen picks when no --seed is given). */
export function randomSeed() {
  const words = crypto.getRandomValues(new Uint32Array(2));
  return (BigInt(words[1]) << 32n) | BigInt(words[0]);
}

/** A text field's length within its bound (as SamplingOptions: "the length of ends_with must be in [0, N]"). */
function bounded(name, value, bound, what = "length") {
  const size = what === "length" ? Array.from(value).length : value.length;
  if (size > bound.high) {
    throw new Error(`the ${what} of ${name} must be in [${bound.low}, ${bound.high.toLocaleString("en-US")}], got ${size}`);
  }
  return value;
}

/** The exclude text: one name a line, stripped, blank lines dropped; distinct and sorted (as mm-gen --exclude). */
function excludeNames(textValue, site) {
  const names = String(textValue ?? "")
    .split("\n")
    .map((line) => line.replace(PY_SPACE, ""))
    .filter((line) => line !== "");
  bounded("exclude", names, site.bounds.exclude, "number");
  return [...new Set(names)].sort(byCodePoint);
}

/** The exclude names' characters in all, at most the site's exclude_chars (check_exclude, after the other fields). */
function excludeChars(names, site) {
  const total = names.reduce((sum, name) => sum + Array.from(name).length, 0);
  const most = site.limits.exclude_chars;
  if (total > most) {
    throw new Error(`exclude must hold at most ${most.toLocaleString("en-US")} characters in all, got ${total.toLocaleString("en-US")}`);
  }
}

/** The label field (its text as is: "" is any label, drawn per name) -> the label's index among the model's labels,
 * or null; the messages of label_index in runtime/options.py for an unknown label or a label without labels. */
export function parseLabel(value, site) {
  const label = String(value ?? "");
  if (label === "") return null;
  const bound = site.bounds.label;
  if (Array.from(label).length > bound.high) {
    throw new Error(`the length of label must be in [${bound.low}, ${bound.high}], got ${Array.from(label).length}`);
  }
  if (!site.labels) throw new Error(`label ${pyRepr(label, 40)} given, but this model has no labels (it is not conditional)`);
  const names = site.labels.names;
  const index = names.indexOf(label);
  if (index < 0) {
    const known = names.slice(0, 10).join(", ") + (names.length > 10 ? ", ..." : "");
    throw new Error(`unknown label ${pyRepr(label, 40)}: this model's labels are ${Array.from(known).slice(0, 200).join("")}`);
  }
  return index;
}

/** The fields' texts -> {count, temperature, topK, topP, prefix, prefixIds, maxLen, seed, constraints, label (an
 * index, or null: drawn per name)}; an Error with one line otherwise, checked in mm-gen's order (SamplingOptions'
 * fields in turn, then what they ask of the model: SamplingOptions.for_model), so that a request with two mistakes
 * gets mm-gen's message.
 * Temperature 0 (greedy) only with `greedy: true` (the test hook): the page asks for a temperature above 0. */
export function parseOptions(fields, site) {
  const bounds = site.bounds;
  const text = (name) => String(fields[name] ?? "").trim();
  const count = Number(whole("count", text("count"), end(bounds.count.low), end(bounds.count.high)));
  const greedy = fields.greedy === true && DECIMAL.test(text("temperature")) && Number(text("temperature")) === 0;
  const low = bounds.temperature.low; // the page asks for more than the low end (0 is greedy: the test hook)
  const temperature = greedy ? 0 : decimal("temperature", text("temperature"), { low, what: `a number above ${low}` });
  const k = bounds.top_k;
  const topK = text("top_k") === "" ? null : Number(min(whole("top-k", text("top_k"), end(k.low), end(k.high)), 1n << 30n));
  const p = bounds.top_p;
  const topP = text("top_p") === "" ? null : decimal("top-p", text("top_p"), { low: p.low, high: p.high, what: `a number in (${p.low}, ${p.high}]` });
  const prefix = Array.from(bounded("prefix", String(fields.prefix ?? ""), bounds.prefix));
  const m = bounds.max_len;
  const asked = text("max_len") === "" ? null : Number(whole("max_len", text("max_len"), end(m.low), end(m.high)));
  const seed = text("seed") === "" ? randomSeed() : whole("seed", text("seed"), end(bounds.seed.low), end(bounds.seed.high));
  const n = bounds.min_len;
  const minLen = text("min_len") === "" ? null : Number(whole("min_len", text("min_len"), end(n.low), end(n.high)));
  const endsWith = bounded("ends_with", String(fields.ends_with ?? ""), bounds.ends_with);
  const contains = bounded("contains", String(fields.contains ?? ""), bounds.contains);
  const exclude = excludeNames(fields.exclude, site);
  const label = String(fields.label ?? "");
  if (Array.from(label).length > bounds.label.high) parseLabel(label, site); // its length's message, in its turn
  lengthsAgree(prefix, minLen, asked);
  excludeChars(exclude, site);
  // what the options ask of the model (for_model): the prefix's characters, the longest name, the label
  const vocab = Array.from(site.vocab);
  const bad = [...new Set(prefix.filter((ch) => !vocab.includes(ch)))].sort(byCodePoint);
  if (bad.length) throw new Error(`prefix has characters outside the model's vocabulary: ${pyRepr(bad.join(""), 60)}`);
  const maxLen = asked === null ? site.max_len : asked;
  if (maxLen > site.longest_name) {
    throw new Error(`max_len must be at most ${site.longest_name.toLocaleString("en-US")} for this model, got ${maxLen}`);
  }
  lengthsAgree(prefix, minLen, maxLen);
  const prefixIds = prefix.map((ch) => vocab.indexOf(ch) + 1);
  const constraints = { min_len: minLen, ends_with: endsWith, contains, exclude };
  return { count, temperature, topK, topP, prefix: prefix.join(""), prefixIds, maxLen, seed, constraints, label: parseLabel(label, site) };
}

/** SamplingOptions' checks of a prefix and min_len against max_len (none while max_len is not given). */
function lengthsAgree(prefix, minLen, maxLen) {
  if (maxLen === null) return;
  if (prefix.length > maxLen) throw new Error(`prefix is longer (${prefix.length}) than max_len (${maxLen})`);
  if (minLen !== null && minLen > maxLen) throw new Error(`min_len (${minLen}) is above max_len (${maxLen})`);
}
