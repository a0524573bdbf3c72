"""Sources: files, image folders, streams; names, offsets, stride, max_frames, corrupt frames, drops."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from reidpipe.errors import EmptyInputError, InputNotFoundError, UsageError
from reidpipe.pipeline.io.sources import default_names, open_sources, source_kind


def render(path, n=20, size=(96, 64), fps=10.0):
    h, w = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(n):
        img = np.full((h, w, 3), 40, np.uint8)
        cv2.rectangle(img, (2 * i % w, 10), (2 * i % w + 10, 40), (0, 0, 255), -1)
        vw.write(img)
    vw.release()
    return path


def drain(sources, timeout=20.0):
    for s in sources:
        s.start()
    got = {s.info.camera: [] for s in sources}
    active = list(sources)
    deadline = time.time() + timeout
    while active and time.time() < deadline:
        for s in list(active):
            item = s.get()
            if item is None:
                active.remove(s)
            elif item is not False:
                got[s.info.camera].append(item)
        time.sleep(0.001)
    assert not active, "sources did not finish"
    return got


def test_video_files_names_offsets_stride_and_max_frames(tmp_path):
    a = render(tmp_path / "lobby.mp4", n=20)
    b = render(tmp_path / "door.mp4", n=12)
    srcs = open_sources([str(a), str(b)], offsets=[0.0, 2.5], stride=2, max_frames=15, queue_size=2)
    assert [s.info.camera for s in srcs] == ["lobby", "door"]
    assert srcs[0].info.fps == pytest.approx(10.0) and (srcs[0].info.width, srcs[0].info.height) == (64, 96)
    assert srcs[0].info.frames == 20
    got = drain(srcs)
    assert [f.index for f in got["lobby"]] == [0, 2, 4, 6, 8, 10, 12, 14]  # 15 read, every 2nd kept
    assert [f.index for f in got["door"]] == [0, 2, 4, 6, 8, 10]
    assert got["door"][1].t == pytest.approx(2.5 + 0.2)
    assert got["lobby"][0].image.shape == (96, 64, 3)
    assert srcs[0].read == 15 and srcs[0].corrupt == 0


def test_image_folder_skips_and_counts_corrupt_frames(tmp_path):
    folder = tmp_path / "cam_a"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.full((40, 30, 3), i * 20, np.uint8))
    (folder / "0003.png").write_bytes(b"not a png at all")
    (src,) = open_sources([str(folder)])
    assert src.info.camera == "cam_a" and src.info.frames == 6 and (src.info.width, src.info.height) == (30, 40)
    got = drain([src])["cam_a"]
    assert [f.index for f in got] == [0, 1, 2, 4, 5]
    assert src.corrupt == 1


def test_default_names():
    assert default_names(["a/x.mp4", "rtsp://h/s", "0", "b/x.mp4"]) == ["x_0", "cam1", "cam2", "x_3"]
    assert source_kind("rtsp://h/s") == "stream" and source_kind("3") == "webcam"


def test_missing_unreadable_and_empty_inputs_name_the_path(tmp_path):
    with pytest.raises(InputNotFoundError, match="nope.mp4"):
        open_sources([str(tmp_path / "nope.mp4")])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(EmptyInputError, match="empty.mp4"):
        open_sources([str(empty)])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises((InputNotFoundError, EmptyInputError), match="junk.mp4"):
        open_sources([str(junk)])
    noframes = tmp_path / "noframes.mp4"
    cv2.VideoWriter(str(noframes), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48)).release()
    assert noframes.stat().st_size > 0  # a container with a video stream and no frame
    with pytest.raises(EmptyInputError, match="noframes.mp4"):
        open_sources([str(noframes)])
    (tmp_path / "imgs").mkdir()
    with pytest.raises(EmptyInputError, match="imgs"):
        open_sources([str(tmp_path / "imgs")])
    with pytest.raises(UsageError, match="--names"):
        open_sources([str(empty)], names=["a", "b"])


def test_dropped_stream_retries_with_backoff_then_finishes_with_a_warning():
    (src,) = open_sources(["rtsp://127.0.0.1:9/x"], reconnect_attempts=3, reconnect_backoff=0.01)
    assert src.info.camera == "cam0"
    t0 = time.time()
    got = drain([src], timeout=60)
    assert got["cam0"] == []
    assert src.reconnects == 3
    assert src.dropped and "rtsp://127.0.0.1:9/x" in src.dropped and "\n" not in src.dropped
    assert time.time() - t0 < 30


def test_http_stream_source_reads_to_its_end(tmp_path):
    import functools
    import http.server
    import threading

    render(tmp_path / "remote.mp4", n=15)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.mp4"
        (src,) = open_sources([url], offsets=[100.0], reconnect_attempts=1, reconnect_backoff=0.01)
        assert src.kind == "stream" and src.info.camera == "cam0"
        frames = drain([src])["cam0"]
    finally:
        server.shutdown()
    assert [f.index for f in frames] == list(range(15))
    assert src.dropped is None and src.info.fps == pytest.approx(10.0) and src.info.frames == 15
    assert all(f.t >= 100.0 for f in frames) and frames[-1].t >= frames[0].t  # wall clock + offset


def test_files_advance_in_lockstep_so_runs_are_deterministic(tmp_path):
    import threading

    from reidpipe.pipeline.io.sources import round_robin

    a, b = render(tmp_path / "a.mp4", n=12), render(tmp_path / "b.mp4", n=8, size=(320, 240))
    for _ in range(3):  # the bigger video decodes slower, yet the order never depends on it
        notify = threading.Event()
        srcs = open_sources([str(a), str(b)], queue_size=2, notify=notify)
        for s in srcs:
            s.start()
        order = [(s.info.camera, None if f is None else f.index) for s, f in round_robin(srcs, notify)]
        for s in srcs:
            s.join(timeout=5)
        expected = [(cam, i) for i in range(8) for cam in ("a", "b")] + [("a", 8), ("b", None)]
        expected += [("a", 9), ("a", 10), ("a", 11), ("a", None)]
        assert order == expected


def test_corrupt_frame_inside_a_video_is_skipped_and_counted(tmp_path):
    import threading

    from reidpipe.pipeline.io.sources import round_robin

    h, w = 64, 96
    path = tmp_path / "cam.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    for i in range(20):
        vw.write(np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8))
    vw.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]  # JPEG SOI markers
    assert len(starts) == 20
    data[starts[10] + 2 : starts[10] + 600] = bytes(598)  # wipe frame 10's JPEG headers
    path.write_bytes(bytes(data))
    notify = threading.Event()
    (src,) = open_sources([str(path)], notify=notify)
    src.start()
    indices = [f.index for _, f in round_robin([src], notify) if f is not None]
    src.join(timeout=5)
    assert indices == [i for i in range(20) if i != 10]  # frame numbers stay the source's
    assert src.corrupt == 1 and src.error is None


def test_stream_that_drops_reconnects_and_goes_on_then_finishes_when_it_stays_down():
    """An MJPEG-over-HTTP camera serves 10 frames, drops the connection, comes back for 10 more,
    drops again and then refuses: the source reconnects, keeps counting frames, then gives up."""
    import http.server
    import threading

    connections = []

    class Camera(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            return None  # keep the test output quiet

        def do_GET(self):
            connections.append(self.path)
            if len(connections) > 2:
                self.send_error(503)
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for _ in range(10):
                img = np.full((64, 96, 3), 30 * len(connections), np.uint8)
                jpg = cv2.imencode(".jpg", img)[1].tobytes()
                self.wfile.write(
                    b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg) + jpg + b"\r\n"
                )
                self.wfile.flush()
                time.sleep(0.02)
            # returning closes the connection: the stream drops

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.mjpg"
        (src,) = open_sources([url], reconnect_attempts=2, reconnect_backoff=0.05)
        frames = drain([src])["cam0"]
    finally:
        server.shutdown()
    assert [f.index for f in frames] == list(range(20))  # both connections' frames, numbering goes on
    assert src.reconnects >= 1 + 2  # once after the first drop (came back), twice after the second
    assert src.dropped and url in src.dropped and "did not come back after 2" in src.dropped


def test_rtsp_camera_that_drops_reconnects_and_goes_on_then_finishes_when_it_stays_down(rtsp_camera):
    """The same story over RTSP (Motion-JPEG over RTP, interleaved on TCP), read by the real FFmpeg client."""

    def frames_for(connection):
        if connection > 2:
            return None  # the camera stays down
        return [np.full((240, 320, 3), 40 * connection + 5 * i, np.uint8) for i in range(10)]

    camera = rtsp_camera(frames_for, fps=50)
    (src,) = open_sources([camera.url], names=["gate"], reconnect_attempts=2, reconnect_backoff=0.05)
    assert src.kind == "stream"
    frames = drain([src])["gate"]
    assert [f.index for f in frames] == list(range(20))  # both connections' frames, numbering goes on
    brightness = [int(round(f.image.mean())) for f in frames]
    assert brightness == [40 + 5 * i for i in range(10)] + [80 + 5 * i for i in range(10)]  # in order, none lost
    assert (src.info.width, src.info.height, src.info.fps) == (320, 240, 50.0)
    assert camera.tcp_setups == 2 and camera.refused == 2
    assert src.dropped and camera.url in src.dropped and "2 reconnection attempts" in src.dropped
