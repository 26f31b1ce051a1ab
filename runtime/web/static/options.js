// The page's inputs as sampling options, checked against the bounds mm-gen uses (data/bounds.py, written into the
// site's JSON as `site.bounds`: no copy of them here), one message per mistake.

const WHOLE = /^\d+$/;
const DECIMAL = /^\+?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

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

/** The fields' texts -> {count, temperature, topK, topP, prefixIds, maxLen, seed}; an Error with one line otherwise.
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
  const prefix = Array.from(String(fields.prefix ?? ""));
  const vocab = Array.from(site.vocab);
  const bad = [...new Set(prefix.filter((ch) => !vocab.includes(ch)))].sort();
  if (bad.length) throw new Error(`prefix has characters outside the model's vocabulary: ${clip(bad.join(""))}`);
  if (prefix.length > site.max_len) throw new Error(`prefix is longer (${prefix.length}) than max_len (${site.max_len})`);
  const seed = text("seed") === "" ? randomSeed() : whole("seed", text("seed"), end(bounds.seed.low), end(bounds.seed.high));
  const prefixIds = prefix.map((ch) => vocab.indexOf(ch) + 1);
  return { count, temperature, topK, topP, prefixIds, maxLen: site.max_len, seed };
}
