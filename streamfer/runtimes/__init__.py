"""The model's runtimes: :mod:`~streamfer.runtimes.build` makes them once per weights file
(the ONNX graph filled with the weights, int8 quantization with the shipped ranges, the TFLite
conversion; cached), :mod:`~streamfer.runtimes.runners` runs them (OpenVINO, ONNX Runtime on
the CPU or a CUDA GPU, TFLite), :mod:`~streamfer.runtimes.choose` measures which int8 engine
is fastest here, and :mod:`~streamfer.runtimes.onnx_graph` writes the graph from the Keras
layers. The run-time path uses only the built files; building needs no TensorFlow."""
