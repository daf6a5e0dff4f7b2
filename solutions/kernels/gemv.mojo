# The Mojo kernel of the Mojo extension: out[r, j] = sum over i of x[r, i] * weight[j, i].
#
# Decoding one token multiplies a [1, K] vector by every [N, K] weight of the model: each weight
# is used once per token, so the time is the time to read the weights from memory. The kernel
# reads each weight row once (for every row of x while it is in cache), SIMD_WIDTH floats at a
# time, with the output rows split between the cores.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm import sync_parallelize
from max.gpu.host import DeviceContext
from std.sys import simd_width_of

comptime SIMD_WIDTH = simd_width_of[DType.float32]()
comptime WORKERS = 2  # the cores this course is measured on; each takes a block of output rows


def dot(a: UnsafePointer[Float32, _], b: UnsafePointer[Float32, _], k: Int) -> Float32:
    """sum(a[i] * b[i] for i in range(k)): two SIMD accumulators, then the leftover < SIMD_WIDTH."""
    var acc0 = SIMD[DType.float32, SIMD_WIDTH](0)
    var acc1 = SIMD[DType.float32, SIMD_WIDTH](0)
    var i = 0
    while i + 2 * SIMD_WIDTH <= k:
        acc0 += a.load[width=SIMD_WIDTH](i) * b.load[width=SIMD_WIDTH](i)
        acc1 += a.load[width=SIMD_WIDTH](i + SIMD_WIDTH) * b.load[width=SIMD_WIDTH](i + SIMD_WIDTH)
        i += 2 * SIMD_WIDTH
    var total = (acc0 + acc1).reduce_add()
    while i < k:
        total += a[i] * b[i]
        i += 1
    return total


@extensibility.register("gemv")
struct Gemv:
    @staticmethod
    def execute[
        target: StaticString,
    ](
        output: OutputTensor[dtype=DType.float32, rank=2, ...],  # [rows, N]
        x: InputTensor[dtype=DType.float32, rank=2, ...],  # [rows, K]
        weight: InputTensor[dtype=DType.float32, rank=2, ...],  # [N, K], as Linear stores it
        ctx: DeviceContext,
    ) raises:
        var rows = Int(x.dim_size(0))
        var n = Int(weight.dim_size(0))
        var k = Int(weight.dim_size(1))
        var xp = x.unsafe_ptr()
        var wp = weight.unsafe_ptr()
        var op = output.unsafe_ptr()

        def block(worker: Int) {var xp, var wp, var op, var rows, var n, var k}:
            for j in range(worker * n // WORKERS, (worker + 1) * n // WORKERS):
                for r in range(rows):  # weight row j is read from memory once, for every row of x
                    op[r * n + j] = dot(wp + j * k, xp + r * k, k)

        sync_parallelize(block, WORKERS)
