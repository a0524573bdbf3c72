"""``reidpipe report``: the review page of a run, opened in a real (headless) browser.

The browser test drives Debian's ``chromium`` with Playwright (``.ci/run`` installs it when missing);
it skips, saying why, where neither can be had. The page is checked from the DOM as a person would
look at it: one ``identity-<N>`` element per identity, each with a crop that loaded, the timeline,
no console errors; and a screenshot is saved (``report.png`` in the test's folder, path printed)."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from html.parser import HTMLParser

import pytest
from scene_args import scene_run_args  # (tests/ is on sys.path)
from shared_data import DATA, OSNET, public_detection_run  # noqa: E402  (tests/ is on sys.path)

from reidpipe.cli import main

TWIN = DATA / "mtmc" / "twin_2cam"


class _Page(HTMLParser):
    """What a test reads off the page: identity elements, their tracks (wrong or not), images."""

    def __init__(self, html: str):
        super().__init__()
        self.identities: list[int] = []
        self.tracks: dict[tuple[str, int], bool] = {}  # (camera, track) -> marked wrong
        self.images_in: Counter = Counter()  # identity -> <img> inside its element
        self._current = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if (a.get("id") or "").startswith("identity-"):
            self._current = int(a["id"].split("-", 1)[1])
            self.identities.append(self._current)
        elif tag == "section":
            self._current = None
        if "data-wrong" in a:
            self.tracks[(a["data-camera"], int(a["data-track"]))] = a["data-wrong"] == "1"
        if tag == "img" and self._current is not None and a.get("src", "").startswith("data:image/jpeg"):
            self.images_in[self._current] += 1


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One demo run (with its crop thumbnails) for the module."""
    root = tmp_path_factory.mktemp("report")
    out = root / "demo"
    mp = pytest.MonkeyPatch()
    mp.setenv("REIDPIPE_CACHE", str(root / "cache"))
    try:
        assert main(["demo", "--output", str(out), "--json"]) == 0
    finally:
        mp.undo()
    return out


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no chromium binary (apt-get install chromium; .ci/run does it)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    return path


def test_demo_report_in_a_real_browser(demo_run, tmp_path, capsys):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    assert main(["report", str(demo_run)]) == 0
    page_path = demo_run / "report.html"
    assert page_path.is_file()
    ids = sorted(i["id"] for i in json.loads((demo_run / "trajectories.json").read_text())["identities"])
    shot = tmp_path / "report.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.resolve().as_uri())
            page.wait_for_load_state("load")
            found = page.eval_on_selector_all(
                "[id^='identity-']",
                "els => els.map(e => [e.id, [...e.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth > 0).length])",
            )
            timeline = page.eval_on_selector_all("#timeline img", "els => els.map(i => i.naturalWidth)")
            stages = page.eval_on_selector_all("#stages tr td:first-child", "els => els.map(e => e.textContent)")
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert sorted(int(e.split("-")[1]) for e, _ in found) == ids  # one element per identity
    assert all(loaded >= 1 for _, loaded in found), found  # each with at least one crop that loaded
    assert timeline and timeline[0] > 0  # the timeline plot is there and decoded
    assert {"detect", "track", "embed", "link"} <= set(stages)  # the time of each stage of the run
    assert errors == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with capsys.disabled():
        print(f"\nreport screenshot: {shot}")


def test_report_from_events_only_renders_each_identity(demo_run, tmp_path):
    run = tmp_path / "interrupted"
    shutil.copytree(demo_run, run)
    (run / "trajectories.json").unlink()
    (run / "report.html").unlink(missing_ok=True)
    lines = (run / "events.jsonl").read_text().splitlines(keepends=True)
    ends = {"source_end", "link_operating_point", "run_end"}
    kept = [line for line in lines if json.loads(line)["event"] not in ends]  # killed before the end ...
    (run / "events.jsonl").write_text("".join(kept) + lines[-1][:20])  # ... in the middle of a line
    assert main(["report", str(run), "--output", str(tmp_path / "r.html")]) == 0
    page = _Page((tmp_path / "r.html").read_text())
    events = [json.loads(line) for line in kept]
    logged = sorted({e["identity"] for e in events if e["event"] == "link"})
    assert sorted(page.identities) == logged
    assert all(page.images_in[i] >= 1 for i in logged)
    html = (tmp_path / "r.html").read_text()
    assert "No trajectories.json" in html and "The run did not finish" in html


def test_report_with_gt_needs_trajectories(demo_run, tmp_path, capsys):
    run = tmp_path / "events_only"
    run.mkdir()
    shutil.copy(demo_run / "events.jsonl", run)
    assert main(["report", str(run), "--gt", "cam1.txt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trajectories.json" in err[0]


def test_report_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 3
    assert main(["report", str(tmp_path)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and str(tmp_path) in err[1] and "events.jsonl" in err[1]


def test_no_crops_keeps_no_thumbnails_and_the_report_still_renders(tmp_path):
    from reidpipe.samples.scene import make_scene

    scene = make_scene(tmp_path / "scene", seed=0)
    out = tmp_path / "run"
    assert main(scene_run_args(scene, out, "--no-crops", "--report")) == 0
    assert not list(out.glob("thumbs/*.jpg"))
    page = _Page((out / "report.html").read_text())
    ids = [i["id"] for i in json.loads((out / "trajectories.json").read_text())["identities"]]
    assert ids and sorted(page.identities) == sorted(ids) and sum(page.images_in.values()) == 0


@pytest.mark.real_data
@pytest.mark.skipif(not (TWIN.is_dir() and OSNET.exists()), reason="../shared/data (twin_2cam, OSNet) is absent")
def test_twin_report_marks_exactly_the_wrong_links(tmp_path):
    from reidpipe.pipeline.io.export import read_trajectories
    from reidpipe.pipeline.score import _pred_rows, _track_gt_ids, read_gt

    out = tmp_path / "twin"
    cams = ["cam1", "cam2"]
    # --no-split: with tracklet splitting this twin's run makes no wrong link left to mark
    assert main(public_detection_run("twin_2cam", cams, out, "--no-split")) == 0
    assert main(["report", str(out), "--gt", *[f"{c}={TWIN / f'{c}_gt.txt'}" for c in cams]]) == 0
    html = (out / "report.html").read_text()
    page = _Page(html)
    # expected: per identity, the tracks whose matched ground-truth id is not the identity's majority id
    data = read_trajectories(out / "trajectories.json")
    pred = _pred_rows(data)
    matched = {(c, t): g for c in cams for t, g in _track_gt_ids(pred[c], read_gt(TWIN / f"{c}_gt.txt")).items()}
    expected = set()
    for ident in data["identities"]:
        keys = [(tr["camera"], tr["track"]) for tr in ident["tracks"]]
        votes = Counter(matched[k] for k in keys if matched.get(k) is not None)
        if votes:
            majority = votes.most_common(1)[0][0]
            expected |= {k for k in keys if matched.get(k) not in (None, majority)}
    assert set(page.tracks) == {(t["camera"], t["track"]) for i in data["identities"] for t in i["tracks"]}
    assert {k for k, wrong in page.tracks.items() if wrong} == expected
    assert expected  # this run does make wrong links (the page is checked on something)
    assert "multi-camera IDF1" in html and "cross-camera links precision" in html
    # every runner-up is another identity of the run; the uncertain links show its crops beside them
    ids = {i["id"] for i in data["identities"]}
    runner = {i["id"]: [t["link"]["runner_up"] for t in i["tracks"]] for i in data["identities"]}
    assert all(r is None or (r in ids and r != i) for i, rs in runner.items() for r in rs)
    uncertain = html.split('<section id="uncertain">')[1].split("</section>")[0]
    shown = [int(x) for x in re.findall(r'class="thumbs runner-up" data-identity="(\d+)"', uncertain)]
    assert shown and set(shown) <= ids
    blocks = re.findall(r'class="thumbs runner-up".*?</div></div>', uncertain, re.S)
    assert len(blocks) == len(shown) and any('<img src="data:image/jpeg' in b for b in blocks)


def test_report_from_events_applies_the_online_merges(demo_run, tmp_path):
    from reidpipe.pipeline.io.report import load_run

    run = tmp_path / "merged"
    shutil.copytree(demo_run, run)
    (run / "trajectories.json").unlink()
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    logged = sorted({e["identity"] for e in events if e["event"] == "link"})
    assert len(logged) >= 2
    merge = {"event": "identity_merge", "time": 0.0, "identity": logged[-1], "into": logged[0]}
    with (run / "events.jsonl").open("a") as f:
        f.write(json.dumps(merge) + "\n")
    view = load_run(run)
    assert sorted(i.id for i in view.identities) == logged[:-1]  # the merged identity's tracks joined the first
