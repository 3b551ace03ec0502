import pytest
from click.testing import CliRunner

from nnfab.cli.train import train_command
from nnfab.gen.train import make_problem, train


def test_train_command_references_only(tmp_path):
    png = tmp_path / "curves.png"
    result = CliRunner().invoke(train_command, ["--dataset", "regression", "--optimizer", "sgd",
                                                "--epochs", "3", "--no-sim", "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert result.output.count("epoch ") == 3 and png.is_file()


def test_train_references_converge():
    result = train("regression", optimizer="sgd", epochs=8, simulate=False)
    assert result.losses_fixed[-1] < 0.02 and result.losses_float[-1] < 0.02
    assert result.weights_rtl == [] and result.cycles_per_sample is None


def test_train_errors():
    with pytest.raises(ValueError, match=r"^Data set must be one of 'regression', "
                                         r"'breast-cancer', 'digits', not 'iris'$"):
        make_problem("iris")
    with pytest.raises(ValueError, match=r"^Optimizer must be one of 'sgd', 'momentum', "
                                         r"'adagrad', 'adam', not 'rmsprop'$"):
        make_problem("regression", optimizer="rmsprop")
