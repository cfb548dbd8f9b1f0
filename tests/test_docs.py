"""Facts the docs state that the code decides: each is read from the doc and checked against
the code, so the two cannot drift apart again (issue 13, item 7)."""

from __future__ import annotations

import re
from pathlib import Path

from xtracker_server.config import Settings
from xtracker_server.delivery.worker import Worker
from xtracker_server.domain.dedup import dedup_key
from xtracker_server.landing.routes import _design

ROOT = Path(__file__).resolve().parents[1]


def _read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def test_the_documented_dedup_key_is_the_one_the_code_computes() -> None:
    doc = _read("docs/api.md")
    found = re.search(
        r'`sha256\("(\d+)\|(\d+):(\w+)\|(\w+)\|(\d+):([\w-]+)"\)` =\s*`([0-9a-f]{64})`', doc
    )
    assert found, "docs/api.md no longer shows a worked dedup key"
    space, _, uid, event, _, eid, digest = found.groups()
    key = dedup_key(int(space), uid, None, event, eid, 0)
    assert key.hex() == digest


def test_the_documented_worker_lease_is_the_code_s() -> None:
    lease_s = Worker(store=None, settings=Settings()).lease_ms // 1000  # type: ignore[arg-type]
    operations = re.search(r"(\d+) s by default: the worker holds", _read("docs/operations.md"))
    destinations = re.search(
        r"\((\d+) seconds with the default timeout", _read("docs/destinations.md")
    )
    assert operations and destinations
    assert int(operations.group(1)) == int(destinations.group(1)) == lease_s


def test_the_documented_refresh_rounding_is_the_page_s() -> None:
    doc = _read("docs/links.md")
    shown = re.search(r'<meta http-equiv="refresh" content="(\d+);', doc)
    delay = re.search(r"--auto-redirect --delay-ms (\d+)\n", doc)
    assert shown and delay
    page = _design("t", "", "Open", None, True, int(delay.group(1)))
    assert f'content="{shown.group(1)};' in page
    assert "rounded **up**" in doc


def test_no_doc_promises_what_is_already_there_or_an_unpublished_package() -> None:
    texts = {
        p: p.read_text(encoding="utf-8") for p in [*ROOT.glob("docs/*.md"), ROOT / "README.md"]
    }
    texts.update({p: p.read_text(encoding="utf-8") for p in ROOT.glob("examples/*.py")})
    for path, text in texts.items():
        assert "upcoming" not in text.lower(), path
        # xtracker is installed from a checkout or a built wheel: it is not on PyPI.
        assert not re.search(r"pip install '?xtracker\b", text), path


def test_every_file_and_name_architecture_md_points_to_exists() -> None:
    """docs/architecture.md names files (``store/sqlite/outbox.py``) and functions in them
    (``domain/capi.py`` … ``capi_event``): a rename that forgets the page fails here."""
    doc = _read("docs/architecture.md")
    packages = ("xtracker_server", "xtracker_client", "xtracker_wire")
    missing = []
    for path in sorted(set(re.findall(r"`([\w/]+\.py)", doc))):
        if path.startswith(("tests/", "bench/")) or path.startswith(packages):
            candidates = [ROOT / path]
        else:
            candidates = [ROOT / "xtracker_server" / path]
        if not any(c.exists() for c in candidates):
            missing.append(path)
    for module, name in re.findall(r"`(\w+/\w+)\.(?!py`|md`)(\w+)`", doc):
        file = ROOT / "xtracker_server" / f"{module}.py"
        if not file.exists() or not re.search(
            rf"^(?:async )?(?:def|class) {name}\b|^{name}\b", file.read_text("utf-8"), re.M
        ):
            missing.append(f"{module}.{name}")
    assert missing == [], f"docs/architecture.md points to what is not there: {missing}"
