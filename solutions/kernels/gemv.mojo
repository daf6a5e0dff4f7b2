# The Mojo kernel of the Mojo extension: out[r, j] = sum over i of x[r, i] * weight[j, i].
#
# Decoding one token multiplies a [1, K] vector by every [N, K] weight of the model: each weight
# is used once per token, so the time is the time to read the weights from memory. The kernel
# reads each weight row once (for every row of x while it is in cache), `width` floats at a time,
# with the output rows split between all the cores of the machine.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm import sync_parallelize
from max.gpu.host import DeviceContext
from std.sys import num_physical_cores, simd_width_of

# Floats per SIMD load on this CPU: 4 with NEON (Apple silicon), 8 with AVX2, 16 with AVX-512.
comptime SIMD_WIDTH = simd_width_of[DType.float32]()


def dot[width: Int](a: UnsafePointer[Float32, _], b: UnsafePointer[Float32, _], k: Int) -> Float32:
    """sum(a[i] * b[i] for i in range(k)): two SIMD accumulators, then the leftover < 2 * width."""
    var acc0 = SIMD[DType.float32, width](0)
    var acc1 = SIMD[DType.float32, width](0)
    var i = 0
    while i + 2 * width <= k:
        acc0 += a.load[width=width](i) * b.load[width=width](i)
        acc1 += a.load[width=width](i + width) * b.load[width=width](i + width)
        i += 2 * width
    var total = (acc0 + acc1).reduce_add()
    while i < k:
        total += a[i] * b[i]
        i += 1
    return total


@extensibility.register("gemv")
struct Gemv:
    # `width` and `workers` are this machine's unless the op is declared with others (the check
    # runs the kernel with 1, 3 and 7 workers and a width of 4, as other machines would).
    @staticmethod
    def execute[
        target: StaticString,
        width: Int = SIMD_WIDTH,
        workers: Int = 0,  # 0: one per core of this machine (a second thread per core reads no faster)
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
        var blocks = workers if workers > 0 else num_physical_cores()

        def block(worker: Int) {var xp, var wp, var op, var rows, var n, var k, var blocks}:
            for j in range(worker * n // blocks, (worker + 1) * n // blocks):
                for r in range(rows):  # weight row j is read from memory once, for every row of x
                    op[r * n + j] = dot[width](wp + j * k, xp + r * k, k)

        sync_parallelize(block, blocks)
