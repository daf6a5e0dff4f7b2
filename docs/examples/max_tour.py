"""MAX in ten minutes: the pieces of MAX's Python API that steps 1-11 use, on tiny tensors.

Run it: python docs/examples/max_tour.py   (the page "MAX in ten minutes" explains each part;
tests/test_tours.py runs it and checks what it prints).
"""

import logging
import signal
import time

import numpy as np

# --8<-- [start:imports]
from max.driver import CPU
from max.dtype import DType
from max.experimental import functional as F
from max.experimental.nn import Linear, Module
from max.experimental.tensor import Tensor, TensorType, defaults
from max.graph import DeviceRef

# --8<-- [end:imports]


def interrupt(signum, frame):
    raise KeyboardInterrupt


# Python 3.11 runs MAX's eager ops ~100x slower under its default SIGINT handler (the page's note).
signal.signal(signal.SIGINT, interrupt)
logging.getLogger("max").setLevel(logging.ERROR)  # "compiled ... on the fly": first runs only

# --8<-- [start:tensor]
x = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # from a nested list: dtype and device are defaults
print("x:", list(x.shape), x.dtype, x.device)
ids = Tensor([[15496, 995]], dtype=DType.int64)  # token ids must ask for int64
print("ids:", list(ids.shape), ids.dtype)
print("a list of ints without dtype=:", Tensor([1, 2, 3]).dtype)
# --8<-- [end:tensor]

# --8<-- [start:defaults]
dtype, mesh = defaults()  # (the default float dtype, a DeviceMesh): not a Device
device = mesh.devices[0]  # the Device itself: CPU() here, an Accelerator() on a GPU machine
print("defaults:", dtype, type(mesh).__name__, "->", device)
print("device ref:", DeviceRef.from_device(device))  # how a graph's types name that device
# --8<-- [end:defaults]

# --8<-- [start:eager]
scores = x @ x.transpose(0, 1)  # runs now: [2, 3] @ [3, 2] -> [2, 2]
weights = F.softmax(scores * 0.1, axis=-1)
print("scores:", scores.to_numpy().tolist())
print("softmax rows sum to:", weights.to_numpy().sum(axis=-1).round(6).tolist())
print("mean over the last axis:", list(x.mean(axis=-1).shape))  # the axis stays, with size 1
# --8<-- [end:eager]


# --8<-- [start:module]
class TinyHead(Module):
    """A Linear, then a learned per-feature scale: parameters are tensors stored as attributes."""

    def __init__(self, n_in: int, n_out: int):
        self.proj = Linear(n_in, n_out, bias=True)  # weight stored [out, in]
        self.scale = Tensor.ones([n_out])

    def forward(self, x: Tensor) -> Tensor:
        print("  forward sees shape", list(x.shape))
        return F.softmax(self.proj(x) * self.scale, axis=-1)


with F.lazy():  # describe the parameters without filling them with random numbers
    head = TinyHead(3, 2)
print("parameters:", [(name, list(p.shape)) for name, p in head.parameters])
head.load_state_dict(
    {
        "proj.weight": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32),
        "proj.bias": np.array([0.0, 1.0], dtype=np.float32),
        "scale": np.array([1.0, 0.5], dtype=np.float32),
    }
)
tokens = Tensor.from_dlpack(np.arange(12, dtype=np.float32).reshape(1, 4, 3) / 10)
print("eager call:")
eager = head(tokens)  # forward runs as Python, each op at once
print("  eager output, first row:", [round(float(v), 4) for v in eager.to_numpy()[0, 0]])
# --8<-- [end:module]

# --8<-- [start:compile]
where = DeviceRef.from_device(device)
token_type = TensorType(DType.float32, ("batch", "seqlen", 3), device=where)  # symbolic sizes
print("compiling:")
start = time.monotonic()
compiled = head.compile(token_type)  # forward runs once, on symbolic shapes, to build the graph
print(f"  compiled in {time.monotonic() - start:.1f} s")
for length in (4, 7):
    batch = Tensor.from_dlpack(np.arange(length * 3, dtype=np.float32).reshape(1, length, 3) / 10)
    out = compiled(batch)  # no Python forward: the graph runs
    print(f"compiled call, {length} tokens:", list(out.shape))
same = np.allclose(compiled(tokens).to_numpy(), eager.to_numpy(), atol=1e-6)
print("compiled equals eager:", same)
# --8<-- [end:compile]
