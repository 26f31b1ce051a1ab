"""OnnxSampler: a makemore .onnx file run by onnxruntime (no torch, no onnx package)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from makemore.contract import (
    CONTEXT,
    LABEL,
    LOGITS,
    PAST,
    TOKENS,
    IOSpec,
    ModelFileError,
    ModelInfo,
    ModelOutputError,
    check_signature,
)
from makemore.contract.constants import check_graph
from makemore.contract.signature import (
    check_step_outputs,
    empty_state,
    probe_step_logits,
    probe_window_logits,
    state_of,
)
from makemore.data import first_line, input_file_problem
from makemore.runtime.folding import folded
from makemore.runtime.parallel import check_workers, usable_cores
from makemore.runtime.sampling import Sampler, StepForward, WindowForward, window_inputs

ORT_PREAMBLE = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : (Non-zero status code returned while running )?")


def session_options() -> ort.SessionOptions:
    """Options for tiny models: the per-call overhead matters more than parallelism."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # fatal only: onnxruntime never prints its own error lines (we report errors)
    # no folding at load: it computed whatever a file asked (runtime/folding.py computes a file's constants once,
    # within the graph check's bounds)
    options.add_session_config_entry("optimization.disable_specified_optimizers", "ConstantFolding")
    options.enable_cpu_mem_arena = True  # the arena reuses its buffers from call to call: without it every call
    # malloc'ed and freed its outputs and activations (MBs for a step model's rows), which cost a gru 1.4x its CPU
    # time per name (an mlp: the same within noise); the arena holds the largest call's buffers, which the
    # decoders' row bounds (runtime.sampling: DECODER_BYTES, IN_FLIGHT_BYTES) bound whatever the request's n
    options.enable_mem_pattern = False  # a memory pattern is one block per input shape, and sampling calls the
    # model with every batch size from 4,096 down to 1: without the arena each call malloc'ed and freed a block of
    # a new size, which fragmented glibc's heap (1M names: 150 MB of free heap kept resident, peak RSS 215 MB,
    # growing with the number of names; without the pattern the heap stays at 35 MB and the peak flat, ~85 MB)
    return options


def open_session(model: str | Path | bytes, source: str = "model") -> ort.InferenceSession:
    """An onnxruntime CPU session for a model path or serialized bytes (onnxruntime prints nothing itself)."""
    ort.set_default_logger_severity(4)  # its default logger (used while a session loads): fatal only
    if not isinstance(model, bytes):
        path = Path(model)
        source = str(path)
        if (problem := input_file_problem(path)) is not None:
            raise ModelFileError(problem)
        try:  # read here, checked, and given to onnxruntime as bytes: the file it loads is the one checked
            model = path.read_bytes()
        except OSError as err:
            raise ModelFileError(f"cannot read model file {source}: {err.strerror}") from None
    plan = check_graph(model, source)  # no loop, no function of its own, what it computes from constants bounded
    model = folded(model, plan, source)  # ... and computed once, here
    try:
        session = ort.InferenceSession(model, sess_options=session_options(), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises several untyped errors for a bad file
        raise ModelFileError(f"{source} is not a valid ONNX model ({first_line(err, 160)})") from None
    return session


def io_specs(args: list[Any]) -> list[IOSpec]:
    """onnxruntime's NodeArg list as contract IOSpecs."""
    return [IOSpec(arg.name, arg.type, list(arg.shape)) for arg in args]


def run_session(session: ort.InferenceSession, outputs: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """session.run, its failure (a graph that passed the load checks but cannot run this input) a ModelOutputError."""
    try:
        results: list[np.ndarray] = session.run(outputs, feed)
        return results
    except Exception as err:  # onnxruntime raises several untyped errors
        detail = ORT_PREAMBLE.sub("", first_line(err, 400))[:200]
        raise ModelOutputError(f"the model fails to run ({detail})", detail) from None


def session_forward(
    session: ort.InferenceSession, info: ModelInfo, checked: bool = True
) -> WindowForward | StepForward:
    """The forward pass of a session under its contract; `checked`: every call's output shapes are checked
    (the load probe checks them itself, with its own messages)."""
    if info.state is None:
        return WindowForward(lambda context, *label: window_logits(session, context, info, checked, *label), info)
    inputs = [t.input for t in info.state.tensors]
    outputs = [LOGITS, *(t.output for t in info.state.tensors)]

    def run(
        tokens: np.ndarray, state: list[np.ndarray], label: np.ndarray | None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        feed = {TOKENS: tokens, **label_feed(info, label), **dict(zip(inputs, state, strict=True))}
        logits, *new_state = run_session(session, outputs, feed)
        return logits, new_state

    def step(
        tokens: np.ndarray, state: list[np.ndarray], label: np.ndarray | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        if has_no_rows(tokens, state, info):
            label_feed(info, label)  # checked as a call with rows checks it (a label given to an unlabelled model)
            return no_rows(tokens, state, info)  # onnxruntime's GRU and LSTM ops abort the process on 0 rows
        logits, new_state = one_row_as_two(run, tokens, state, label, info)
        if checked:
            check_step_outputs(tokens, state, logits, new_state, info)
        return logits, new_state

    return StepForward(step, info)


def one_row_as_two(
    run: Callable[..., tuple[np.ndarray, list[np.ndarray]]],
    tokens: np.ndarray,
    state: list[np.ndarray],
    label: np.ndarray | None,
    info: ModelInfo,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """`run(tokens, state, label)`, but a call of one row runs as the row twice, cut back: onnxruntime's RNN op (and
    every recurrent op below opset 9) computes a batch of one row by another kernel than a batch of several, whose
    logits differ in the last bits, so a row's name or score would depend on whether it ran alone."""
    tensors = state_of(info).tensors
    one_row = tokens.ndim == 2 and len(tokens) == 1 and len(state) == len(tensors)
    if not one_row or any(s.ndim != len(t.shape) for s, t in zip(state, tensors, strict=True)):
        return run(tokens, state, label)  # (a malformed call: the model's run or the output checks report it)
    twice = [np.repeat(s, 2, axis=t.batch_axis) for s, t in zip(state, tensors, strict=True)]
    logits, new_state = run(np.repeat(tokens, 2, axis=0), twice, None if label is None else np.repeat(label, 2))
    first = [np.take(s, [0], axis=t.batch_axis) for s, t in zip(new_state, tensors, strict=True)]
    return logits[:1], first


def has_no_rows(tokens: np.ndarray, state: list[np.ndarray], info: ModelInfo) -> bool:
    """Whether a step call carries 0 rows: tokens [0, steps] and every state tensor of its shape with 0 rows."""
    tensors = state_of(info).tensors
    if tokens.ndim != 2 or len(tokens) or len(state) != len(tensors):
        return False
    return all(s.ndim == len(t.shape) and s.shape[t.batch_axis] == 0 for s, t in zip(state, tensors, strict=True))


def no_rows(tokens: np.ndarray, state: list[np.ndarray], info: ModelInfo) -> tuple[np.ndarray, list[np.ndarray]]:
    """What a call on 0 rows returns, without running the model: logits [0, steps, V] and the empty state, each
    cache grown by the steps."""
    tensors = state_of(info).tensors
    past = next((s.shape[t.shape.index(PAST)] for s, t in zip(state, tensors, strict=True) if t.is_cache), 0)
    return np.zeros((0, tokens.shape[1], info.vocab.size), np.float32), empty_state(info, 0, past + tokens.shape[1])


def label_feed(info: ModelInfo, label: np.ndarray | None) -> dict[str, np.ndarray]:
    """The `label` input of a conditional model's call (int64 [B]), none for an unlabelled model's; ValueError
    when the one is given without the other."""
    if info.labelled != (label is not None):
        raise ValueError("a conditional model's call needs a label [B]; an unlabelled model's takes none")
    return {} if label is None else {LABEL: np.ascontiguousarray(label, dtype=np.int64)}


def window_logits(
    session: ort.InferenceSession,
    context: np.ndarray,
    info: ModelInfo,
    checked: bool = True,
    label: np.ndarray | None = None,
) -> np.ndarray:
    """A window model's int64 context [B, block_size] (and a conditional model's label [B]) -> float32 logits
    [B, V] (`checked`: ModelOutputError if not that shape)."""
    feed = {CONTEXT: np.ascontiguousarray(context, dtype=np.int64), **label_feed(info, label)}
    logits = run_session(session, [LOGITS], feed)[0]
    if checked and np.shape(logits) != (len(context), info.vocab.size):
        raise ModelOutputError(f"the model gives logits of shape {list(np.shape(logits))}, not [{len(context)}, V]")
    return logits


def read_model_info(session: ort.InferenceSession, source: str = "model") -> ModelInfo:
    """The makemore metadata of a session's model, checked against its inputs and outputs and a probe run."""
    info = ModelInfo.from_metadata(session.get_modelmeta().custom_metadata_map, source)
    check_signature(io_specs(session.get_inputs()), io_specs(session.get_outputs()), info, source)
    forward = session_forward(session, info, checked=False)
    if isinstance(forward, WindowForward):
        probe_window_logits(forward.logits_fn, info, source)
    else:
        probe_step_logits(forward.step_fn, info, source)
    return info


class OnnxSampler(Sampler):
    """Sample and score names with a makemore ONNX model (either contract) through onnxruntime.

    `workers` threads sample the chunks of a large request at once, on the one session (onnxruntime runs
    concurrent calls of a session in parallel, each on its calling thread); the names do not depend on it. Its
    default is mm-gen's: the usable cores.
    """

    def __init__(self, path: str | Path, workers: int | None = None) -> None:
        self.workers = check_workers(usable_cores() if workers is None else workers)
        self.path = Path(path)
        self.session = open_session(self.path)
        self.info = read_model_info(self.session, str(self.path))
        self.forward = session_forward(self.session, self.info)

    def logits(self, context: np.ndarray, label: np.ndarray | None = None) -> np.ndarray:
        """A window model's int64 context [B, block_size] (and a conditional model's label indices [B]) ->
        float32 logits [B, V] (through the forward pass, so a view of Sampler.until stops it too)."""
        if not isinstance(self.forward, WindowForward):
            raise ModelFileError(f"{self.path} is a step model: it has no window logits (use sample, score, nll)")
        return self.forward.logits_fn(*window_inputs(self.info, context, label))
