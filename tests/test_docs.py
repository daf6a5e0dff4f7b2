"""The course site builds strictly from the real files and renders in a browser without a network."""

from __future__ import annotations

import functools
import html
import importlib.util
import itertools
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from checks import course, harness, pip_forms
from tests.conftest import ROOT

DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"
STEP_PAGES = [DOCS / course.BY_ID[step].page for step in course.complete()]  # in course order
# Pages of the extension chapters that are no step of their own: an optional part, the bench,
# and the dated measurements the bench page links to.
EXTRA_PAGES = [DOCS / "mojo-bfloat16.md", DOCS / "bench.md", DOCS / "measurements.md"]
PAGES = [
    *(DOCS / name for name in ("index.md", "start.md", "setup.md", "max.md", "reference.md")),
    *STEP_PAGES,
    *EXTRA_PAGES,
    DOCS / "next.md",
]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",  # let mermaid and KaTeX finish before the DOM is read
]
FENCE = re.compile(r"^( *)```(\w+)[^\n]*\n(.*?)^\1```", re.S | re.M)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=harness.child_env(NO_MKDOCS_2_WARNING="1"),
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return folder


@pytest.fixture(scope="module")
def zensical_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as Zensical builds it from the same mkdocs.yml. Zensical has no --site-dir and
    wants the site and docs folders beside its config file, so it builds a copy of docs/ beside a
    copy of mkdocs.yml; the snippets still come from the repository, where it runs."""
    if importlib.util.find_spec("zensical") is None:
        if os.environ.get("CI"):
            pytest.fail("zensical is not installed: .ci/run installs it (pip install -e .[docs])")
        pytest.skip("the Zensical build needs zensical: python3 -m pip install -e .[docs]")
    project = tmp_path_factory.mktemp("zensical")
    shutil.copytree(DOCS, project / "docs")
    config, found = re.subn(r"^site_dir: .*$", "site_dir: site", MKDOCS_YML.read_text(), flags=re.M)
    assert found == 1, "mkdocs.yml has no site_dir line"
    (project / "mkdocs.yml").write_text(config)
    build = subprocess.run(
        [sys.executable, "-m", "zensical", "build", "--strict", "-f", str(project / "mkdocs.yml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=harness.child_env(),
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return project / "site"


def html_page(site: Path, page: Path) -> Path:
    return site / page.relative_to(DOCS).with_suffix(".html")


def visible_text(path: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def step_of(page: Path) -> int:
    return next(step for step in harness.ALL_STEPS if DOCS / course.BY_ID[step].page == page)


def first_line(path: Path) -> str:
    return path.read_text().splitlines()[0].strip('"')


@pytest.mark.fast
def test_every_step_page_is_a_course_entrys():
    """(tests/test_course.py names an entry's missing page.)"""
    pages = {DOCS / course.BY_ID[step].page for step in harness.ALL_STEPS}
    assert set((DOCS / "steps").glob("*.md")) <= pages


@pytest.mark.fast
@pytest.mark.parametrize("page", STEP_PAGES, ids=lambda p: p.stem)
def test_step_page_includes_its_skeleton_solution_and_reports(site, page):
    step = step_of(page)
    name = harness.module_name(step)
    source = page.read_text()
    for included in (
        f"steps/{name}.py",
        f"solutions/{name}.py",
        f"docs/reports/{name}_skeleton.txt",
        f"docs/reports/{name}_solution.txt",
    ):
        assert f'--8<-- "{included}"' in source, f"{page.name} does not include {included}"
    built = visible_text(html_page(site, page))
    for code in (ROOT / "steps" / f"{name}.py", ROOT / "solutions" / f"{name}.py"):
        assert first_line(code) in built, f"{code.name}'s code is not on the built {page.name}"
    step_name = harness.step_name(step)
    assert f"{step_name} is not done yet" in built and f"{step_name} passes" in built


@pytest.mark.fast
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_no_step_code_is_pasted(page):
    """Python on a page is a snippet include, or a line or three of illustration."""
    for _, language, body in FENCE.findall(page.read_text()):
        lines = [line for line in body.strip().splitlines() if line.strip()]
        if language == "python" and not (len(lines) == 1 and lines[0].strip().startswith("--8<--")):
            assert len(lines) <= 3, f"{page.name} pastes {len(lines)} lines of Python:\n{body}"


def outside_pixi_tabs(markdown: str) -> str:
    """The page as written by hand, without its own `=== "pixi"` tabs (each has a pip tab of its
    own beside it)."""
    kept, tab = [], None
    for line in pip_forms.without_pip_forms(markdown).splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if tab is not None and line.strip() and indent <= tab:
            tab = None
        if line.lstrip().startswith('=== "pixi'):
            tab = indent
        if tab is None:
            kept.append(line)
    return "\n".join(kept)


@pytest.mark.fast
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_each_pages_pip_forms_are_pixi_tomls(page):
    source = page.read_text()
    written = pip_forms.with_pip_forms(source, page.name)
    assert written == source, (
        f"{page.name}: its pip forms are stale: run python -m checks.pip_forms"
    )


@pytest.mark.fast
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_every_pixi_command_on_a_page_shows_its_pip_form(site, page):
    """Each `pixi run TASK ARGS` the page writes is followed on the built page by pixi.toml's
    command for TASK with the same ARGS (a pip tab, "(pip: ...)", or the page's own words)."""
    tasks = pip_forms.tasks()
    source = outside_pixi_tabs(page.read_text())
    built = visible_text(html_page(site, page))
    commands = [
        (m.group(0).rstrip(), m.group(1), m.group(2)) for m in pip_forms.COMMAND.finditer(source)
    ]
    for command, task, args in commands:
        assert task in tasks, f"{page.name}: {command!r} is no pixi task"
        pip = tasks[task] + args
        wanted = sum(c == command for c, _, _ in commands)
        assert built.count(pip) >= wanted, (
            f"{page.name}: {command!r} appears {wanted} times, its pip form {pip!r} "
            f"{built.count(pip)} times"
        )
    blocks = [b for _, _, b in FENCE.findall(source) if pip_forms.COMMAND.search(b)]
    tabs = re.findall(r"<label[^>]*>pip</label>", html_page(site, page).read_text())
    assert len(tabs) >= len(blocks), f"{page.name}: {len(blocks)} code blocks, {len(tabs)} pip tabs"


@pytest.mark.fast
def test_pip_forms_are_written_from_pixi_toml_and_an_unknown_task_fails():
    written = pip_forms.with_pip_forms("Run `pixi run s4`.\n")
    assert written == "Run `pixi run s4` (pip: `python -m checks 4`).\n"
    assert pip_forms.with_pip_forms(written.replace("checks 4", "checks 5")) == written
    tabs = pip_forms.with_pip_forms("- list:\n\n    ```bash\n    pixi run s4 --x  # go\n    ```\n")
    assert tabs == (
        '- list:\n\n    === "pixi"\n\n        ```bash\n        pixi run s4 --x  # go\n        ```\n\n'
        '    === "pip"\n\n        ```bash\n        python -m checks 4 --x  # go\n        ```\n'
    )
    assert pip_forms.with_pip_forms(tabs.replace("checks 4 --x", "checks 4")) == tabs
    with pytest.raises(ValueError, match="pixi run s99"):
        pip_forms.with_pip_forms("Run `pixi run s99`.")
    with pytest.raises(ValueError, match="pixi run nope"):
        pip_forms.with_pip_forms("```bash\npixi run nope --x\n```")


def article_words(path: Path) -> list[str]:
    """The words a reader sees in a built page's content (the header, navigation and footer are
    the theme's, and differ between mkdocs-material and Zensical)."""
    markup = path.read_text()
    start = markup.index('<article class="md-content__inner md-typeset">')
    article = markup[start : markup.index("</article>", start)]
    return html.unescape(re.sub(r"<[^>]+>", " ", article)).split()


@pytest.mark.fast
def test_zensical_builds_the_same_pages(site, zensical_site):
    def built(folder: Path) -> list[str]:
        return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*.html"))

    assert built(zensical_site) == built(site)


@pytest.mark.fast
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_zensical_shows_the_text_mkdocs_shows(site, zensical_site, page):
    ours, theirs = (article_words(html_page(folder, page)) for folder in (site, zensical_site))
    at = len(os.path.commonprefix([ours, theirs]))  # the first word that differs
    around = slice(max(at - 8, 0), at + 12)
    assert ours == theirs, (
        f"{page.name} differs at word {at}:\n  mkdocs:   {' '.join(ours[around])}\n"
        f"  zensical: {' '.join(theirs[around])}"
    )


class _Handler(SimpleHTTPRequestHandler):
    errors: list[str] = []

    def log_message(self, format: str, *args) -> None:
        pass

    def log_request(self, code="-", size="-") -> None:
        if str(code).startswith(("4", "5")):
            self.errors.append(f"{code} {self.path}")


@pytest.fixture(scope="module")
def server(site):
    handler = type("Handler", (_Handler,), {"errors": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.errors
    httpd.shutdown()


@pytest.fixture(scope="module")
def chromium() -> str:
    found = (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("the browser test needs chromium (Debian: apt-get install chromium)")
    return found


def run_chromium(chromium: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, *args],
        capture_output=True,
        text=True,
        env=harness.child_env(),
        timeout=120,
    )


@pytest.mark.browser
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_page_renders_in_chromium(server, chromium, site, page):
    url, server_errors = server
    server_errors.clear()
    path = html_page(site, page).relative_to(site).as_posix()
    shown = run_chromium(chromium, "--dump-dom", f"{url}/{path}")
    dom = shown.stdout
    console = [line for line in shown.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, f"{path} logged to the browser console:\n" + "\n".join(console)
    assert not server_errors, f"{path} asked for files the site does not have: {server_errors}"
    assert re.search(r"<h1[^>]*>", dom), f"{path} has no heading"
    # What the page loads (a script, a stylesheet, an image), not what it links to (a paper).
    assert not re.search(
        r'<(script|link|img)[^>]+(src|href)="https?://(unpkg\.com|cdn\.|fonts\.googleapis)', dom
    ), f"{path} uses a CDN"
    source = page.read_text()
    diagrams = source.count("```mermaid")
    rendered = dom.count('<div class="mermaid"')
    assert rendered == diagrams and '<pre class="mermaid"' not in dom, (
        f"{path}: {diagrams} mermaid diagrams in the source, {rendered} rendered"
    )
    if "\\(" in source or "\\[" in source:
        assert 'class="katex"' in dom, f"{path}: its math was not rendered"
        assert not re.search(r'class="arithmatex">\s*\\[(\[]', dom), f"{path}: raw TeX left"
    if page in STEP_PAGES:
        assert dom.count("<pre") >= 4, f"{path}: the code and reports are missing"


@pytest.mark.browser
@pytest.mark.parametrize(
    "name, page", [("home", "index.html"), ("step-04", "steps/04-attention.html")]
)
def test_screenshot(server, chromium, name, page):
    """Screenshots to look at: build/screenshots/home.png and step-04.png."""
    url, _ = server
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{name}.png"
    target.unlink(missing_ok=True)
    run_chromium(chromium, "--window-size=1280,2400", f"--screenshot={target}", f"{url}/{page}")
    assert target.exists(), f"no screenshot of {page}"
    width, rows = png_top_rows(target, 120)
    assert width == 1280, f"the screenshot of {page} is {width} px wide, not the window's 1280"
    header = [pixel for row in rows[8:40] for pixel in row[100:1200:10]]
    share = sum(pixel == THEME_PRIMARY for pixel in header) / len(header)
    assert share > 0.5, f"{page}: the header is not the theme's deep purple ({share:.0%} of it)"
    body = {pixel for row in rows[80:120] for pixel in row[300:1000:7]}
    assert len(body) > 3, f"{page}: nothing is drawn below the header"


THEME_PRIMARY = (0x7E, 0x56, 0xC2)  # mkdocs-material's deep purple (mkdocs.yml's palette)


def png_top_rows(path: Path, count: int) -> tuple[int, list[list[tuple[int, int, int]]]]:
    """The width of an 8-bit RGB(A) PNG and the RGB pixels of its first `count` rows (rows only
    depend on the rows above them, so the rest need not be decoded)."""
    import struct
    import zlib

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        header = body if kind == b"IHDR" else header
        idat += body if kind == b"IDAT" else b""
        position += 12 + length
    width, _, depth, color = struct.unpack(">IIBB", header[:10])
    channels = {2: 3, 6: 4}[color]
    assert depth == 8, f"{path}: {depth}-bit PNG"
    stride = width * channels
    raw = zlib.decompressobj().decompress(idat, (stride + 1) * count)
    previous, rows = bytearray(stride), []
    for index in range(count):
        kind, line = raw[index * (stride + 1)], bytearray(raw[index * (stride + 1) + 1 :][:stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                guess = left + up - corner
                nearest = min(
                    (abs(guess - left), 0, left),
                    (abs(guess - up), 1, up),
                    (abs(guess - corner), 2, corner),
                )[2]
                line[i] = (line[i] + nearest) & 255
        rows.append([tuple(line[i : i + 3]) for i in range(0, stride, channels)])
        previous = line
    return width, rows


# The figures of the extension chapters: one bench run, on one page (docs/bench.md); each
# chapter includes only its own rows of its tables, by line, from that page.
BENCH = DOCS / "bench.md"
BENCH_ROWS = {
    "steps/12-kv-cache.md": [
        "HuggingFace generate(), KV cache",
        "HuggingFace generate(), no cache",
        "MAX, step 10 loop, no cache",
        "MAX, KV cache (extension)",
    ],
    "steps/13-serve.md": ["max serve, 1 stream", "max serve, 4 concurrent streams"],
    "steps/14-mojo.md": [
        "HuggingFace generate(), KV cache",
        "MAX, KV cache (extension)",
        "MAX, KV cache + Mojo kernel",
    ],
    "mojo-bfloat16.md": [
        "HuggingFace generate(), KV cache",
        "HuggingFace generate(), bfloat16",
        "MAX, KV cache (extension)",
        "MAX, KV cache + Mojo kernel",
        "MAX, KV cache + Mojo kernel, bfloat16",
    ],
}
BENCH_PAGES = [DOCS / name for name in BENCH_ROWS]
SPEED = re.compile(r"\d+(?:\.\d+)?\s*(?:tok/s|tokens/s|tokens per second|GB/s|x faster)")
BENCH_LINES = re.compile(r'^--8<-- "docs/bench\.md:(\d+):(\d+)"$', re.M)


def included_bench_tables(source: str) -> list[list[str]]:
    """The tables a page includes from docs/bench.md: runs of consecutive include lines, each
    resolved to the lines it names."""
    lines = BENCH.read_text().splitlines()
    tables: list[list[str]] = []
    previous_end = None
    for match in BENCH_LINES.finditer(source):
        rows = lines[int(match[1]) - 1 : int(match[2])]
        if previous_end is not None and source[previous_end : match.start()] == "\n":
            tables[-1].extend(rows)
        else:
            tables.append(rows)
        previous_end = match.end()
    return tables


@pytest.mark.fast
@pytest.mark.parametrize("page", BENCH_PAGES, ids=lambda p: p.stem)
def test_extension_pages_show_their_own_rows_of_the_one_bench_run(page):
    """Each chapter shows a table of docs/bench.md's run, its header and its own rows only, and
    quotes no speed of its own; the block of the whole run is on docs/bench.md alone."""
    source = page.read_text()
    assert "docs/snippets/bench.md" not in source, page.name
    assert re.search(r"\]\((\.\./)?bench\.md\)", source), (
        f"{page.name} does not link the bench page"
    )
    tables = included_bench_tables(source)
    assert len(tables) == 1, f"{page.name} includes {len(tables)} tables of docs/bench.md"
    header, rule, *rows = tables[0]
    assert header.startswith("| model |") or header.startswith("| requests |"), header
    assert set(rule) <= set("|-: "), rule
    models = [row.split(" | ")[0].removeprefix("| ") for row in rows]
    name = str(page.relative_to(DOCS))
    assert models == BENCH_ROWS[name], f"{name} shows the rows {models}"
    quoted = SPEED.findall(source)
    assert not quoted, f"{page.name} quotes speeds of its own, not the shared run's: {quoted}"


@pytest.mark.fast
def test_the_bench_block_is_on_one_page_only():
    assert not (DOCS / "snippets" / "bench.md").exists()
    block = "Where a token's time goes"
    for page in DOCS.rglob("*.md"):
        if page != BENCH:
            assert block not in page.read_text(), f"{page} repeats the bench page"
    assert "bench.md" in MKDOCS_YML.read_text(), "the bench page is not in the nav"


def bench_table(text: str) -> dict[str, float]:
    """The bench snippet's table: model -> median tokens/s."""
    rows = re.findall(r"^\| ([^|]+?) \| ([\d.]+) \|", text, re.M)
    return {model: float(median) for model, median in rows}


@pytest.mark.fast
def test_bench_arithmetic_adds_up():
    """tokens/s x bytes per token = GB/s, with GPT-2 small's weights counted from its sizes."""
    text = BENCH.read_text()
    table = bench_table(text)
    assert len(table) >= 4, f"the bench page's table has {len(table)} rows"
    e, layers, vocab = 768, 12, 50257
    block = (e * 3 * e + 3 * e) + (e * e + e) + (e * 4 * e + 4 * e) + (4 * e * e + e) + 4 * e
    numbers = layers * block + 2 * e + vocab * e  # blocks, ln_f, the head
    megabytes = round(numbers * 4 / 1e6, 1)
    assert f"{numbers / 1e6:.2f} million" in text and f"{megabytes} MB" in text
    products = re.findall(r"([\d.]+) × ([\d.]+) MB = ([\d.]+) GB/s", text)
    assert len(products) >= 3, "the page shows no tokens/s x MB = GB/s products"
    bfloat16 = {v for model, v in table.items() if model.endswith("bfloat16")}
    float32 = {v for model, v in table.items() if not model.endswith("bfloat16")}
    for speed, size, bandwidth in products:
        # bfloat16 rows read half the bytes: 2 per weight (two rows may share a speed)
        sizes = {megabytes} if float(speed) in float32 else set()
        sizes |= {round(megabytes / 2, 1)} if float(speed) in bfloat16 else set()
        assert float(size) in sizes, (speed, size)
        assert float(speed) in table.values(), f"{speed} tok/s is not in the table"
        assert abs(float(speed) * float(size) / 1000 - float(bandwidth)) < 0.051, (speed, bandwidth)
    # the ceilings: the memory read speed over the bytes of a token, float32 and bfloat16
    memory = float(re.search(r"read\s+memory at ([\d.]+) GB/s", text)[1])
    ceiling = round(memory / (megabytes / 1000))
    flat = " ".join(text.split())
    assert f"{memory} / {megabytes / 1000:.4f} = {ceiling} tok/s" in flat
    assert f"faster than {round(2 * memory / (megabytes / 1000))} tok/s" in flat


def pmatrices(text: str) -> list:
    import numpy as np

    found = re.findall(r"\\begin\{pmatrix\}(.*?)\\end\{pmatrix\}", text, re.S)
    parse = {"-\\infty": -np.inf}
    return [
        np.array(
            [
                [parse.get(c.strip(), None) or float(c) for c in row.split("&")]
                for row in body.split("\\\\")
            ]
        )
        for body in found
    ]


@pytest.mark.fast
def test_worked_attention_example_is_right():
    import numpy as np

    text = (DOCS / "steps" / "04-attention.md").read_text()
    worked = text[text.index("### Three tokens, by hand") : text.index("### The general form")]
    q, k, v, scores, masked, weights, out = pmatrices(worked)
    assert np.array_equal(scores, q @ k.T)
    mask = np.triu(np.full((3, 3), -np.inf), 1)
    expected = scores * (1 / np.sqrt(q.shape[1])) + mask
    assert np.array_equal(masked == -np.inf, expected == -np.inf)
    assert np.allclose(masked[masked > -np.inf], expected[expected > -np.inf], atol=0.005)
    exact = np.exp(expected - expected.max(-1, keepdims=True))
    exact /= exact.sum(-1, keepdims=True)
    assert np.allclose(weights, exact, atol=0.005)
    assert np.allclose(out, exact @ v, atol=0.005)


@pytest.mark.fast
def test_step_1_counts_gpt2s_parameters_as_huggingface_does():
    """Every number of step 1's count, from HuggingFace's GPT-2 small (built on the meta device:
    shapes without memory), and each row's shapes multiplied out; step 8's sizes of the head."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.device("meta"):
        model = GPT2LMHeadModel(GPT2Config())
    body, block = model.transformer, model.transformer.h[0]

    def count(*modules) -> int:
        return sum(p.numel() for module in modules for p in module.parameters())

    wanted = [
        count(body.wte),
        count(body.wpe),
        count(block.ln_1, block.ln_2),
        count(block.attn),
        count(block.mlp),
        count(body.h),
        count(body.ln_f),
        count(model),
    ]
    text = (DOCS / "steps" / "01-config.md").read_text()
    rows = re.findall(r"^\| (.+?) \| *(.*?) *\| \**([\d,]+)\** \|$", text, re.M)
    assert [int(n.replace(",", "")) for _, _, n in rows] == wanted
    for label, shapes, number in rows:
        if shapes:  # "768 × 2304 + 2304, 768 × 768 + 768": the weights and biases of each layer
            layers = shapes.replace("×", "*").split(",")
            assert sum(eval(layer, {}) for layer in layers) == int(number.replace(",", "")), label
    assert f"12 blocks of {count(block):,}" in text and len(body.h) == 12
    assert f"{round(100 * count(body.wte) / count(model))} % of the model" in text
    assert f"{count(model) / 1e6:.1f} million" in (DOCS / "steps" / "08-lm-head.md").read_text()
    # One decoded token reads the blocks, ln_f and the head (a matrix the size of wte) once.
    read = count(body.h, body.ln_f, model.lm_head) * 4 / 1e6
    assert f"about\n{round(read)} MB in float32" in text
    head = (DOCS / "steps" / "08-lm-head.md").read_text()
    assert f"the {count(model.lm_head) / 1e6:.1f}-million-parameter matrix twice" in head
    assert f"{round(count(model.lm_head) * 4 / 1e6)} MB more in\nfloat32" in head


@pytest.mark.fast
def test_step_2_numbers():
    """The MLP's share of a block, and how far the tanh GELU is from the exact one."""
    import math

    import numpy as np

    text = " ".join((DOCS / "steps" / "02-mlp.md").read_text().split())
    e = 768
    mlp = (e * 4 * e + 4 * e) + (4 * e * e + e)
    block = mlp + (e * 3 * e + 3 * e) + (e * e + e) + 4 * e
    assert round(3 * mlp / block) == 2 and "the MLP two thirds of each block's parameters" in text
    x = np.linspace(-6, 6, 120001)
    exact = x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    tanh = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    gap = np.abs(exact - tanh)
    assert (
        f"up to about {gap.max():.4f} (near \\(x \\approx \\pm {abs(x[gap.argmax()]):.1f}\\))"
        in text
    )


def softmax_rows(x):
    import numpy as np

    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.fast
def test_step_3_attention_preview_is_right():
    """Step 3's preview: the scores are step 4's worked example's, unmasked, and every weight and
    output follows from them, before and after the mask."""
    import numpy as np

    text = (DOCS / "steps" / "03-causal-mask.md").read_text()
    preview = text[text.index("### Three tokens, a preview") : text.index("## The mask")]
    scores, values, weights, out, masked, masked_weights, masked_out = pmatrices(preview)
    worked = (DOCS / "steps" / "04-attention.md").read_text()
    q, k, v = pmatrices(worked[worked.index("### Three tokens, by hand") :])[:3]
    exact = q @ k.T / np.sqrt(q.shape[1])
    assert np.allclose(scores, exact, atol=0.005) and np.array_equal(values, v)
    assert np.allclose(weights, softmax_rows(exact), atol=0.005)
    assert np.allclose(out, softmax_rows(exact) @ v, atol=0.005)
    mask = np.triu(np.full((3, 3), -np.inf), 1)
    assert np.array_equal(masked == -np.inf, mask == -np.inf)
    assert np.allclose(masked[mask == 0], exact[mask == 0], atol=0.005)
    assert np.allclose(masked_weights, softmax_rows(exact + mask), atol=0.005)
    assert np.allclose(masked_out, softmax_rows(exact + mask) @ v, atol=0.005)
    share = round(100 * softmax_rows(exact)[0, 1:].sum())
    assert f'"the" gave {share} % of its weight to "cat" and "sat"' in " ".join(preview.split())


@pytest.mark.fast
def test_the_glossary_softmax_example_is_right():
    import numpy as np

    text = " ".join((DOCS / "start.md").read_text().split())
    found = re.search(r"Scores \\\((\([^)]*\))\\\) become \\\((\([^)]*\))\\\)", text)
    assert found, "start.md's softmax example is not where the test looks"
    scores, probabilities = (
        np.array([float(x) for x in group.strip("()").split(",")]) for group in found.groups()
    )
    assert np.allclose(softmax_rows(scores), probabilities, atol=0.005)


def bpe_train(pieces: dict[str, int], count: int) -> list[tuple[tuple[str, str], int, list]]:
    """A plain BPE trainer: (merged pair, its count, the pieces after it) for each merge."""
    from collections import Counter

    tokens = {piece: list(piece) for piece in pieces}
    history = []
    for _ in range(count):
        pairs = Counter()
        for piece, times in pieces.items():
            for pair in itertools.pairwise(tokens[piece]):
                pairs[pair] += times
        (best, times), runner_up = pairs.most_common(2)
        assert times > runner_up[1], "the worked example must have no ties"
        for piece in tokens:
            tokens[piece] = bpe_merge(tokens[piece], best)
        history.append((best, times, [" ".join(tokens[piece]) for piece in pieces]))
    return history


def bpe_merge(tokens: list[str], pair: tuple[str, str]) -> list[str]:
    out: list[str] = []
    for token in tokens:
        if out and (out[-1], token) == pair:
            out[-1] += token
        else:
            out.append(token)
    return out


def bpe_encode(piece: str, merges: list[tuple[str, str]]) -> list[str]:
    tokens = list(piece)
    while True:
        ranked = [merges.index(p) for p in itertools.pairwise(tokens) if p in merges]
        if not ranked:
            return tokens
        tokens = bpe_merge(tokens, merges[min(ranked)])


@pytest.mark.fast
def test_worked_bpe_example_is_right():
    text = (DOCS / "steps" / "09-tokens.md").read_text()
    assert "` the` five times, ` then` twice,\n` hen` twice and ` to` three times" in text
    history = bpe_train({"Ġthe": 5, "Ġthen": 2, "Ġhen": 2, "Ġto": 3}, 3)
    rows = re.findall(r"^\| (\d) \| `(\S+)` `(\S+)` \| (\d+) \| (.*) \|$", text, re.M)
    assert len(rows) == len(history)
    for (number, a, b, times, after), (pair, count, pieces) in zip(rows, history, strict=True):
        assert (a, b) == pair and int(times) == count, f"merge {number}"
        assert re.findall(r"`([^`]+)`", after) == pieces, f"merge {number}"
    merges = [pair for pair, _, _ in history]
    assert "`Ġthe n`: two tokens" in text and bpe_encode("Ġthen", merges) == ["Ġthe", "n"]
    assert "`t he n`: three tokens" in text and bpe_encode("then", merges) == ["t", "he", "n"]


@pytest.mark.fast
def test_the_byte_table_behind_G():
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    table = bytes_to_unicode()
    text = (DOCS / "steps" / "09-tokens.md").read_text()
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"
    assert "".join(table[b] for b in "é".encode()) == "Ã©" and "written `Ã©`" in text
    unchanged = sum(ord(char) == byte for byte, char in table.items())
    assert f"the {unchanged} bytes" in text and f"the other {256 - unchanged}" in text


@pytest.mark.fast
@pytest.mark.parametrize(
    "page, example",
    [("max.md", "examples/max_tour.py"), ("steps/14-mojo.md", "examples/mojo_tour.mojo")],
)
def test_tour_pages_show_every_section_of_their_file(page, example):
    """The tours' code is on the pages from the files tests/test_tours.py runs, never pasted."""
    source = (DOCS / page).read_text()
    sections = re.findall(r"--8<-- \[start:(\w+)\]", (DOCS / example).read_text())
    assert sections, f"{example} has no snippet sections"
    for section in sections:
        assert f'--8<-- "docs/{example}:{section}"' in source, f"{page} lacks {section}"
    output = Path(example).with_suffix(".txt").as_posix()
    assert f'--8<-- "docs/{output}' in source, f"{page} does not show what {example} prints"


@pytest.mark.fast
def test_max_page_comes_between_setup_and_step_1():
    nav = re.findall(r"^\s+- (.+?): ([\w./-]+\.md)$", MKDOCS_YML.read_text(), re.M)
    pages = [page for _, page in nav]
    assert (
        pages.index("setup.md") + 1
        == pages.index("max.md")
        == pages.index("steps/01-config.md") - 1
    )
    assert pages.index("start.md") == pages.index("index.md") + 1, "the on-ramp follows Home"


@pytest.mark.fast
def test_max_page_shows_each_parts_own_output():
    """After each part of the tour, the page shows the lines of output that part prints."""
    source = (DOCS / "max.md").read_text()
    tour = (DOCS / "examples" / "max_tour.py").read_text()
    printed = (DOCS / "examples" / "max_tour.txt").read_text().splitlines()
    pairs = re.findall(
        r'max_tour\.py:(\w+)"\n```\n\n```text\n--8<-- "docs/examples/max_tour\.txt:(\d+):(\d*)"',
        source,
    )
    assert len(pairs) == 5, f"{len(pairs)} parts of max.md show their output"
    for section, start, end in pairs:
        code = tour[tour.index(f"[start:{section}]") : tour.index(f"[end:{section}]")]
        shown = [line.strip() for line in printed[int(start) - 1 : int(end) if end else None]]
        for text in re.findall(r'print\(f?"([^"{]+)', code):
            assert any(line.startswith(text.strip()) for line in shown), (
                f"max.md shows lines {start}-{end} after {section}, but not its {text!r}"
            )


# The word budget: what a reader reads on a page, without its code, math and collapsed notes.
CORE_WORDS, EXTENSION_WORDS = 1200, 1800
EXTENSION_PAGES = tuple(Path(course.BY_ID[step].page).stem for step in course.EXTENSIONS)
NOT_PROSE = ("details", "pre", "code")  # collapsed notes, code blocks and inline code


def prose_words(path: Path) -> list[str]:
    """The words of a built page's article outside `<details>`, `<pre>` and `<code>` elements and
    KaTeX's source (`class="arithmatex"`), counting only tokens with a letter or digit."""
    markup = path.read_text()
    start = markup.index('<article class="md-content__inner md-typeset">')
    article = markup[start : markup.index("</article>", start)]
    for tag in NOT_PROSE:  # innermost first, again until none is left (details nest)
        innermost = re.compile(rf"<{tag}\b[^>]*>(?:(?!<{tag}\b).)*?</{tag}>", re.S)
        while (stripped := innermost.sub(" ", article)) != article:
            article = stripped
    article = re.sub(r'<(span|div) class="arithmatex">.*?</\1>', " ", article, flags=re.S)
    words = html.unescape(re.sub(r"<[^>]+>", " ", article)).split()
    return [word for word in words if re.search(r"\w", word)]


def word_budget(page: Path) -> pytest.param:
    if page.stem in EXTENSION_PAGES:
        return pytest.param(page, EXTENSION_WORDS, id=page.stem)
    return pytest.param(page, CORE_WORDS, id=page.stem)


@pytest.mark.fast
@pytest.mark.parametrize("page, budget", [word_budget(page) for page in STEP_PAGES])
def test_step_pages_keep_to_their_word_budget(site, page, budget):
    """No core step page over 1,200 words of prose, no extension page (12-kv-cache, 13-serve,
    14-mojo) over 1,800: code, math and collapsed notes do not count."""
    words = prose_words(html_page(site, page))
    assert len(words) <= budget, f"{page.name}: {len(words)} words of prose, over {budget}"


@pytest.mark.fast
def test_prose_words_leave_out_code_math_and_collapsed_notes(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        '<article class="md-content__inner md-typeset"><h1>Step one ¶</h1><p>Two words '
        '<code>x = 1</code> <span class="arithmatex">\\(a + b\\)</span></p><pre><code>a b c'
        "</code></pre><details><summary>Note</summary><details><p>d</p></details><p>e f</p>"
        "</details><p>and - three.</p></article>"
    )
    assert prose_words(page) == ["Step", "one", "Two", "words", "and", "three."]


@pytest.mark.fast
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_every_link_to_a_section_finds_it(site, page):
    """A link such as `[logit](../start.md#logit)` lands on an element with that id (mkdocs
    --strict checks the page, not the anchor)."""
    built = html_page(site, page)
    article = built.read_text()
    article = article[article.index('<article class="md-content__inner') :]
    for target, anchor in re.findall(r'href="([^":#]*\.html)?#([^"]+)"', article):
        linked = (built.parent / target).resolve() if target else built
        assert linked.exists(), f"{page.name} links to {target}, which the site lacks"
        assert f'id="{anchor}"' in linked.read_text(), (
            f"{page.name} links to {target or 'itself'}#{anchor}, which has no such id"
        )


BFLOAT16_PRECISION = "8 significant bits (about {:.1f} decimal digits)"


@pytest.mark.fast
@pytest.mark.parametrize(
    "page",
    PAGES,
    ids=lambda p: p.stem,
)
def test_bfloat16_precision_has_one_phrasing(page):
    """bfloat16 keeps 7 stored bits of mantissa and an implicit one: 8 significant bits, about
    8 log10(2) decimal digits, said the same way wherever a page says it."""
    import math

    text = " ".join(page.read_text().split())
    said = BFLOAT16_PRECISION.format(8 * math.log10(2))
    assert text.count("decimal digit") == text.count(said), (
        f"{page.name} gives bfloat16's precision other than as {said!r}"
    )


@pytest.mark.fast
def test_what_next_quotes_the_checks_tolerance_and_its_loss_example_is_right():
    import math

    from checks import compare

    text = " ".join((DOCS / "next.md").read_text().split())
    atol, rtol = (f"{t:.0e}".replace("e-0", "e-") for t in (compare.ATOL, compare.RTOL))
    assert f"within {atol} + {rtol}·|expected|" in text, (atol, rtol)
    p = float(re.search(r"\\\(p = ([\d.]+)\\\), that position's loss", text)[1])
    loss = re.search(r"\\\(-\\ln [\d.]+ = ([\d.]+)\\\)", text)[1]
    assert loss == f"{-math.log(p):.3f}"
    perplexity = re.search(rf"A loss of {loss} is a perplexity of (\d+)", text)[1]
    assert int(perplexity) == round(math.exp(float(loss))) == round(1 / p)


@pytest.mark.fast
def test_the_bfloat16_worked_example_is_right():
    """1.2345's float32 bits, their top half as a bfloat16, its value and the next one up, and
    the precision in decimal digits, as the optional Mojo page states them."""
    import math
    import struct

    text = " ".join((DOCS / "mojo-bfloat16.md").read_text().split())
    value, bits = re.search(r"([\d.]+) in float32 is `0x([0-9A-F]{8})`", text).groups()
    assert struct.pack(">f", float(value)).hex().upper() == bits
    top = int(bits, 16) >> 16
    low = int(bits, 16) & 0xFFFF  # round to nearest: the top half stays when the rest is < 0x8000
    assert low < 0x8000 and f"`0x{top:04X}`, which is" in text

    def as_float(half: int) -> float:
        return struct.unpack(">f", struct.pack(">I", half << 16))[0]

    assert f"which is {as_float(top)} (the next bfloat16 up is {as_float(top + 1)})" in text
    assert f"about {8 * math.log10(2):.1f} decimal digits" in text and "8 significant bits" in text
