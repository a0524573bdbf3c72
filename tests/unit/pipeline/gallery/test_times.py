"""Gallery times: a time outside the calendar never breaks a listing, durations are bounded."""

from __future__ import annotations

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
