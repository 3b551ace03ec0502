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


def test_train_mlp_references_and_export(tmp_path):
    """``--layers`` without simulation: the exported native model computes the outputs of the
    fixed-point reference (codes) and so its accuracy."""
    import numpy as np

    from nnfab.casts import quantize
    from nnfab.gen.native import load_native
    from nnfab.sim.golden.backprop import predict, split_weights
    from nnfab.sim.golden.network import run_network

    folder = tmp_path / "model"
    result = CliRunner().invoke(train_command, ["--dataset", "breast-cancer", "--layers",
                                                "30,4,2", "--epochs", "2", "--no-sim",
                                                "--export", str(folder)])
    assert result.exit_code == 0, result.output
    assert "test accuracy: RTL " in result.output
    problem = make_problem("breast-cancer", layers=(30, 4, 2))
    ref = train("breast-cancer", layers=(30, 4, 2), epochs=2, simulate=False)
    model = load_native(folder / "trained-mlp.json")
    x = quantize(np.load(folder / "test_inputs.npy"), model.input_format)
    logits = predict(problem.spec, split_weights(problem.spec, ref.weights_fixed[-1]), x)
    assert run_network(model, x).ravel().tolist() == logits.argmax(axis=1).tolist()
    assert abs(ref.accuracy_rtl - ref.accuracy_float) <= 0.02


def test_train_mlp_errors():
    with pytest.raises(ValueError, match=r"^Layers of data set 'digits' must start with its 64 "
                                         r"inputs and end with its 10 outputs, not 64,32,9$"):
        make_problem("digits", layers=(64, 32, 9))
    with pytest.raises(ValueError, match=r"^Layers must list 3 to 5 sizes \(2 to 4 dense "
                                         r"layers\), not 64,10$"):
        make_problem("digits", layers=(64, 10))
    result = CliRunner().invoke(train_command, ["--layers", "30,x,2", "--no-sim"])
    assert result.exit_code == 2
    assert "Layers must be comma-separated integers such as 64,32,10, not '30,x,2'" in \
        result.output
    result = CliRunner().invoke(train_command, ["--export", "out", "--no-sim"])
    assert result.exit_code == 2 and "--export needs --layers" in result.output


def test_train_mlp_reuse_factor_option():
    """``--reuse-factor`` reaches the spec; errors name the option or the value."""
    assert make_problem("digits", layers=(64, 32, 10), reuse_factor=288).spec.lanes(1) == 8
    with pytest.raises(ValueError, match=r"^A reuse factor \(288\) needs layers"):
        make_problem("digits", reuse_factor=288)
    result = CliRunner().invoke(train_command, ["--reuse-factor", "64", "--no-sim"])
    assert result.exit_code == 2 and "--reuse-factor needs --layers" in result.output
    result = CliRunner().invoke(train_command, ["--dataset", "breast-cancer", "--layers",
                                                "30,4,2", "--reuse-factor", "3", "--no-sim"])
    assert result.exit_code == 2
    assert "Reuse factor must be None or an integer from 4 (the largest layer's 4 rows, one " \
           "cycle per row), not 3" in result.output
    result = CliRunner().invoke(train_command, ["--dataset", "breast-cancer", "--layers",
                                                "30,4,2", "--reuse-factor", "8", "--epochs", "1",
                                                "--no-sim"])
    assert result.exit_code == 0, result.output
