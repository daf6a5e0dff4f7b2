# Mojo in ten minutes: the pieces of Mojo that the kernel of the Mojo chapter (kernels/gemv.mojo)
# uses, in a program of its own. Run it: mojo run docs/examples/mojo_tour.mojo
# (tests/test_tours.py runs it and checks what it prints).

# --8<-- [start:comptime]
from std.sys import simd_width_of

# Known when the program is compiled, not when it runs: how many float32 one SIMD register holds
# on the machine that compiles it (8 with AVX2, 16 with AVX-512).
comptime WIDTH = simd_width_of[DType.float32]()
# --8<-- [end:comptime]


# --8<-- [start:struct]
struct Counter:
    var count: Int  # fields are declared, with their types

    def __init__(out self, start: Int):  # `out self`: the constructor makes self
        self.count = start

    def bump(mut self, by: Int):  # `mut self`: this method may change the fields
        self.count += by
# --8<-- [end:struct]


# --8<-- [start:parameters]
def repeat[times: Int](word: String) -> String:
    """`times` is a compile-time parameter: each value compiles its own copy of the function."""
    var out = String()
    comptime for _ in range(times):  # unrolled by the compiler: `times` is known
        out += word
    return out
# --8<-- [end:parameters]


# --8<-- [start:pointer]
def total(p: UnsafePointer[Float32, _], n: Int) -> Float32:
    """The sum of n floats from p on: WIDTH at a time, then the leftover one by one."""
    var acc = SIMD[DType.float32, WIDTH](0)
    var i = 0
    while i + WIDTH <= n:
        acc += p.load[width=WIDTH](i)  # WIDTH floats from p + i, in one load
        i += WIDTH
    var sum = acc.reduce_add()  # the WIDTH lanes added together
    while i < n:
        sum += p[i]  # one float
        i += 1
    return sum
# --8<-- [end:pointer]


def main():
    # --8<-- [start:main_struct]
    var c = Counter(3)
    c.bump(4)
    print("counter:", c.count)
    print("repeat[3]:", repeat[3]("ab"))
    # --8<-- [end:main_struct]

    # --8<-- [start:main_simd]
    var v = SIMD[DType.float32, 4](1, 2, 3, 4)  # DType and width are parameters, in [...]
    print("simd:", v * 2, "sum of squares:", (v * v).reduce_add())
    print("float32 lanes per register here:", WIDTH)
    # --8<-- [end:main_simd]

    # --8<-- [start:main_pointer]
    var data = List[Float32](length=37, fill=0.5)  # 37: no SIMD width divides it
    print("total of 37 halves:", total(data.unsafe_ptr(), len(data)))
    # --8<-- [end:main_pointer]

    # --8<-- [start:closures]
    var scale: Float32 = 2
    var calls = 0

    def by_copy(x: Float32) {var scale} -> Float32:  # a copy of scale, taken here
        return x * scale

    def by_ref(x: Float32) {ref scale} -> Float32:  # reads scale when called
        return x * scale

    def count(n: Int) {mut calls}:  # may change calls
        calls += n

    scale = 10
    print("captured by copy:", by_copy(1.5), "by reference:", by_ref(1.5))
    count(1)
    count(1)
    print("calls:", calls)
    # --8<-- [end:closures]
