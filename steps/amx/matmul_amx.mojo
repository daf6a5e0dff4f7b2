# Given, not an exercise: a bfloat16 matrix product on AMX, for a prompt's many rows in bfloat16
# on a CPU (docs/mojo-bfloat16.md, "Long prompts", says why the course has it).
#
#     out[r, j] = sum over i of x[r, i] * weight[j, i]      x [rows, K], weight [N, K], K % 32 == 0
#
# AMX (Advanced Matrix Extensions, Intel CPUs since Sapphire Rapids) adds eight tile registers of
# 16 rows x 64 bytes and one instruction, tdpbf16ps, that multiplies a 16 x 32 bfloat16 tile by a
# 32 x 16 one and adds the 16 x 16 float32 result to a third tile: 16,384 flops in one
# instruction. The second operand must be in "VNNI" layout: the two bfloat16 of k = 2i and 2i + 1
# side by side, row i of the tile holding 16 columns of such pairs. A weight row [j, :] already has
# its pairs side by side, so a panel (16 weight rows, 16 output columns) becomes a VNNI tile by
# transposing 32-bit pairs: panel[i][j] = weight32[j][i], weight32 being the weight read as 32-bit
# pairs (one strided load per i below).
#
# Written as inline assembly: MAX compiles kernels for the CPU model it detects, and on a virtual
# machine that may be an older model without AMX, where the compiler refuses AMX intrinsics. The
# assembler takes the instructions whatever the detected model; the caller (many_rows in
# gpt2_demo.py) uses this op only where /proc/cpuinfo lists AMX and Linux granted the tiles.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.algorithm import sync_parallelize
from max.gpu.host import DeviceContext
from std.ffi import external_call
from std.memory import bitcast
from std.sys import num_physical_cores, strided_load
from std.sys._assembly import inlined_assembly

comptime CHUNK = 8  # pairs of panels packed at once: 256 weight rows (output columns), in L2


comptime SYS_ARCH_PRCTL = 158
comptime ARCH_REQ_XCOMP_PERM = 0x1023
comptime XFEATURE_XTILEDATA = 18


def request_tiles() raises:
    """Linux gives a process the tiles' state only when asked. Without it the first tile
    instruction kills the process (SIGILL)."""
    if external_call["syscall", Int](SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0:
        raise Error("matmul_amx: Linux did not grant this process AMX's tiles")


def configure_tiles():
    """Tiles 0-3: the four 16 x 16 float32 sums; 4-5: two 16 x 32 tiles of x; 6-7: two panels.
    All eight are 16 rows of 64 bytes (palette 1)."""
    var config = List[UInt8](length=64, fill=0)
    config[0] = 1
    for t in range(8):
        config[16 + 2 * t] = 64  # bytes per row
        config[48 + t] = 16  # rows
    inlined_assembly["ldtilecfg ($0)", NoneType, constraints="r,~{memory}"](
        Int(config.unsafe_ptr())
    )
    _ = config^  # alive until here: the assembly reads it through a plain address


# --8<-- [start:block_product]
def block_product(a: UnsafePointer[BFloat16, _], k: Int, panels: UnsafePointer[BFloat16, _],
                  c: UnsafePointer[Float32, _]):
    """c [32, 32] (float32) = a [32 rows of k] times the two VNNI panels (16 columns each)."""
    inlined_assembly["tilezero %tmm0\ntilezero %tmm1\ntilezero %tmm2\ntilezero %tmm3",
                     NoneType, constraints="~{memory}"]()
    for k0 in range(0, k, 32):  # 32 bfloat16 of each row of a; 16 pairs of each panel
        inlined_assembly[
            "tileloadd ($0,$1,1), %tmm4\n"  # a's rows 0-15
            "tileloadd ($2,$1,1), %tmm5\n"  # a's rows 16-31
            "tileloadd ($3,$4,1), %tmm6\n"  # panel 0
            "tileloadd ($5,$4,1), %tmm7\n"  # panel 1
            "tdpbf16ps %tmm6, %tmm4, %tmm0\n"
            "tdpbf16ps %tmm7, %tmm4, %tmm1\n"
            "tdpbf16ps %tmm6, %tmm5, %tmm2\n"
            "tdpbf16ps %tmm7, %tmm5, %tmm3",
            NoneType,
            constraints="r,r,r,r,r,r,~{memory}",
        ](Int(a + k0), 2 * k, Int(a + 16 * k + k0), Int(panels + 16 * k0), 64,
          Int(panels + 16 * k + 16 * k0))
    inlined_assembly[
        "tilestored %tmm0, ($0,$1,1)\n"
        "tilestored %tmm1, ($2,$1,1)\n"
        "tilestored %tmm2, ($3,$1,1)\n"
        "tilestored %tmm3, ($4,$1,1)",
        NoneType,
        constraints="r,r,r,r,r,~{memory}",
    ](Int(c), 128, Int(c + 16), Int(c + 16 * 32), Int(c + 16 * 32 + 16))
# --8<-- [end:block_product]


def to_bfloat16(sums: SIMD[DType.float32, 16]) -> SIMD[DType.bfloat16, 16]:
    """Round to the nearest bfloat16, ties to even, in integer arithmetic: .cast[DType.bfloat16]()
    calls a function per number on a CPU model without AVX-512 BF16 (the one MAX detects here).
    Infinities stay infinities; a NaN whose low 16 bits are not all zero would not stay a NaN,
    but sums of bfloat16 products never make one (their NaNs have those bits zero)."""
    var bits = bitcast[DType.uint32, 16](sums)
    var rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return bitcast[DType.bfloat16, 16](rounded.cast[DType.uint16]())


def pack_pair(weight: UnsafePointer[BFloat16, _], n: Int, k: Int, first: Int,
              panels: UnsafePointer[mut=True, BFloat16, _]):
    """Weight rows first .. first + 31 as two VNNI panels [k / 2][16] of pairs (zeros past n)."""
    var half = k // 2
    var w32 = weight.bitcast[UInt32]()
    for panel in range(2):
        var row = first + 16 * panel
        var dst = (panels + panel * 16 * k).bitcast[UInt32]()
        if row + 16 <= n:  # the 16 rows' pair i, 16 * 4 bytes apart in memory: one strided load
            for i in range(half):
                dst.store(i * 16, strided_load[16](w32 + row * half + i, half))
        else:
            for j in range(16):
                for i in range(half):
                    dst[i * 16 + j] = w32[(row + j) * half + i] if row + j < n else 0


@extensibility.register("matmul_amx")
struct MatmulAMX:
    @staticmethod
    def execute[
        target: StaticString,
        workers: Int = 0,  # 0: one per core of this machine
    ](
        output: OutputTensor[dtype=DType.bfloat16, rank=2, ...],  # [rows, N]
        x: InputTensor[dtype=DType.bfloat16, rank=2, ...],  # [rows, K]
        weight: InputTensor[dtype=DType.bfloat16, rank=2, ...],  # [N, K]
        ctx: DeviceContext,
    ) raises:
        request_tiles()
        var rows = Int(x.dim_size(0))
        var n = Int(weight.dim_size(0))
        var k = Int(weight.dim_size(1))
        if k % 32 != 0:
            raise Error("matmul_amx: K must be a multiple of 32")
        var xp = x.unsafe_ptr()
        var wp = weight.unsafe_ptr()
        var op = output.unsafe_ptr()
        var pairs = (n + 31) // 32  # 32 output columns each
        var blocks = min(workers if workers > 0 else num_physical_cores(), pairs)

        def block(worker: Int) {var xp, var wp, var op, var rows, var n, var k, var blocks, var pairs}:
            configure_tiles()  # per thread: each core has its own tiles
            var panels = List[BFloat16](length=CHUNK * 32 * k, fill=0)
            var padded = List[BFloat16](length=32 * k, fill=0)  # the last rows, zero-padded
            var tail = rows - rows % 32  # the first row of a last block of fewer than 32
            for i in range((rows - tail) * k):  # copied once: every chunk uses it
                padded[i] = xp[tail * k + i]
            var sums = List[Float32](length=32 * 32, fill=0)
            var sums_at = sums.unsafe_ptr()
            var last = (worker + 1) * pairs // blocks
            for chunk in range(worker * pairs // blocks, last, CHUNK):
                var chunk_end = min(chunk + CHUNK, last)
                for pair in range(chunk, chunk_end):
                    pack_pair(wp, n, k, pair * 32, panels.unsafe_ptr() + (pair - chunk) * 32 * k)
                for m0 in range(0, rows, 32):  # 32 rows of x by each pair of panels
                    for pair in range(chunk, chunk_end):
                        var pair_panels = panels.unsafe_ptr() + (pair - chunk) * 32 * k
                        if m0 < tail:
                            block_product(xp + m0 * k, k, pair_panels, sums_at)
                        else:
                            block_product(padded.unsafe_ptr(), k, pair_panels, sums_at)
                        var n0 = pair * 32
                        for r in range(min(32, rows - m0)):  # rounded to bfloat16 once, here
                            var out = op + (m0 + r) * n + n0
                            if n0 + 32 <= n:
                                out.store(0, to_bfloat16(sums_at.load[width=16](r * 32)))
                                out.store(16, to_bfloat16(sums_at.load[width=16](r * 32 + 16)))
                            else:  # the last, narrower block: few numbers, the slow cast will do
                                for j in range(n - n0):
                                    out[j] = sums_at[r * 32 + j].cast[DType.bfloat16]()
            inlined_assembly["tilerelease", NoneType, constraints="~{memory}"]()
            _ = sums^  # alive until here: read through sums_at, a plain pointer
            _ = panels^
            _ = padded^

        sync_parallelize(block, blocks)
