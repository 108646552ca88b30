"""The dashboard: its JSON API over real HTTP, its guards, and the page in a real browser.

A real ``listen`` replays a real clip (rain, ``examples/1-17367-A-10.flac``) at real speed with
``--web`` and ``--events``; the API is read with urllib, the page with Debian's Chromium driven
by Selenium through ``/usr/bin/chromedriver`` (no Selenium Manager download). The browser test
skips, saying why, where Chromium or its driver is missing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from conftest import concat_audio

from edge_asc.bundle import load_bundle
from edge_asc.classify import classify_file
from edge_asc.cli import default_model
from edge_asc.history import EventStore
from edge_asc.sinks.history import ClipSettings, HistorySink
from edge_asc.web import WebError, WebSink, parse_web_address

REPO = Path(__file__).resolve().parents[1]
RAIN = REPO / "examples" / "1-17367-A-10.flac"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def rain_label() -> str:
    """What ``edge-asc classify`` says about the rain clip (the page must show the same)."""
    return classify_file(RAIN, load_bundle(default_model())).label


def _listen(tmp_path: Path, parts: list[Path | float], *extra: str) -> Iterator[tuple[str, Path]]:
    audio = concat_audio(tmp_path / "scene.flac", parts)
    port, db = _free_port(), tmp_path / "events.db"
    log = open(tmp_path / "stderr.txt", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_asc", "listen", "--input", str(audio), "--realtime",
         "--web", f"127.0.0.1:{port}", "--events", str(db), "--max-not-heard", "1", *extra],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        _wait(
            lambda: "dashboard at" in (tmp_path / "stderr.txt").read_text() or proc.poll(),
            60,
            "the dashboard to listen",
        )
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
        yield f"http://127.0.0.1:{port}", db
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, (tmp_path / "stderr.txt").read_text()
    finally:
        proc.kill()
        log.close()
    assert "Traceback" not in (tmp_path / "stderr.txt").read_text()


# --- guards, in process ----------------------------------------------------------------------


def test_binding_beyond_localhost_needs_a_token() -> None:
    assert parse_web_address("8080") == ("127.0.0.1", 8080)
    assert parse_web_address("[::1]:0") == ("::1", 0)
    assert parse_web_address("0.0.0.0:80", token="x") == ("0.0.0.0", 80)
    with pytest.raises(WebError, match="refusing") as info:
        parse_web_address("0.0.0.0:8080")
    assert "\n" not in str(info.value)
    with pytest.raises(WebError, match="expected"):
        parse_web_address("host:http")
    from typer.testing import CliRunner

    from edge_asc.cli import app

    result = CliRunner().invoke(app, ["listen", "--input", str(RAIN), "--web", "0.0.0.0:9"])
    assert result.exit_code == 2 and "without a token" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_token_and_paths_from_requests_never_reach_the_file_system(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    history = HistorySink(tmp_path / "e.db", "m", 22050, ClipSettings(folder=clips))
    history.open()
    outside = tmp_path / "secret.flac"
    outside.write_bytes(RAIN.read_bytes())
    (clips / "link.flac").symlink_to(outside)
    (clips / "good.flac").write_bytes(RAIN.read_bytes())
    ids = {}
    for name in ("../secret.flac", "link.flac", "/etc/passwd", "good.flac"):
        ids[name] = history.store.add_event("mic", "rain", 0, 5, time.time(), 0.9, 0.8, "m")
        history.store.set_clip(ids[name], name, 1)
    web = WebSink("127.0.0.1", 0, "m", "litert", 22050, ["rain"], history, token="s3cret")
    web.open()
    try:
        base = f"http://127.0.0.1:{web.port}"
        assert _get(base + "/api/state")[0] == 401
        assert _get(base + "/api/state", "wrong")[0] == 401
        assert _get(base + "/api/state", "s3cret")[0] == 200
        assert _get(base + "/api/state?token=s3cret")[0] == 200
        assert _get(base + "/?token=s3cret")[0] == 200
        for name in ("../secret.flac", "link.flac", "/etc/passwd"):
            assert _get(f"{base}/api/events/{ids[name]}/clip", "s3cret")[0] == 404, name
        status, _, body = _get(f"{base}/api/events/{ids['good.flac']}/clip", "s3cret")
        assert status == 200 and body == RAIN.read_bytes()
        for path in (
            "/api/events/9999/clip",
            "/api/events/abc/clip",
            "/api/events/..%2F..%2Fetc%2Fpasswd/clip",
            "/api/../../etc/passwd",
        ):
            assert _get(base + path, "s3cret")[0] == 404, path  # fmt: skip
        assert _get(base + "/api/events", "s3cret", method="POST")[0] == 405  # read-only
        assert _get(base + "/api/events?since=soon", "s3cret")[0] == 400
    finally:
        web.close()
        history.close()


# --- the API over real HTTP, from a real listen ----------------------------------------------


@pytest.fixture
def rain_listen(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield from _listen(tmp_path, [RAIN, 12.0])


def test_api_over_real_http(rain_listen: tuple[str, Path], rain_label: str) -> None:
    base, db = rain_listen
    state = _wait(
        lambda: (s := json.loads(_get(base + "/api/state")[2]))["sources"] and s, 15, "a state"
    )
    assert state["model"] == "default" and state["history"] is True
    source = state["sources"][0]
    assert {"label", "decision", "score", "top", "level_dbfs", "rtf", "dropped_blocks"} <= set(
        source
    )
    _wait(
        lambda: json.loads(_get(base + "/api/state")[2])["sources"][0]["label"] == rain_label,
        15,
        f"the label {rain_label}",
    )
    with urllib.request.urlopen(base + "/api/stream", timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        line = stream.readline().decode()
        while not line.startswith("data: "):
            line = stream.readline().decode()
        message = json.loads(line[6:])
    assert message["state"]["sources"] and message["columns"]
    assert message["state"]["clients"] == 1
    _wait(lambda: json.loads(_get(base + "/api/state")[2])["clients"] == 0, 5, "a gone client")
    (columns,) = message["columns"].values()
    assert all(len(c) == 64 and 0 <= min(c) and max(c) <= 255 for c in columns)

    event = _wait(
        lambda: [e for e in json.loads(_get(base + "/api/events")[2])["events"] if e["clip"]],
        20,
        "an event with a clip",
    )[0]
    assert event["label"] == rain_label and event["source"].endswith("scene.flac")
    status, headers, body = _get(f"{base}/api/events/{event['id']}/clip")
    assert status == 200 and headers["content-type"] == "audio/flac"
    data, rate = sf.read(io.BytesIO(body))
    expected = event["end_s"] + 2.0 - max(0.0, event["start_s"] - 2.0)  # rolls, from 0 on
    assert abs(len(data) / rate - expected) < 0.1
    status, headers, body = _get(f"{base}/api/events/{event['id']}/spectrogram.png")
    assert status == 200 and headers["content-type"] == "image/png"
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", body[16:24])
    assert height == 128 and width > 50
    data = json.loads(_get(f"{base}/api/events?label={rain_label}&since=1h")[2])
    assert [e["id"] for e in data["events"]] == [event["id"]] and data["labels"] == [rain_label]
    assert json.loads(_get(f"{base}/api/events?label=dog")[2])["events"] == []
    store = EventStore(db, readonly=True)
    assert store.event(event["id"]).clip == event["clip"]
    store.close()


# --- the page, in a real headless Chromium ---------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("Chromium or chromedriver missing (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or CHROMIUM
    for arg in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required", "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


_CANVAS_COLOURS = """
const c = document.getElementById('spec'), d = c.getContext('2d')
  .getImageData(0, 0, c.width, c.height).data, seen = new Set();
for (let i = 0; i < d.length; i += 4) seen.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);
return seen.size;
"""

_IMAGE_WIDTH = """
const i = document.querySelector('tr.event img');
return i && i.complete ? i.naturalWidth : 0;
"""

_AUDIO = """
const a = document.querySelector('tr.event audio');
return a ? [a.readyState, isFinite(a.duration) ? a.duration : 0] : null;
"""


def test_dashboard_in_a_real_browser(tmp_path: Path, browser, rain_label: str) -> None:
    from selenium.webdriver.common.by import By

    for base, _ in _listen(tmp_path, [RAIN, 3.0, RAIN, RAIN, RAIN, 10.0]):
        browser.get(base + "/")
        _wait(lambda: browser.find_element(By.ID, "label").text == rain_label, 10, "the label")
        assert browser.find_element(By.ID, "status").text == "live"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#bars .bar")) == 5
        _wait(lambda: browser.execute_script(_CANVAS_COLOURS) > 20, 10, "a drawn spectrogram")
        _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "tr.event audio"), 20, "an event row")
        row = browser.find_element(By.CSS_SELECTOR, "tr.event")
        assert rain_label in row.text
        ready, duration = _wait(
            lambda: (r := browser.execute_script(_AUDIO)) and (r[0] >= 1 or r[1] > 0) and r,
            10,
            "the clip to load",
        )
        assert ready >= 1 and duration > 4
        _wait(
            lambda: browser.execute_script(_IMAGE_WIDTH) > 50, 10, "the event's spectrogram image"
        )
        health = browser.find_element(By.ID, "health").text
        assert "real-time factor" in health and "dropped" in health and "default" in health
        _wait(lambda: browser.find_element(By.ID, "label").text == rain_label, 10, "rain again")
        target = os.environ.get("EDGE_ASC_DASHBOARD_SCREENSHOT")  # examples/dashboard.png
        browser.save_screenshot(str(Path(target) if target else tmp_path / "dashboard.png"))
        _wait(lambda: browser.find_element(By.ID, "label").text == "quiet", 15, "quiet")
