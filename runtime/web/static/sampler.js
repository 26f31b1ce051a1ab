// The runtime's sampling loop in JavaScript (runtime/sampling.py and runtime/options.py), with no ONNX in it:
// the same float32 arithmetic, the same inverse-CDF draw, the same seeding (pcg64.js), so the same names as
// mm-gen for the same seed wherever the logits agree to the last bits.

import { compileConstraints, Constraint } from "./constraints.js";
import { ChunkDraws, chunkLabels } from "./pcg64.js";

export const BOUNDARY = 0;
export const SEED_MAX = (1n << 64n) - 1n;
const FLOAT32_MAX = 3.4028234663852886e38;
const bits = new DataView(new ArrayBuffer(4));

/** The float32 next to the positive float32 `x`, towards 0 (numpy.nextafter(x, 0) in float32). */
export function float32Below(x) {
  bits.setFloat32(0, x);
  bits.setUint32(0, bits.getUint32(0) - 1);
  return bits.getFloat32(0);
}

function rowMax(z) {
  let max = -Infinity;
  for (const value of z) if (value > max) max = value;
  return max;
}

/** Cut the weights of row `w` (Float32Array, max 1) outside the smallest set of likeliest characters of mass topP. */
function keepNucleus(w, topP, ranked) {
  let total = 0;
  for (const value of w) total = Math.fround(total + value);
  const probs = w.map((value) => value / total); // a Float32Array: each quotient rounded to float32
  // likeliest first by logit (`ranked`: -Infinity for the dropped), ties by index (a stable sort)
  const order = Array.from(probs.keys()).sort((a, b) => ranked[b] - ranked[a] || a - b);
  const bound = Math.fround(topP);
  let mass = 0;
  order.forEach((ix, rank) => {
    mass = Math.fround(mass + probs[ix]);
    if (rank > 0 && Math.fround(mass - probs[ix]) >= bound) w[ix] = 0;
  });
}

/** Set the characters of row `r` that `allowed` (Uint8Array [rows * V], or null) forbids to -Infinity. */
function mask(z, allowed, r, V) {
  if (allowed === null) return;
  for (let i = 0; i < V; i++) if (!allowed[r * V + i]) z[i] = -Infinity;
}

/** Logits [rows * V] (row-major) -> unnormalised float32 weights [rows * V] (each row's max is 1), as
 * next_token_weights in runtime/sampling.py. Temperature 0 is greedy: exactly top_k = 1. `allowed` (a constraint's
 * mask) sets the other characters to -Infinity first: temperature, top-k and top-p act on the allowed ones alone. */
export function nextTokenWeights(logits, rows, V, options = {}) {
  let { temperature = 1, topK = null } = options;
  const { topP = null, forbidBoundary = false, allowed = null } = options;
  if (temperature === 0) [temperature, topK] = [1, 1];
  const weights = new Float32Array(rows * V);
  const sorted = new Float32Array(V);
  const ranked = new Float32Array(V); // each row's logits: what top-k and top-p rank by (next_token_weights)
  for (let r = 0; r < rows; r++) {
    const z = weights.subarray(r * V, (r + 1) * V);
    z.set(logits.subarray(r * V, (r + 1) * V));
    mask(z, allowed, r, V);
    ranked.set(z);
    if (temperature !== 1) {
      const max = rowMax(z); // the gaps to the max, scaled in float64: a tiny temperature gives 0 and -inf
      for (let i = 0; i < V; i++) z[i] = Math.max(Math.fround(z[i] - max) / temperature, -FLOAT32_MAX);
      mask(z, allowed, r, V);
    }
    if (forbidBoundary) z[BOUNDARY] = ranked[BOUNDARY] = -Infinity;
    if (topK !== null && topK < V) {
      sorted.set(ranked);
      sorted.sort();
      const kth = sorted[V - topK];
      for (let i = 0; i < V; i++) if (ranked[i] < kth) z[i] = ranked[i] = -Infinity;
    }
    const max = rowMax(z);
    for (let i = 0; i < V; i++) z[i] = Math.exp(Math.fround(z[i] - max));
    if (topP !== null && topP < 1) keepNucleus(z, topP, ranked);
  }
  return weights;
}

/** Inverse-CDF draw: for each row, the first index whose float32 cumulative weight exceeds u * total (the
 * threshold kept strictly below the total, so a character of zero weight is never drawn). */
export function draw(weights, rows, V, uniforms) {
  const picks = new Int32Array(rows);
  const cdf = new Float32Array(V);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let i = 0; i < V; i++) cdf[i] = sum = Math.fround(sum + weights[r * V + i]);
    const total = cdf[V - 1];
    const threshold = Math.min(Math.fround(uniforms[r] * total), float32Below(total));
    let count = 0;
    for (let i = 0; i < V; i++) if (cdf[i] <= threshold) count++;
    picks[r] = count;
  }
  return picks;
}

/** Keep the slices of a row-major tensor `data` of shape `dims` where `running[i]` holds along axis `axis`. */
export function compress(data, dims, axis, running) {
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const kept = running.reduce((n, keep) => n + (keep ? 1 : 0), 0);
  const out = new data.constructor(outer * kept * inner);
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (let b = 0; b < dims[axis]; b++) {
      if (!running[b]) continue;
      const start = (o * dims[axis] + b) * inner;
      out.set(data.subarray(start, start + inner), at);
      at += inner;
    }
  }
  const newDims = dims.slice();
  newDims[axis] = kept;
  return { data: out, dims: newDims };
}

/** A tensor of one row along axis `axis`, that row twice (a step call of one row runs as two: one_row_as_two). */
export function twice(data, dims, axis) {
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1) * dims[axis];
  const out = new data.constructor(outer * inner * 2);
  for (let o = 0; o < outer; o++) {
    const slice = data.subarray(o * inner, (o + 1) * inner);
    out.set(slice, 2 * o * inner);
    out.set(slice, (2 * o + 1) * inner);
  }
  const newDims = dims.slice();
  newDims[axis] = 2 * dims[axis];
  return { data: out, dims: newDims };
}

function tile(ids, rows) {
  const out = new BigInt64Array(rows * ids.length);
  for (let r = 0; r < rows; r++) ids.forEach((id, i) => (out[r * ids.length + i] = BigInt(id)));
  return out;
}

/** A conditional model's label index of every running row (BigInt64Array), fed with each call; null: no label
 * (RowLabels in runtime/sampling.py). */
export class RowLabels {
  constructor(label = null) {
    this.label = label;
  }

  /** Keep the labels of the rows where `running[i]` holds, in order. */
  keep(running) {
    if (this.label !== null) this.label = compress(this.label, [this.label.length], 0, running).data;
  }
}

/** The window contract: the state is the last blockSize characters of every row (and a conditional model's label
 * of every row); logitsFn(context, rows, label) where label is a BigInt64Array [rows] or null. */
export class WindowDecoder {
  constructor(logitsFn, blockSize, label = null) {
    this.logitsFn = logitsFn;
    this.block = blockSize;
    this.context = new BigInt64Array(0);
    this.rows = 0;
    this.labels = new RowLabels(label);
  }

  start(prefixIds, rows) {
    const window = [...new Array(this.block).fill(BOUNDARY), ...prefixIds].slice(-this.block);
    this.context = tile(window, rows);
    this.rows = rows;
    return this.logitsFn(this.context, rows, this.labels.label);
  }

  keep(running) {
    const kept = compress(this.context, [this.rows, this.block], 0, running);
    [this.context, this.rows] = [kept.data, kept.dims[0]];
    this.labels.keep(running);
  }

  step(tokens) {
    const next = new BigInt64Array(this.rows * this.block);
    for (let r = 0; r < this.rows; r++) {
      next.set(this.context.subarray(r * this.block + 1, (r + 1) * this.block), r * this.block);
      next[(r + 1) * this.block - 1] = BigInt(tokens[r]);
    }
    this.context = next;
    return this.logitsFn(this.context, this.rows, this.labels.label);
  }
}

/** The start state of `rows` sequences: zeros, past = 0 (empty_state in contract/signature.py). */
export function emptyState(tensors, rows) {
  return tensors.map((t) => {
    const dims = t.shape.map((d) => (d === "batch" ? rows : d === "past" ? 0 : d));
    return { data: new Float32Array(dims.reduce((a, b) => a * b, 1)), dims };
  });
}

/** The step contract: the state is the model's own (a cache or a hidden state), `tensors` as the metadata
 * describes them (and a conditional model's label of every row); stepFn(tokens, rows, steps, state, label) ->
 * {logits [rows * steps * V], state [{data, dims}]}, label a BigInt64Array [rows] or null. */
export class StepDecoder {
  constructor(stepFn, tensors, V, label = null) {
    this.stepFn = stepFn;
    this.tensors = tensors;
    this.V = V;
    this.state = [];
    this.labels = new RowLabels(label);
  }

  /** Feed tokens [rows * steps]; the logits of the character after each row's last token. */
  async run(tokens, rows, steps, state) {
    const result = await this.stepFn(tokens, rows, steps, state, this.labels.label);
    this.state = result.state;
    const last = new Float32Array(rows * this.V);
    for (let r = 0; r < rows; r++) {
      const start = (r * steps + steps - 1) * this.V;
      last.set(result.logits.subarray(start, start + this.V), r * this.V);
    }
    return last;
  }

  start(prefixIds, rows) {
    return this.run(tile([BOUNDARY, ...prefixIds], rows), rows, prefixIds.length + 1, emptyState(this.tensors, rows));
  }

  keep(running) {
    this.state = this.state.map((s, i) => compress(s.data, s.dims, this.tensors[i].shape.indexOf("batch"), running));
    this.labels.keep(running);
  }

  step(tokens) {
    return this.run(BigInt64Array.from(tokens, (t) => BigInt(t)), tokens.length, 1, this.state);
  }
}

const SLICE_MS = 50; // the longest the sampling loop holds the tab before it lets the page draw and answer input

/** A clock of when the sampling loop last let the browser run: one per request. */
export function newClock() {
  return { last: performance.now() };
}

/** Let the browser run (draw, take a click or a key) when the loop has held it SLICE_MS since it last did: one task
 * through a MessageChannel (a timer of 0 ms is held 4 ms once nested, 6.5% of a long request); the names do not
 * depend on it. */
async function breathe(clock) {
  if (performance.now() - clock.last < SLICE_MS) return;
  await new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
  clock.last = performance.now();
}

/** Sample the rows of `draws` together (sample_chunk): each row's character indices after the prefix's.
 * `automaton` (the request's constraints, constraints.js, or null) masks each row's characters before every draw;
 * `clock` (newClock: the request's) says when the loop last let the browser run. */
export async function sampleChunk(decoder, draws, prefixIds, maxLen, V, options, automaton = null, clock = newClock()) {
  const rows = draws.rows;
  const ids = Array.from({ length: rows }, () => [...prefixIds]);
  let active = Array.from({ length: rows }, (_, r) => r);
  let tokens = null;
  const constraint = automaton === null ? null : new Constraint(automaton, rows);
  for (let pos = prefixIds.length; pos < maxLen && active.length > 0; pos++) {
    await breathe(clock);
    const uniforms = draws.next();
    const logits = tokens === null ? await decoder.start(prefixIds, rows) : await decoder.step(tokens);
    const allowed = constraint === null ? null : constraint.allowed();
    const weights = nextTokenWeights(logits, active.length, V, { ...options, forbidBoundary: pos === 0, allowed });
    const picks = draw(weights, active.length, V, Float64Array.from(active, (r) => uniforms[r]));
    const running = Array.from(picks, (pick) => pick !== BOUNDARY);
    picks.forEach((pick, i) => pick !== BOUNDARY && ids[active[i]].push(pick));
    decoder.keep(running);
    if (constraint !== null) constraint.advance(picks, running);
    tokens = Array.from(picks).filter((pick) => pick !== BOUNDARY);
    active = active.filter((_, i) => running[i]);
  }
  return ids;
}

/** Each row's label index of rows [0, rows) of chunk `index` (BigInt64Array), or null for an unlabelled model
 * (row_labels in runtime/sampling.py): options.label (an index) on every row, or drawn per name from the training
 * counts on the chunk's label stream (pcg64.js chunkLabels). */
export function rowLabels(site, options, index, rows) {
  if (!site.labels) return null;
  if (options.label !== null && options.label !== undefined) return new BigInt64Array(rows).fill(BigInt(options.label));
  return chunkLabels(options.seed, index, 0, rows, site.labels.counts);
}

/** Names [0, n) of a request: chunks of chunkSize rows, chunk k drawing from (seed, k); newDecoder(label) per chunk,
 * with each row's label index (a conditional model's) or null. The constraints (options.constraints) compile once,
 * before the first chunk: an impossible request is an Error. */
export async function sampleNames(newDecoder, site, n, options) {
  const chars = Array.from(site.vocab);
  const prefixIds = options.prefixIds;
  const request = { ...(options.constraints ?? {}), prefix: options.prefix ?? "", prefixIds };
  const automaton = compileConstraints(request, site.vocab, options.maxLen, site.limits);
  const names = [];
  const clock = newClock();
  for (let index = 0; index * site.chunk_size < n; index++) {
    const rows = Math.min(site.chunk_size, n - index * site.chunk_size);
    const draws = new ChunkDraws(options.seed, index, 0, rows, site.chunk_size);
    const label = rowLabels(site, options, index, rows);
    const chunk = await sampleChunk(newDecoder(label), draws, prefixIds, options.maxLen, chars.length + 1, options, automaton, clock);
    for (const row of chunk) names.push(row.map((ix) => chars[ix - 1]).join(""));
  }
  return names;
}
