"""The pipe between the collector and its indexer process (`collector.indexer.Channel`):
messages arrive whole and in order however the socket cuts them, and an end is told apart
from a message cut short."""

from __future__ import annotations

import socket
import threading

import pytest

from apiwatch.collector.indexer import Channel, batch_message


def pair() -> tuple[Channel, socket.socket]:
    ours, theirs = socket.socketpair()
    return Channel(ours), theirs


def test_messages_arrive_whole_and_in_order() -> None:
    """Large messages (a socket buffer's worth and more) and empty ones, from another thread."""
    sender, receiver_socket = socket.socketpair()
    send, receive = Channel(sender), Channel(receiver_socket)
    messages = [b"x" * 3_000_000, b"", b"ab\ncd", bytes(range(256)) * 1000]

    def send_all() -> None:
        for message in messages:
            send.send_bytes(message)

    thread = threading.Thread(target=send_all)
    thread.start()
    assert [receive.recv_bytes() for _ in messages] == messages
    thread.join()
    assert not receive.poll()
    send.close()
    assert receive.poll()  # the end is readable
    with pytest.raises(EOFError):
        receive.recv_bytes()
    receive.close()


def test_a_message_cut_short_is_an_error_not_an_end() -> None:
    channel, other = pair()
    other.sendall((10).to_bytes(8, "big") + b"12345")
    other.close()
    with pytest.raises(OSError, match="middle of a message"):
        channel.recv_bytes()
    channel.close()


def test_a_batch_message_carries_its_first_index_and_records() -> None:
    """As the indexer reads it: the first line is the index, even when its bytes would be a
    line feed as a binary number (10)."""
    for first in (0, 10, 2**40):
        head, *records = batch_message(first, [b'{"a":1}', b'{"b":2}']).split(b"\n")
        assert (int(head), records) == (first, [b'{"a":1}', b'{"b":2}'])
