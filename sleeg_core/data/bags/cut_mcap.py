"""Reading an MCAP file that was cut short (a recording killed before it wrote its footer): its
complete records followed by a valid footer, presented to rosbags as a complete file."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import BinaryIO

MCAP_MAGIC = b"\x89MCAP0\r\n"
MCAP_DATA_END = 0x0F
# an MCAP footer with no summary section (rosbags then scans the data section)
MCAP_FOOTER = b"\x02" + struct.pack("<QQQI", 20, 0, 0, 0) + MCAP_MAGIC


class _CutMcapFile(io.RawIOBase):
    """The complete records of a cut-short MCAP file followed by a valid footer."""

    def __init__(self, path: Path, cut: int) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._cut = cut
        self._size = cut + len(MCAP_FOOTER)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: memoryview) -> int:
        out = memoryview(buffer).cast("B")
        if self._pos < self._cut:
            self._file.seek(self._pos)
            n = self._file.readinto(out[: min(len(out), self._cut - self._pos)]) or 0
        else:
            tail = MCAP_FOOTER[self._pos - self._cut : self._pos - self._cut + len(out)]
            out[: len(tail)] = tail
            n = len(tail)
        self._pos += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


class CutMcapPath:
    """A rosbags reader path (`RPath`) presenting a cut-short MCAP file as a complete one."""

    def __init__(self, path: Path, cut: int) -> None:
        self.path, self.cut = path, cut
        self.suffix, self.name = path.suffix, path.name

    def exists(self) -> bool:
        return True

    def is_dir(self) -> bool:
        return False

    def open(self, *_args: object, **_kwargs: object) -> BinaryIO:
        return io.BufferedReader(_CutMcapFile(self.path, self.cut))  # type: ignore[return-value]

    def read_text(self, encoding: str | None = None) -> str:
        raise OSError(f"{self.path} is not a text file")

    def __str__(self) -> str:
        return str(self.path)


def mcap_complete_end(path: Path) -> int:
    """Offset after the last complete record of the MCAP data section (0: not an MCAP file)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(8) != MCAP_MAGIC:
            return 0
        pos = 8
        while pos + 9 <= size:
            f.seek(pos)
            op, length = struct.unpack("<BQ", f.read(9))
            if op == MCAP_DATA_END or pos + 9 + length > size:
                break
            pos += 9 + length
    return pos


def storage_file(path: Path) -> Path | None:
    """The single .mcap file of a bag path (a file or a bag folder), else None."""
    if path.is_file():
        return path if path.suffix == ".mcap" else None
    files = sorted(path.glob("*.mcap"))
    return files[0] if len(files) == 1 else None
