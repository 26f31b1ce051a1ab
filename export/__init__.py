"""Checkpoint -> self-contained ONNX file."""
