// The page: the model file run by onnxruntime-web (WebAssembly, one thread) in this browser, no server behind it.

import { parseOptions } from "./options.js";
import { StepDecoder, WindowDecoder, compress, emptyState, sampleNames, twice } from "./sampler.js";

const $ = (id) => document.getElementById(id);
const FIELDS = ["count", "temperature", "top_k", "top_p", "prefix", "seed", "label", "min_len", "max_len", "ends_with", "contains", "exclude"];
let site = null;
let session = null;
let queue = Promise.resolve();
let current = [];

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function firstLine(err) {
  return String((err && err.message) || err).split("\n")[0].slice(0, 300);
}

/** session.run, one call at a time (a session runs one call at once). */
function run(feeds) {
  const result = queue.then(() => session.run(feeds));
  queue = result.catch(() => undefined);
  return result;
}

/** A conditional model's `label` feed (int64 [rows], each row's label index); none for an unlabelled model. */
function labelFeed(label, rows) {
  return site.labels && label !== null ? { [site.labels.input]: new ort.Tensor("int64", label, [rows]) } : {};
}

async function windowLogits(context, rows, label = null) {
  const feeds = { [site.inputs[0]]: new ort.Tensor("int64", context, [rows, site.block_size]), ...labelFeed(label, rows) };
  const out = await run(feeds);
  return out[site.logits].data;
}

async function stepLogits(tokens, rows, steps, state, label = null) {
  const tensors = site.state.tensors;
  if (rows === 1) {
    // one row runs as two and is cut back (runtime/onnx_sampler.py: one_row_as_two): onnxruntime's RNN op, and every
    // recurrent op below opset 9, compute one row by another kernel than several
    const axes = tensors.map((t) => t.shape.indexOf("batch"));
    const doubled = state.map((s, i) => twice(s.data, s.dims, axes[i]));
    const labels = label && twice(label, [1], 0).data;
    const both = await stepLogits(twice(tokens, [1, steps], 0).data, 2, steps, doubled, labels);
    const first = both.state.map((s, i) => compress(s.data, s.dims, axes[i], [true, false]));
    return { logits: both.logits.subarray(0, both.logits.length / 2), state: first };
  }
  const feeds = { [site.inputs[0]]: new ort.Tensor("int64", tokens, [rows, steps]), ...labelFeed(label, rows) };
  state.forEach((s, i) => (feeds[tensors[i].input] = new ort.Tensor("float32", s.data, s.dims)));
  const out = await run(feeds);
  const next = tensors.map((t) => ({ data: out[t.output].data, dims: Array.from(out[t.output].dims) }));
  return { logits: out[site.logits].data, state: next };
}

/** A decoder for one chunk; `label`: a conditional model's label index of every row (BigInt64Array), or null. */
function newDecoder(label = null) {
  const V = Array.from(site.vocab).length + 1;
  return site.contract === "window"
    ? new WindowDecoder(windowLogits, site.block_size, label)
    : new StepDecoder(stepLogits, site.state.tensors, V, label);
}

function fields() {
  return Object.fromEntries(FIELDS.map((name) => [name, $(name).value]));
}

function show(names) {
  current = names;
  const items = names.map((name) => Object.assign(document.createElement("li"), { textContent: name }));
  $("names").replaceChildren(...items);
  $("copy").disabled = names.length === 0;
}

async function generate(event) {
  event.preventDefault();
  let options;
  try {
    options = parseOptions(fields(), site);
  } catch (err) {
    setStatus(`error: ${firstLine(err)}`, true);
    return;
  }
  $("generate").disabled = true;
  setStatus("generating\u2026", false);
  try {
    const names = await sampleNames(newDecoder, site, options.count, options);
    show(names);
    const label = options.label === null ? "" : `, label ${site.labels.names[options.label]}`;
    setStatus(`${names.length} names (seed ${options.seed}${label})`, false);
  } catch (err) {
    setStatus(`error: ${firstLine(err)}`, true);
  } finally {
    $("generate").disabled = false;
  }
}

async function copyNames() {
  const text = `${current.join("\n")}\n`;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = Object.assign(document.createElement("textarea"), { value: text });
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  setStatus(`copied ${current.length} names`, false);
}

function describe() {
  const loss = typeof site.val_loss === "number" ? ` \u00b7 val loss ${site.val_loss.toFixed(3)}` : "";
  const tokens = Array.from(site.vocab).length + 1;
  const labels = site.labels ? ` \u00b7 ${site.labels.names.length} labels` : "";
  $("model").textContent =
    `${site.kind}${loss} \u00b7 ${tokens} tokens${labels} \u00b7 ${site.contract} contract \u00b7 runs in this browser ` +
    `(onnxruntime-web ${site.onnxruntime_web}, WebAssembly)`;
}

/** A conditional model's label choices: "any" (each name's label drawn from the training frequencies), then each
 * label with its share of the training words; the field stays hidden for an unlabelled model. */
function showLabels() {
  if (!site.labels) return;
  const total = site.labels.counts.reduce((a, b) => a + b, 0);
  const choices = site.labels.names.map((name, i) => {
    const share = ((100 * site.labels.counts[i]) / total).toFixed(1);
    return Object.assign(document.createElement("option"), { value: name, textContent: `${name} (${share}%)` });
  });
  $("label").append(...choices);
  $("label-field").hidden = false;
}

async function load() {
  try {
    if (typeof ort === "undefined") throw new Error(`${"ort.wasm.min.js"} did not load`);
    const response = await fetch("makemore-site.json");
    if (!response.ok) throw new Error(`makemore-site.json: HTTP ${response.status}`);
    site = await response.json();
    ort.env.logLevel = "fatal";
    ort.env.wasm.numThreads = 1; // no SharedArrayBuffer: no cross-origin isolation headers needed
    ort.env.wasm.wasmPaths = new URL("./", location.href).href; // this site's copy, never a CDN
    session = await ort.InferenceSession.create(site.model, { executionProviders: ["wasm"] });
    describe();
    showLabels();
    if (typeof site.server === "string") {
      $("on-server").href = site.server; // served by mm-serve: the switch back to its page
      $("where").hidden = false;
    }
    $("max_len").placeholder = String(site.max_len);
    $("generate").disabled = false;
    document.body.dataset.state = "ready";
  } catch (err) {
    $("model").textContent = "no model";
    setStatus(`error: cannot load ${site ? site.model : "the site"}: ${firstLine(err)}`, true);
    document.body.dataset.state = "failed";
  }
}

// Test hooks: the logits of fixed inputs (window: contexts [B][block_size] -> [B][V]; step: tokens [B][T] from
// the empty state -> [B][T][V]; a conditional model's under `labels` [B], label indices) and the names of a request
// given as the page's fields (temperature 0: greedy).
window.mmLogits = async (rows, labels = null) => {
  const flat = BigInt64Array.from(rows.flat(), (id) => BigInt(id));
  const label = labels === null ? null : BigInt64Array.from(labels, (ix) => BigInt(ix));
  const V = Array.from(site.vocab).length + 1;
  if (site.contract === "window") {
    const logits = await windowLogits(flat, rows.length, label);
    return rows.map((_, r) => Array.from(logits.subarray(r * V, (r + 1) * V)));
  }
  const steps = rows[0].length;
  const { logits } = await stepLogits(flat, rows.length, steps, emptyState(site.state.tensors, rows.length), label);
  return rows.map((_, r) =>
    Array.from({ length: steps }, (_, t) => Array.from(logits.subarray((r * steps + t) * V, (r * steps + t + 1) * V))),
  );
};
window.mmGenerate = async (values) => {
  const options = parseOptions({ count: "20", temperature: "1", ...values, greedy: true }, site);
  return sampleNames(newDecoder, site, options.count, options);
};

$("form").addEventListener("submit", generate);
$("copy").addEventListener("click", copyNames);
load();
