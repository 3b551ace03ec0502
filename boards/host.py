"""Host side of the UART link: run inferences on a board from Python.

Needs pyserial (``pip install "pyserial>=3.5,<4"``) for :meth:`BoardClient.open`; the protocol
code works with any object that has ``write(bytes)`` and ``read(n) -> bytes`` (a pyserial
``Serial`` with a time-out, or a fake port in tests). The protocol is
:mod:`nnfab.boards.link`'s.
"""

import json
from pathlib import Path

import numpy as np

from nnfab.errors import BoardError, ToolchainError
from nnfab.fixed import FixedFormat
from nnfab.packing import pack, packed_width, unpack

from .link import ANSWER_START, REQUEST_START

__all__ = ["LinkCodec", "BoardClient"]


class LinkCodec:
    """Request and answer frames of one build, from its manifest.

    Parameters
    ----------
    manifest : dict
        A build folder's ``manifest.json``.
    """

    def __init__(self, manifest):
        self._manifest = manifest
        self._in_formats = [FixedFormat.parse(manifest["input"]["format"])] * \
            manifest["input"]["lanes"]
        self._out_formats = [FixedFormat.parse(manifest["output"]["format"])] * \
            manifest["output"]["lanes"]
        self._in_shape = tuple(manifest["input"]["shape"])
        self._out_shape = tuple(manifest["output"]["shape"])
        self._in_bytes = -(-packed_width(self._in_formats) // 8)
        self._out_bytes = -(-packed_width(self._out_formats) // 8)

    @property
    def answer_bytes(self):
        """Bytes of an answer, start byte included."""
        return 1 + self._manifest["output"]["transfers_per_inference"] * self._out_bytes

    def encode(self, x):
        """The request frame for one input ``x`` (raw codes of the input format, shape
        ``manifest["input"]["shape"]``).

        Raises
        ------
        ValueError
            If ``x`` has the wrong shape, holds a value that is not an integer code, or a
            code does not fit the input format.
        """
        x = np.asarray(x)
        if x.shape != self._in_shape:
            raise ValueError(f"Input must have shape {self._in_shape}, not {x.shape}")
        if x.dtype.kind not in "biu":
            flat = x.reshape(-1)
            bad = (np.flatnonzero(~np.isfinite(flat) | (flat % 1 != 0)) if x.dtype.kind == "f"
                   else np.arange(min(len(flat), 1)))
            if len(bad):
                raise ValueError(f"Inputs must be integer codes of the input format, not "
                                 f"{flat[bad[0]].item()!r} (value {bad[0]} of an input, "
                                 f"dtype {x.dtype})")
        frame = bytearray([REQUEST_START])
        for row in x.reshape(-1, len(self._in_formats)):
            frame += pack([int(v) for v in row], self._in_formats).to_bytes(self._in_bytes,
                                                                              "little")
        return bytes(frame)

    def decode(self, frame):
        """The output codes (shape ``manifest["output"]["shape"]``) of one answer frame.

        Raises
        ------
        BoardError
            If the frame has the wrong length or start byte.
        """
        frame = bytes(frame)
        if len(frame) != self.answer_bytes:
            raise BoardError(f"Answer must be {self.answer_bytes} bytes, not {len(frame)} "
                             f"({frame.hex()})")
        if frame[0] != ANSWER_START:
            raise BoardError(f"Answer must start with 0x{ANSWER_START:02X}, not "
                             f"0x{frame[0]:02X}")
        codes = []
        for k in range(1, len(frame), self._out_bytes):
            word = int.from_bytes(frame[k:k + self._out_bytes], "little")
            codes += unpack(word & ((1 << packed_width(self._out_formats)) - 1),
                            self._out_formats)
        return np.array(codes, dtype=np.int64).reshape(self._out_shape)


class BoardClient:
    """Inferences on a board over a serial port.

    Parameters
    ----------
    port : object
        With ``write(bytes)`` and ``read(n)`` (returning fewer bytes on a time-out).
    manifest : dict
    """

    def __init__(self, port, manifest):
        self._port = port
        self.codec = LinkCodec(manifest)

    @classmethod
    def open(cls, build_dir, port_name, *, baud=None, timeout_s=2.0):
        """Open ``port_name`` with pyserial for the build in ``build_dir``.

        Raises
        ------
        ToolchainError
            If pyserial is not installed.
        BoardError
            If ``build_dir`` holds no board build's ``manifest.json``.
        """
        manifest_path = Path(build_dir) / "manifest.json"
        if not manifest_path.exists():
            raise BoardError(f"No manifest.json in {str(build_dir)!r}; build with "
                             f"`nnfab build --board NAME` first")
        manifest = json.loads(manifest_path.read_text())
        if baud is None:
            if "host_link" not in manifest:
                raise BoardError(f"{str(manifest_path)!r} is not a board build (no host_link "
                                 f"section); build with `nnfab build --board NAME`")
            baud = manifest["host_link"]["baud"]
        try:
            import serial
        except ImportError:
            raise ToolchainError('pyserial is not installed; pip install "pyserial>=3.5,<4"') \
                from None
        return cls(serial.Serial(port_name, baudrate=baud, timeout=timeout_s), manifest)

    def infer(self, x):
        """Send one input and wait for its output codes.

        Raises
        ------
        BoardError
            If the answer is short (time-out) or malformed.
        """
        self._port.write(self.codec.encode(x))
        answer = self._port.read(self.codec.answer_bytes)
        return self.codec.decode(answer)

    def run(self, inputs):
        """Outputs of a batch of inputs, shape ``(batch, *output_shape)``."""
        return np.stack([self.infer(x) for x in np.asarray(inputs)])

    def close(self):
        if hasattr(self._port, "close"):
            self._port.close()
