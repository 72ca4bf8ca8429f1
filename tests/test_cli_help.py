"""The command's help (issue 18): every option says what it is, every command is listed,
a missing subcommand is named as the user types it, key times are readable."""

from __future__ import annotations

import argparse

import pytest

from ec2gw import cli
from ec2gw.auth.keys import AccessKey


def parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    found, todo = [], [("ec2gw", cli.build_parser())]
    while todo:
        name, parser = todo.pop()
        found.append((name, parser))
        for act in parser._actions:
            if isinstance(act, argparse._SubParsersAction):
                todo += [(f"{name} {sub}", p) for sub, p in act.choices.items()]
    return found


def test_every_option_and_argument_has_help() -> None:
    missing = [
        f"{name} {act.option_strings or act.dest}"
        for name, parser in parsers()
        for act in parser._actions
        if not act.help and not isinstance(act, argparse._SubParsersAction)
    ]
    assert missing == []
    assert len(parsers()) == 12


def test_top_level_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    description = cli.build_parser().description
    for command in ("serve", "sim", "keys", "users", "check", "actions"):
        assert command in description and f"    {command} " in text, command


def test_keys_without_a_subcommand_names_them(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["keys"])
    err = capsys.readouterr().err
    assert "required: {create,list,delete}" in err and "keys_command" not in err


def test_keys_list_prints_readable_times(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = AccessKey("AKIAEXAMPLE", 3, "demo", 1700000000, status="Active")

    async def keystore(settings, work):
        return [key]

    monkeypatch.setattr(cli, "_with_keystore", keystore)
    assert cli.main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    assert "created 2023-11-14T22:13:20Z" in out and "1700000000" not in out


def test_users_without_a_subcommand_names_them(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["users"])
    err = capsys.readouterr().err
    assert "required: {create}" in err and "users_command" not in err


def test_users_create_defaults_to_the_users_group() -> None:
    args = cli.build_parser().parse_args(["users", "create", "bob"])
    assert (args.user, args.group, args.json) == ("bob", "users", False)
