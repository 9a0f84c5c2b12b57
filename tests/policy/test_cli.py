"""The policy commands' one-line errors (no training here)."""
import pytest

from beingh0.cli.main import main


@pytest.mark.parametrize("argv,msg", [
    (["posttrain", "--out", "{tmp}/o", "--data", "{tmp}/missing"], "no such folder"),
    (["posttrain", "--out", "{tmp}/o", "--data", "{tmp}", "--chunk", "6", "--num-queries", "4"], "multiple of num_queries"),
    (["posttrain", "--out", "{tmp}/o", "--pretrained", "{tmp}/nothing", "--data", "{tmp}"], "no meta/info.json"),
    (["policy", "eval", "{tmp}", "--data", "{tmp}"], "policy.json"),
])
def test_one_line_errors(tmp_path, capsys, argv, msg):
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("beingh0: error:") and msg in err and "\n" not in err, err
