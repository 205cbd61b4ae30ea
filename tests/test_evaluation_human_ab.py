"""Human A/B evaluation: win rates by hand, and the page in headless Chromium (load, pick, win rate updates)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from browser_support import chromium_page
from easynlp_bp.evaluation.human_ab import ABServer, build_ab_items, read_picks, win_rates, write_ab_page


def test_win_rates_count_ties_as_half_and_the_last_pick_per_item():
    picks = [
        {"id": 0, "choice": "left", "left_method": "sft", "right_method": "raw"},
        {"id": 1, "choice": "right", "left_method": "sft", "right_method": "raw"},
        {"id": 1, "choice": "left", "left_method": "sft", "right_method": "raw"},  # changed mind
        {"id": 2, "choice": "tie", "left_method": "raw", "right_method": "sft"},
        {"id": 3, "choice": "left", "left_method": "raw", "right_method": "sft"},
    ]
    report = win_rates(picks)
    assert report["picks"] == 4
    pair, = report["pairs"]
    assert (pair["method_a"], pair["wins_a"], pair["wins_b"], pair["ties"]) == ("raw", 1, 2, 1)
    assert pair["win_rate_a"] == pytest.approx(1.5 / 4) and pair["win_rate_b"] == pytest.approx(2.5 / 4)
    assert pair["win_rate_a_no_ties"] == pytest.approx(1 / 3)


def test_sides_are_shuffled_reproducibly():
    raw = [f"p{i}" for i in range(20)]
    items = build_ab_items(raw, "raw", "sft", raw, [r + "!" for r in raw], seed=3)
    assert items == build_ab_items(raw, "raw", "sft", raw, [r + "!" for r in raw], seed=3)
    lefts = [item["left"]["method"] for item in items]
    assert 0 < lefts.count("raw") < 20
    assert all(item[side]["prompt"] == (item["raw_prompt"] + ("!" if item[side]["method"] == "sft" else ""))
               for item in items for side in ("left", "right"))


@pytest.fixture
def ab_server(tmp_path):
    rng = np.random.default_rng(0)
    images = []
    for i in range(4):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        images.append(str(path))
    raw = ["a cat", "1 girl"]
    items = build_ab_items(raw, "raw", "sft", raw, ["a cat, oil painting", "1 girl, portrait"], images[:2], images[2:])
    write_ab_page(items, tmp_path / "ab")
    server = ABServer(tmp_path / "ab", port=0)
    server.start()
    yield server, items
    server.shutdown()
    server.server_close()


def test_ab_page_in_a_real_browser(ab_server):
    server, items = ab_server
    with chromium_page() as page:
        page.goto(server.url)
        page.wait_for_function("document.getElementById('raw').textContent === 'a cat'")
        assert page.text_content("#left-prompt") == items[0]["left"]["prompt"]
        assert page.evaluate("document.getElementById('left-img').naturalWidth") == 32  # the image loaded
        assert page.text_content("#report") == "no picks yet"
        winner = items[0]["left"]["method"]
        page.click("#pick-left")
        page.wait_for_function("document.getElementById('raw').textContent === '1 girl'")
        page.wait_for_selector(".pair")
        first_report = page.text_content("#report")
        rate_raw = "100.0%" if winner == "raw" else "0.0%"
        assert f"raw vs sft: raw wins {rate_raw}" in first_report
        page.click("#pick-tie")
        page.wait_for_function("document.getElementById('raw').textContent.startsWith('done')")
        expected = 75.0 if winner == "raw" else 25.0
        page.wait_for_function(f"document.querySelector('.rate-a').textContent === '{expected:.1f}%'")
    picks = read_picks(server.picks_path)
    assert [(p["id"], p["choice"], p["left_method"]) for p in picks] == [
        (0, "left", items[0]["left"]["method"]), (1, "tie", items[1]["left"]["method"])]
    assert json.loads(json.dumps(win_rates(picks)))["pairs"][0]["n"] == 2
