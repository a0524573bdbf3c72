"""Gallery times: a time outside the calendar never breaks a listing, durations are bounded, and
`--start-time` / `--retention` are read with these rules."""

from __future__ import annotations

from reidpipe.cli import main
from reidpipe.errors import UsageError
from reidpipe.limits import MAX_SECONDS
from reidpipe.pipeline.gallery.times import iso, parse_duration, parse_iso


def test_a_time_past_year_9999_is_shown_as_seconds_not_a_traceback():
    far = parse_iso("9999-12-31T23:59:59")
    assert far is not None
    assert iso(far) == "9999-12-31T23:59:59+00:00"
    assert iso(far + 3600) == f"{far + 3600:.0f} s after 1970"  # a gallery written with a far-future clock
    assert iso(1e300).endswith(" s after 1970")


def test_durations_past_the_bound_are_not_durations():
    assert parse_duration(str(int(MAX_SECONDS))) == MAX_SECONDS
    assert parse_duration("1e300") is None and parse_duration(1e300) is None
    assert parse_duration("99999999999999w") is None
    assert parse_duration("30d") == 30 * 86400


def test_start_time_and_retention_flags(tmp_path, capsys):
    assert parse_duration("30d") == 30 * 86400 and parse_duration("90m") == 5400 and parse_duration("0") is None
    assert parse_iso("2026-12-01T10:00:00+01:00") == parse_iso("2026-12-01T09:00:00Z") and parse_iso("x") is None
    base = ["run", "--sources", "a.mp4", "--output", str(tmp_path / "o")]
    assert main([*base, "--start-time", "2026-12-01"]) == UsageError.exit_code
    assert "--start-time and --retention need --gallery" in capsys.readouterr().err
    assert main([*base, "--gallery", str(tmp_path), "--start-time", "yesterday"]) == UsageError.exit_code
    assert "--start-time" in capsys.readouterr().err
    assert main([*base, "--gallery", str(tmp_path), "--retention", "soon"]) == UsageError.exit_code
    assert "--retention 'soon'" in capsys.readouterr().err
