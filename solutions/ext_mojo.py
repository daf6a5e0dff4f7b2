"""Extension solution: the KV-cache model's matrix products in your own Mojo kernel.

    python solutions/ext_mojo.py --prompt "Hello" --greedy     # step 11's demo, on this model
"""

import sys
from functools import cache
from pathlib import Path

from max.dtype import DType
from max.experimental import custom
from max.experimental import functional as F
from max.experimental.nn import Linear
from max.experimental.tensor import Tensor, TensorType
from max.graph import DeviceRef, StaticDim

from ext_kv_cache import CachedGPT2LMHeadModel, CachedLM
from step_01 import GPT2Config

from gpt2_demo import many_rows, with_float32_prompts

KERNELS = Path(__file__).resolve().parent / "kernels"  # a Mojo source package: gemv*.mojo
# Up to this many rows of x (the tokens of one decoding step), your kernel; more (a prompt), a
# matrix multiply, which reuses every weight it loads for many rows (the page times both).
KERNEL_ROWS = 4


@cache
def gemv():
    """The custom op "gemv" of kernels/gemv.mojo: x [rows, K], weight [N, K] -> [rows, N]."""
    rows, n, k = custom.Symbol("rows"), custom.Symbol("n"), custom.Symbol("k")
    return custom.declare(
        "gemv",
        inputs={"x": custom.TemplateType(DType.float32, [rows, k]),
                "weight": custom.TemplateType(DType.float32, [n, k])},
        outputs=[custom.TemplateType(DType.float32, [rows, n])],
        custom_extensions=[KERNELS],
    )


@cache
def gemv_bf16():
    """The custom op "gemv_bf16" of kernels/gemv_bf16.mojo: the same product in bfloat16."""
    rows, n, k = custom.Symbol("rows"), custom.Symbol("n"), custom.Symbol("k")
    return custom.declare(
        "gemv_bf16",
        inputs={"x": custom.TemplateType(DType.bfloat16, [rows, k]),
                "weight": custom.TemplateType(DType.bfloat16, [n, k])},
        outputs=[custom.TemplateType(DType.bfloat16, [rows, n])],
        custom_extensions=[KERNELS],
    )


def product(rows: Tensor, weight: Tensor) -> Tensor:
    """rows @ weight.T, [R, K] by [N, K]: your kernel for up to KERNEL_ROWS rows, else many_rows
    (given). Compiled, R is a symbol: the graph holds both and F.cond picks one at each call."""
    kernel, count = gemv_bf16() if weight.dtype == DType.bfloat16 else gemv(), rows.shape[0]
    if isinstance(count, StaticDim):  # eagerly, R is a number
        return kernel(rows, weight) if int(count) <= KERNEL_ROWS else many_rows(rows, weight)
    few = F.shape_to_tensor([count])[0] <= KERNEL_ROWS
    weight.__tensorvalue__()  # into the graph here: a value made inside one branch is not seen by the other
    out = TensorType(weight.dtype, [count, weight.shape[0]], DeviceRef.from_device(weight.device))
    return F.cond(few, [out], lambda: kernel(rows, weight), lambda: many_rows(rows, weight))[0]


class MojoLinear(Linear):
    """A Linear (same weight [out, in], same bias, same names) whose product is your kernel."""

    def forward(self, x: Tensor) -> Tensor:
        batch, seq_len, width = x.shape
        rows = x.reshape([batch * seq_len, width])  # [B * S, in]
        out = product(rows, self.weight)  # [B * S, out]
        out = out + self.bias if isinstance(self.bias, Tensor) else out
        return out.reshape([batch, seq_len, self.weight.shape[0]])  # [B, S, out]


def mojo_linear(linear: Linear) -> MojoLinear:
    out_dim, in_dim = linear.weight.shape
    return MojoLinear(in_dim, out_dim, bias=isinstance(linear.bias, Tensor))


class MojoCachedGPT2LMHeadModel(CachedGPT2LMHeadModel):
    """The KV-cache model with every Linear (c_attn, c_proj, c_fc, lm_head) a MojoLinear."""

    def __init__(self, config: GPT2Config):
        super().__init__(config)
        for block in self.transformer.h:
            block.attn.c_attn = mojo_linear(block.attn.c_attn)
            block.attn.c_proj = mojo_linear(block.attn.c_proj)
            block.mlp.c_fc = mojo_linear(block.mlp.c_fc)
            block.mlp.c_proj = mojo_linear(block.mlp.c_proj)
        self.lm_head = mojo_linear(self.lm_head)


def compile_mojo_model(model_name_or_path: str = "gpt2"):
    """Step 11's build_model on this model: (compiled model, tokenizer, device, config). In
    bfloat16 on a CPU a prompt runs on AMX (product's many_rows), or without AMX on a float32
    copy, the KV-cache model's (gpt2_demo.PromptsInFloat32 says why): a prompt has more than
    KERNEL_ROWS rows, so never reaches your kernel."""
    import step_11  # only the demo and the bench need step 11

    return with_float32_prompts(step_11.build_model, model_name_or_path, MojoCachedGPT2LMHeadModel,
                                prompts_class=CachedGPT2LMHeadModel, few=KERNEL_ROWS,
                                amx_prompts=True)


def build_mojo_model(model_name_or_path: str = "gpt2"):
    """Step 11's build_model on this model: (a CachedLM, tokenizer, device, config)."""
    model, tokenizer, device, config = compile_mojo_model(model_name_or_path)
    return CachedLM(model, config, device), tokenizer, device, config


def main(argv: list[str] | None = None) -> int:
    """Step 11's command line on this model."""
    import step_11

    return step_11.main(sys.argv[1:] if argv is None else argv, build=build_mojo_model)


if __name__ == "__main__":
    sys.exit(main())
