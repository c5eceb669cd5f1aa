"""`datasets.pg._binary_lines`: COPY's binary rows of one text field as lines, however the
messages cut them (PostgreSQL sends a row per message; the reader must not rely on it)."""

import struct

import pytest

from registry.services.datasets.pg import BINARY_HEADER, _binary_lines

TEXTS = [b'{"a":"x\\ny"}', b"", "é,\"q\"\r\n".encode(), b"\x01\x02" * 40]


def _stream(texts):
    header = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
    assert len(header) == BINARY_HEADER
    rows = b"".join(struct.pack(">hi", 1, len(t)) + t for t in texts)
    return header + rows + struct.pack(">h", -1)


@pytest.mark.parametrize("cut", [1, 2, 5, 7, 19, 23, 1000])
def test_rows_cut_anywhere_come_out_as_the_texts_in_order(cut):
    data = _stream(TEXTS)
    messages = [memoryview(data[i:i + cut]) for i in range(0, len(data), cut)]
    assert b"".join(_binary_lines(messages)) == b"".join(t + b"\n" for t in TEXTS)


def test_a_row_per_message_and_no_rows():
    data = _stream(TEXTS)
    header, rest = data[:BINARY_HEADER], data[BINARY_HEADER:]
    first = 6 + len(TEXTS[0])
    messages = [header + rest[:first]]
    pos = first
    for text in TEXTS[1:]:
        messages.append(rest[pos:pos + 6 + len(text)])
        pos += 6 + len(text)
    messages.append(rest[pos:])  # the trailer alone
    assert list(_binary_lines(messages)) == [t + b"\n" for t in TEXTS]
    assert list(_binary_lines([_stream([])])) == []


def test_a_null_row_is_refused():
    data = _stream([]).replace(b"\xff\xff", struct.pack(">hi", 1, -1) + b"\xff\xff")
    with pytest.raises(ValueError, match="NULL row"):
        list(_binary_lines([data]))
