"""The given part of the serving chapter: what `max serve` needs that is not your model.

    python steps/gpt2_serve.py --model DIR [--port 8000]    # what `pixi run serve` runs

`architecture(...)` registers your model under the name a GPT-2 folder's config.json gives
("GPT2LMHeadModel"); `GivenPipelineModel` compiles your KV-cache model from the served folder
with step 11's loading; `main` starts `max serve` on ext_serve.py and says how to call it.
Nothing here is yours to write. (solutions/gpt2_serve.py is a link to this file.)
"""

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from max.pipelines.lib import PipelineModelWithKVCache

CHAT_TEMPLATE = Path(__file__).resolve().parent / "gpt2_chat.jinja"


def architecture(pipeline_model, arch_config):
    """The entry of ARCHITECTURES that `max serve --custom-architectures` looks up by name."""
    from max.graph.weights import WeightsFormat
    from max.pipelines.context import TextContext
    from max.pipelines.kv_cache.memory_planner import PagedMemoryPlanner
    from max.pipelines.lib import SupportedArchitecture, TextTokenizer
    from max.pipelines.modeling.types import PipelineTask

    return SupportedArchitecture(
        name="GPT2LMHeadModel",  # config.json's "architectures"
        task=PipelineTask.TEXT_GENERATION,
        example_repo_ids=["openai-community/gpt2"],
        default_encoding="float32",
        supported_encodings={"float32"},
        default_weights_format=WeightsFormat.safetensors,
        pipeline_model=pipeline_model,
        tokenizer=TextTokenizer,
        context_type=TextContext,
        config=arch_config,
        memory_planner=PagedMemoryPlanner,
        # Your model keeps its own caches. MAX's prefix cache, overlap scheduler and device graph
        # capture work on MAX's paged cache (the last two are unsupported on a CPU anyway).
        required_arguments={"enable_prefix_caching": False},
        supports_overlap_scheduler=False,
        supports_device_graph_capture=False,
    )


class GivenPipelineModel(PipelineModelWithKVCache):
    """Compiles `model_class` (your KV-cache model) once, from the folder being served."""

    model_class = None  # set by GPT2PipelineModel
    input_types = None  # its inputs' types (None: the KV-cache model's, ids then caches)

    def __init__(self, pipeline_config, session, devices, kv_cache_config, weights, adapter,
                 return_logits, **options):
        super().__init__(pipeline_config, session, devices, kv_cache_config, weights, adapter,
                         return_logits, **options)
        from max.dtype import DType
        from max.experimental.tensor import default_dtype
        from step_11 import build_model

        from gpt2_demo import cache_input_types

        with default_dtype(DType.float32):  # the encoding the architecture declares
            self.model, _, self.device, self.config = build_model(
                pipeline_config.model.model_path, model_class=self.model_class,
                input_types=self.input_types or cache_input_types)
        self.caches = {}  # request id -> (the ids its cache holds, its keys and values)

    # The server runs the model in a worker process that may not start processes, and MAX
    # compiles an eager operation (Tensor.zeros, .to(...)) in one: these helpers run none.
    def tensor(self, array):
        """A numpy array as a MAX Tensor on the model's device."""
        from max.driver import CPU
        from max.experimental.tensor import Tensor

        tensor = Tensor.from_dlpack(np.ascontiguousarray(array))
        return tensor if isinstance(self.device, CPU) else tensor.to(self.device)

    def to_numpy(self, tensor):
        """A MAX Tensor as a numpy array."""
        from max.driver import CPU

        return np.from_dlpack(tensor if isinstance(self.device, CPU) else tensor.to(CPU()))

    def empty_cache(self):
        """A request's keys and values before its first token: one [n_head, 0, head_dim] numpy
        pair per layer."""
        head_dim = self.config.n_embd // self.config.n_head
        return [np.zeros((self.config.n_head, 0, head_dim), np.float32)] * (2 * self.config.n_layer)

    @classmethod
    def get_kv_params(cls, huggingface_config, pipeline_config, devices, kv_cache_config,
                      cache_dtype):
        """The paged cache MAX sets aside for the batch (unused by your model; kept small)."""
        return kv_cache_config.to_params(
            dtype=cache_dtype, n_kv_heads=huggingface_config.n_head,
            head_dim=huggingface_config.n_embd // huggingface_config.n_head,
            num_layers=huggingface_config.n_layer, devices=devices,
            data_parallel_degree=pipeline_config.model.data_parallel_degree)


def batched_input_types(config, device) -> list:
    """The batched model's inputs: ids [B, S], positions [B, S], mask [B, 1, S, N + S], then the
    caches [B, n_head, N, head_dim], for any B, S and N."""
    from max.dtype import DType
    from max.experimental.tensor import TensorType
    from max.graph import DeviceRef

    from gpt2_demo import cache_input_types

    ids, *caches = cache_input_types(config, device)
    where = DeviceRef.from_device(device)
    positions = TensorType(DType.int64, ("batch", "seqlen"), device=where)
    mask = TensorType(caches[0].dtype, ("batch", 1, "seqlen", "keys"), device=where)
    return [ids, positions, mask, *caches]


def left_pad(arrays, axis: int) -> np.ndarray:
    """numpy arrays of different lengths along `axis`, zeros put before the shorter ones so all
    end together, stacked on a new first axis: [B, ..., the longest, ...]."""
    longest = max(array.shape[axis] for array in arrays)
    padded = []
    for array in arrays:
        width = [(0, 0)] * array.ndim
        width[axis] = (longest - array.shape[axis], 0)
        padded.append(np.pad(array, width))
    return np.stack(padded)


# The most requests one step runs together. MAX 26.7 takes 1 on a CPU unless told ("batching on
# CPU is generally not useful"): decoding reads every weight per step, so it is.
MAX_BATCH_SIZE = 8


def serve_command(folder: Path, model: str, port: int, devices: str = "cpu") -> list[str]:
    """The `max serve` command line for ext_serve.py in `folder` (as printed: starts with max)."""
    command = ["max", "serve", "--custom-architectures", f"{folder}:ext_serve", "--model", model,
               "--devices", devices, "--host", "127.0.0.1", "--port", str(port),
               "--chat-template", str(CHAT_TEMPLATE), "--max-batch-size", str(MAX_BATCH_SIZE)]
    if devices != "cpu":  # both work on MAX's paged cache, which your model does not use
        command += ["--no-enable-overlap-scheduler", "--no-device-graph-capture"]
    return command


def server_env() -> dict[str, str]:
    """Without telemetry MAX's server neither calls out nor opens a metrics port (8001)."""
    return {**os.environ, "MAX_SERVE_DISABLE_TELEMETRY": "1"}


def setup_problem(model: str, port: int) -> str | None:
    """What would stop the server before it starts, in one sentence (None when nothing)."""
    path = Path(model)
    # "gpt2" and "org/name" are hub names; a path from / or ., or under a folder here, is local.
    local = path.is_absolute() or model.startswith(".") or Path(path.parts[0]).is_dir()
    if local and not path.is_dir():
        return (f"There is no folder {model}: check --model (pixi run save-model DIR makes a "
                "small GPT-2 folder offline).")
    if path.is_dir() and not (path / "config.json").exists():
        return f"{model} has no config.json: give a folder saved with save_pretrained."
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return (f"Port {port} is in use (another server?): stop it, or choose another port "
                    "with --port.")
    return None


def unfinished(folder: Path) -> str | None:
    """A sentence when ext_serve.py in `folder` can't serve yet (the server would only crash)."""
    from types import SimpleNamespace

    from max.dtype import DType
    from transformers import GPT2Config

    sys.path.insert(0, str(folder))
    gpt2 = GPT2Config()
    what = "ext_serve.py"
    try:
        import ext_serve

        what = "GPT2ArchConfig"
        config = ext_serve.GPT2ArchConfig(dtype=DType.float32, max_seq_len=1024,
                                          huggingface_config=gpt2)
        given = {f"GPT2ArchConfig.{name}": getattr(config, name)
                 for name in ("num_key_value_heads", "head_dim", "num_layers")}
        given["GPT2ArchConfig.calculate_max_seq_len(...)"] = config.calculate_max_seq_len(
            gpt2, SimpleNamespace(max_length=None))
        what = "align"
        given["align(...)'s positions"], given["align(...)'s mask"] = ext_serve.align([1, 0], [1, 2])
        missing = [name for name, value in given.items() if value is None]
        problem = f"{missing[0]} is None" if missing else None
    except Exception as error:
        problem = f"{what} raised {type(error).__name__}: {error}".splitlines()[0]
    if problem is None:
        return None
    return (f"{folder.name}/ext_serve.py can't serve yet ({problem}): finish it and check it "
            "with pixi run check-serve, or serve the reference with pixi run serve-reference.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve your GPT-2 with max serve.")
    parser.add_argument("--model", default="gpt2",
                        help="a HuggingFace name or a local folder (pixi run save-model DIR)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--devices", default="cpu", help="cpu (default) or gpu")
    args = parser.parse_args(argv)
    problem = setup_problem(args.model, args.port)
    if problem:
        print(problem)
        return 1
    folder = Path(__file__).absolute().parent  # steps/, or solutions/ through the link
    problem = unfinished(folder)
    if problem:
        print(problem)
        return 1
    command = serve_command(folder, args.model, args.port, args.devices)
    print("Starting: " + " ".join(command))
    print(f"The first start compiles your model and MAX's sampler (minutes on 2 cores). When it "
          f"says 'Server ready', in another terminal:\n"
          f"  curl http://127.0.0.1:{args.port}/v1/completions -H 'Content-Type: application/json'"
          f" -d '{{\"model\": \"{args.model}\", \"prompt\": \"Hello\", \"max_tokens\": 20, "
          f"\"temperature\": 0}}'\nStop the server with Ctrl+C.", flush=True)
    # `python -m` runs the `max` command of this very environment, activated or not.
    entry = [sys.executable, "-m", "max._entrypoints.pipelines", *command[1:]]
    return run_until_stopped(entry, server_env())


def run_until_stopped(command: list[str], env: dict[str, str], grace_s: float = 15) -> int:
    """Runs the server as a child, in a process group of its own, until it exits or this process
    is stopped: by Ctrl+C, SIGTERM (kill, a process manager) or SIGHUP (its terminal closed). Each
    stops the server and its workers as Ctrl+C does; what is left of them after `grace_s` (or a
    second signal) is killed, so nothing holds the port once this process has ended."""
    server = subprocess.Popen(command, env=env, process_group=0)
    stopped: list[tuple[int, float]] = []

    def signal_server(signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signum)

    def stop(signum, frame):
        stopped.append((signum, time.monotonic()))
        signal_server(signal.SIGINT if len(stopped) == 1 else signal.SIGKILL)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        while server.poll() is None:
            if stopped and time.monotonic() - stopped[0][1] > grace_s:
                signal_server(signal.SIGKILL)
            time.sleep(0.2)
    finally:
        signal_server(signal.SIGKILL)  # workers the server left behind
    return 128 + stopped[0][0] if stopped else server.returncode

if __name__ == "__main__":
    sys.exit(main())
