"""What a check file needs, from the modules that each do one job:

- `checks.course`: the course's steps (read from course.toml) and their names;
- `checks.options`: what this run was asked for (folder, device, dtype, eager-only, time limit);
- `checks.runtime`: MAX in this process (device and dtype defaults, executor, child env);
- `checks.max_cache`: MAX's compile cache (is it cold?);
- `checks.learner`: loading the learner's files and guarding every call into them;
- `checks.waiting`: the heartbeat that keeps long waits from being silent.
"""

from checks.course import (
    ALL_STEPS,
    COMPILING_STEPS,
    EXTENSIONS,
    KV_CACHE,
    MOJO,
    SERVING,
    STEP_TITLES,
    STEP_USES,
    STEPS,
    module_name,
    next_step,
    parse_step,
    step_argument,
    command,
    step_command,
    step_name,
    steps_in_words,
)
from checks.learner import (
    CompileFailed,
    LearnerError,
    LearnerTimeout,
    call,
    compile_module,
    describe_exception,
    error_summary,
    learner_attr,
    load_step,
    not_none,
    steps_dir,
    time_limit,
    use_steps_dir,
)
from checks.options import DTYPES, ROOT, Options, add_folder_options, chosen_folder
from checks.max_cache import max_cache_is_cold
from checks.runtime import (
    NoDevice,
    child_env,
    device,
    dtype,
    low_precision,
    pinned_defaults,
    prepare_max,
)
from checks.waiting import Waiting, say, waiting

__all__ = [name for name in dir() if not name.startswith("_")]
