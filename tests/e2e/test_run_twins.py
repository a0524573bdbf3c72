"""The multi-camera twins of ../shared/data/mtmc (real person crops on real camera backgrounds,
MOTChallenge ground truth with global ids, public detections with missed boxes and false-positive
bursts): `reidpipe run` with default flags and the real OSNet, scored by `reidpipe score`: per-camera
tracking, cross-camera identities (MTMC IDF1, link F1), online and offline.

The figures asserted are the ones reached (floored to 2 decimals). For comparison, issue 8's plain
IoU tracker gets MOTA 0.96 / 0.93 on twin_2cam, and its reference linker MTMC IDF1 / link F1
0.934 / 0.829 (twin_2cam, in-sample), 0.733 / 0.485 (twin_3cam), 0.812 / 0.606 (twin_overlap)."""

from __future__ import annotations

from pathlib import Path

import pytest
from shared_data import DATA, public_detection_run  # noqa: E402  (tests/ is on sys.path)

from reidpipe.cli import main
from reidpipe.pipeline.io.export import read_trajectories
from reidpipe.pipeline.score import score

MTMC = DATA / "mtmc"
OSNET = DATA / "models" / "osnet_x0_25_msmt17.onnx"

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(
        not (MTMC.is_dir() and OSNET.exists()), reason="../shared/data (mtmc twins, OSNet model) is absent"
    ),
]


def twin_files(twin: str):
    folder = MTMC / twin
    cams = sorted(p.stem for p in folder.glob("cam?.mp4"))
    return (
        cams,
        [str(folder / f"{c}.mp4") for c in cams],
        [str(folder / f"{c}_det.txt") for c in cams],
        {c: folder / f"{c}_gt.txt" for c in cams},
    )


def run_twin(twin: str, out: Path, *flags: str):
    cams, videos, dets, gt = twin_files(twin)
    code = main(public_detection_run(twin, cams, out, *flags))
    assert code == 0
    return read_trajectories(out / "trajectories.json"), score(out / "trajectories.json", gt)


@pytest.mark.slow
@pytest.mark.parametrize(
    "twin, mota, idf1, link_f1, cuts",
    [
        ("twin_2cam", {"cam1": 0.95, "cam2": 0.97}, 0.94, 0.94, 4),
        ("twin_3cam", {"cam1": 0.96, "cam2": 0.98, "cam3": 0.96}, 0.88, 0.86, 1),
        ("twin_overlap", {"cam1": 0.97, "cam2": 0.96}, 0.98, 0.97, 1),
    ],
)
def test_default_flags_track_and_link_the_people(tmp_path, capsys, twin, mota, idf1, link_f1, cuts):
    """Default flags on recordings: offline decisions calibrated from the run (refine=auto); the tracks
    the tracker carried from one person to another are cut (twin_2cam: two pairs of people who swapped
    tracks, and two more swaps). MTMC IDF1 / link F1 0.944 / 0.947, 0.887 / 0.868, 0.982 / 0.971
    (twin_3cam, a clip the linker was developed on, scored 0.909 / 0.907 with the negatives' tail
    read at the sample's own 90th percentile; the suite's three-camera scenes gained from reading it
    where the negatives' 90th lies: docs/notes/2026-12-07-overlap.md)."""
    import json

    data, res = run_twin(twin, tmp_path / "out", "--save-mot")
    capsys.readouterr()
    got = {c: round(m["MOTA"], 4) for c, m in res["per_camera"].items()}
    assert all(got[c] >= mota[c] for c in mota), got
    assert res["multi_camera"]["IDF1"] >= idf1 and res["links"]["f1"] >= link_f1, (res["multi_camera"], res["links"])
    linker = data["linker"]  # the operating point the run chose, and how it was found
    assert linker["mode"] == "calibrated" and set(linker["cross_camera"]) and linker["positive"]["confident_links"] >= 3
    assert all(p["positive_mu"] >= 1.5 for p in linker["cross_camera"].values())  # each pair's own mean
    splits = linker["split"]["splits"]
    assert len(splits) == cuts and all(len(s["parts"]) >= 2 for s in splits)
    pieces = {(t["camera"], t["track"]): t for i in data["identities"] for t in i["tracks"]}
    for s in splits:  # every piece is a track of the output; the later ones say where they come from
        assert pieces[(s["camera"], s["parts"][0])].get("split_from") is None
        assert all(pieces[(s["camera"], n)]["split_from"] == s["track"] for n in s["parts"][1:])
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert [e["track"] for e in events if e["event"] == "track_split"] == [s["track"] for s in splits]
    thumbs = tmp_path / "out" / "thumbs"  # every piece shows its own person in the report; no spare stays
    assert all(list(thumbs.glob(f"{s['camera']}_{n}_*.jpg")) for s in splits for n in s["parts"])
    assert not (thumbs / "spares").exists()
    # gaps are filled and marked, in trajectories.json and in the MOT txt (last column 1)
    for cam in mota:
        points = [p for i in data["identities"] for t in i["tracks"] if t["camera"] == cam for p in t["points"]]
        interpolated = sum(p.get("interpolated", False) for p in points)
        assert 0 < interpolated < len(points) // 10
        rows = (tmp_path / "out" / f"{cam}.txt").read_text().splitlines()
        assert len(rows) == len(points) and sum(r.endswith(",1") for r in rows) == interpolated


def _half_files(twin: str, folder: Path, second: bool):
    """Detections and ground truth of the first or the second 450 frames (45 s) of ``twin``."""
    cams, videos, dets, gt = twin_files(twin)
    folder.mkdir()
    out = {}
    for cam in cams:
        for kind, src in (("det", Path(dets[cams.index(cam)])), ("gt", gt[cam])):
            rows = [r for r in src.read_text().splitlines() if (int(r.split(",")[0]) > 450) == second]
            (folder / f"{cam}_{kind}.txt").write_text("\n".join(rows) + "\n")
        out[cam] = folder / f"{cam}_gt.txt"
    return cams, videos, [str(folder / f"{c}_det.txt") for c in cams], out


@pytest.mark.parametrize(
    "twin, second, idf1, link_f1", [("twin_2cam", False, 0.93, 0.88), ("twin_overlap", True, 0.97, 0.96)]
)
def test_a_short_clip_links_its_people(tmp_path, capsys, twin, second, idf1, link_f1):
    """45 s of a twin hold a dozen people per camera, and their true camera pairs are a large share of
    all pairs (about 8%): the negatives' tail was read among them, and twin_overlap's last 45 s made
    not one link (MTMC IDF1 0.631), twin_2cam's first 45 s one of five (0.831, link F1 0.33)."""
    cams, videos, dets, gt = _half_files(twin, tmp_path / "half", second)
    out = tmp_path / "out"
    args = ["run", "--sources", *videos, "--detections", *dets, "--reid-weights", str(OSNET)]
    assert main([*args, "--output", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    res = score(out / "trajectories.json", gt)
    assert res["multi_camera"]["IDF1"] >= idf1 and res["links"]["f1"] >= link_f1, (res["multi_camera"], res["links"])
    assert res["links"]["precision"] == 1.0
    linker = read_trajectories(out / "trajectories.json")["linker"]  # the tail was read below the 90th
    assert all(m["tail_quantile"] < 0.9 for m in linker["cross_camera"].values())


def test_no_interpolate_outputs_only_the_detections_and_scores_them(tmp_path, capsys):
    """`--no-interpolate` (first 300 frames of twin_2cam): no point is marked, every point is a public
    detection, and the interpolated run scores a higher MOTA on every camera (its filled boxes count)."""
    clip = ("--max-frames", "300", "--reid", "hist")
    with_gaps, res_on = run_twin("twin_2cam", tmp_path / "on", *clip)
    without, res_off = run_twin("twin_2cam", tmp_path / "off", *clip, "--no-interpolate")
    capsys.readouterr()
    cams, _, dets, _ = twin_files("twin_2cam")
    for cam, det in zip(cams, dets):
        detected = {int(line.split(",")[0]) - 1 for line in Path(det).read_text().splitlines()}
        off = [p for i in without["identities"] for t in i["tracks"] if t["camera"] == cam for p in t["points"]]
        on = [p for i in with_gaps["identities"] for t in i["tracks"] if t["camera"] == cam for p in t["points"]]
        assert off and not any("interpolated" in p for p in off)
        assert {p["frame"] for p in off} <= detected
        filled = [p for p in on if p.get("interpolated")]
        assert filled and len(on) == len(off) + len(filled)
        assert res_on["per_camera"][cam]["MOTA"] > res_off["per_camera"][cam]["MOTA"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "twin, idf1, link_f1, cut",
    [("twin_2cam", 0.94, 0.94, True), ("twin_3cam", 0.87, 0.84, True), ("twin_overlap", 0.93, 0.93, False)],
)
def test_online_identities_beat_the_reference_linker(tmp_path, capsys, twin, idf1, link_f1, cut):
    """`--online` (identities as tracklets close; tracks that swapped people cut as they close;
    identities merged once later evidence shows they are one person, after waiting for the tracks
    open then to close) beats the reference linker on every twin: MTMC IDF1 0.944 / 0.871 / 0.932
    against 0.934 (in-sample) / 0.733 / 0.812, link F1 0.947 / 0.845 / 0.939 against 0.83 / 0.49 /
    0.61."""
    import json

    data, res = run_twin(twin, tmp_path / "out", "--online")
    capsys.readouterr()
    assert res["multi_camera"]["IDF1"] >= idf1 and res["links"]["f1"] >= link_f1, (res["multi_camera"], res["links"])
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    merges = [e for e in events if e["event"] == "identity_merge"]
    assert merges and all(e["into"] < e["identity"] for e in merges)
    # tracks cut as they close (once their camera has 8 tracks to compare; twin_overlap's one offline
    # cut is not made online): every piece is linked, after the cut is announced
    order = {(e["event"], e.get("camera"), e.get("track")): k for k, e in enumerate(events)}
    splits = [e for e in events if e["event"] == "track_split"]
    assert bool(splits) == cut
    for e in splits:
        assert all(
            order[("link", e["camera"], n)] > order[("track_split", e["camera"], e["track"])] for n in e["parts"]
        )


@pytest.mark.slow
@pytest.mark.parametrize("declared", [False, True])
def test_two_sites_in_one_run_stay_apart(tmp_path, capsys, declared):
    """twin_2cam (a1, a2) and twin_overlap (b1, b2) as one run of four cameras; site b's ground truth
    ids are offset, so a link across the sites is wrong. The twins reuse one set of people, the
    hardest look-alikes there are: every person is at both sites, at unrelated times. With default
    flags each site's pair shows a walk (its confident links' gaps cluster) and the four pairs across
    the two sites show none (their gaps are spread like random tracks'): they are cut; declared (`--adjacent a1:a2 b1:b2`) they are
    never compared. Either way no identity spans both sites and the run scores what the sites score
    alone (0.944 and 0.982): 0.968 / 0.962."""
    sites = {"a": "twin_2cam", "b": "twin_overlap"}
    sources, dets, gt = [], [], {}
    for site, twin in sites.items():
        for c in ("cam1", "cam2"):
            name = f"{site}{c[-1]}"
            sources.append(str(MTMC / twin / f"{c}.mp4"))
            dets.append(str(MTMC / twin / f"{c}_det.txt"))
            gt[name] = tmp_path / f"{name}_gt.txt"
            lines = (MTMC / twin / f"{c}_gt.txt").read_text().splitlines()
            offset = 0 if site == "a" else 1000
            gt[name].write_text(
                "".join(f"{f},{int(i) + offset},{rest}\n" for f, i, rest in (ln.split(",", 2) for ln in lines if ln))
            )
    out = tmp_path / "out"
    argv = ["run", "--sources", *sources, "--names", *gt, "--detections", *dets, "--reid-weights", str(OSNET)]
    graph = ["--adjacent", "a1:a2", "b2:b1"] if declared else []
    code = main([*argv, *graph, "--output", str(out), "--no-progress"])
    capsys.readouterr()
    assert code == 0
    data = read_trajectories(out / "trajectories.json")
    assert all(len({t["camera"][0] for t in i["tracks"]}) == 1 for i in data["identities"])
    across = ["a1~b1", "a1~b2", "a2~b1", "a2~b2"]
    if declared:
        assert set(data["linker"]["cross_camera"]) == {"a1~a2", "b1~b2"}
        assert data["linker"]["not_adjacent"] == across and "no_exchange" not in data["linker"]
    else:
        assert data["linker"]["no_exchange"] == across
        decisions = {k: v["exchange"]["decision"] for k, v in data["linker"]["cross_camera"].items()}
        assert decisions == {"a1~a2": "walk", "b1~b2": "walk", **dict.fromkeys(across, "between sites")}
    res = score(out / "trajectories.json", gt)
    assert res["multi_camera"]["IDF1"] >= 0.96 and res["links"]["f1"] >= 0.96, (res["multi_camera"], res["links"])


@pytest.mark.slow
def test_ablation_tells_whether_reid_helps(tmp_path, capsys):
    """`reidpipe bench --ablation` on twin_2cam: one run, every variant scored; the full linker links
    people across the cameras, better than without its calibration or its transit evidence, and "no
    ReID" links nobody."""
    import json

    from reidpipe.pipeline.bench.ablation import VARIANTS

    cams, videos, dets, gt = twin_files("twin_2cam")
    out = tmp_path / "ablation.json"
    code = main(
        [
            "bench",
            "--ablation",
            "--sources",
            *videos,
            "--detections",
            *dets,
            "--reid-weights",
            str(OSNET),
            "--gt",
            *(str(gt[c]) for c in cams),
            "--output",
            str(out),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "linker ablation" in printed
    rows = {r["variant"]: r for r in json.loads(out.read_text())["variants"]}
    assert list(rows) == [*VARIANTS, "perfect linking"]
    assert rows["perfect linking"]["link_f1"] == 1.0  # the ground truth's own grouping: every link right
    assert rows["perfect linking"]["MTMC_IDF1"] > rows["full"]["MTMC_IDF1"]  # what linking still loses
    assert rows["no ReID"]["link_f1"] == 0.0 and rows["no ReID"]["link_recall"] == 0.0
    assert rows["full"]["link_f1"] >= 0.94
    assert rows["full"]["link_f1"] > max(rows["no calibration"]["link_f1"], rows["no transit"]["link_f1"])
    assert rows["full"]["MTMC_IDF1"] > rows["no tracklet splitting"]["MTMC_IDF1"] + 0.02
    assert rows["full"]["MTMC_IDF1"] > rows["no ReID"]["MTMC_IDF1"]
    # the full linker on either 45 s half alone (two cameras: no camera pairs to leave out)
    less = {r["data"]: r for r in json.loads(out.read_text())["less_data"]}
    assert list(less) == ["first half", "last half"] and "on less data" in printed
    assert less["first half"]["MTMC_IDF1"] >= 0.79 and less["first half"]["link_f1"] >= 0.66
    assert less["last half"]["MTMC_IDF1"] >= 0.83 and less["last half"]["link_f1"] >= 0.79


YOLOX = DATA / "models" / "yolox_nano.onnx"
OMZ = DATA / "models" / "person-reidentification-retail-0277.xml"


@pytest.mark.slow
@pytest.mark.skipif(not YOLOX.exists(), reason="../shared/data/models/yolox_nano.onnx is absent")
def test_yolox_detector_row_twin_2cam(tmp_path, capsys):
    """The detector row: twin_2cam detected by the real YOLOX-Nano (no public detections), default
    flags: 0.877 / 0.913 (target 0.85 / 0.70). Its tracker swaps people who walk together in cam1;
    those tracks are cut. (The negatives' tail read at their own 90th percentile costs this clip
    0.02 and lifts the suite's overlapping views: docs/notes/2026-12-07-overlap.md.)"""
    cams, videos, _, gt = twin_files("twin_2cam")
    out = tmp_path / "out"
    args = ["run", "--sources", *videos, "--detector", str(YOLOX), "--reid-weights", str(OSNET)]
    assert main([*args, "--output", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    res = score(out / "trajectories.json", gt)
    assert res["multi_camera"]["IDF1"] >= 0.87 and res["links"]["f1"] >= 0.90, (res["multi_camera"], res["links"])
    assert len(read_trajectories(out / "trajectories.json")["linker"]["split"]["splits"]) >= 4


@pytest.mark.slow
@pytest.mark.skipif(not OMZ.exists(), reason="../shared/data/models/person-reidentification-retail-0277 is absent")
def test_second_embedder_same_default_flags_twin_2cam(tmp_path, capsys):
    """The same default flags with Intel's OpenVINO person-reidentification-retail-0277: 0.945 / 0.919
    (target 0.93 / 0.85). Its centred cosines are small, so cam1's re-entry level is low (0.36): a
    track that left at the left edge and one that entered at the right edge 1.1 s later were merged
    as one person (0.921 / 0.895) until rule 6 of the constraints (a person's speed) refused it."""
    pytest.importorskip("openvino", reason="the optional package openvino (reidpipe[openvino]) is not installed")
    data, res = run_twin_with("twin_2cam", tmp_path / "out", OMZ)
    capsys.readouterr()
    assert res["multi_camera"]["IDF1"] >= 0.94 and res["links"]["f1"] >= 0.91, (res["multi_camera"], res["links"])
    assert data["linker"]["mode"] == "calibrated"


def run_twin_with(twin: str, out: Path, reid: Path):
    cams, _, _, gt = twin_files(twin)
    assert main(public_detection_run(twin, cams, out, reid=reid)) == 0
    return read_trajectories(out / "trajectories.json"), score(out / "trajectories.json", gt)
