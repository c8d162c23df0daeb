"""Drive the report in headless Chromium: hover thumbnail, naming, labels.csv download.

Skipped (with the reason) only when /usr/bin/chromium is missing or cannot start.
The downloaded labels.csv must equal what ``descluster label`` writes from the
downloaded names.csv: the page and :mod:`descluster.labelling` apply the same rules.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from test_report import make_demo_result

    from descluster.report import ReportOptions, build_report

    result, source = make_demo_result(per_class=10)
    out = tmp_path_factory.mktemp("browser_report")
    build_report(result, out, source, ReportOptions(max_map_points=40, map_3d=False))
    return result, out


def _point_on_screen(page, curve: int = 0, index: int = 0) -> tuple[float, float, int]:
    """Client pixel position and image row of one plotted point (from plotly's own axis maps)."""
    return page.evaluate(
        """([c, i]) => {
            const gd = document.getElementById('map2d');
            const fl = gd._fullLayout, box = gd.getBoundingClientRect();
            const tr = gd._fullData[c];  // decoded arrays (gd.data may hold base64 typed arrays)
            return [box.left + fl._size.l + fl.xaxis.l2p(tr.x[i]),
                    box.top + fl._size.t + fl.yaxis.l2p(tr.y[i]), Number(tr.customdata[i])];
        }""", [curve, index])


def test_hover_name_and_download(browser, report, tmp_path):
    result, out = report
    n = len(result.paths)
    labels = np.asarray(result.choices[result.recommended].labels)
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((out / "report.html").as_uri())
    page.wait_for_function("document.getElementById('map2d') && document.getElementById('map2d')._fullLayout")
    page.locator("#map2d").scroll_into_view_if_needed()
    page.wait_for_timeout(300)

    # hover a point: its thumbnail and path appear in the side panel
    assert page.locator("#hover-thumb").is_hidden()
    x, y, row = _point_on_screen(page)
    page.mouse.move(x - 30, y - 30)
    page.mouse.move(x, y, steps=5)
    page.wait_for_selector("#hover-thumb:not([hidden])", timeout=5000)
    shown_row = int(page.locator("#hover-thumb").get_attribute("data-row"))
    assert labels[shown_row] == labels[row]  # the hovered point (or a neighbour within the same cluster trace)
    assert "thumbs_0.jpg" in page.locator("#hover-thumb").evaluate("e => e.style.backgroundImage")
    assert page.locator("#hover-caption").inner_text().startswith(result.paths[shown_row])

    # name one cluster, merge a second into it, discard a third
    ids = sorted(set(labels.tolist()))
    a, b, c = ids[0], ids[1], ids[2]
    page.locator(f'input.name[data-cluster="{a}"]').fill("white van")
    page.locator(f'select.merge[data-cluster="{b}"]').select_option(str(a))
    page.locator(f'input.discard[data-cluster="{c}"]').check()
    assert "1 named, 1 merged, 1 discarded" in page.locator("#label-status").inner_text()

    with page.expect_download() as info:
        page.locator("#download-labels").click()
    got = tmp_path / "labels.csv"
    info.value.save_as(got)
    with page.expect_download() as info:
        page.locator("#download-names").click()
    names = tmp_path / "names.csv"
    info.value.save_as(names)
    assert not errors, errors
    context.close()

    table = pd.read_csv(got, keep_default_na=False)
    assert table.columns.tolist() == ["path", "cluster", "name"]
    assert len(table) == n and table["path"].tolist() == result.paths
    expected_name = np.where(np.isin(labels, [a, b]), "white van", np.where(labels == c, "discard", ""))
    assert table["name"].tolist() == expected_name.tolist()
    assert table["cluster"].tolist() == np.where(labels == b, a, labels).tolist()

    # the CLI step gives the same file from the downloaded names.csv
    from descluster.labelling import apply_names

    pd.DataFrame({"path": result.paths, "cluster": labels}).to_csv(tmp_path / "clusters.csv", index=False)
    cli = apply_names(tmp_path, names, out=tmp_path / "cli_labels.csv")
    assert (tmp_path / "cli_labels.csv").read_text(encoding="utf-8") == got.read_text(encoding="utf-8")
    assert len(cli) == n


def test_cluster_pager_shows_every_image_page_by_page(browser, tmp_path):
    from playwright.sync_api import expect
    from test_report import make_demo_result

    from descluster.report import ReportOptions, build_report

    result, source = make_demo_result(per_class=10)
    build_report(result, tmp_path, source, ReportOptions(max_map_points=1000, map_3d=False, page_size=4))
    labels = np.asarray(result.choices[result.recommended].labels)
    c = int(np.bincount(labels).argmax())
    size = int((labels == c).sum())
    pages = -(-size // 4)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((tmp_path / "report.html").as_uri())
    box = page.locator(f'details.browse[data-cluster="{c}"]')
    assert box.locator(".tile").count() == 0  # drawn only when opened
    box.locator("summary").click()  # the page is drawn by the "toggle" event, which fires after the click returns
    seen = []
    for p in range(pages):
        expect(box.locator(".page-info")).to_have_text(re.compile(rf"^page {p + 1} of {pages}\b"))
        tiles = box.locator(".tile")
        assert tiles.count() == (4 if p < pages - 1 else size - 4 * (pages - 1))
        seen += [int(t.get_attribute("data-row")) for t in tiles.all()]
        if p < pages - 1:
            box.locator(".page-next").click()
    assert box.locator(".page-next").is_disabled() and not box.locator(".page-prev").is_disabled()
    assert sorted(seen) == np.flatnonzero(labels == c).tolist()  # every image of the cluster, once
    assert "thumbs_0.jpg" in box.locator(".tile").first.evaluate("e => e.style.backgroundImage")
    box.locator(".page-first").click()
    expect(box.locator(".page-info")).to_have_text(re.compile(rf"^page 1 of {pages}\b"))
    assert not errors, errors
    page.close()


@pytest.mark.skipif(not os.environ.get("DESCLUSTER_SCREENSHOTS"),
                    reason="set DESCLUSTER_SCREENSHOTS=<report folder> to refresh docs/report-*.png")
def test_docs_screenshots(browser):
    """Refresh docs/report-overview.png and docs/report-cluster.png from a built demo report."""
    folder = Path(os.environ["DESCLUSTER_SCREENSHOTS"])
    docs = Path(__file__).resolve().parents[1] / "docs"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto((folder / "report.html").as_uri())
    page.wait_for_function("document.getElementById('map2d') && document.getElementById('map2d')._fullLayout")
    page.evaluate("window.descluster.showImage(0)")
    page.evaluate("document.getElementById('map').scrollIntoView()")
    page.wait_for_timeout(800)
    page.screenshot(path=str(docs / "report-overview.png"))
    first = page.locator("article.cluster").first
    first.evaluate("e => e.scrollIntoView()")
    page.wait_for_timeout(500)
    page.screenshot(path=str(docs / "report-cluster.png"))
    page.close()
