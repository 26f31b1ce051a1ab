"""mm-web: a makemore ONNX model as a static site that samples names in the browser (onnxruntime-web), torch-free."""
