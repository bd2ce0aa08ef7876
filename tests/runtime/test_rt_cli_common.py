"""The shared CLI conventions: one-line messages, exit codes, WxH sizes, missing extras."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

from bonemarrow.runtime.cli import common
from bonemarrow.runtime.errors import first_line, printable


@given(st.text())
def test_printable_is_one_line_and_encodable(text):
    out = printable(text)
    assert "\n" not in out and "\r" not in out
    out.encode("utf-8")  # never raises: no lone surrogates survive


def test_printable_escapes_undecodable_bytes_and_newlines():
    assert printable(b"scan\xff.png") == "scan\\xff.png"
    assert printable("a\nerror: forged") == "a\\nerror: forged"
    assert printable("plain/ümlaut.png") == "plain/ümlaut.png"


def test_first_line_takes_the_first_non_empty_line():
    assert first_line(ValueError("\n  first\nsecond")) == "first"
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(KeyError("k"), with_type=True) == "KeyError: 'k'"
    assert len(first_line(ValueError("x" * 1000))) == 240


def _command(**option_kwargs):
    @click.command(context_settings=common.CONTEXT_SETTINGS)
    @click.option("--size", type=common.SizeType(minimum=64), default="128x64")
    @common.quiet_option()
    @common.threads_option()
    def cmd(size, quiet, threads):
        click.echo(f"{size[0]} {size[1]} {quiet} {threads}")
        if size[0] == 999:
            common.fail("bad thing\nsecond line")
    return cmd


def test_shared_options_and_usage_exit_code():
    runner = CliRunner()
    assert runner.invoke(_command(), ["-h"]).exit_code == 0
    result = runner.invoke(_command(), ["--size", "300X200", "-q", "--threads", "2"])
    assert result.exit_code == 0 and result.output.strip() == "300 200 True 2"
    for bad in ("300", "10x10", "axb"):
        result = runner.invoke(_command(), ["--size", bad])
        assert result.exit_code == common.EXIT_USAGE, bad
    assert runner.invoke(_command(), ["--threads", "0"]).exit_code == common.EXIT_USAGE


def test_fail_prints_one_line_and_exits_2():
    result = CliRunner().invoke(_command(), ["--size", "999x64"])
    assert result.exit_code == common.EXIT_USAGE
    assert result.output.splitlines()[-1] == "error: bad thing\\nsecond line"


def test_require_names_the_extra(capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.require("bonemarrow_no_such_module", "train", "bm-train")
    assert exit_info.value.code == common.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'bonemarrow-seg[train]'" in err and "bm-train" in err
    assert common.require("json", "cpu").dumps([1]) == "[1]"
