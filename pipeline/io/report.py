"""``reidpipe report``: one HTML page to review a run's identities (who was linked to whom, and why).

Built from a run's output folder:

- ``events.jsonl`` (always): sources (``source_start`` / ``source_end``), tracks (``track_close``:
  start and end time) and the link decisions (``link``: identity, score, margin, gap), run figures
  (``run_end``: with the seconds spent per stage), the linker's operating point (``link_operating_point``);
- ``trajectories.json`` when it is there: the final identities (after the offline refinement) and
  their link evidence replace the logged online decisions. Without it (an interrupted run), the
  identities are rebuilt from the ``link`` events;
- ``thumbs/<camera>_<track>_<k>.jpg`` (the best crops the sampler embedded, ``pipeline/io/thumbs.py``);
  without them (``--no-crops``, ``--engine ray``) the gallery shows no images.

The page: run summary (+ the scores of :func:`reidpipe.pipeline.score.score` with ground truth),
the linked tracks with the smallest margins first (next to the crops of the identity they joined),
a timeline per camera (matplotlib ``broken_barh``, one colour per global id:
:func:`reidpipe.pipeline.io.export.identity_color`, as in ``--save-video``) and the identity gallery
(element ``identity-<N>`` per identity). With ground truth, a track whose matched ground-truth id
differs from its identity's majority id is marked as a wrong link. Rendered by Jinja2 from
``templates/report.html.j2``; every image is inline (``data:`` URIs), so the file opens from disk
with no server and no network.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reidpipe.errors import EmptyInputError, InputNotFoundError, MalformedInputError, UsageError
from reidpipe.files import atomic_write_text
from reidpipe.pipeline.io.export import identity_color, read_trajectories
from reidpipe.pipeline.io.thumbs import THUMBS_PER_TRACK, thumb_path
from reidpipe.pipeline.score import assign_gt, match_tracks, score
from reidpipe.pipeline.validate import camera_names

TEMPLATE = "report.html.j2"
UNCERTAIN_SHOWN = 12  # linked tracks listed under "uncertain links first"


@dataclass
class TrackView:
    camera: str
    track: int
    identity: int
    score: float | None
    margin: float | None
    gap: float | None
    start_t: float
    end_t: float
    runner_up: int | None = None  # the identity it came closest to joining instead
    thumbs: list[str] = field(default_factory=list)  # data: URIs
    gt: int | None = None  # matched ground-truth id (with --gt)
    wrong: bool = False  # its ground-truth id differs from its identity's majority id

    @property
    def linked(self) -> bool:
        """Joined an identity that was seen before (not the identity's first track)."""
        return self.gap is not None


@dataclass
class IdentityView:
    id: int
    color: str  # "#rrggbb"
    tracks: list[TrackView]
    gt: int | None = None  # majority ground-truth id of its tracks

    @property
    def cameras(self) -> list[str]:
        return list(dict.fromkeys(t.camera for t in sorted(self.tracks, key=lambda t: t.start_t)))

    def tracks_in(self, camera: str) -> list[TrackView]:
        return [t for t in self.tracks if t.camera == camera]

    @property
    def first_seen(self) -> float:
        return min(t.start_t for t in self.tracks)

    @property
    def last_seen(self) -> float:
        return max(t.end_t for t in self.tracks)


@dataclass
class RunView:
    folder: Path
    sources: list[dict[str, Any]]
    identities: list[IdentityView]
    linker: dict[str, Any] | None
    events: list[dict[str, Any]]
    from_events: bool  # no trajectories.json: identities are the logged online decisions


# ------------------------------------------------------------------------------------ reading a run
def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_span(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_is_num(x) for x in v)


# the fields the report reads from each event, and what each must be (absent: not read)
_EVENT_FIELDS: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "source_start": {"camera": (lambda v: isinstance(v, str), "a camera name"), "time": (_is_num, "a number")},
    "source_end": {"camera": (lambda v: isinstance(v, str), "a camera name")},
    "track_close": {
        "camera": (lambda v: isinstance(v, str), "a camera name"),
        "track": (_is_int, "an integer"),
        "start_t": (_is_num, "a number"),
        "end_t": (_is_num, "a number"),
    },
    "track_split": {
        "camera": (lambda v: isinstance(v, str), "a camera name"),
        "parts": (lambda v: isinstance(v, list) and all(_is_int(x) for x in v), "a list of track numbers"),
        "spans": (lambda v: isinstance(v, list) and all(_is_span(x) for x in v), "a list of [start, end] times"),
    },
    "link": {
        "camera": (lambda v: isinstance(v, str), "a camera name"),
        "track": (_is_int, "an integer"),
        "identity": (_is_int, "an integer"),
    },
    "identity_merge": {"identity": (_is_int, "an integer"), "into": (_is_int, "an integer")},
    "run_end": {"time": (_is_num, "a number")},
}
# fields that may be absent or null, and what each must be otherwise
_OPTIONAL_FIELDS: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "link": {
        "runner_up": (_is_int, "an integer"),
        "score": (_is_num, "a number"),
        "margin": (_is_num, "a number"),
        "gap": (_is_num, "a number"),
    },
    "source_end": {"frames": (_is_int, "an integer")},
    "run_end": {"seconds": (lambda v: isinstance(v, dict) and all(_is_num(x) for x in v.values()), "stage seconds")},
}


def _event_problem(rec: dict[str, Any]) -> str | None:
    """What is wrong with an event the report reads (a field missing or of another type), or None."""
    for key, (ok, what) in _EVENT_FIELDS.get(rec["event"], {}).items():
        if key not in rec or not ok(rec[key]):
            return f"a {rec['event']!r} event needs {key!r} ({what}), got {rec.get(key)!r}"
    for key, (ok, what) in _OPTIONAL_FIELDS.get(rec["event"], {}).items():
        if rec.get(key) is not None and not ok(rec[key]):
            return f"a {rec['event']!r} event's {key!r} must be {what} or null, got {rec[key]!r}"
    return None


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of ``events.jsonl``; a line cut short (a run killed mid-write) is skipped; an event
    that lacks a field the report reads is a :class:`MalformedInputError` naming ``file:line``."""
    out = []
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("event"), str):
            problem = _event_problem(rec)
            if problem:
                raise MalformedInputError(f"{path}:{lineno}: {problem}")
            out.append(rec)
    return out


def _of(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


def _tracks_from_trajectories(data: dict[str, Any]) -> list[TrackView]:
    out = []
    for ident in data["identities"]:
        for tr in ident["tracks"]:
            times = [p["t"] for p in tr["points"]] or [ident["first_seen"], ident["last_seen"]]
            link = tr["link"]
            out.append(
                TrackView(
                    tr["camera"],
                    tr["track"],
                    ident["id"],
                    link.get("score"),
                    link.get("margin"),
                    link.get("gap"),
                    float(min(times)),
                    float(max(times)),
                    link.get("runner_up"),
                )
            )
    return out


def _tracks_from_events(events: list[dict[str, Any]]) -> list[TrackView]:
    """Tracks of an interrupted run: each ``link`` event (the last one of a track wins) with the times
    of its ``track_close`` (of its ``track_split`` for a piece of a cut track), and its identity after
    the run's ``identity_merge`` events."""
    closes = {(e["camera"], e["track"]): e for e in _of(events, "track_close")}
    for e in _of(events, "track_split"):  # a track cut where it went from one person to another
        for number, (start, end) in zip(e["parts"], e["spans"]):
            closes[(e["camera"], number)] = {"start_t": start, "end_t": end}
    links = {(e["camera"], e["track"]): e for e in _of(events, "link")}
    into = {int(e["identity"]): int(e["into"]) for e in _of(events, "identity_merge")}

    def merged(gid: int) -> int:
        while gid in into:
            gid = into[gid]
        return gid

    out = []
    for key, e in links.items():
        c = closes.get(key, {})
        out.append(
            TrackView(
                e["camera"],
                e["track"],
                merged(int(e["identity"])),
                e.get("score"),
                e.get("margin"),
                e.get("gap"),
                float(c.get("start_t", 0.0)),
                float(c.get("end_t", 0.0)),
                None if e.get("runner_up") is None else merged(int(e["runner_up"])),
            )
        )
    return out


def _sources_from_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("camera", "uri", "fps", "width", "height", "frames", "offset")
    return [{k: e.get(k) for k in keys} for e in _of(events, "source_start")]


def load_run(folder: str | Path) -> RunView:
    """Read a run's output folder (see the module docstring)."""
    folder = Path(folder)
    events_path, traj_path = folder / "events.jsonl", folder / "trajectories.json"
    if not folder.is_dir():
        raise InputNotFoundError(f"run output folder not found: {folder}")
    if not events_path.is_file() and not traj_path.is_file():
        raise InputNotFoundError(
            f"{folder} holds neither events.jsonl nor trajectories.json: not a reidpipe run folder"
        )
    events = read_events(events_path) if events_path.is_file() else []
    data = read_trajectories(traj_path) if traj_path.is_file() else None  # its camera names checked there
    if data is None:
        _check_camera_names(events_path, events)
    tracks = _tracks_from_trajectories(data) if data is not None else _tracks_from_events(events)
    by_id: dict[int, list[TrackView]] = {}
    for t in sorted(tracks, key=lambda t: (t.start_t, t.camera, t.track)):
        t.thumbs = _thumbs(folder / "thumbs", t.camera, t.track)
        by_id.setdefault(t.identity, []).append(t)
    identities = [IdentityView(gid, identity_color(gid).as_hex(), ts) for gid, ts in sorted(by_id.items())]
    ops = _of(events, "link_operating_point")
    linker = data.get("linker") if data is not None else None
    if linker is None and ops:
        linker = {k: v for k, v in ops[-1].items() if k not in ("event", "time")}
    sources = data["sources"] if data is not None else _sources_from_events(events)
    if not sources and not identities:
        raise EmptyInputError(f"{folder}: the run started no camera (no source in its events or trajectories)")
    return RunView(folder, sources, identities, linker, events, from_events=data is None)


def _check_camera_names(path: Path, events: list[dict[str, Any]]) -> None:
    """Camera names read from ``events.jsonl`` follow the rule of ``--names``: they name thumbnail files,
    and a name such as ``../../x`` must never lead the report out of the run folder."""
    names = list(dict.fromkeys(e["camera"] for e in events if "camera" in e))
    unsafe = camera_names(names)
    if unsafe is not None:
        raise MalformedInputError(f"{path}: {unsafe}")


def _thumbs(folder: Path, camera: str, track: int) -> list[str]:
    """The track's thumbnails (best first) as ``data:`` URIs."""
    uris = []
    for k in range(THUMBS_PER_TRACK):
        p = thumb_path(folder, camera, track, k)
        if p.is_file():
            uris.append("data:image/jpeg;base64," + base64.b64encode(p.read_bytes()).decode("ascii"))
    return uris


# ------------------------------------------------------------------------------------ ground truth
def mark_wrong_links(run: RunView, gt: list[str]) -> dict[str, Any]:
    """Score the run (:func:`reidpipe.pipeline.score.score`) and mark, in ``run``, each track's matched
    ground-truth id, each identity's majority id and the tracks that disagree with it. Returns the scores."""
    traj_path = run.folder / "trajectories.json"
    if run.from_events:
        raise UsageError(f"--gt needs {traj_path} (the boxes of the tracks); this run has only events.jsonl")
    scores = score(traj_path, gt)
    data = read_trajectories(traj_path)
    matched = match_tracks(data, assign_gt(list(gt), [s["camera"] for s in data["sources"]]))
    for ident in run.identities:
        for t in ident.tracks:
            t.gt = matched.get((t.camera, t.track))
        votes = Counter(t.gt for t in ident.tracks if t.gt is not None)
        ident.gt = votes.most_common(1)[0][0] if votes else None
        for t in ident.tracks:
            t.wrong = t.gt is not None and ident.gt is not None and t.gt != ident.gt
    return scores


# ------------------------------------------------------------------------------------ the sections
def _threshold(linker: dict[str, Any] | None, cam_a: str, cam_b: str) -> float | None:
    """The operating point's cosine threshold between two cameras (the fixed one without calibration)."""
    if not linker:
        return None
    if cam_a == cam_b:
        entry = linker.get("in_camera", {}).get(cam_a, {})
    else:
        cross = linker.get("cross_camera", {})
        entry = cross.get(f"{cam_a}~{cam_b}") or cross.get(f"{cam_b}~{cam_a}") or {}
    thr = entry.get("threshold", linker.get("fixed_similarity"))
    return None if thr is None else float(thr)


def uncertain_links(run: RunView, limit: int = UNCERTAIN_SHOWN) -> list[dict[str, Any]]:
    """The linked tracks whose decision was closest: smallest margin over the runner-up identity (or,
    without one, smallest score above the threshold), each with the other tracks of its identity."""
    rows: list[dict[str, Any]] = []
    by_id = {i.id: i for i in run.identities}
    for ident in run.identities:
        for t in ident.tracks:
            if not t.linked:
                continue
            before = [o for o in ident.tracks if o is not t and o.start_t <= t.start_t] or [
                o for o in ident.tracks if o is not t
            ]
            thr = _threshold(run.linker, t.camera, before[-1].camera) if before else None
            above = None if thr is None or t.score is None else t.score - thr
            closeness = t.margin if t.margin is not None else above
            rows.append(
                {
                    "track": t,
                    "identity": ident,
                    "others": [o for o in ident.tracks if o is not t],
                    "runner_up": by_id.get(t.runner_up) if t.runner_up not in (None, ident.id) else None,
                    "threshold": thr,
                    "above": above,
                    "key": float("inf") if closeness is None else closeness,
                }
            )
    rows.sort(key=lambda r: (r["key"], r["track"].score if r["track"].score is not None else 0.0))
    return rows[:limit]


def timeline_png(run: RunView) -> str:
    """Per camera, one band per identity over time (its colour), as a ``data:image/png`` URI."""
    from io import BytesIO

    from matplotlib.figure import Figure

    cameras = [s["camera"] for s in run.sources] or sorted({t.camera for i in run.identities for t in i.tracks})
    rows = {c: [i for i in run.identities if c in i.cameras] for c in cameras}
    heights = [max(1, len(rows[c])) for c in cameras]
    fig = Figure(figsize=(10, 0.9 + 0.22 * sum(heights) + 0.5 * len(cameras)), layout="constrained")
    axes = fig.subplots(len(cameras), 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, cam in zip(axes, cameras):
        for y, ident in enumerate(rows[cam]):
            spans = [(t.start_t, max(t.end_t - t.start_t, 0.05)) for t in ident.tracks_in(cam)]
            ax.broken_barh(spans, (y - 0.4, 0.8), facecolors=ident.color)
        ax.set_yticks(range(len(rows[cam])), [f"#{i.id}" for i in rows[cam]], fontsize=7)
        ax.set_ylim(-0.6, max(len(rows[cam]), 1) - 0.4)
        ax.invert_yaxis()
        ax.set_ylabel(cam)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def run_summary(run: RunView) -> dict[str, Any]:
    """Figures of the run: per source (frames, fps), totals, how long it took."""
    ends = {e["camera"]: e for e in _of(run.events, "source_end")}
    sources = [{**s, "processed": ends.get(s["camera"], {}).get("frames")} for s in run.sources]
    starts = _of(run.events, "source_start")
    ends_of_run = _of(run.events, "run_end")
    run_end = ends_of_run[-1] if ends_of_run else None
    tracks = [t for i in run.identities for t in i.tracks]
    frames = sum(int(s["processed"] or 0) for s in sources)
    seconds = run_end["time"] - starts[0]["time"] if run_end and starts else None
    return {
        "sources": sources,
        "identities": len(run.identities),
        "tracklets": len(tracks),
        "links": sum(t.linked for t in tracks),
        "multi_camera": sum(len(i.cameras) > 1 for i in run.identities),
        "frames": frames,
        "seconds": seconds,
        "fps": frames / seconds if seconds else None,
        "interrupted": run_end["interrupted"] if run_end else None,
        "finished": run_end is not None,
        "from_events": run.from_events,
        "stages": _stage_rates(run_end, frames),
    }


def _stage_rates(run_end: dict[str, Any] | None, frames: int) -> list[dict[str, Any]]:
    """Per stage: seconds spent (``run_end.seconds``) and frames per second of that stage alone."""
    seconds = (run_end or {}).get("seconds") or {}
    return [
        {"stage": k, "seconds": float(v), "fps": frames / float(v) if v else None}
        for k, v in seconds.items()
        if float(v) > 0
    ]


# ------------------------------------------------------------------------------------ the page
def render(run: RunView, scores: dict[str, Any] | None = None) -> str:
    """The report's HTML (Jinja2, ``templates/report.html.j2``)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = lambda v, fmt="{:.3f}": "–" if v is None else fmt.format(v)
    return env.get_template(TEMPLATE).render(
        run=run,
        summary=run_summary(run),
        scores=scores,
        uncertain=uncertain_links(run),
        timeline=timeline_png(run),
        has_thumbs=any(t.thumbs for i in run.identities for t in i.tracks),
        wrong=sum(t.wrong for i in run.identities for t in i.tracks),
    )


def write_report(folder: str | Path, gt: list[str] | None = None, output: str | Path | None = None) -> Path:
    """Write the report of the run in ``folder`` to ``output`` (default ``folder/report.html``)."""
    run = load_run(folder)
    scores = mark_wrong_links(run, gt) if gt else None
    out = Path(output) if output is not None else Path(folder) / "report.html"
    atomic_write_text(out, render(run, scores))
    return out


__all__ = ["load_run", "mark_wrong_links", "render", "uncertain_links", "write_report"]
