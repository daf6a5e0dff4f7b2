# The bfloat16 kernel of the Mojo extension: the same product as gemv.mojo, on bfloat16 x and
# weights, out[r, j] = sum over i of x[r, i] * weight[j, i], rounded to bfloat16 once at the end.
#
# Half the bytes per weight is half the time to read the model, and reading is all decoding does.
# A bfloat16 is the top half of a float32 (same sign and exponent, 7 bits of mantissa instead of
# 23): converting one to float32 is exact. The kernel converts `width` of them at a time and
# multiplies and adds in float32, so the sum of 768 or 3072 products keeps float32's precision;
# only the result is rounded. (AVX-512 has a bfloat16 dot instruction, AVX2 and NEON have none:
# convert, then multiply, runs on every CPU.)
import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm import sync_parallelize
from max.gpu.host import DeviceContext
from std.sys import num_physical_cores, simd_width_of

# float32 lanes per SIMD register (the accumulators'): 4 with NEON, 8 with AVX2, 16 with AVX-512.
comptime SIMD_WIDTH = simd_width_of[DType.float32]()


def dot_bf16[
    width: Int
](a: UnsafePointer[BFloat16, _], b: UnsafePointer[BFloat16, _], k: Int) -> Float32:
    """sum(a[i] * b[i] for i in range(k)) in float32: two accumulators, then the leftover."""
    var acc0 = SIMD[DType.float32, width](0)
    var acc1 = SIMD[DType.float32, width](0)
    var i = 0
    while i + 2 * width <= k:  # convert `width` bfloat16 of each to float32, then multiply-add
        var a0 = a.load[width=width](i).cast[DType.float32]()
        var b0 = b.load[width=width](i).cast[DType.float32]()
        var a1 = a.load[width=width](i + width).cast[DType.float32]()
        var b1 = b.load[width=width](i + width).cast[DType.float32]()
        acc0 += a0 * b0
        acc1 += a1 * b1
        i += 2 * width
    var total = (acc0 + acc1).reduce_add()
    while i < k:
        total += a[i].cast[DType.float32]() * b[i].cast[DType.float32]()
        i += 1
    return total


@extensibility.register("gemv_bf16")
struct GemvBF16:
    @staticmethod
    def execute[
        target: StaticString,
        width: Int = SIMD_WIDTH,
        workers: Int = 0,  # 0: one per core of this machine
    ](
        output: OutputTensor[dtype=DType.bfloat16, rank=2, ...],  # [rows, N]
        x: InputTensor[dtype=DType.bfloat16, rank=2, ...],  # [rows, K]
        weight: InputTensor[dtype=DType.bfloat16, rank=2, ...],  # [N, K]
        ctx: DeviceContext,
    ) raises:
        var rows = Int(x.dim_size(0))
        var n = Int(weight.dim_size(0))
        var k = Int(weight.dim_size(1))
        var xp = x.unsafe_ptr()
        var wp = weight.unsafe_ptr()
        var op = output.unsafe_ptr()
        var blocks = workers if workers > 0 else num_physical_cores()

        def block(worker: Int) {var xp, var wp, var op, var rows, var n, var k, var blocks}:
            for j in range(worker * n // blocks, (worker + 1) * n // blocks):
                for r in range(rows):  # the float32 sum, rounded to bfloat16 once
                    var total = dot_bf16[width](wp + j * k, xp + r * k, k)
                    op[r * n + j] = total.cast[DType.bfloat16]()

        sync_parallelize(block, blocks)
