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


def _serving(items, directory):
    """(server, items) while the A/B page of ``items`` is served from ``directory``; shut down afterwards."""
    write_ab_page(items, directory)
    server = ABServer(directory, port=0)
    server.start()
    yield server, items
    server.shutdown()
    server.server_close()


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
    yield from _serving(items, tmp_path / "ab")


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


XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.fixture
def hostile_ab_server(tmp_path):
    raw = [f"a cat {XSS}", f"{XSS} 1 girl"]
    items = build_ab_items(raw, f"raw{XSS}", f"sft{XSS}", [f"left {XSS}"] * 2, [f"right {XSS}"] * 2)
    yield from _serving(items, tmp_path / "ab")


def test_ab_page_shows_an_xss_payload_in_every_field_as_text(hostile_ab_server):
    server, items = hostile_ab_server
    with chromium_page() as page:
        page.goto(server.url)
        page.wait_for_function(f"document.getElementById('raw').textContent === {json.dumps(items[0]['raw_prompt'])}")
        assert page.text_content("#left-prompt") == items[0]["left"]["prompt"]
        page.click("#pick-left")
        page.wait_for_selector(".pair")
        page.click("#pick-right")
        page.wait_for_function("document.getElementById('raw').textContent.startsWith('done')")
        report = page.text_content("#report")
        assert f"raw{XSS} vs sft{XSS}: raw{XSS} wins" in report  # the method names, shown literally
        assert page.evaluate("window.__xss") is None  # no payload ran
        assert page.evaluate("document.querySelectorAll('img').length") == 2  # only the two image slots
        assert page.evaluate("document.querySelectorAll('script').length") == 1  # only the page's own


def raw_request(server, request: bytes, shut_write: bool = False) -> tuple[int, str]:
    import socket

    host, port = server.server_address[:2]
    with socket.create_connection((host, port)) as sock:
        sock.settimeout(60)  # only against a hang; no duration is asserted
        sock.sendall(request)
        if shut_write:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


def post_pick(server, body: bytes, length: int | None = None, shut_write: bool = False) -> tuple[int, str]:
    length = len(body) if length is None else length
    return raw_request(server, b"POST /api/pick HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                       % length + body, shut_write)


@pytest.mark.parametrize("body,words", [
    (b'{"id": -1, "choice": "left"}', "id=-1 must be a whole number in [0, 1]"),
    (b'{"id": 1.9, "choice": "left"}', "id=1.9 must be"),
    (b'{"id": true, "choice": "left"}', "id=True must be"),
    (b'{"id": "0", "choice": "left"}', "id='0' must be"),
    (b'{"id": 2, "choice": "left"}', "id=2 must be"),
    (b'{"id": 0, "choice": "both"}', "choice='both' must be one of left, right, tie"),
    (b'{"id": 0, "choice": "left", "annotator": 5}', "annotator must be a string"),
    (b'[0, "left"]', "must be a JSON object"),
    (b'{"id": 0, "choice": "le', "bad pick"),
], ids=["negative", "float", "bool", "string", "past-end", "choice", "annotator", "array", "broken-json"])
def test_pick_endpoint_rejects_bad_picks_and_records_none(ab_server, body, words):
    server, _ = ab_server
    status, text = post_pick(server, body)
    assert status == 400 and words in json.loads(text)["error"]
    assert read_picks(server.picks_path) == []


def test_pick_endpoint_refuses_truncated_and_huge_bodies_and_private_files(ab_server):
    server, _ = ab_server
    whole = b'{"id": 0, "choice": "left"}'
    status, text = post_pick(server, whole[:-3], length=len(whole), shut_write=True)  # the client stops early
    assert status == 400 and f"ended after {len(whole) - 3} of {len(whole)} bytes" in text
    status, text = post_pick(server, b"", length=10**12)
    assert status == 413 and "larger than 4096 bytes" in text
    assert read_picks(server.picks_path) == []
    assert post_pick(server, whole)[0] == 200 and len(read_picks(server.picks_path)) == 1
    for path in ("/picks.jsonl", "/img/", "/img", "/../picks.jsonl", "/img/../picks.jsonl", "/img/?x"):
        status, text = raw_request(server, f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        assert status == 404 and "annotator" not in text and "<a href" not in text, path
    assert raw_request(server, b"GET /items.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")[0] == 200
    status, text = raw_request(server, b"GET /?x=/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status == 200 and "Which image fits" in text  # the page, not a listing
