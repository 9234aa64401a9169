"""Three ways to hold a Q4_1 Linear (w = d q + m per block of 32) in ONNX Runtime's MatMulNBits, timed on one
decode step (a single token) of a SmolLM2-135M MLP projection (576 -> 1536), one thread:

- symmetric: MatMulNBits with its default zero point 8 alone, w = d (q - 8): the block minimums dropped (wrong);
- grid (softfold's `--algorithm grid`): the same op plus the remainder (m + 8 d) times each block's input sum, as a
  second, small fp32 MatMul (`export.model.OffsetLinear`);
- float zero points: MatMulNBits' optional zero_points input in fp32, zp = -m / d, w = d (q - zp): one op, exact.

Error: the largest |y - x W^T| over the largest |x W^T|, W the dequantized Q4_1 weights, at accuracy_level 0 (fp32
activations) and 4 (int8 activations, what softfold's int4 bundles use). The question: does an exact Q4_1
representation exist that the int4 kernels take without the second matmul, at their speed?

    python benchmarks/matmulnbits_offsets.py
"""
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

K, N, BLOCK = 576, 1536, 32


def q4_1(seed: int = 0):
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 16, size=(N, K)).astype(np.uint8)
    d = (rng.random((N, K // BLOCK)) * 0.01 + 0.001).astype(np.float32)
    m = (-rng.random((N, K // BLOCK)) * 0.08).astype(np.float32)
    w = (q.reshape(N, K // BLOCK, BLOCK) * d[..., None] + m[..., None]).reshape(N, K)
    return q, d, m, w


def session(q, d, m, form: str, level: int) -> ort.InferenceSession:
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(N, K // BLOCK, BLOCK // 2)
    inits = [numpy_helper.from_array(packed, "W"), numpy_helper.from_array(d.reshape(-1), "S")]
    inputs, nodes = ["x", "W", "S"], []
    out = "y0" if form == "grid" else "y"
    if form == "float zero points":
        inits.append(numpy_helper.from_array((-m / d).astype(np.float32).reshape(-1), "Z"))
        inputs.append("Z")
    if form == "grid":
        inits += [numpy_helper.from_array((m + 8 * d).T.copy(), "O"),
                  numpy_helper.from_array(np.array([1, K // BLOCK, BLOCK], np.int64), "blocks"),
                  numpy_helper.from_array(np.array([2], np.int64), "axes")]
        nodes += [helper.make_node("Reshape", ["x", "blocks"], ["xb"]),
                  helper.make_node("ReduceSum", ["xb", "axes"], ["sums"], keepdims=0),
                  helper.make_node("MatMul", ["sums", "O"], ["y1"]), helper.make_node("Add", ["y0", "y1"], ["y"])]
    nodes.insert(0, helper.make_node("MatMulNBits", inputs, [out], domain="com.microsoft", K=K, N=N, bits=4,
                                     block_size=BLOCK, accuracy_level=level))
    graph = helper.make_graph(nodes, "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options)


def microseconds(s: ort.InferenceSession, x: np.ndarray, calls: int = 300, repeats: int = 5) -> float:
    for _ in range(20):
        s.run(None, {"x": x})
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            s.run(None, {"x": x})
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def main() -> None:
    q, d, m, w = q4_1()
    x = np.random.default_rng(1).standard_normal((1, K)).astype(np.float32)
    ref = x @ w.T
    print(f"onnxruntime {ort.__version__}, one thread, {K} -> {N}, blocks of {BLOCK}\n")
    print("| form | accuracy_level | relative error | us per call (best of 5 x 300) |\n|---|---|---|---|")
    for form in ("symmetric", "grid", "float zero points"):
        for level in (0, 4):
            s = session(q, d, m, form, level)
            err = np.abs(s.run(None, {"x": x})[0] - ref).max() / np.abs(ref).max()
            calls = 20 if form == "float zero points" else 300
            print(f"| {form} | {level} | {err:.1e} | {microseconds(s, x, calls):.1f} |")


if __name__ == "__main__":
    main()
