"""Lower the folded model to an ExecuTorch program (.pte) that the LLM runner accepts."""
from pathlib import Path

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge_transform_and_lower
from executorch.exir.passes import MemoryPlanningPass
from executorch.exir.passes.sym_shape_eval_pass import ConstraintBasedSymShapeEvalPass
from torch.export import Dim, ExportedProgram

from softfold.export.model import Transformer
from softfold.native_io import muted


def runner_metadata(model: Transformer, bos_id: int, eos_ids: list[int]) -> dict:
    """The constant methods ExecuTorch's TextLLMRunner reads (extension/llm/runner/constants.h)."""
    return {
        "get_max_seq_len": model.args.max_context,
        "get_max_context_len": model.args.max_context,
        "get_vocab_size": model.args.vocab_size,
        "get_bos_id": bos_id,
        "get_eos_ids": list(eos_ids),
        "use_kv_cache": True,
        "use_sdpa_with_kv_cache": False,
        "enable_dynamic_shape": True,
        "get_n_layers": model.args.n_layers,
    }


def export_pte(model: Transformer, metadata: dict, path: Path) -> None:
    """forward(tokens [1, T], input_pos [1]) -> logits [1, vocab], XNNPACK-delegated, written to `path`."""
    example = (torch.zeros(1, 2, dtype=torch.long), torch.tensor([0], dtype=torch.long))
    seq = Dim("seq", min=1, max=model.args.max_context)
    with torch.no_grad():
        program = torch.export.export(model, example, dynamic_shapes=({1: seq}, None), strict=False)
    Path(path).write_bytes(lower_to_xnnpack(program, metadata))


def lower_to_xnnpack(programs: ExportedProgram | dict[str, ExportedProgram], metadata: dict | None = None) -> bytes:
    """Exported program(s) (one per method) -> .pte bytes, XNNPACK-delegated, with the constant methods
    `metadata`: the one lowering every softfold .pte goes through (bundles and the benchmark's baselines)."""
    with muted():  # XNNPACK's cpuinfo probe prints to stdout
        edge = to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()],
                                           compile_config=EdgeCompileConfig(_check_ir_validity=False),
                                           constant_methods=metadata)
    return edge.to_executorch(ExecutorchBackendConfig(
        memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False),
        do_quant_fusion_and_const_prop=True,  # torchao's dequantize + embedding -> quantized embedding kernels
        sym_shape_eval_pass=ConstraintBasedSymShapeEvalPass(),  # plan memory for the dynamic shapes' bounds
    )).buffer
