"""The README's Quick start and Demo, run as written against a fresh service, their outputs
compared with what the README shows (issue 17): the README cannot drift from the code.

The code blocks are parsed, not copied: a command is a non-comment line and its
continuations (a trailing ``\\`` or ``|``, or an open quote); the ``# ...`` lines right
after it are its output as shown. Outputs are compared without whitespace (the README
wraps long JSON), ``...`` standing for anything. Only two things are not verbatim:
``./dev run &`` (install and serve) becomes a fresh ``monitor serve`` of
``monitor/example.yaml`` on a free port (``localhost:8000`` in the commands is pointed at
it), and the Demo's ``--keep-running`` line, which never returns, is not run. A GET whose
output depends on a window being evaluated apart is polled until it matches (60 s).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import PYTHON, ROOT, free_port, wait_for

README = ROOT / "README.md"
DEADLINE = 60.0


@dataclass
class Step:
    command: str
    shown: list[str]  # the output lines as the README shows them, "# " removed


def code_block(section: str) -> str:
    """The first ```sh block of the README section titled ``section``."""
    text = README.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    return body.split("```sh\n", 1)[1].split("\n```", 1)[0]


def _open(command: str) -> bool:
    """Whether the command continues on the next line."""
    stripped = command.rstrip()
    return stripped.endswith(("\\", "|")) or command.count("'") % 2 == 1


def steps(block: str) -> list[Step]:
    out: list[Step] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        command = line
        while _open(command) and i + 1 < len(lines):
            i += 1
            command += "\n" + lines[i]
        shown = []
        while i + 1 < len(lines) and lines[i + 1].startswith("#"):
            i += 1
            shown.append(lines[i][1:].strip())
        out.append(Step(command, shown))
        i += 1
    return out


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def matches_whole(shown: list[str], actual: str) -> bool:
    """The output as a whole, whitespace ignored, ``...`` matching anything."""
    pattern = ".*?".join(re.escape(part) for part in squeezed("".join(shown)).split("..."))
    return re.fullmatch(pattern, squeezed(actual), re.DOTALL) is not None


def matches_lines(shown: list[str], actual: str) -> bool:
    """Each shown line is a line of the output, in order; ``...`` skips lines."""
    lines = [" ".join(line.split()) for line in actual.splitlines()]
    position = 0
    for expected in shown:
        if expected == "...":
            continue
        wanted = " ".join(expected.split())
        try:
            position = lines.index(wanted, position) + 1
        except ValueError:
            return False
    return True


@pytest.fixture
def example_service(tmp_path: Path) -> Iterator[str]:
    """``./dev run``: monitor/example.yaml served fresh (its own database) on a free port."""
    port = free_port()
    env = {**os.environ, "MONITOR_STORAGE__URL": f"sqlite:///{tmp_path / 'monitor.db'}"}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [PYTHON, "-m", "monitor.cli", "serve", "--config", str(ROOT / "monitor" / "example.yaml"), "--port", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 120, "monitor serve of monitor/example.yaml")
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def run(command: str, cwd: Path) -> str:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_quick_start_runs_as_written(example_service: str) -> None:
    parsed = steps(code_block("Quick start"))
    assert parsed[0].command.startswith("./dev run &")
    host = example_service.removeprefix("http://")
    compared = 0
    for step in parsed[1:]:
        command = step.command.replace("localhost:8000", host)
        assert host in command, command  # every command talks to the fresh service
        output = run(command, ROOT)
        if not step.shown:
            continue
        if " -d " not in command and "--data" not in command:  # a read: poll until the window is evaluated
            deadline = time.monotonic() + DEADLINE
            while not matches_whole(step.shown, output) and time.monotonic() < deadline:
                time.sleep(0.5)
                output = run(command, ROOT)
        assert matches_whole(step.shown, output), f"{step.command}\nREADME shows:\n{step.shown}\nactual:\n{output}"
        compared += 1
    assert compared == 5


def test_the_demo_runs_as_written(tmp_path: Path) -> None:
    parsed = steps(code_block("Demo"))
    runnable = [step for step in parsed if "--keep-running" not in step.command]
    assert len(parsed) - len(runnable) == 1
    (step,) = runnable
    assert step.command.startswith(".venv/bin/monitor demo ")
    output = run(step.command, ROOT)
    assert len(step.shown) >= 10
    assert matches_lines(step.shown, output), f"README shows:\n{step.shown}\nactual:\n{output}"


def test_the_parser_and_matchers() -> None:
    block = '# intro\ncurl -s a \\\n  -d \'{\n  "x": 1}\'\n# {"ok": 1,\n#   "n": 2}\n\nprintf x |\ncat\n'
    assert steps(block) == [
        Step("curl -s a \\\n  -d '{\n  \"x\": 1}'", ['{"ok": 1,', '"n": 2}']),
        Step("printf x |\ncat", []),
    ]
    assert matches_whole(['{"a":1,...,"c":3}'], '{"a": 1, "b": 2, "c": 3}\n')
    assert not matches_whole(['{"a":1,...,"c":4}'], '{"a": 1, "b": 2, "c": 3}')
    assert matches_lines(["x  1", "...", "z"], "w\nx 1\ny\nz\n")
    assert not matches_lines(["z", "x 1"], "x 1\nz\n")
