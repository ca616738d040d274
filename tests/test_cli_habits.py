"""CLI habits shared by every command: colour (--color, NO_COLOR, FORCE_COLOR), --quiet and
--verbose, examples in every --help, one error style, shell completion, and --dpi for PNG."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.shell_completion import CompletionItem, ShellComplete
from click.testing import CliRunner
from conftest import FIXTURES, PLANS, ROOT

from drplan.cli import cli, main
from drplan.cli.common import (
    NORMAL,
    QUIET,
    VERBOSE,
    complete_plan_files,
    complete_run_ids,
    output_options,
    use_color,
    verbosity,
)

WEBSHOP = str(PLANS / "webshop.json")
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)"
)


def drplan(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drplan", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


# --- colour -----------------------------------------------------------------------------------------


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture
def no_colour_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("flag", "env", "tty", "expected"),
    [
        (None, {}, True, True),  # a terminal
        (None, {}, False, False),  # a pipe or a file
        (None, {"NO_COLOR": "1"}, True, False),  # no-color.org: set and not empty
        (None, {"NO_COLOR": ""}, True, True),  # ... empty is not set
        (None, {"NO_COLOR": "", "FORCE_COLOR": "1"}, False, True),
        (None, {"FORCE_COLOR": "1"}, False, True),
        (None, {"FORCE_COLOR": "0"}, True, False),
        (None, {"NO_COLOR": "1", "FORCE_COLOR": "1"}, True, False),  # NO_COLOR first
        (True, {"NO_COLOR": "1"}, False, True),  # --color wins over everything
        (False, {"FORCE_COLOR": "1"}, True, False),  # and so does --no-color
    ],
)
def test_use_color_order(
    no_colour_env: pytest.MonkeyPatch, flag: bool | None, env: dict[str, str], tty: bool, expected: bool
) -> None:
    for key, value in env.items():
        no_colour_env.setenv(key, value)
    assert use_color(flag, Stream(tty)) is expected


def test_a_stream_without_isatty_is_not_coloured(no_colour_env: pytest.MonkeyPatch) -> None:
    assert use_color(None, object()) is False  # type: ignore[arg-type]


@click.group()
@output_options
def probe_group() -> None:
    pass


@probe_group.command()
@output_options
def probe() -> None:
    click.echo(json.dumps({"color": use_color(stream=Stream(False)), "verbosity": verbosity()}))


def probed(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(probe_group, list(args))
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_output_options_on_the_group_and_on_the_command(no_colour_env: pytest.MonkeyPatch) -> None:
    assert probed("probe") == {"color": False, "verbosity": NORMAL}
    assert probed("--color", "probe") == {"color": True, "verbosity": NORMAL}
    assert probed("probe", "--color") == {"color": True, "verbosity": NORMAL}
    assert probed("--color", "probe", "--no-color")["color"] is False  # the command's own win
    assert probed("-q", "probe")["verbosity"] == QUIET
    assert probed("probe", "--verbose")["verbosity"] == VERBOSE
    assert probed("--quiet", "probe", "-v")["verbosity"] == VERBOSE
    no_colour_env.setenv("NO_COLOR", "1")
    assert probed("probe")["color"] is False
    assert probed("probe", "--color")["color"] is True


def test_quiet_and_verbose_together_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["plan", WEBSHOP, "--quiet", "--verbose"])
    assert result.exit_code == 2
    assert "drplan: error: --quiet and --verbose contradict each other" in result.stderr


def test_every_command_takes_the_output_options() -> None:
    commands = dict(cli.all_commands)
    export = commands.pop("export")
    commands.update({f"export {n}": c for n, c in export.commands.items()})  # type: ignore[attr-defined]
    for name, command in commands.items():
        opts = {opt for p in command.params for opt in (*p.opts, *getattr(p, "secondary_opts", []))}
        assert {"--color", "--no-color", "-q", "--quiet", "-v", "--verbose"} <= opts, name


def test_the_live_table_honours_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    from drplan.cli import run as run_cli

    monkeypatch.setenv("NO_COLOR", "1")
    with click.Context(cli) as ctx:
        ctx.meta.clear()
        live, progress = run_cli._progress(["svc.step"], interactive=True)
        try:
            assert progress is live and live.console.no_color
        finally:
            live.close()
    monkeypatch.delenv("NO_COLOR")
    with click.Context(cli) as ctx:
        ctx.meta["drplan.color"] = False  # --no-color
        live, _ = run_cli._progress(["svc.step"], interactive=True)
        try:
            assert live.console.no_color
        finally:
            live.close()


# --- --quiet and --verbose ------------------------------------------------------------------------


def test_init_quiet_prints_nothing_but_the_plan(tmp_path: Path) -> None:
    loud = CliRunner().invoke(cli, ["init", "-o", str(tmp_path / "a.json")])
    assert loud.exit_code == 0 and "TODO" in loud.stderr
    quiet = CliRunner().invoke(cli, ["init", "-q", "-o", str(tmp_path / "b.json")])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert (tmp_path / "a.json").read_bytes().replace(b'"a"', b'"b"') == (tmp_path / "b.json").read_bytes()
    to_stdout = CliRunner().invoke(cli, ["--quiet", "init"])
    assert to_stdout.exit_code == 0 and to_stdout.stderr == "" and json.loads(to_stdout.stdout)["services"]


def test_quiet_keeps_machine_output_and_warnings() -> None:
    args = ["plan", str(FIXTURES / "invalid" / "dr304-unverified-service" / "plan.json"), "--format", "json"]
    loud = CliRunner().invoke(cli, args)
    quiet = CliRunner().invoke(cli, [*args, "--quiet"])
    assert quiet.exit_code == loud.exit_code
    assert quiet.stdout == loud.stdout and json.loads(quiet.stdout)
    assert "warning DR304" in quiet.stderr  # findings are not chatter


@pytest.mark.slow
def test_drill_quiet_prints_the_last_line_and_verbose_every_event(tmp_path: Path) -> None:
    plan = str(PLANS / "status-page.json")
    quiet = drplan("drill", plan, "--sandbox", "--quiet", "--state-dir", str(tmp_path / "q"))
    assert quiet.returncode == 0, quiet.stderr
    last = quiet.stderr.splitlines()[-1]
    assert last.startswith("PASSED: drill ") and last.endswith("(exit 0)")
    for chatter in ("Dry run", "starting the sandbox", " ▶ ", "step  ", "scope ", "report: ", "journal: "):
        assert chatter not in quiet.stderr
    verbose = drplan("drill", plan, "--sandbox", "--verbose", "--state-dir", str(tmp_path / "v"))
    assert verbose.returncode == 0, verbose.stderr
    assert "Dry run of plan status-page" in verbose.stderr  # the default output, and more:
    assert "about to create dynamodb:table" in verbose.stderr  # step.intent
    assert "incidents.ready handle {" in verbose.stderr  # step.handle
    assert "preflight ok" in verbose.stderr
    assert verbose.stderr.rstrip().splitlines()[-1].startswith("PASSED: drill ")


# --- examples in every --help -----------------------------------------------------------------------


def _commands() -> list[Any]:
    out = []
    for name, command in cli.all_commands.items():
        subs = getattr(command, "commands", None)
        for full in [f"{name} {s}" for s in sorted(subs)] if subs else [name]:
            out.append(pytest.param(full.split(), id=full))
    return out


def examples_of(words: list[str]) -> list[str]:
    result = CliRunner().invoke(cli, [*words, "--help"], terminal_width=100)
    assert result.exit_code == 0
    block = result.stdout.split("\n  Examples:\n", 1)[1].split("\n\n", 1)[0]
    # A long example goes on over lines ending with a backslash, as in a shell: one example.
    return [line.strip() for line in re.sub(r"\\\n\s*", "", block).splitlines()]


@pytest.mark.parametrize("words", _commands())
def test_every_help_has_examples_that_parse(words: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each example names the command, and its options and arguments parse (a renamed option or a
    typo in an example fails here)."""
    monkeypatch.chdir(ROOT)  # examples name plans/webshop.json
    monkeypatch.setenv("SLACK_WEBHOOK", "https://hooks.example.com/x")
    examples = examples_of(words)
    command: click.Command = cli.all_commands[words[0]]
    for word in words[1:]:
        command = command.commands[word]  # type: ignore[attr-defined]
    assert any(line.startswith(f"drplan {' '.join(words)}") for line in examples), examples
    for line in examples:
        if not line.startswith("drplan "):
            continue  # the next command of a pipeline (aws ..., dot ...)
        args = shlex.split(line.split(" | ")[0].split(" > ")[0].split("  #")[0])[1:]
        assert args[: len(words)] == words, line
        command.make_context(
            " ".join(words), args[len(words) :]
        )  # raises on an unknown option or a bad value


def test_root_help_has_examples_and_completion() -> None:
    text = CliRunner().invoke(cli, ["--help"]).stdout
    assert "  Examples:\n    drplan validate" in text and "_DRPLAN_COMPLETE=bash_source drplan" in text


# --- one error style --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["graph", WEBSHOP, "--format", "xml"], "Invalid value for '--format'"),
        (["graph", "no-such-plan.json"], "does not exist"),
        (["plan", WEBSHOP, "--no-such-option"], "No such option"),
        (["resume"], "Missing argument 'RUN_ID'"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["cleanup"], "give either a RUN_ID or --sweep"),
    ],
)
def test_usage_errors_have_one_style(args: list[str], words: str) -> None:
    for stderr, code in (
        ((r := CliRunner().invoke(cli, args)).stderr, r.exit_code),  # click's standalone mode
        ((p := drplan(*args)).stderr, p.returncode),  # the entry point, main()
    ):
        assert code == 2
        lines = stderr.splitlines()
        assert lines[0].startswith("Usage: ")
        assert lines[1].startswith("drplan: error: ") and words in lines[1]
        assert lines[2].startswith("  hint: ") and "--help" in lines[2]
        assert "Error:" not in stderr


def test_drplan_errors_and_invalid_plans_have_the_same_style(tmp_path: Path) -> None:
    done = drplan("graph", str(FIXTURES / "invalid" / "dr201-unknown-service" / "plan.json"))
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("drplan: error: ")
    exists = tmp_path / "plan.json"
    exists.write_text("{}")
    done = drplan("init", "-o", str(exists))
    assert (
        done.returncode == 2
        and done.stderr == f"drplan: error: {exists} exists: pass --force to replace it\n"
    )


def test_an_exit_code_from_ctx_exit_survives_python_dash_m(tmp_path: Path) -> None:
    plan = str(FIXTURES / "invalid" / "dr301-dr302-rto-over-objective" / "plan.json")
    with pytest.raises(SystemExit) as done:
        main(["plan", plan, "-o", str(tmp_path / "a.txt")])
    assert done.value.code == 1  # a missed objective: `plan` exits 1 through ctx.exit
    assert drplan("plan", plan, "-o", str(tmp_path / "b.txt")).returncode == 1


def test_output_to_a_device_writes_and_never_replaces_it(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    result = CliRunner().invoke(cli, ["dashboard", "grafana", "-o", str(fifo)])
    out, _ = reader.communicate(timeout=30)
    assert result.exit_code == 0 and json.loads(out)
    assert fifo.is_fifo()  # still a pipe: not replaced by a regular file


# --- shell completion -------------------------------------------------------------------------------


def completions(args: list[str], incomplete: str) -> list[CompletionItem]:
    return ShellComplete(cli, {}, "drplan", "_DRPLAN_COMPLETE").get_completions(args, incomplete)


def journal(state: Path, run_id: str, mode: str, plan: str, time: str) -> None:
    folder = state / "runs" / run_id
    folder.mkdir(parents=True)
    header = {"kind": "run.started", "run_id": run_id, "time": time, "data": {"mode": mode, "plan": plan}}
    (folder / "journal.jsonl").write_text(json.dumps(header) + "\n", encoding="utf-8")


def test_plan_arguments_complete_json_files_and_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "shop.json").write_text("{}")
    (tmp_path / "plans" / "notes.txt").write_text("")
    (tmp_path / "plan.json").write_text("{}")
    (tmp_path / ".hidden.json").write_text("{}")
    for command in (["graph"], ["plan"], ["drill"], ["recover"], ["iam-policy"], ["calibrate"], ["check"]):
        items = completions(command, "pl")
        assert [(i.value, i.type) for i in items] == [("plan.json", "plain"), ("plans/", "plain")], command
    assert [i.value for i in completions(["docs"], "plans/")] == ["plans/shop.json"]
    assert [i.value for i in completions(["graph"], str(tmp_path / "plans") + "/s")] == [
        str(tmp_path / "plans" / "shop.json")
    ]
    only_folders = completions(["graph"], "plans")
    assert [(i.value, i.type) for i in only_folders] == [("plans", "dir")]  # the shell completes the folder
    assert completions(["graph"], "nothing/here/") == []
    assert [i.value for i in completions(["resume", "x", "--plan"], "plans/")] == ["plans/shop.json"]


def test_run_ids_complete_from_the_state_folder_newest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    journal(tmp_path / ".drplan", "3f9c2a71", "drill", "webshop", "2026-11-26T07:46:48.454+00:00")
    journal(tmp_path / ".drplan", "3a000001", "recover", "status-page", "2026-11-27T09:00:00.000+00:00")
    os.utime(tmp_path / ".drplan" / "runs" / "3f9c2a71", (1, 1))
    (tmp_path / ".drplan" / "runs" / "3b-broken").mkdir()  # no journal: offered, without help
    for command in (["resume"], ["cleanup"], ["show"]):
        items = completions(command, "3")
        assert [i.value for i in items] == ["3b-broken", "3a000001", "3f9c2a71"], command
    items = {i.value: i.help for i in completions(["show"], "3")}
    assert items["3f9c2a71"] == "drill of webshop, 2026-11-26 07:46"
    assert items["3a000001"] == "recover of status-page, 2026-11-27 09:00"
    assert items["3b-broken"] == ""
    assert [i.value for i in completions(["show"], "3f")] == ["3f9c2a71"]
    other = tmp_path / "elsewhere"
    journal(other, "aaaa0000", "drill", "webshop", "2026-11-26T07:46:48.454+00:00")
    assert [i.value for i in completions(["cleanup", "--state-dir", str(other)], "")] == ["aaaa0000"]


def test_completion_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert completions(["resume"], "") == []  # no state folder
    (tmp_path / ".drplan").write_text("a file, not a folder")
    assert completions(["show"], "") == []
    ctx = click.Context(cli)
    param = click.Argument(["x"])
    assert complete_run_ids(ctx, param, "\0") == []
    assert complete_plan_files(ctx, param, "\0/") == []


def test_unlock_completes_locked_plans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".drplan" / "locks").mkdir(parents=True)
    (tmp_path / ".drplan" / "locks" / "webshop@123456789012.json").write_text("{}")
    (tmp_path / "webshop.json").write_text("{}")
    items = completions(["unlock"], "web")
    assert [(i.value, i.help) for i in items] == [("webshop", "locked"), ("webshop.json", None)]


def test_completion_through_the_entry_point(tmp_path: Path) -> None:
    journal(tmp_path / ".drplan", "c4bd4260", "drill", "webshop", "2026-11-26T07:46:48.454+00:00")
    done = drplan(
        "",
        cwd=tmp_path,
        env={"_DRPLAN_COMPLETE": "bash_complete", "COMP_WORDS": "drplan show c", "COMP_CWORD": "2"},
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "plain,c4bd4260\n", "")
    done = drplan(
        cwd=tmp_path, env={"_DRPLAN_COMPLETE": "zsh_complete", "COMP_WORDS": "drplan dri", "COMP_CWORD": "1"}
    )
    assert done.returncode == 0 and done.stdout.startswith("plain\ndrill\nRestore the plan")
    for shell, marker in (
        ("bash", "_drplan_completion"),
        ("zsh", "#compdef drplan"),
        ("fish", "complete --no-files --command drplan"),
    ):
        script = drplan(cwd=tmp_path, env={"_DRPLAN_COMPLETE": f"{shell}_source"})
        assert script.returncode == 0 and marker in script.stdout, shell


# --- Graphviz through the graphviz package, --dpi ------------------------------------------------------


def test_images_are_rendered_through_the_graphviz_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import graphviz

    from drplan.render import graphviz as render_graphviz

    calls: list[tuple[Any, ...]] = []

    def pipe(engine: str, fmt: str, data: bytes, **kwargs: Any) -> bytes:
        calls.append((engine, fmt, data.decode(), kwargs))
        return b"\x89PNG fake"

    monkeypatch.setattr(graphviz, "pipe", pipe)
    assert render_graphviz.render('digraph "a{b" {\n  a -> b;\n}\n', "png", dpi=150) == b"\x89PNG fake"
    assert calls == [("dot", "png", 'digraph "a{b" {\n  dpi=150;\n  a -> b;\n}\n', {"quiet": True})]


def test_drplan_dot_names_the_binary_the_graphviz_package_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphviz.backend import dot_command

    from drplan.errors import GraphvizMissing
    from drplan.render import graphviz as render_graphviz

    fake = tmp_path / "fake-dot"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat > {tmp_path}/input\necho "<svg/>"\n')
    fake.chmod(0o755)
    monkeypatch.setenv(render_graphviz.DOT_ENV, str(fake))
    assert render_graphviz.render("digraph {a}", "png", dpi=72) == b"<svg/>\n"
    assert (tmp_path / "args").read_text().split() == ["-Kdot", "-Tpng"]
    assert (tmp_path / "input").read_text() == "digraph {\n  dpi=72;a}"
    assert str(dot_command.DOT_BINARY) == "dot"  # put back for other users of the package
    monkeypatch.setenv(render_graphviz.DOT_ENV, str(tmp_path / "missing"))
    with pytest.raises(GraphvizMissing, match=r"DRPLAN_DOT names .*missing, which is not there"):
        render_graphviz.render("digraph {}", "svg")


def test_with_dpi_refuses_what_it_cannot_place() -> None:
    from drplan.render.graphviz import with_dpi

    assert with_dpi("// comment {\nstrict digraph {a}", 72) == "// comment {\nstrict digraph {\n  dpi=72;a}"
    with pytest.raises(ValueError, match="between 36 and 1200"):
        with_dpi("digraph {}", 2)
    with pytest.raises(ValueError, match="no `digraph"):
        with_dpi("not dot", 96)


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@needs_dot
@pytest.mark.dot
def test_dpi_scales_the_png(tmp_path: Path) -> None:
    sizes = {}
    for dpi in ("48", "192"):
        out = tmp_path / f"g{dpi}.png"
        result = CliRunner().invoke(
            cli, ["graph", str(PLANS / "status-page.json"), "-o", str(out), "--dpi", dpi]
        )
        assert result.exit_code == 0, result.output
        sizes[dpi] = png_size(out.read_bytes())
    (w48, h48), (w192, h192) = sizes["48"], sizes["192"]
    assert 3.5 < w192 / w48 < 4.5 and 3.5 < h192 / h48 < 4.5


def test_dpi_is_for_png_only() -> None:
    for args in (["--format", "svg"], ["--format", "dot"], ["-o", "x.pdf"], []):
        result = CliRunner().invoke(cli, ["graph", WEBSHOP, "--dpi", "100", *args])
        assert result.exit_code == 2
        assert "drplan: error: --dpi sets the resolution of a PNG" in result.stderr
    result = CliRunner().invoke(cli, ["graph", WEBSHOP, "--format", "png", "--dpi", "5"])
    assert result.exit_code == 2 and "5 is not in the range 36<=x<=1200" in result.stderr
