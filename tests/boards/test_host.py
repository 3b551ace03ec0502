import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from nnfab.cli.boards import boards_command, run_command
from nnfab.boards.host import BoardClient, LinkCodec
from nnfab.boards.link import ANSWER_START, REQUEST_START
from nnfab.boards.network import choose_rom_reuse_factors, rom_backend
from nnfab.gen.assemble import Network
from nnfab.errors import BoardError
from nnfab.gen.emit import manifest_of
from nnfab.sim.golden.network import run_network

from .test_link import digits_model


def digits_manifest():
    model = digits_model()
    network = Network(model, backend=rom_backend(model, choose_rom_reuse_factors(
        model, max_multipliers=32)))
    manifest = manifest_of(model, network)
    manifest["host_link"] = {"baud": 115200}
    return model, manifest


class FakeBoard:
    """A Python model of the board's side of the protocol: decodes a request, answers with the
    golden model's output; ignores bytes before the start byte, like the hardware."""

    def __init__(self, model):
        self.model = model
        self.pending = b""
        self.closed = False

    def write(self, data):
        data = bytes(data)
        start = data.index(REQUEST_START)
        payload = data[start + 1:]
        fmt = self.model.input_format
        lanes = self.model.input_shape[-1]  # one transfer of whole bytes per pixel
        n_bytes = -(-fmt.width * lanes // 8)
        codes = []
        for t in range(self.model.n_inputs // lanes):
            word = int.from_bytes(payload[t * n_bytes:(t + 1) * n_bytes], "little")
            codes += [fmt.bits_to_code((word >> (k * fmt.width)) & ((1 << fmt.width) - 1))
                      for k in range(lanes)]
        out = run_network(self.model, np.array(codes).reshape(1, *self.model.input_shape))
        ofmt, lanes = self.model.output_format, self.model.output_shape[-1]
        answer = bytes([ANSWER_START])
        for transfer in out.reshape(-1, lanes):  # one word per output transfer (pixel)
            word = 0
            for k, code in enumerate(transfer):
                word |= ofmt.code_to_bits(int(code)) << (k * ofmt.width)
            answer += word.to_bytes(-(-ofmt.width * lanes // 8), "little")
        self.pending += answer

    def read(self, n):
        data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def close(self):
        self.closed = True


def test_client_against_protocol_model():
    model, manifest = digits_manifest()
    board = FakeBoard(model)
    client = BoardClient(board, manifest)
    rng = np.random.default_rng(0)
    x = rng.integers(model.input_format.min_code, model.input_format.max_code + 1, (20, 64))
    assert client.run(x).tolist() == run_network(model, x).tolist()
    client.close()
    assert board.closed


def test_codec_frames_and_errors():
    model, manifest = digits_manifest()
    codec = LinkCodec(manifest)
    frame = codec.encode(np.full(64, 1))
    assert frame[0] == REQUEST_START and len(frame) == 1 + 40
    assert codec.answer_bytes == 2
    assert codec.decode(bytes([ANSWER_START, 7])).tolist() == [7]
    with pytest.raises(ValueError, match=r"^Input must have shape \(64,\), not \(3,\)$"):
        codec.encode([1, 2, 3])
    with pytest.raises(BoardError, match=r"^Answer must be 2 bytes, not 1 \(5a\)$"):
        codec.decode(bytes([ANSWER_START]))
    with pytest.raises(BoardError, match=r"^Answer must start with 0x5A, not 0x00$"):
        codec.decode(bytes([0, 7]))


def test_open_without_manifest(tmp_path):
    with pytest.raises(BoardError, match=r"^No manifest\.json in '.*'; build with `nnfab "
                                         r"build --board NAME` first$"):
        BoardClient.open(tmp_path, "/dev/null")


def _run_on_fake_board(tmp_path, monkeypatch, model, manifest, x):
    """``nnfab run`` of a build folder holding ``manifest`` on ``x``, the board simulated by
    :class:`FakeBoard` running ``model``."""
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    np.save(tmp_path / "x.npy", x)
    monkeypatch.setattr(BoardClient, "open", classmethod(
        lambda cls, build_dir, port, baud=None: cls(FakeBoard(model), manifest)))
    return CliRunner().invoke(run_command, [str(tmp_path), "--port", "/dev/fake", "--inputs",
                                            str(tmp_path / "x.npy"), "--output",
                                            str(tmp_path / "y.npy")])


def test_run_command_with_fake_port(tmp_path, monkeypatch):
    model, manifest = digits_manifest()
    x = np.random.default_rng(1).integers(0, 16, (4, 64))
    result = _run_on_fake_board(tmp_path, monkeypatch, model, manifest, x)
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "y.npy").tolist() == run_network(model, x).tolist()


@pytest.mark.parametrize("x, message", [
    (np.full((2, 64), 10**6), r"Code 1000000 does not fit ufixed<5,1> \(codes 0 to 31\)"),
    (np.full((2, 64), 0.5), r"Inputs must be integer codes of the input format, not 0\.5 "
                            r"\(value 0 of an input, dtype float64\)"),
])
def test_run_command_refuses_inputs_that_are_not_codes(tmp_path, monkeypatch, x, message):
    """``nnfab run --inputs`` takes raw codes: a value that is not an integer (0.5 would have
    been sent as code 0) or a code outside the input format is one message naming the file,
    not a traceback."""
    model, manifest = digits_manifest()
    result = _run_on_fake_board(tmp_path, monkeypatch, model, manifest, x)
    assert result.exit_code == 1
    assert re.match(rf"^Error: {re.escape(str(tmp_path / 'x.npy'))}: {message}",
                    result.output), result.output
    assert not (tmp_path / "y.npy").exists()


def test_boards_command_lists_targets():
    result = CliRunner().invoke(boards_command, [])
    assert result.exit_code == 0
    assert "icebreaker" in result.output and "iCE40UP5K" in result.output
    assert "ulx3s-85f" in result.output and "LFE5U-85F" in result.output


def test_run_command_takes_inputs_in_the_model_files_layout(tmp_path, monkeypatch):
    """A build of a model whose file declares NCHW frames: ``nnfab run --inputs`` takes them
    NCHW and sends them channels-last."""
    from nnfab.gen.examples import EXAMPLES
    from nnfab.gen.native import load_native
    from nnfab.gen.tensor_layout import TensorLayout

    model = load_native(EXAMPLES["digits-cnn"].path)  # frames (8, 8, 1)
    manifest = manifest_of(model, Network(model), input_layout=TensorLayout("NCHW"))
    manifest["host_link"] = {"baud": 115200}
    assert manifest["input"]["layout"] == {"model": "NCHW", "hardware": "NHWC"}
    x = np.random.default_rng(2).integers(0, 17, (3, 1, 8, 8))  # (n, C, H, W)
    result = _run_on_fake_board(tmp_path, monkeypatch, model, manifest, x)
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "y.npy").tolist() == \
        run_network(model, np.transpose(x, (0, 2, 3, 1))).tolist()


def test_run_command_gives_image_outputs_in_the_model_files_layout(tmp_path, monkeypatch):
    """A model whose file declares NCHW frames at both ends: ``nnfab run`` takes NCHW inputs
    and writes its image outputs NCHW too (the board sends them channels-last)."""
    from nnfab.fixed import FixedFormat
    from nnfab.gen.tensor_layout import TensorLayout

    from ..hdl.test_stalls import Builder

    model = Builder(3, (5, 6, 2), FixedFormat(6, 2)).conv(3).model()  # (5, 6, 2) -> (3, 4, 3)
    manifest = manifest_of(model, Network(model), input_layout=TensorLayout("NCHW"),
                           output_layout=TensorLayout("NCHW"))
    manifest["host_link"] = {"baud": 115200}
    assert manifest["output"]["layout"] == {"model": "NCHW", "hardware": "NHWC"}
    x = np.random.default_rng(4).integers(-32, 32, (3, 2, 5, 6))  # (n, C, H, W)
    result = _run_on_fake_board(tmp_path, monkeypatch, model, manifest, x)
    assert result.exit_code == 0, result.output
    want = run_network(model, np.transpose(x, (0, 2, 3, 1)))       # (n, H, W, C)
    got = np.load(tmp_path / "y.npy")
    assert got.shape == (3, 3, 3, 4)
    assert got.tolist() == np.transpose(want, (0, 3, 1, 2)).tolist()
    assert json.loads(result.output.replace("\n", "")) == got.reshape(3, -1).tolist()
