import json
import subprocess
import sys

import pytest

from regnet.cli import main


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_info_resnet20(capsys):
    got = run_json(capsys, "info", "resnet20", "--json")
    assert (got["params"], got["flops"], got["acts"]) == (272570, 40825482, 200714)
    assert got["input_size"] == [3, 32, 32] and got["num_classes"] == 10 and got["model"] == "resnet20"
    assert run_json(capsys, "info", "resnet20", "--num-classes", "100", "--json")["params"] == 278420


def test_info_resnet50(capsys):
    got = run_json(capsys, "info", "resnet50", "--json")
    assert (got["params"], got["flops"], got["acts"]) == (25557032, 4089185256, 11315688)
    assert [s["depth"] for s in got["stages"]] == [3, 4, 6, 3]


def test_info_table_and_list(capsys):
    assert main(["info", "resnet20"]) == 0
    out = capsys.readouterr().out
    assert "272,570" in out and "s3" in out
    assert main(["list", "resnet*"]) == 0
    assert "resnet20" in capsys.readouterr().out.split()


def test_unknown_model_is_one_line_nonzero():
    proc = subprocess.run([sys.executable, "-m", "regnet", "info", "no_such_model"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "closest:" in lines[0], proc.stderr


@pytest.mark.parametrize("argv", [["info", "resnet20", "--input-size", "48"],
                                  ["info", "resnet20", "--input-size", "3", "48", "48"]])
def test_info_input_size(capsys, argv):
    assert run_json(capsys, *argv, "--json")["input_size"] == [3, 48, 48]


def test_closed_pipe_is_quiet():
    # `regnet list | head -1`: the reader leaves before the output is written. The command
    # must stop without a traceback, as Unix tools do.
    proc = subprocess.Popen([sys.executable, "-m", "regnet", "list"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_every_flag_of_every_command_has_help():
    import argparse

    from regnet.cli import build_parser

    def walk(parser, path):
        missing = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    missing += walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
        return missing

    assert walk(build_parser(), "regnet") == []


def test_train_help_comes_from_the_config_comments(capsys):
    import pytest

    from regnet.cli import main
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "SAM's ascent radius (Foret et al. 2021); 0: plain SGD." in text
    assert "(default: 0.0)" in text and "regnet recipes" in text
    assert main(["recipes"]) == 0
    assert "cifar10_fast " in capsys.readouterr().out
