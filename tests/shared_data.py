"""Where the real test files live: ``../shared/data`` beside the project (tests that use them skip
with a reason when it is absent)."""

from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
