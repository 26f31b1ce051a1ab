"""mm-serve: a makemore ONNX model behind an HTTP API and a small web page (Starlette on uvicorn, no torch)."""
