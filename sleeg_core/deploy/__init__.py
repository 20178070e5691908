"""Deployment: export to one ONNX graph, and the ONNX Runtime backend that runs it."""
