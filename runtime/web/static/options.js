// The page's inputs as sampling options, checked as runtime/options.py checks mm-gen's (one message per mistake).

import { SEED_MAX } from "./sampler.js";

const WHOLE = /^\d+$/;
const DECIMAL = /^\+?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function clip(text) {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}\u2026` : text);
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

/** The fields' texts -> {count, temperature, topK, topP, prefixIds, maxLen, seed}; an Error with one line otherwise.
 * Temperature 0 (greedy) only with `greedy: true` (the test hook): the page asks for a temperature above 0. */
export function parseOptions(fields, site) {
  const text = (name) => String(fields[name] ?? "").trim();
  const count = Number(whole("count", text("count"), 1, site.max_count));
  const greedy = fields.greedy === true && DECIMAL.test(text("temperature")) && Number(text("temperature")) === 0;
  const temperature = greedy ? 0 : decimal("temperature", text("temperature"), { low: 0, what: "a number above 0" });
  const topK = text("top_k") === "" ? null : Number(min(whole("top-k", text("top_k"), 1, null), 1n << 30n));
  const topP = text("top_p") === "" ? null : decimal("top-p", text("top_p"), { low: 0, high: 1, what: "a number in (0, 1]" });
  const prefix = Array.from(String(fields.prefix ?? ""));
  const vocab = Array.from(site.vocab);
  const bad = [...new Set(prefix.filter((ch) => !vocab.includes(ch)))].sort();
  if (bad.length) throw new Error(`prefix has characters outside the model's vocabulary: ${clip(bad.join(""))}`);
  if (prefix.length > site.max_len) throw new Error(`prefix is longer (${prefix.length}) than max_len (${site.max_len})`);
  const seed = text("seed") === "" ? randomSeed() : whole("seed", text("seed"), 0, SEED_MAX);
  const prefixIds = prefix.map((ch) => vocab.indexOf(ch) + 1);
  return { count, temperature, topK, topP, prefixIds, maxLen: site.max_len, seed };
}
