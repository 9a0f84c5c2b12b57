"""Deployment: ONNX / TensorRT export, interchangeable runtimes, a safe policy server and a real-time
control loop (docs/deploy.md). Optional packages (onnx, onnxscript, onnxruntime, tensorrt) are
imported inside the functions that need them."""
from .spec import BATCH, PolicySpec, TensorSpec

__all__ = ["BATCH", "PolicySpec", "TensorSpec"]
