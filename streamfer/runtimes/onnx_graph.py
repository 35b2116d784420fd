"""The emotion model as an ONNX graph, written straight from its Keras layers.

tf2onnx needed ~12 GB of memory and 40 s for this 44 M-parameter model (and TensorFlow's
own TFLite converter 3 GB more before it): no user's machine should pay that. The model is
a plain stack of a few layer kinds, so we write the ONNX nodes for them directly, in two
steps:

1. :func:`graph_of` walks a Keras model's layers and writes its graph *without weights*:
   each weight is a named placeholder (``w17``: the 17th of ``model.get_weights()``,
   ``w17.oihw``: the same convolution kernel in ONNX's order). This needs Keras (and
   TensorFlow or JAX) but no memory to speak of; ``streamfer export`` stores it beside the
   weights as ``<model>.graph.onnx`` (a few hundred kB).
2. :func:`with_weights` fills the placeholders from the weights file with numpy alone, so a
   machine running the shipped model never imports TensorFlow to get its ONNX model.

Images are NHWC at the input, as in Keras; inside, 4-D tensors are NCHW (ONNX's layout for
convolutions); a Keras tensor of shape (n, h, w), as made by picking one channel, is kept
as (n, 1, h, w). Layers this module does not know raise :class:`NotImplementedError`, and
the caller falls back to another backend. Tested against Keras on real faces for every
architecture :func:`streamfer.model.build_model` makes.

Example:
    >>> graph = graph_of(model)                                     # doctest: +SKIP
    >>> onnx_model = with_weights(graph, weights)                   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

OPSET = 17
INPUT, OUTPUT = "face_rgb", "scores"


def graph_of(model, architecture: str = ""):
    """The ONNX graph of Keras ``model`` with weight placeholders (see the module's notes);
    ``architecture`` is stored in the graph's metadata, so that a stale file can be told."""
    from onnx import TensorProto, helper

    writer = _Writer({v.path: i for i, v in enumerate(model.weights)})
    size = model.inputs[0].shape[1:]
    writer.node("Transpose", [INPUT], "nchw", perm=[0, 3, 1, 2])
    out = writer.walk(model, ["nchw"])[0]
    writer.node("Identity", [out], OUTPUT)
    graph = helper.make_graph(
        writer.nodes, model.name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", *size])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT,
                                       ["batch", model.outputs[0].shape[-1]])],
        writer.initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="streamfer")
    onnx_model.ir_version = 8
    helper.set_model_props(onnx_model, {"architecture": architecture})
    return onnx_model


def with_weights(graph, weights: list[np.ndarray]):
    """A copy of ``graph`` whose placeholders hold ``weights`` (fp32), ready to run."""
    from onnx import numpy_helper

    model = type(graph)()
    model.CopyFrom(graph)
    for init in model.graph.initializer:
        if not init.name.startswith("w") or init.raw_data:
            continue
        index, _, order = init.name[1:].partition(".")
        value = np.asarray(weights[int(index)], np.float32)
        if order == "oihw":
            value = value.transpose(3, 2, 0, 1)
        if list(value.shape) != list(init.dims):
            raise ValueError(f"weight {index} has shape {value.shape}, the graph wants "
                             f"{tuple(init.dims)}: the weights are of another architecture")
        init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), init.name))
    return model


def architecture_of(graph) -> str:
    return {p.key: p.value for p in graph.metadata_props}.get("architecture", "")


class _Writer:
    def __init__(self, index: dict[str, int]) -> None:
        self.index = index
        self.nodes, self.initializers, self.names = [], [], set()
        self.tensors: dict[int, str] = {}

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def weight(self, variable, oihw: bool = False) -> str:
        from onnx import TensorProto

        name = f"w{self.index[variable.path]}" + (".oihw" if oihw else "")
        if name not in self.names:
            shape = list(variable.shape)
            dims = [shape[3], shape[2], shape[0], shape[1]] if oihw else shape
            placeholder = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
            self.initializers.append(placeholder)
            self.names.add(name)
        return name

    def const(self, name: str, value) -> str:
        from onnx import numpy_helper

        if name not in self.names:
            self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
            self.names.add(name)
        return name

    def walk(self, model, inputs: list[str], prefix: str = "") -> list[str]:
        """Write ``model``'s layers, its inputs being the ONNX tensors ``inputs``; a nested
        model's layers are named ``<its name>/<layer>``."""
        for tensor, name in zip(model.inputs, inputs):
            self.tensors[id(tensor)] = name
        for op in model.operations:
            if type(op).__name__ == "InputLayer":
                continue
            node = next((n for n in op._inbound_nodes
                         if all(id(t) in self.tensors for t in n.input_tensors)), None)
            if node is None:
                raise NotImplementedError(f"cannot place {op.name} in the graph")
            ins = [self.tensors[id(t)] for t in node.input_tensors]
            outs = self.layer(op, node, ins, prefix + op.name)
            for tensor, name in zip(node.output_tensors, outs):
                self.tensors[id(tensor)] = name
        return [self.tensors[id(t)] for t in model.outputs]

    def layer(self, op, node, ins: list[str], name: str) -> list[str]:
        kind = type(op).__name__
        shape = node.input_tensors[0].shape
        if kind == "Functional":
            return self.walk(op, ins, name + "/")
        if kind == "Dropout":
            return ins
        if kind == "Grayscale":  # luma replicated to three channels: a 1×1 convolution
            from streamfer.model import LUMA

            luma = np.asarray(LUMA, np.float32)
            kernel = np.tile(luma[None, :, None, None], (3, 1, 1, 1))
            return [self.node("Conv", [ins[0], self.const(f"{name}/luma", kernel)], name)]
        if kind == "Resizing":
            if op.interpolation != "bilinear" or op.crop_to_aspect_ratio or \
                    op.pad_to_aspect_ratio or getattr(op, "antialias", False):
                raise NotImplementedError(f"Resizing {op.interpolation} with options")
            scales = np.asarray([1, 1, _scale(shape[1], op.height), _scale(shape[2], op.width)],
                                np.float32)
            return [self.node("Resize", [ins[0], "", self.const(f"{name}/scales", scales)],
                              name, mode="linear",
                              coordinate_transformation_mode="half_pixel")]
        if kind == "GetItem":  # x[..., k] of an image: one channel, kept 4-D
            key = node.arguments.args[1]
            if len(shape) != 4 or not (isinstance(key, tuple) and key[0] is Ellipsis
                                       and len(key) == 2 and isinstance(key[1], int)):
                raise NotImplementedError(f"GetItem {key!r}")
            k = key[1] % shape[3]
            return [self.node("Slice", [ins[0], self.const(f"{name}/start", np.array([k])),
                                        self.const(f"{name}/end", np.array([k + 1])),
                                        self.const("axis1", np.array([1]))], name)]
        if kind == "Stack":  # of (n, h, w) channels along the last axis
            if len(shape) != 3 or op.axis not in (-1, 3):
                raise NotImplementedError("Stack other than channels")
            return [self.node("Concat", ins, name, axis=1)]
        if kind in ("Add", "Subtract", "Multiply") and len(ins) < 2:
            constant = next(a for a in node.arguments.args if not _is_symbolic(a))
            constant = np.asarray(constant, np.float32)
            if constant.ndim == 4:
                constant = constant.transpose(0, 3, 1, 2)
            return [self.node("Sub" if kind == "Subtract" else "Mul" if kind == "Multiply"
                              else "Add", [ins[0], self.const(f"{name}/const", constant)],
                              name)]
        if kind == "Add":
            return [self.node("Sum", ins, name)]
        if kind == "Average":
            return [self.node("Mean", ins, name)]
        if kind == "Activation":
            return [self.activation(op.activation, ins[0], name)]
        if kind == "BatchNormalization":
            return [self.batch_norm(op, ins[0], name, len(shape))]
        if kind == "Dense":
            if len(shape) != 2:
                raise NotImplementedError("Dense on more than 2 dimensions")
            inputs = [ins[0], self.weight(op.kernel)]
            if op.use_bias:
                inputs.append(self.weight(op.bias))
            out = self.node("Gemm", inputs, f"{name}/linear")
            return [self.activation(op.activation, out, name)]
        if kind == "Conv2D":
            return [self.conv(op, ins[0], name, shape)]
        if kind == "ZeroPadding2D":
            (top, bottom), (left, right) = op.padding
            pads = np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)
            return [self.node("Pad", [ins[0], self.const(f"{name}/pads", pads)], name)]
        if kind == "MaxPooling2D":
            pads = _pads(shape, op.pool_size, op.strides, op.padding)
            return [self.node("MaxPool", ins, name, kernel_shape=list(op.pool_size),
                              strides=list(op.strides), pads=pads)]
        if kind == "GlobalAveragePooling2D" and not op.keepdims:
            return [self.node("Flatten", [self.node("GlobalAveragePool", ins, f"{name}/pool")],
                              name)]
        raise NotImplementedError(f"layer {kind} ({name})")

    def activation(self, function, x: str, name: str) -> str:
        which = getattr(function, "__name__", str(function))
        if which == "linear":
            return self.node("Identity", [x], name)
        if which in ("relu", "sigmoid"):
            return self.node("Relu" if which == "relu" else "Sigmoid", [x], name)
        raise NotImplementedError(f"activation {which}")

    def batch_norm(self, op, x: str, name: str, rank: int) -> str:
        if op.axis not in (-1, rank - 1):
            raise NotImplementedError("BatchNormalization over another axis")
        channels = op.moving_mean.shape[0]
        scale = self.weight(op.gamma) if op.scale else \
            self.const(f"{name}/ones", np.ones(channels, np.float32))
        shift = self.weight(op.beta) if op.center else \
            self.const(f"{name}/zeros", np.zeros(channels, np.float32))
        return self.node("BatchNormalization",
                         [x, scale, shift, self.weight(op.moving_mean),
                          self.weight(op.moving_variance)], name, epsilon=float(op.epsilon))

    def conv(self, op, x: str, name: str, shape) -> str:
        if op.data_format != "channels_last" or op.groups != 1 or \
                tuple(op.dilation_rate) != (1, 1):
            raise NotImplementedError("Conv2D other than channels-last, ungrouped, undilated")
        inputs = [x, self.weight(op.kernel, oihw=True)]
        if op.use_bias:
            inputs.append(self.weight(op.bias))
        kernel = op.kernel.shape[:2]
        out = self.node("Conv", inputs, f"{name}/conv", kernel_shape=list(kernel),
                        strides=list(op.strides),
                        pads=_pads(shape, kernel, op.strides, op.padding))
        return self.activation(op.activation, out, name)


def _scale(size: int, target: int) -> np.float32:
    """The float32 scale that ONNX Runtime turns into ``target`` pixels (it floors size ×
    scale, and float32(48 / 100) × 100 is 47.99…): the nearest one above target / size."""
    scale = np.float32(target / size)
    while np.floor(size * float(scale)) < target:  # in double, as ONNX does
        scale = np.nextafter(scale, np.float32(1), dtype=np.float32)
    return scale


def _pads(shape, kernel, strides, padding: str) -> list[int]:
    """ONNX pads (top, left, bottom, right) for TensorFlow's "valid" or "same" padding of an
    NHWC input of static ``shape`` (same: the odd pixel goes at the end, as in TensorFlow)."""
    if padding == "valid":
        return [0, 0, 0, 0]
    before, after = [], []
    for size, k, s in zip(shape[1:3], kernel, strides):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return before + after


def _is_symbolic(value) -> bool:
    return type(value).__name__ == "KerasTensor"
