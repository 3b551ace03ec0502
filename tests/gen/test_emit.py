import json

import pytest

from nnfab.errors import OutputError, UnsupportedLayerError
from nnfab.gen import emit
from nnfab.gen.emit import build_outputs, verilog_name
from nnfab.gen.examples import EXAMPLES
from nnfab.gen.native import load_native


@pytest.fixture(scope="module")
def mlp():
    return load_native(EXAMPLES["digits-mlp"].path)


def test_build_folder(mlp, tmp_path):
    result = build_outputs(mlp, tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["digits_mlp.v", "manifest.json", "model.json", "model.npz", "report.md"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest == result.manifest
    assert manifest["top"] == "digits_mlp"
    assert manifest["input"]["payload_width"] == 64 * 5
    assert manifest["input"]["payload"] == "i__payload"
    assert manifest["output"]["format"] == "ufixed<4,4>"
    assert [row["name"] for row in manifest["layers"]] == ["dense_1", "relu_1", "dense_2",
                                                           "argmax"]
    assert manifest["latency"] == sum(row["latency"] for row in manifest["layers"])
    text = (tmp_path / "out" / "digits_mlp.v").read_text()
    assert "module digits_mlp(" in text
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| dense_1 | dense | [64] | [32] |" in report


def test_output_is_deterministic(tmp_path):
    """Two conversions (the cache bypassed) give the same bytes: the digits CNN as ``nnfab
    build`` builds it (a convolution's and a dense layer's adder graphs, pooling, argmax)."""
    from nnfab.gen.load import prepare_model

    cnn = prepare_model(load_native(EXAMPLES["digits-cnn"].path))
    assert [layer.kind for layer in cnn.layers if layer.kind in ("conv2d", "shift_add_dense")] \
        == ["conv2d", "shift_add_dense"] and cnn.layers[0].adder_graph is not None
    build_outputs(cnn, tmp_path / "a", use_cache=False)
    build_outputs(cnn, tmp_path / "b", use_cache=False)
    for name in ("digits_cnn.v", "manifest.json", "report.md", "model.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_failed_build_leaves_nothing(mlp, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise UnsupportedLayerError("Layer 'x': no engine")

    monkeypatch.setattr(emit, "_report", broken)
    with pytest.raises(UnsupportedLayerError):
        build_outputs(mlp, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_failed_rebuild_keeps_the_old_folder(mlp, tmp_path, monkeypatch):
    build_outputs(mlp, tmp_path / "out")
    before = (tmp_path / "out" / "manifest.json").read_bytes()
    monkeypatch.setattr(emit, "save_native", lambda *a: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OutputError, match=r"^Output folder '.*/out' cannot be written: disk$"):
        build_outputs(mlp, tmp_path / "out")
    assert (tmp_path / "out" / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("name,expected", [("digits-mlp", "digits_mlp"), ("3layer", "m_3layer"),
                                           ("a.b c", "a_b_c"), ("small", "m_small"),
                                           ("wire", "m_wire"), ("café", "caf_"), ("", "m_")])
def test_verilog_name(name, expected):
    assert verilog_name(name) == expected
