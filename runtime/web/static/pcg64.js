// numpy's random stream in JavaScript, bit for bit: SeedSequence (with a spawn key), PCG64 (XSL-RR 128/64) and
// Generator.random()'s doubles. See runtime/chunks.py: chunk k of a request with seed s draws from
// numpy.random.Generator(numpy.random.PCG64(numpy.random.SeedSequence(s, spawn_key=(k,)))).

const MASK32 = 0xffffffffn;
const MASK64 = (1n << 64n) - 1n;
const MASK128 = (1n << 128n) - 1n;
const MULTIPLIER = 0x2360ed051fc65da44385df649fccf645n; // PCG_DEFAULT_MULTIPLIER_128
const POOL_SIZE = 4;
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const TWO_POW_MINUS_53 = 1 / 9007199254740992;

/** A non-negative integer as numpy's SeedSequence reads it: little-endian 32-bit words (0 is one word). */
export function uint32Words(value) {
  let rest = BigInt(value);
  if (rest < 0n) throw new RangeError("a seed must be non-negative");
  const words = [];
  do {
    words.push(Number(rest & MASK32));
    rest >>= 32n;
  } while (rest > 0n);
  return words;
}

function hashmix(value, hash) {
  value = (value ^ hash.value) >>> 0;
  hash.value = Math.imul(hash.value, MULT_A) >>> 0;
  value = Math.imul(value, hash.value) >>> 0;
  return (value ^ (value >>> 16)) >>> 0;
}

function mix(x, y) {
  const result = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
  return (result ^ (result >>> 16)) >>> 0;
}

/** The pool of SeedSequence(seed, spawn_key): 4 uint32 words. */
export function seedPool(seed, spawnKey = []) {
  const run = uint32Words(seed);
  const spawn = spawnKey.flatMap(uint32Words);
  while (spawn.length > 0 && run.length < POOL_SIZE) run.push(0);
  const entropy = [...run, ...spawn];
  const hash = { value: INIT_A };
  const pool = [];
  for (let i = 0; i < POOL_SIZE; i++) pool.push(hashmix(i < entropy.length ? entropy[i] : 0, hash));
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) {
      if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src], hash));
    }
  }
  for (let src = POOL_SIZE; src < entropy.length; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst], hashmix(entropy[src], hash));
  }
  return pool;
}

/** SeedSequence.generate_state(n, numpy.uint64) as BigInts. */
export function generateState64(pool, n) {
  let hash = INIT_B;
  const words = [];
  for (let i = 0; i < 2 * n; i++) {
    let value = (pool[i % POOL_SIZE] ^ hash) >>> 0;
    hash = Math.imul(hash, MULT_B) >>> 0;
    value = Math.imul(value, hash) >>> 0;
    words.push((value ^ (value >>> 16)) >>> 0);
  }
  const out = [];
  for (let i = 0; i < n; i++) out.push(BigInt(words[2 * i]) | (BigInt(words[2 * i + 1]) << 32n));
  return out;
}

/** numpy's PCG64 bit generator: a 128-bit LCG with the XSL-RR output. */
export class PCG64 {
  constructor(seed, spawnKey = []) {
    const [s0, s1, i0, i1] = generateState64(seedPool(seed, spawnKey), 4);
    this.inc = ((((i0 << 64n) | i1) << 1n) | 1n) & MASK128;
    this.state = 0n;
    this.step();
    this.state = (this.state + ((s0 << 64n) | s1)) & MASK128;
    this.step();
  }

  step() {
    this.state = (this.state * MULTIPLIER + this.inc) & MASK128;
  }

  /** The next 64-bit output (a BigInt). */
  nextUint64() {
    this.step();
    const state = this.state;
    const xored = ((state >> 64n) ^ state) & MASK64;
    const rot = state >> 122n;
    return ((xored >> rot) | (xored << ((64n - rot) & 63n))) & MASK64;
  }

  /** Generator.random(): a double in [0, 1) from the top 53 bits of one output. */
  random() {
    return Number(this.nextUint64() >> 11n) * TWO_POW_MINUS_53;
  }

  /** Skip `delta` outputs in O(log delta) steps (PCG64.advance). */
  advance(delta) {
    let d = BigInt(delta);
    let curMult = MULTIPLIER;
    let curPlus = this.inc;
    let accMult = 1n;
    let accPlus = 0n;
    while (d > 0n) {
      if (d & 1n) {
        accMult = (accMult * curMult) & MASK128;
        accPlus = (accPlus * curMult + curPlus) & MASK128;
      }
      curPlus = ((curMult + 1n) * curPlus) & MASK128;
      curMult = (curMult * curMult) & MASK128;
      d >>= 1n;
    }
    this.state = (accMult * this.state + accPlus) & MASK128;
  }
}

/** The uniforms of rows [lo, hi) of chunk `index`, position after position (runtime/chunks.py ChunkDraws). */
export class ChunkDraws {
  constructor(seed, index, lo, hi, chunkSize) {
    this.rng = new PCG64(seed, [index]);
    this.rows = hi - lo;
    this.chunkSize = chunkSize;
    this.skip = lo;
  }

  /** The next position's uniforms: Float64Array [rows]. */
  next() {
    if (this.skip) this.rng.advance(this.skip);
    this.skip = this.chunkSize - this.rows;
    const out = new Float64Array(this.rows);
    for (let i = 0; i < this.rows; i++) out[i] = this.rng.random();
    return out;
  }
}

export const LABEL_STREAM = 1; // second spawn-key entry of a chunk's label draws (runtime/chunks.py)
const bits64 = new DataView(new ArrayBuffer(8));

/** The float64 next to the positive double `x`, towards 0 (numpy.nextafter(x, 0)). */
export function float64Below(x) {
  bits64.setFloat64(0, x);
  bits64.setBigUint64(0, bits64.getBigUint64(0) - 1n);
  return bits64.getFloat64(0);
}

/** The label uniforms of rows [lo, hi) of chunk `index` (label_uniforms): Float64Array [hi - lo]. */
export function labelUniforms(seed, index, lo, hi) {
  const rng = new PCG64(seed, [index, LABEL_STREAM]);
  if (lo) rng.advance(lo);
  return Float64Array.from({ length: hi - lo }, () => rng.random());
}

/** Each row's label index of rows [lo, hi) of chunk `index` (chunk_labels): drawn in proportion to `counts`, the
 * first label whose float64 cumulative count exceeds u * total (kept below the total: a count of 0 is never drawn). */
export function chunkLabels(seed, index, lo, hi, counts) {
  const cumulative = new Float64Array(counts.length);
  let sum = 0;
  counts.forEach((count, i) => (cumulative[i] = sum += Number(count)));
  const total = cumulative[counts.length - 1];
  return BigInt64Array.from(labelUniforms(seed, index, lo, hi), (u) => {
    const threshold = Math.min(u * total, float64Below(total));
    let [low, high] = [0, cumulative.length]; // searchsorted(cumulative, threshold, side="right"): entries <= it
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (cumulative[middle] <= threshold) low = middle + 1;
      else high = middle;
    }
    return BigInt(low);
  });
}
