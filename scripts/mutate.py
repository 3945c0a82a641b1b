"""Mutation testing of the domain and the cache with mutmut: run it per module within a time budget, report.

    python scripts/mutate.py run [--budget SECONDS] [--only app/volumes.py ...] [--survivors FILE]
    python scripts/mutate.py report [--survivors FILE] [--survivors-of app/volumes.py ...]

Both print the table per module; --survivors writes the surviving mutants (file:line and the change) of
app/volumes.py and app/snapshots.py, or of the files named by --survivors-of, to FILE as Markdown.

Run it from the repository root with the venv's python (`make mutate` does). mutmut copies the code to
mutants/ and runs, for each mutant, only the tests that cover the mutated function; its settings are in
pyproject.toml ([tool.mutmut]). Each module gets its own `mutmut run`, so that a budget cut leaves the
other modules' results whole; a cut module's unchecked mutants show as "not checked", never as kills.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any


def targets() -> dict[str, str]:
    """Each module in [tool.mutmut] only_mutate (app/x.py or app/x/*) -> its mutants' names (app.x.*)."""
    config = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"]
    return {
        glob.removesuffix("*"): glob.removesuffix(".py").removesuffix("/*").replace("/", ".") + ".*"
        for glob in config["only_mutate"]
    }


# one row of the table per module (mutmut names a mutant module.function__mutmut_N)
TARGETS = targets()
DEFAULT_BUDGET = 1200  # seconds of wall time per module

# mutmut's exit codes of a mutant's test run (mutmut.stats.status_by_exit_code), folded into our columns
STATUS = {
    1: "killed",
    3: "killed",  # pytest internal error
    37: "killed",  # caught by the type checker, when one is configured
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    # SIGXCPU: the tests ran past mutmut's CPU or wall-time limit
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    36: "timeout",
    # the fork server's worker caught an exception out of pytest (mutmut shows it as "timeout"): pytest's
    # usage error when the mutant breaks a test module's import, so its tests are not collected, or the like
    255: "error",
    2: "not checked",  # pytest was interrupted (the budget's SIGINT): no verdict
    -2: "not checked",
    None: "not checked",
}
COLUMNS = ("mutants", "killed", "survived", "timeout", "error", "suspicious", "no tests", "not checked")


def say(text: str) -> None:
    """One line (or a table) on stdout, at once: mutmut's own output goes to the same terminal."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@dataclass
class Mutant:
    """One mutant: its mutmut name, the source file it mutates, and its verdict."""

    name: str
    path: Path
    status: str


def load_mutants() -> list[Mutant]:
    """Every mutant of the targets with its verdict, read from mutmut's mutants/**/*.py.meta files."""
    found = []
    for meta in sorted(Path("mutants/app").rglob("*.py.meta")):
        source = meta.relative_to("mutants").with_suffix("")
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            found.append(Mutant(name, source, STATUS.get(code, "suspicious")))
    return found


def target_of(name: str) -> str | None:
    """The target (README row) a mutant belongs to."""
    for target, pattern in TARGETS.items():
        if name.startswith(pattern.removesuffix("*")):
            return target
    return None


def table(mutants: list[Mutant]) -> str:
    """The table per module, Markdown. Kill rate = (killed + timeout + error) / checked."""
    rows = {target: Counter[str]() for target in TARGETS}
    for mutant in mutants:
        target = target_of(mutant.name)
        if target is not None:
            rows[target]["mutants"] += 1
            rows[target][mutant.status] += 1
    rows["total"] = sum(rows.values(), Counter[str]())
    lines = [
        "| module | " + " | ".join(COLUMNS) + " | kill rate |",
        "|---" * (len(COLUMNS) + 2) + "|",
    ]
    for target, count in rows.items():
        checked = count["mutants"] - count["not checked"]
        caught = count["killed"] + count["timeout"] + count["error"]
        rate = f"{100 * caught / checked:.1f}%" if checked else "-"
        cells = [str(count[column]) for column in COLUMNS]
        lines.append(f"| {target} | " + " | ".join(cells) + f" | {rate} |")
    return "\n".join(lines)


def run(targets: list[str], budget: int) -> None:
    """`mutmut run` per target, each stopped (SIGINT, then SIGKILL) once it has used `budget` seconds."""
    mutmut = Path(sys.executable).with_name("mutmut")
    for target in targets:
        start = time.monotonic()
        say(f"== {target}: mutmut run {TARGETS[target]} (budget {budget} s)")
        # its own process group, so that the budget's SIGINT reaches the fork server and its workers too
        with subprocess.Popen([str(mutmut), "run", TARGETS[target]], start_new_session=True) as process:
            try:
                process.wait(timeout=budget)
            except subprocess.TimeoutExpired:
                say(f"\n== {target}: budget spent, stopping")
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        with suppress(ProcessLookupError):  # a fork server or worker that outlived mutmut's main process
            os.killpg(process.pid, signal.SIGKILL)
        say(f"== {target}: {time.monotonic() - start:.0f} s")


def function_line(source: Path, name: str) -> int | None:
    """The line of the def (or its first decorator) of the function or method a mutant name points at."""
    mangled = name.rpartition("__mutmut_")[0].rpartition(".")[2]
    if mangled.startswith("x_"):
        owner, function = None, mangled[2:]
    else:
        _, owner, function = mangled.split("ǁ")
    body = ast.parse(source.read_text()).body
    if owner is not None:
        body = next((node.body for node in body if isinstance(node, ast.ClassDef) and node.name == owner), [])
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            return min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return None


@cache
def mutated_module(path: Path) -> Any:
    """mutmut's mutated copy of `path`, parsed once: it holds each function's original and its mutants."""
    from mutmut.mutation.diff_apply import read_mutants_module

    return read_mutants_module(path)


def describe(mutant: Mutant) -> tuple[str, list[str]]:
    """`file:line` of a mutant and its change as -/+ lines, from mutmut's copy of the original function."""
    import libcst as cst
    from mutmut.mutation.diff_apply import read_mutant_function, read_original_function

    module = mutated_module(mutant.path)
    original, mutated = (
        cst.Module([f(module, mutant.name)]).code.strip().split("\n")
        for f in (read_original_function, read_mutant_function)
    )
    changes = [op for op in difflib.SequenceMatcher(a=original, b=mutated).get_opcodes() if op[0] != "equal"]
    def_index = next(i for i, line in enumerate(original) if re.match(r"\s*(@|def |async def )", line))
    start = function_line(mutant.path, mutant.name)
    line = "?" if start is None or not changes else str(start + changes[0][1] - def_index)
    diff = [f"- {text.strip()}" for _, i1, i2, _, _ in changes for text in original[i1:i2]]
    diff += [f"+ {text.strip()}" for _, _, _, j1, j2 in changes for text in mutated[j1:j2]]
    return f"{mutant.path}:{line}", diff


def survivors(mutants: list[Mutant], paths: list[str]) -> str:
    """The surviving (and untested) mutants of `paths`, Markdown, ordered by file and line."""
    chosen = [m for m in mutants if str(m.path) in paths and m.status in ("survived", "no tests")]
    described = sorted(
        ((*describe(m), m) for m in chosen),
        key=lambda item: (str(item[2].path), int(item[0].rpartition(":")[2].replace("?", "0"))),
    )
    counts = Counter(str(m.path) for m in chosen)
    out = ["# Surviving mutants", "", *(f"- {path}: {counts[path]}" for path in paths), ""]
    for where, diff, mutant in described:
        note = "" if mutant.status == "survived" else " (no test covers it)"
        out += [f"- `{where}` `{mutant.name}`{note}", "  ```diff", *(f"  {d}" for d in diff), "  ```"]
    return "\n".join(out) + "\n"


def main() -> None:
    """Command line: run or report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="mutmut run per module, then the table")
    run_cmd.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="seconds per module")
    run_cmd.add_argument("--only", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    report_cmd = commands.add_parser("report", help="the table of the last run")
    for command in (run_cmd, report_cmd):
        command.add_argument("--survivors", type=Path, help="write the surviving mutants to this file")
        command.add_argument("--survivors-of", nargs="+", default=["app/volumes.py", "app/snapshots.py"])
    args = parser.parse_args()
    if args.command == "run":
        run(args.only, args.budget)
    mutants = load_mutants()
    say(table(mutants))
    if args.survivors:
        args.survivors.write_text(survivors(mutants, args.survivors_of))
        say(f"surviving mutants of {', '.join(args.survivors_of)}: {args.survivors}")


if __name__ == "__main__":
    main()
