"""Human A/B evaluation: a page that shows two methods' images (or prompts) for one raw prompt, records picks
(left / right / tie) into ``picks.jsonl``, and shows the win rate; plus the win-rate report over the picks.

The server is the standard library's ``http.server`` on 127.0.0.1: one page and two JSON endpoints need no
web framework. Which method is on the left is drawn per item with a fixed seed, and recorded.

    python -m easynlp_bp.evaluation.human_ab serve --dir outputs/eval/ab --port 8765
    python -m easynlp_bp.evaluation.human_ab report --dir outputs/eval/ab
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional, Sequence

logger = logging.getLogger(__name__)

PICKS = ("left", "right", "tie")


def build_ab_items(raw_prompts: Sequence[str], method_a: str, method_b: str, prompts_a: Sequence[str],
                   prompts_b: Sequence[str], images_a: Optional[Sequence[str]] = None,
                   images_b: Optional[Sequence[str]] = None, seed: int = 0) -> list[dict]:
    """One item per raw prompt; sides are shuffled with ``seed`` and each side names its method."""
    rng = random.Random(seed)
    items = []
    for i, raw in enumerate(raw_prompts):
        a = {"method": method_a, "prompt": prompts_a[i], "image": images_a[i] if images_a else None}
        b = {"method": method_b, "prompt": prompts_b[i], "image": images_b[i] if images_b else None}
        left, right = (a, b) if rng.random() < 0.5 else (b, a)
        items.append({"id": i, "raw_prompt": raw, "left": left, "right": right})
    return items


def write_ab_page(items: Sequence[dict], directory: str | Path) -> Path:
    """Write ``index.html`` + ``items.json`` (images copied next to them) into ``directory``."""
    directory = Path(directory)
    (directory / "img").mkdir(parents=True, exist_ok=True)
    page_items = []
    for item in items:
        item = json.loads(json.dumps(item))
        for side in ("left", "right"):
            source = item[side]["image"]
            if source:
                name = f"img/{item['id']:04d}_{side}{Path(source).suffix}"
                shutil.copyfile(source, directory / name)
                item[side]["image"] = name
        page_items.append(item)
    (directory / "items.json").write_text(json.dumps(page_items, indent=1, ensure_ascii=False), encoding="utf-8")
    (directory / "index.html").write_text(PAGE, encoding="utf-8")
    return directory / "index.html"


def read_picks(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def win_rates(picks: Sequence[dict]) -> dict:
    """Wins, losses and ties per method pair, from picks that name the winner's side and both methods.

    ``win_rate`` counts a tie as half a win (so the two methods' rates add to 1); ``win_rate_no_ties``
    leaves ties out. The last pick of an item counts (a person may change their mind).
    """
    last = {p["id"]: p for p in picks}
    pairs: dict[tuple[str, str], dict] = {}
    for pick in last.values():
        a, b = sorted((pick["left_method"], pick["right_method"]))
        stats = pairs.setdefault((a, b), {"method_a": a, "method_b": b, "wins_a": 0, "wins_b": 0, "ties": 0})
        if pick["choice"] == "tie":
            stats["ties"] += 1
        else:
            winner = pick["left_method"] if pick["choice"] == "left" else pick["right_method"]
            stats["wins_a" if winner == a else "wins_b"] += 1
    report = []
    for stats in pairs.values():
        n = stats["wins_a"] + stats["wins_b"] + stats["ties"]
        decided = stats["wins_a"] + stats["wins_b"]
        report.append({**stats, "n": n,
                       "win_rate_a": (stats["wins_a"] + 0.5 * stats["ties"]) / n,
                       "win_rate_b": (stats["wins_b"] + 0.5 * stats["ties"]) / n,
                       "win_rate_a_no_ties": stats["wins_a"] / decided if decided else None})
    return {"picks": len(last), "pairs": report}


MAX_PICK_BYTES = 4096  # a pick is ~100 bytes of JSON; anything larger is refused before it is read
MAX_ANNOTATOR_CHARS = 200


def parse_pick(payload: object, n_items: int) -> tuple[int, str, str]:
    """(item id, choice, annotator) of a pick body, or ValueError naming the field, the value and the fix."""
    if not isinstance(payload, dict):
        raise ValueError(f"the body must be a JSON object such as {{'id': 0, 'choice': 'left'}}, "
                         f"not {payload!r:.60}")
    item_id = payload.get("id")
    if type(item_id) is not int or not 0 <= item_id < n_items:  # bool and float are not ids
        raise ValueError(f"id={item_id!r:.40} must be a whole number in [0, {n_items - 1}]")
    choice = payload.get("choice")
    if choice not in PICKS:
        raise ValueError(f"choice={choice!r:.40} must be one of {', '.join(PICKS)}")
    annotator = payload.get("annotator", "")
    if not isinstance(annotator, str) or len(annotator) > MAX_ANNOTATOR_CHARS:
        raise ValueError(f"annotator must be a string of at most {MAX_ANNOTATOR_CHARS} characters")
    return item_id, choice, annotator


class _Handler(SimpleHTTPRequestHandler):
    """Serves the page, ``items.json`` and ``img/`` only (no listings, not ``picks.jsonl``); POST /api/pick
    appends a pick; GET /api/report returns the win rates."""

    server: "ABServer"
    timeout = 10  # seconds per socket read: a client that sends less than its Content-Length is dropped

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        logger.debug(format, *args)

    def _json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _served(self, path: str) -> bool:
        """Only the page's own files: picks.jsonl (annotator names) and listings stay private."""
        path = path.split("?", 1)[0]
        return path in ("/", "/index.html", "/items.json") or (
            path.startswith("/img/") and "/" not in path[5:] and ".." not in path and len(path) > 5)

    def list_directory(self, path):  # noqa: D401 - http.server's hook
        self.send_error(404, "Not found")
        return None

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/api/report":
            return self._json(200, win_rates(read_picks(self.server.picks_path)))
        if not self._served(self.path):
            return self._json(404, {"error": f"{self.path[:80]} is not part of the A/B page"})
        return super().do_GET()

    def do_HEAD(self):  # noqa: N802
        if not self._served(self.path):
            return self._json(404, {"error": "not found"})
        return super().do_HEAD()

    def _read_body(self) -> bytes:
        declared = self.headers.get("Content-Length")
        if declared is None or not declared.strip().isdigit():
            raise ValueError(f"Content-Length {declared!r:.30} must be a number of bytes")
        if int(declared) > MAX_PICK_BYTES:
            raise OverflowError(f"Content-Length {declared} is larger than {MAX_PICK_BYTES} bytes; a pick is small")
        body = self.rfile.read(int(declared))
        if len(body) < int(declared):
            raise ValueError(f"the body ended after {len(body)} of {declared} bytes; resend the pick")
        return body

    def do_POST(self):  # noqa: N802
        if self.path != "/api/pick":
            return self._json(404, {"error": f"unknown endpoint {self.path[:80]}"})
        try:
            item_id, choice, annotator = parse_pick(json.loads(self._read_body()), len(self.server.items))
        except OverflowError as err:
            return self._json(413, {"error": f"bad pick: {err}"})
        except (ValueError, OSError) as err:  # JSONDecodeError is a ValueError; socket timeouts are OSErrors
            return self._json(400, {"error": f"bad pick: {err}"})
        item = self.server.items[item_id]
        pick = {"id": item["id"], "choice": choice, "left_method": item["left"]["method"],
                "right_method": item["right"]["method"], "annotator": annotator}
        with self.server.lock, open(self.server.picks_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(pick, ensure_ascii=False) + "\n")
        return self._json(200, win_rates(read_picks(self.server.picks_path)))


class ABServer(ThreadingHTTPServer):
    """The A/B page server for a folder made by :func:`write_ab_page`; picks go to ``picks.jsonl`` there.

    Example:
        >>> server = ABServer("outputs/eval/ab", port=0); server.start()
        >>> server.url            # open it in a browser
        >>> server.shutdown()
    """

    def __init__(self, directory: str | Path, host: str = "127.0.0.1", port: int = 8765):
        self.directory = Path(directory)
        self.items = json.loads((self.directory / "items.json").read_text(encoding="utf-8"))
        self.picks_path = self.directory / "picks.jsonl"
        self.lock = threading.Lock()
        handler = lambda *a, **kw: _Handler(*a, directory=str(self.directory), **kw)  # noqa: E731
        super().__init__((host, port), handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/index.html"

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>BeautifulPrompt A/B</title>
<style>
 body{font-family:sans-serif;max-width:980px;margin:1em auto} .sides{display:flex;gap:1em}
 .side{flex:1;border:1px solid #ccc;padding:.5em} .side img{width:100%;image-rendering:pixelated}
 .prompt{font-size:.85em;color:#444;min-height:3em} button{font-size:1.1em;margin:.3em}
 #raw{font-size:1.3em;font-weight:bold}
</style></head><body>
<h1>Which image fits the description better, and looks better?</h1>
<p>Item <span id="position"></span>: <span id="raw"></span></p>
<div class="sides">
 <div class="side"><img id="left-img" alt="left"><div class="prompt" id="left-prompt"></div></div>
 <div class="side"><img id="right-img" alt="right"><div class="prompt" id="right-prompt"></div></div>
</div>
<p><button id="pick-left">Left is better</button><button id="pick-tie">Tie</button>
<button id="pick-right">Right is better</button></p>
<h2>Win rate so far</h2><div id="report">no picks yet</div>
<script>
let items = [], index = 0;
function show() {
  if (index >= items.length) { document.getElementById("raw").textContent = "done, thank you"; return; }
  const item = items[index];
  document.getElementById("position").textContent = (index + 1) + "/" + items.length;
  document.getElementById("raw").textContent = item.raw_prompt;
  for (const side of ["left", "right"]) {
    const img = document.getElementById(side + "-img");
    img.style.display = item[side].image ? "" : "none";
    if (item[side].image) img.src = item[side].image;
    document.getElementById(side + "-prompt").textContent = item[side].prompt;
  }
}
function render(report) {
  if (!report.pairs.length) { document.getElementById("report").textContent = "no picks yet"; return; }
  // Method names come from files: text nodes only, never innerHTML (no stored XSS).
  const lines = report.pairs.map(p => {
    const line = document.createElement("div"), rate = document.createElement("span");
    line.className = "pair"; rate.className = "rate-a";
    rate.textContent = (100 * p.win_rate_a).toFixed(1) + "%";
    line.append(`${p.method_a} vs ${p.method_b}: ${p.method_a} wins `, rate,
                ` (${p.wins_a} wins, ${p.ties} ties, ${p.wins_b} losses of ${p.n})`);
    return line;
  });
  document.getElementById("report").replaceChildren(...lines);
}
async function pick(choice) {
  if (index >= items.length) return;
  const response = await fetch("/api/pick", {method: "POST", headers: {"Content-Type": "application/json"},
                                             body: JSON.stringify({id: items[index].id, choice})});
  render(await response.json());
  index += 1; show();
}
for (const choice of ["left", "right", "tie"])
  document.getElementById("pick-" + choice).addEventListener("click", () => pick(choice));
fetch("items.json").then(r => r.json()).then(data => { items = data; show(); });
fetch("/api/report").then(r => r.json()).then(render);
</script></body></html>
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``serve`` the page of a folder, or print the ``report`` of its picks as JSON."""
    parser = argparse.ArgumentParser(prog="python -m easynlp_bp.evaluation.human_ab")
    parser.add_argument("command", choices=("serve", "report"))
    parser.add_argument("--dir", required=True, help="Folder with index.html and items.json (the evaluation's ab/).")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    if args.command == "report":
        sys.stdout.write(json.dumps(win_rates(read_picks(Path(args.dir) / "picks.jsonl")), indent=2) + "\n")
        return 0
    logging.basicConfig(level=logging.INFO)
    server = ABServer(args.dir, port=args.port)
    logger.info("A/B page at %s (picks in %s); Ctrl-C stops.", server.url, server.picks_path)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
