"""What an export is asked to build, as typed values: the target, the folding, and the quantization recipe.

`QuantConfig` is the one recipe config: a recipe and its knobs for one target, validated on construction. Its
`schemes` are what `quantize.py` applies (one documented dataclass per scheme, torchao style) and its
`simulation()` is the same arithmetic as `calibrate/simulate.py` reproduces it in PyTorch.

The soft prompt's prefix K/V are buffers, never weights of a Linear/MatMul, so no scheme touches them: the soft
prompt stays fp32 in every recipe.
"""
from dataclasses import asdict, dataclass, replace
from enum import Enum

from softfold.errors import UserError


class Target(str, Enum):
    EXECUTORCH = "executorch"  # model.pte for ExecuTorch (XNNPACK): Android's LlmModule
    ONNX = "onnx"  # model.onnx + external data + genai_config.json: onnxruntime-genai
    ORT = "ort"  # model.ort + required_operators.config: ONNX Runtime Mobile


class Folding(str, Enum):
    PREFIX_KV = "prefix-kv"  # the soft prompt's K/V as graph constants: no prefill cost, user positions from 0
    VIRTUAL_TOKENS = "virtual-tokens"  # N special tokens start every prompt; their embedding rows are the soft prompt


MODEL_FILE = {Target.EXECUTORCH: "model.pte", Target.ONNX: "model.onnx", Target.ORT: "model.ort"}


class Recipe(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"  # ExecuTorch: the whole model in half precision (XNNPACK fp16 kernels), prefix K/V included
    X8DA4W = "8da4w"  # ExecuTorch: int8 dynamic activations, int4 group-wise weights
    X8DA8W = "8da8w"  # ExecuTorch: int8 dynamic activations, int8 per-channel weights
    INT4 = "int4"  # ONNX: MatMulNBits 4-bit block-wise weights
    INT8 = "int8"  # ONNX: int8 dynamic (MatMulInteger)
    INT8_STATIC = "int8-static"  # ONNX: int8 QDQ, activation ranges calibrated on chat prompts


EXECUTORCH_RECIPES = (Recipe.FP32, Recipe.FP16, Recipe.X8DA4W, Recipe.X8DA8W)
ONNX_RECIPES = (Recipe.FP32, Recipe.INT4, Recipe.INT8, Recipe.INT8_STATIC)


class Algorithm(str, Enum):
    """How the weights are rounded onto the recipe's grid."""
    RTN = "rtn"  # round to nearest (torchao's, ORT's block quantizer)
    GPTQ = "gptq"  # calibrate/gptq.py: each layer rounded so its outputs match fp32 on calibration prompts
    HQQ = "hqq"  # ONNX int4: ORT's half-quadratic quantizer
    GRID = "grid"  # calibrate/grid.py: weights already on a 4-bit grid (a Q4_1 GGUF's) kept exactly, the rest GPTQ


class Arithmetic(str, Enum):
    """Whose rounding to simulate: the two runtimes differ in the weight grid and the activation scheme."""
    TORCHAO = "torchao"  # ExecuTorch 8da*w: scale = absmax / ((qmax - qmin) / 2); int8 activations per token, asymmetric
    MLAS = "mlas"  # ORT MatMulNBits: scale = signed extreme / qmin; int8 activations per weight block, symmetric
    ORT_NUMPY = "ort-numpy"  # ORT's Python block quantizer (GatherBlockQuantized): MLAS's grid, rounded half-even


def _check(value: int, allowed: tuple[int, ...], what: str) -> None:
    if value not in allowed:
        raise UserError(f"{what} must be one of {allowed}, got {value}")


def _check_algorithm(scheme, allowed: tuple[Algorithm, ...], target: str) -> None:
    """The scheme's algorithm as an Algorithm (a string names one), one of `allowed`."""
    try:
        object.__setattr__(scheme, "algorithm", Algorithm(scheme.algorithm))
    except ValueError:
        raise UserError(f"--algorithm must be one of {', '.join(a.value for a in Algorithm)}, "
                        f"got {scheme.algorithm!r}") from None
    if scheme.algorithm not in allowed:
        raise UserError(f"--algorithm for {target} must be {', '.join(a.value for a in allowed)}, "
                        f"got {scheme.algorithm.value}")


@dataclass(frozen=True)
class LinearQuant:
    """Every Linear: int8 dynamic activations x intN weights (torchao Int8DynamicActivationIntxWeightConfig).

    Mixed precision: Linears in `keep_8bit` (module names of the folded model, e.g. "lm_head", "layers.3")
    get 8-bit per-channel weights instead; `softfold sensitivity` ranks the candidates.
    """
    weight_bits: int = 4
    group_size: int = 32  # 0: one scale per output channel
    keep_8bit: tuple[str, ...] = ()
    algorithm: Algorithm = Algorithm.RTN
    # grid: the per-block offsets (export.model.OffsetLinear) in fp32, or int8 per output channel (8da8w), read in
    # a quarter of the bytes at every decoded token
    offset_bits: int = 32

    def __post_init__(self):
        _check(self.weight_bits, (4, 8), "--weight-bits for executorch (XNNPACK lowers 4- and 8-bit weights)")
        _check(self.group_size, (0, 16, 32, 64, 128, 256), "--group-size")
        _check_algorithm(self, (Algorithm.RTN, Algorithm.GPTQ, Algorithm.GRID), "executorch")
        if self.algorithm is Algorithm.GRID and self.weight_bits != 4:
            raise UserError(f"--algorithm grid keeps 4-bit source weights, got --weight-bits {self.weight_bits}")
        _check(self.offset_bits, (8, 32), "--offset-bits")
        if self.offset_bits != 32 and self.algorithm is not Algorithm.GRID:
            raise UserError(f"--offset-bits applies to --algorithm grid (the only one with offsets), "
                            f"got --algorithm {self.algorithm.value}")


@dataclass(frozen=True)
class EmbeddingQuant:
    """The token embedding table, weight-only (torchao IntxWeightOnlyConfig), as quantized embedding ops."""
    bits: int = 8
    group_size: int = 0

    def __post_init__(self):
        _check(self.bits, (4, 8), "--embedding-bits")


@dataclass(frozen=True)
class OnnxBlockQuant:
    """ONNX MatMul weights, block-wise, as MatMulNBits (ORT's quantizer: round-to-nearest or HQQ; or GPTQ,
    calibrate/gptq.py, written into the MatMulNBits ORT's round-to-nearest pass laid out).

    `keep_8bit` as in LinearQuant (8-bit MatMulNBits); `embedding_bits` 4 stores the token embedding
    table as GatherBlockQuantized (ORT quantizes Gather to 4 bits only), 0 keeps it fp32.
    """
    bits: int = 4
    block_size: int = 32
    algorithm: Algorithm = Algorithm.RTN
    accuracy_level: int = 4  # MatMulNBits compute type: 4 = int8 activations (fast on CPU)
    keep_8bit: tuple[str, ...] = ()
    embedding_bits: int = 0

    def __post_init__(self):
        _check(self.bits, (2, 4, 8), "--weight-bits for onnx")
        _check(self.block_size, (16, 32, 64, 128, 256), "--group-size")
        _check(self.embedding_bits, (0, 4), "--embedding-bits for onnx (ORT's GatherBlockQuantized is 4-bit)")
        _check_algorithm(self, tuple(Algorithm), "onnx")
        if self.algorithm is not Algorithm.RTN and self.bits != 4:
            raise UserError(f"--algorithm {self.algorithm.value} quantizes to 4 bits only, got --weight-bits {self.bits}")


@dataclass(frozen=True)
class OnnxDynamicInt8:
    """ONNX MatMul weights int8 per channel, activations quantized at run time (MatMulInteger)."""


@dataclass(frozen=True)
class OnnxStaticInt8:
    """ONNX MatMuls as QDQ int8: weights per channel (int8), activations uint8 with min/max ranges fixed
    ahead of time from calibration prompts (the soft prompt, folded into the graph, is in context).

    Min/max only: ORT's histogram calibrators (percentile, entropy) stack the activations of all
    prompts into one array, so they need prompts of one length.
    """
    prompts_per_class: int = 16  # harmful and benign calibration prompts each (softfold.calibrate.prompts)


WeightScheme = LinearQuant | OnnxBlockQuant | OnnxDynamicInt8 | OnnxStaticInt8


@dataclass(frozen=True)
class QuantSim:
    """A recipe's arithmetic as simulated in PyTorch: symmetric group-wise weights (every Linear, LM head
    included), int8 per-token activations where the runtime quantizes them, the embedding table's rounding."""
    weight_bits: int
    group_size: int  # 0: per output channel
    int8_activations: bool
    keep_8bit: tuple[str, ...] = ()
    embedding_bits: int = 0  # 0: fp32 table
    embedding_group: int = 0
    arithmetic: Arithmetic = Arithmetic.TORCHAO
    algorithm: Algorithm = Algorithm.RTN  # recomputed where simulated (calibrate/gptq.py, calibrate/grid.py)

    def to_json(self) -> dict:
        return {**asdict(self), "keep_8bit": list(self.keep_8bit), "arithmetic": self.arithmetic.value,
                "algorithm": Algorithm(self.algorithm).value}

    @classmethod
    def from_json(cls, data: dict) -> "QuantSim":
        return cls(**{**data, "keep_8bit": tuple(data["keep_8bit"]), "arithmetic": Arithmetic(data["arithmetic"]),
                      "algorithm": Algorithm(data.get("algorithm", "rtn"))})


def default_algorithm(recipe: Recipe, weight_bits: int | None, folding: Folding = Folding.PREFIX_KV) -> Algorithm:
    """4-bit weights (8da4w, int4) of prefix-kv bundles keep the source's own 4-bit grid where they lie on one, GPTQ
    elsewhere; round-to-nearest for 8 bits, whose error is already small, and for virtual-token bundles, which
    compute the soft prompt's positions with the rounded weights: there GPTQ does no better than round-to-nearest
    (docs/folding.md)."""
    four_bit = recipe in (Recipe.X8DA4W, Recipe.INT4) and (weight_bits or 4) == 4 and folding is Folding.PREFIX_KV
    return Algorithm.GRID if four_bit else Algorithm.RTN


# The quantized recipes quantize the embedding table by default: on a phone it is a large share of the bundle. The
# defaults are the widths the shipped prompt's 4-bit bundles pass their gates with: 8 bits on XNNPACK, 4 on ONNX
# (GatherBlockQuantized's only width in ORT's quantizer); fp32 in the ORT format, which cannot hold 4-bit tensors
# (docs/folding.md, "Why the recipes' defaults").
DEFAULT_EMBEDDING_BITS = {Recipe.X8DA4W: 8, Recipe.X8DA8W: 8, Recipe.INT4: 4}

# The grid's per-block offsets on XNNPACK: fp32, exact; int8 (`--offset-bits 8`) trades a longer export for a smaller,
# slightly faster bundle (docs/folding.md, "Why the recipes' defaults").
DEFAULT_OFFSET_BITS = 32


@dataclass(frozen=True)
class QuantConfig:
    """A quantization recipe for one target, validated on construction (a bad combination of flags is a
    UserError naming the flag). `algorithm` None means the recipe's default for prefix-kv folding; an export
    resolves it for its own folding (`resolved`)."""
    target: Target = Target.EXECUTORCH
    recipe: Recipe = Recipe.FP32
    group_size: int = 32  # weight quantization group (ExecuTorch) / block (ONNX int4)
    weight_bits: int | None = None  # override the recipe's weight bits (onnx int4 with 2 bits: a gate that fails)
    # the embedding table's bits (ExecuTorch 4 or 8, ONNX int4: 4); 0 keeps it fp32; None: the recipe's default
    embedding_bits: int | None = None
    keep_8bit: tuple[str, ...] = ()  # 4-bit recipes: these layers (e.g. "lm_head", "layers.3") at 8 bits
    algorithm: Algorithm | None = None
    offset_bits: int = DEFAULT_OFFSET_BITS  # executorch grid: the per-block offsets' bits (LinearQuant)

    def __post_init__(self):
        if self.embedding_bits is None:
            default = 0 if self.target is Target.ORT else DEFAULT_EMBEDDING_BITS.get(self.recipe, 0)
            object.__setattr__(self, "embedding_bits", default)
        if self.algorithm is not None:
            try:
                object.__setattr__(self, "algorithm", Algorithm(self.algorithm))
            except ValueError:
                raise UserError(f"--algorithm must be one of {', '.join(a.value for a in Algorithm)}, "
                                f"got {self.algorithm!r}") from None
        object.__setattr__(self, "keep_8bit", tuple(self.keep_8bit))
        self.schemes  # validates

    def resolved(self, folding: Folding) -> "QuantConfig":
        """This recipe with its algorithm chosen for `folding` when none was asked for."""
        if self.algorithm is not None:
            return self
        return replace(self, algorithm=default_algorithm(self.recipe, self.weight_bits, folding))

    @property
    def executorch(self) -> bool:
        return self.target is Target.EXECUTORCH

    @property
    def weights(self) -> WeightScheme | None:
        """The scheme for the Linears (ExecuTorch) or MatMuls (ONNX); None for fp32 / fp16."""
        return self.schemes[0]

    @property
    def embedding(self) -> EmbeddingQuant | None:
        """ExecuTorch's embedding scheme (ONNX's rides on OnnxBlockQuant.embedding_bits)."""
        return self.schemes[1]

    @property
    def schemes(self) -> tuple[WeightScheme | None, EmbeddingQuant | None]:
        allowed = EXECUTORCH_RECIPES if self.executorch else ONNX_RECIPES
        if self.recipe not in allowed:
            raise UserError(f"recipe {self.recipe.value} is not available for --target {self.target.value}; "
                            f"choose one of {', '.join(r.value for r in allowed)}")
        if self.keep_8bit and self.recipe not in (Recipe.X8DA4W, Recipe.INT4):
            raise UserError(f"--keep-8bit applies to the 4-bit recipes (8da4w, int4), not {self.recipe.value}")
        if self.algorithm not in (None, Algorithm.RTN) and self.recipe not in (Recipe.X8DA4W, Recipe.X8DA8W,
                                                                               Recipe.INT4):
            raise UserError(f"--algorithm {self.algorithm.value} rounds the weights of 8da4w, 8da8w (executorch) or "
                            f"int4 (onnx), not {self.recipe.value}")
        algorithm = self.algorithm or default_algorithm(self.recipe, self.weight_bits)
        return self._executorch_schemes(algorithm) if self.executorch else (self._onnx_scheme(algorithm), None)

    def _executorch_schemes(self, algorithm: Algorithm) -> tuple[LinearQuant | None, EmbeddingQuant | None]:
        bits = {Recipe.X8DA4W: 4, Recipe.X8DA8W: 8}.get(self.recipe)
        if self.embedding_bits and bits is None:
            raise UserError(f"--embedding-bits quantizes the embedding of the quantized recipes (8da4w, 8da8w); "
                            f"--recipe {self.recipe.value} keeps every weight {self.recipe.value}")
        if self.offset_bits != 32 and bits is None:
            raise UserError(f"--offset-bits applies to the grid of --recipe 8da4w, got --recipe {self.recipe.value}")
        linear = None if bits is None else LinearQuant(self.weight_bits or bits, self.group_size if bits == 4 else 0,
                                                       self.keep_8bit, algorithm, self.offset_bits)
        return linear, EmbeddingQuant(self.embedding_bits) if self.embedding_bits else None

    def _onnx_scheme(self, algorithm: Algorithm) -> WeightScheme | None:
        if self.offset_bits != 32:
            raise UserError(f"--offset-bits applies to --target executorch (XNNPACK), got --target {self.target.value}")
        if self.embedding_bits and self.recipe is not Recipe.INT4:
            raise UserError(f"--embedding-bits for onnx needs --recipe int4, got {self.recipe.value}")
        if self.embedding_bits and self.target is Target.ORT:
            raise UserError(f"--embedding-bits {self.embedding_bits} stores the table as 4-bit integers, which the ORT "
                            "format cannot hold (ONNX Runtime refuses the .ort file): use --target onnx, or "
                            "--embedding-bits 0 (the ort default)")
        if self.recipe is Recipe.INT8:
            return OnnxDynamicInt8()
        if self.recipe is Recipe.INT8_STATIC:
            return OnnxStaticInt8()
        if self.recipe is Recipe.INT4:
            return OnnxBlockQuant(self.weight_bits or 4, self.group_size, algorithm, keep_8bit=self.keep_8bit,
                                  embedding_bits=self.embedding_bits)
        return None

    def rounds_by_calibration(self) -> bool:
        """Whether the weights are rounded by calibrate/ (GPTQ, or the source's grid), not by the runtime's pass."""
        return getattr(self.weights, "algorithm", Algorithm.RTN) in (Algorithm.GPTQ, Algorithm.GRID)

    def simulation(self) -> QuantSim:
        """This recipe's arithmetic for PyTorch simulation (prefix calibration, GPTQ, sensitivity): ExecuTorch
        8da4w / 8da8w, ONNX int4."""
        linear, embedding = self.schemes
        if isinstance(linear, LinearQuant):
            return QuantSim(linear.weight_bits, linear.group_size, True, linear.keep_8bit,
                            embedding.bits if embedding else 0, embedding.group_size if embedding else 0,
                            algorithm=linear.algorithm)
        if isinstance(linear, OnnxBlockQuant):
            if linear.algorithm is Algorithm.HQQ:
                raise UserError("prefix calibration simulates round-to-nearest, GPTQ and grid weights, not HQQ's: "
                                "use --algorithm rtn, gptq or grid")
            group = linear.block_size
            return QuantSim(linear.bits, group, linear.accuracy_level == 4, linear.keep_8bit, linear.embedding_bits,
                            group if linear.embedding_bits else 0, Arithmetic.MLAS, linear.algorithm)
        raise UserError("prefix calibration simulates weight-quantized recipes: executorch 8da4w or 8da8w, onnx int4; "
                        f"got {self.recipe.value}")
