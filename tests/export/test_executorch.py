"""Lowering to an ExecuTorch program: what XNNPACK computes is what PyTorch computes."""
import pytest
import torch
from executorch.runtime import Runtime

from softfold.export.executorch import lower_to_xnnpack
from softfold.export.model import gelu_tanh


class GeluTanh(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu_tanh(x)


@pytest.mark.integration  # lowers a program to ExecuTorch and runs it
def test_pte_computes_the_tanh_gelu(tmp_path):
    """Gemma's GELU-tanh through XNNPACK, over the range activations take (F.gelu(approximate="tanh") would lower to
    the erf GELU, up to 5e-4 off)."""
    x = torch.linspace(-12, 12, 8001).reshape(1, -1)
    (tmp_path / "gelu.pte").write_bytes(lower_to_xnnpack(torch.export.export(GeluTanh(), (x,), strict=False)))
    got = Runtime.get().load_program(str(tmp_path / "gelu.pte")).load_method("forward").execute([x])[0]
    want = torch.nn.functional.gelu(x, approximate="tanh")
    assert (got - want).abs().max() <= 2e-6 and (gelu_tanh(x) - want).abs().max() <= 2e-6
