"""The trends view (``#/trends``) in Debian's chromium against the real app: the charts drawn
by the page's own JS from ``GET /v1/stats``, its table, and the SVG and PNG exports.

The calls are posted to the service (transcripts, analyzed by the real worker) and placed on
four days (``tests/stats_calls.py``). ``docs/screenshots/trends.png`` is rewritten only when
CALLSENSE_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import base64
import struct
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from callsense.connectors.web.router import STATIC_DIR
from tests.stats_calls import post_calls
from tests.web.conftest import serve
from tests.web.test_ui import shoot

pytestmark = pytest.mark.slow

SVG = "{http://www.w3.org/2000/svg}"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ESCALATION_RED = (0xC6, 0x28, 0x28)  # the escalation rate chart's bars


@dataclass(frozen=True)
class Service:
    url: str
    key: str


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    from callsense.connectors.app import create_app
    from callsense.connectors.appconfig import AppConfig
    from callsense.connectors.service_settings import ServiceSettings
    from callsense.pipeline.config import CacheConfig

    tmp = tmp_path_factory.mktemp("web-trends")
    app = create_app(
        AppConfig(cache=CacheConfig(enabled=False)),
        db_url=f"sqlite:///{tmp / 'callsense.db'}",
        load_models=False,
        settings=ServiceSettings(data_dir=tmp / "data", scheduler=False),
    )
    with serve(app) as url:
        key = app.state.runtime.keys.create("trends-test")
        deadline = time.monotonic() + 60
        while httpx.get(url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            post_calls(client, app.state.runtime.engine)
        yield Service(url, key)


def open_trends(page, svc: Service) -> None:
    page.goto(svc.url + "/#/trends")
    page.fill("#api-key", svc.key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#key-state:has-text('key saved')")


def show(page, *, since: str = "", until: str = "", group_by: str = "day") -> None:
    """Submit the form and wait for the report whose status names ``group_by``."""
    page.fill("#trends-since", since)
    page.fill("#trends-until", until)
    page.select_option("#trends-group", group_by)
    page.evaluate("document.querySelector('#trends-status').textContent = ''")
    page.click("#trends-form button[type=submit]")
    page.wait_for_selector(f"#trends-status[data-kind=ok]:has-text('by {group_by}')")


def bars(page, figure: str) -> list[tuple[str, float, float]]:
    """(group key, value, drawn height) of each bar of one chart."""
    return [
        (b["key"], float(b["value"]), float(b["height"]))
        for b in page.eval_on_selector_all(
            f"#trends-charts svg[data-figure={figure}] rect.bar",
            "els => els.map(e => ({key: e.dataset.key, value: e.dataset.value,"
            " height: e.getAttribute('height')}))",
        )
    ]


def test_a_chart_per_figure_with_a_bar_per_group_that_has_it(page, service: Service) -> None:
    open_trends(page, service)
    show(page, since="2025-03-01", until="2025-03-06")
    status = page.text_content("#trends-status")
    assert "5 finished calls in 6 groups" in status, status

    days = ["2025-03-01", "2025-03-02", "2025-03-03", "2025-03-04", "2025-03-05", "2025-03-06"]
    assert [(k, v) for k, v, _ in bars(page, "calls")] == list(
        zip(days, [0, 0, 2, 2, 0, 1], strict=True)
    )
    with_calls = ["2025-03-03", "2025-03-04", "2025-03-06"]
    expected = {
        "escalation_rate": [0.5, 0.5, 1.0],
        "first_escalation_mean_s": [16.0, 31.0, 5.0],
        "satisfaction_rate": [0.5, 0.5, 0.0],
        "handle_time_mean_s": [35.0, 50.0, 30.0],
        "hold_share": [0.2, 0.0, 0.5],
        "non_talk_share": [0.535, 0.65, 0.8],
    }
    for figure, values in expected.items():
        drawn = bars(page, figure)
        assert [(k, v) for k, v, _ in drawn] == list(zip(with_calls, values, strict=True)), figure
        # the days without calls are marked on the axis, not drawn as zero
        assert page.locator(f"svg[data-figure={figure}] line.none").count() == 3, figure
    rate = {k: h for k, _, h in bars(page, "escalation_rate")}
    assert rate["2025-03-06"] == pytest.approx(2 * rate["2025-03-03"])  # 100 % vs 50 %
    assert page.locator("svg[data-figure=first_escalation_mean_s] path.median").count() == 3
    assert [(k, v) for k, v, _ in bars(page, "top_rules")] == [
        ("default/angry-streak", 2),
        ("default/laughter-satisfaction", 2),
        ("vip/any-angry", 1),
    ]

    rows = page.eval_on_selector_all(
        "#trends-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert [r[0] for r in rows] == days
    assert rows[2] == ["2025-03-03", "2", "1", "50.0 %", "16.0 s", "16.0 s", "1", "50.0 %",
                       "35.0 s", "20.0 %", "53.5 %", "angry-streak ×1"]  # fmt: skip
    total = page.eval_on_selector(
        "#trends-table tfoot tr", "r => [...r.cells].map(c => c.textContent)"
    )
    assert total == ["total", "5", "3", "60.0 %", "17.3 s", "16.0 s", "2", "40.0 %", "40.0 s",
                     "22.5 %", "63.0 %", "angry-streak ×2"]  # fmt: skip
    shoot(page, "trends.png")


def test_grouped_by_policy(page, service: Service) -> None:
    open_trends(page, service)
    show(page, since="2025-03-01", group_by="policy")
    assert [(k, v) for k, v, _ in bars(page, "calls")] == [("default", 4), ("vip", 1)]
    assert [(k, v) for k, v, _ in bars(page, "escalation_rate")] == [("default", 0.5),
                                                                      ("vip", 1.0)]  # fmt: skip


def test_a_bad_range_is_explained(page, service: Service) -> None:
    open_trends(page, service)
    page.fill("#trends-since", "2025-03-06")
    page.fill("#trends-until", "2025-03-01")
    page.click("#trends-form button[type=submit]")
    page.wait_for_selector("#trends-status[data-kind=error]")
    assert "must be before until" in page.text_content("#trends-status")
    assert page.locator("#trends-charts svg").count() == 0
    assert page.is_disabled("#trends-export-png")


def test_the_charts_export_as_svg_and_png(page, service: Service, tmp_path: Path) -> None:
    open_trends(page, service)
    show(page, since="2025-03-01", until="2025-03-06")

    with page.expect_download() as svg_download:
        page.click("#trends-export-svg")
    assert svg_download.value.suggested_filename == "callsense-trends-day.svg"
    svg_path = tmp_path / "trends.svg"
    svg_download.value.save_as(svg_path)
    root = ET.parse(svg_path).getroot()  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    charts = root.findall(f"{SVG}svg")
    figures = [c.get("data-figure") for c in charts]
    assert figures == ["calls", "escalation_rate", "first_escalation_mean_s",
                       "satisfaction_rate", "handle_time_mean_s", "hold_share",
                       "non_talk_share", "top_rules"]  # fmt: skip
    per_chart = [len([r for r in c.iter(f"{SVG}rect") if r.get("class") == "bar"]) for c in charts]
    assert per_chart == [6, 3, 3, 3, 3, 3, 3, 3]
    width, height = float(root.get("width")), float(root.get("height"))
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert "5 calls" in "".join(root.itertext())

    with page.expect_download() as png_download:
        page.click("#trends-export-png")
    assert png_download.value.suggested_filename == "callsense-trends-day.png"
    png_path = tmp_path / "trends.png"
    png_download.value.save_as(png_path)
    data = png_path.read_bytes()
    png_width, png_height = check_png(data)
    assert (png_width, png_height) == (2 * width, 2 * height)  # drawn at twice the size
    # decoded again (from the file's bytes), the escalation chart's red fills its 3 bars
    red = page.evaluate(COUNT_COLOUR, [base64.b64encode(data).decode(), list(ESCALATION_RED)])
    assert red > 3 * 1000, red


COUNT_COLOUR = """async ([b64, rgb]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const image = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
  const canvas = new OffscreenCanvas(image.width, image.height);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const px = ctx.getImageData(0, 0, image.width, image.height).data;
  let n = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i] === rgb[0] && px[i + 1] === rgb[1] && px[i + 2] === rgb[2]) n += 1;
  }
  return n;
}"""


def check_png(data: bytes) -> tuple[int, int]:
    """A well-formed 8-bit RGBA PNG (what a canvas writes): magic bytes, every chunk's CRC,
    IHDR first, IEND last, the image data inflating to one filtered row per line. Returns
    its width and height."""
    assert data[:8] == PNG_MAGIC
    pos, kinds, idat = 8, [], b""
    width = height = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        kinds.append(kind)
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 6), "expected 8-bit RGBA"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert len(zlib.decompress(idat)) == height * (1 + 4 * width)
    return width, height


def test_the_trends_script_never_renders_data_as_markup() -> None:
    """Group keys and rule ids are user data: trends.js puts them on the page as text only."""
    js = (STATIC_DIR / "trends.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, sink
