"""A tiny RTSP camera for tests: RTSP 1.0 (RFC 2326) serving Motion-JPEG over RTP (RFC 2435),
interleaved on the RTSP TCP connection.

It exists so the tests can exercise the real RTSP client path (OpenCV's FFmpeg backend) with no
server installed. It serves one stream, answers a UDP ``SETUP`` with ``461 Unsupported Transport``
(FFmpeg then retries over TCP, as it does against cameras behind NAT), and lets a test decide per
connection how many frames are sent before the connection is dropped, or refuse the connection.

``frames_for(n)`` is called with the 1-based connection number and returns a list of BGR images to
send on it, or ``None`` to refuse the connection (it is closed at once).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

SOI, EOI, SOF0, DQT, SOS = 0xD8, 0xD9, 0xC0, 0xDB, 0xDA


def jpeg_to_rtp_payload_parts(jpeg: bytes) -> tuple[int, int, int, bytes, bytes]:
    """(type, width, height, quantisation tables, scan data) of a baseline JFIF image, as RFC 2435 wants."""
    pos, tables, width, height, kind = 2, {}, 0, 0, None
    assert jpeg[0] == 0xFF and jpeg[1] == SOI
    while True:
        assert jpeg[pos] == 0xFF
        marker = jpeg[pos + 1]
        length = struct.unpack(">H", jpeg[pos + 2 : pos + 4])[0]
        body = jpeg[pos + 4 : pos + 2 + length]
        if marker == DQT:
            i = 0
            while i < len(body):
                precision, tid = body[i] >> 4, body[i] & 15
                assert precision == 0, "8-bit tables only"
                tables[tid] = body[i + 1 : i + 65]
                i += 65
        elif marker == SOF0:
            height, width = struct.unpack(">HH", body[1:5])
            y_sampling = body[7]  # first component's (h << 4 | v) sampling factors
            kind = {0x21: 0, 0x22: 1}[y_sampling]  # 4:2:2 -> type 0, 4:2:0 -> type 1
        elif marker == SOS:
            scan = jpeg[pos + 2 + length :]
            if scan.endswith(b"\xff\xd9"):
                scan = scan[:-2]  # the receiver writes its own EOI
            return kind, width, height, tables[0] + tables[1], scan
        pos += 2 + length


class RTSPCamera:
    """Serve ``frames_for(connection)`` at ``fps`` on ``rtsp://127.0.0.1:PORT/live``."""

    def __init__(self, frames_for: Callable[[int], list[np.ndarray] | None], fps: float = 25.0):
        self.frames_for = frames_for
        self.fps = fps
        self.connections = 0
        self.refused = 0
        self.tcp_setups = 0
        self.udp_setups_refused = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.url = f"rtsp://127.0.0.1:{self._sock.getsockname()[1]}/live"

    def __enter__(self) -> RTSPCamera:
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            frames = self.frames_for(self.connections)
            if frames is None:
                self.refused += 1
                conn.close()
                continue
            t = threading.Thread(target=self._serve, args=(conn, frames), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket, frames: list[np.ndarray]) -> None:
        with conn:
            reader = conn.makefile("rb")
            while not self._stop.is_set():
                request = self._read_request(reader)
                if request is None:
                    return
                method, uri, headers = request
                cseq = headers.get("cseq", "0")
                if method == "OPTIONS":
                    self._reply(conn, cseq, "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n")
                elif method == "DESCRIBE":
                    sdp = (
                        f"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=reidpipe test camera\r\nc=IN IP4 0.0.0.0\r\n"
                        f"t=0 0\r\nm=video 0 RTP/AVP 26\r\na=control:track0\r\n"
                        f"a=framerate:{self.fps:g}\r\n"
                    ).encode()
                    self._reply(
                        conn,
                        cseq,
                        f"Content-Base: {self.url}/\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n",
                        sdp,
                    )
                elif method == "SETUP":
                    if "RTP/AVP/TCP" not in headers.get("transport", ""):
                        self.udp_setups_refused += 1
                        self._reply(conn, cseq, "", status="461 Unsupported Transport")
                        continue
                    self.tcp_setups += 1
                    self._reply(conn, cseq, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 12345678\r\n")
                elif method == "PLAY":
                    self._reply(
                        conn,
                        cseq,
                        f"Session: 12345678\r\nRange: npt=0.000-\r\n"
                        f"RTP-Info: url={self.url}/track0;seq=0;rtptime=0\r\n",
                    )
                    self._stream(conn, frames)
                    return  # the connection drops once its frames are sent
                elif method == "TEARDOWN":
                    self._reply(conn, cseq, "Session: 12345678\r\n")
                    return
                else:
                    self._reply(conn, cseq, "", status="501 Not Implemented")

    @staticmethod
    def _read_request(reader) -> tuple[str, str, dict[str, str]] | None:
        line = reader.readline()
        while line == b"$":  # should not happen before PLAY, but skip interleaved data defensively
            line = reader.readline()
        if not line:
            return None
        method, uri, _ = line.decode().split(" ", 2)
        headers = {}
        while True:
            h = reader.readline().decode().strip()
            if not h:
                break
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        if int(headers.get("content-length", 0)):
            reader.read(int(headers["content-length"]))
        return method, uri, headers

    @staticmethod
    def _reply(conn: socket.socket, cseq: str, headers: str, body: bytes = b"", status: str = "200 OK") -> None:
        conn.sendall(f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{headers}\r\n".encode() + body)

    def _stream(self, conn: socket.socket, frames: list[np.ndarray]) -> None:
        seq, max_payload = 0, 1400
        for i, img in enumerate(frames):
            if self._stop.is_set():
                return
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
            assert ok
            kind, width, height, tables, scan = jpeg_to_rtp_payload_parts(buf.tobytes())
            timestamp = int(round(i * 90000 / self.fps)) & 0xFFFFFFFF
            offset = 0
            while offset < len(scan):
                header = (
                    struct.pack(">B", 0)
                    + offset.to_bytes(3, "big")
                    + struct.pack(">BBBB", kind, 255, width // 8, height // 8)
                )
                if offset == 0:  # Q = 255: the tables travel in-band with every frame
                    header += struct.pack(">BBH", 0, 0, len(tables)) + tables
                chunk = scan[offset : offset + max_payload]
                offset += len(chunk)
                marker = 0x80 if offset >= len(scan) else 0
                rtp = struct.pack(">BBHII", 0x80, marker | 26, seq & 0xFFFF, timestamp, 0x5EED) + header + chunk
                seq += 1
                try:
                    conn.sendall(b"$\x00" + struct.pack(">H", len(rtp)) + rtp)
                except OSError:
                    return
            time.sleep(1.0 / self.fps)
