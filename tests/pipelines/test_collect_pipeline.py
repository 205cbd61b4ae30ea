"""The whole collection pipeline against the fake chat server: pairs, rejects, report, the CLI app, and
a run killed half way then rerun (no finished row asked again; output equal to an uninterrupted run)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from easynlp_bp.cli import main
from easynlp_bp.default.pairs import make_pairs
from easynlp_bp.pipelines.collect import CollectConfig, collect_pairs
from test_collect_fake_server import FakeChatServer

FAST_FILTERS = "nsfw,language,duplicates,length,scores"


def write_corpus(path: Path, n: int = 20, seed: int = 3) -> list[dict]:
    """A JSONL corpus: n high-quality prompts (with scores), n low ones, a duplicate, an empty row, trouble."""
    # short raw prompts, as low-quality prompts are (the default's raw prompts run from 1 to ~20 words)
    # ... and beautified prompts long enough to count as high quality (12+ words, quality_split's default;
    # the default's targets add only 3-4 phrases, so short ones get more)
    pairs = [p for p in make_pairs(n * 12, seed=seed)
             if len(p["raw_prompt"].split()) <= 4 and p["raw_prompt"].replace(" ", "").isalpha()][:n]
    extra = ", intricate details, trending on artstation, sharp focus, cinematic lighting"
    rows = [{"prompt": p["prompt"] if len(p["prompt"].split()) >= 12 else p["prompt"] + extra,
             "aesthetic_score": 5.0 + (i % 4) * 0.5} for i, p in enumerate(pairs)]
    rows += [{"prompt": p["raw_prompt"]} for p in pairs]
    rows += [{"prompt": pairs[0]["raw_prompt"]},                          # exact duplicate of a low prompt
             {"prompt": "   "},                                            # empty -> read reject
             {"prompt": "a nude woman on a beach"},                          # NSFW expansion
             {"prompt": "a bat #malformed"},                                 # teacher reply is broken
             {"prompt": "a dog #429x2 in the park"}]                         # retried, then fine
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def config_for(server: FakeChatServer, **overrides) -> CollectConfig:
    values = dict(teacher_base_url=server.base_url, teacher_model="fake", teacher_api_key_env="",
                  teacher_concurrency=2, teacher_backoff_s=0.01, teacher_timeout_s=5.0, filters=FAST_FILTERS,
                  min_aesthetic_score=5.4, progress=False)
    values.update(overrides)
    return CollectConfig(**values)


def test_pipeline_makes_pairs_with_full_accounting(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = write_corpus(corpus)
    with FakeChatServer() as server:
        result = collect_pairs(str(corpus), str(tmp_path / "out" / "pairs.jsonl"), config_for(server))
    stats = result.stats
    assert stats["read"] == {"rows": 45, "kept": 44, "rejected": 1, "reasons": {"field 'prompt' is empty": 1}}
    assert stats["quality"]["counts"] == {"low": 24, "mid": 0, "high": 20}
    summarize, expand = stats["steps"]["summarize"], stats["steps"]["expand"]
    assert (summarize["inputs"], summarize["pairs"], summarize["rejected"]) == (20, 20, 0)
    # 24 low rows; each distinct text is asked once; the malformed one is the only reject.
    distinct_low = len({r["prompt"] for r in rows[20:] if r["prompt"].strip() and "nude" not in r["prompt"]}) + 1
    assert (expand["inputs"], expand["pairs"], expand["rejected"], expand["asked"]) == (24, 23, 1, distinct_low)
    assert expand["reasons"] == {"malformed reply": 1}
    by_filter = {f["filter"]: f for f in stats["filters"]}
    assert by_filter["nsfw"]["dropped"] == 1 and by_filter["nsfw"]["reasons"] == {"nsfw": 1}
    assert by_filter["duplicates"]["reasons"] == {"exact duplicate": 24 - distinct_low}  # repeated low prompts
    # aesthetic 5.0 (every 4th high prompt) is below 5.4: 5 summarize pairs dropped; expansions carry no score.
    assert by_filter["scores"]["dropped"] == 5
    written = [json.loads(line) for line in (tmp_path / "out" / "pairs.jsonl").read_text().splitlines()]
    assert len(written) == stats["pairs"]["total"] == 43 - 1 - (24 - distinct_low) - 5 \
        - by_filter["length"]["dropped"] - by_filter["language"]["dropped"]
    assert set(written[0]) == {"raw_prompt", "prompt", "source", "row", "aesthetic_score"}
    first = written[0]
    assert first["source"] == "summarize" and first["prompt"] == rows[first["row"] - 1]["prompt"]
    assert first["raw_prompt"] == " ".join(first["prompt"].split(",")[0].split()[:6])  # "Summary:" label cleaned
    expansion = next(p for p in written if p["source"] == "expand")
    assert expansion["prompt"].startswith(expansion["raw_prompt"] + ", intricate details")
    # Every row is accounted for: read rejects + step rejects + filter drops are all in the rejects file.
    rejects = [json.loads(line) for line in Path(stats["rejects_file"]).read_text().splitlines()]
    assert len(rejects) == stats["rejects_total"] == 1 + 1 + sum(f["dropped"] for f in stats["filters"])
    assert any(r["reason"].startswith("expand: malformed reply") and r["row"] == 44 for r in rejects)
    summary = (tmp_path / "out" / "pairs.summary.txt").read_text()
    assert "Quality split: low 24 (54.5%), mid 0 (0.0%), high 20 (45.5%)" in summary
    assert json.loads((tmp_path / "out" / "pairs.stats.json").read_text())["pairs"]["total"] == len(written)


def test_rerun_uses_the_cache_and_asks_nothing(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, n=6)
    out = str(tmp_path / "pairs.jsonl")
    with FakeChatServer() as server:
        collect_pairs(str(corpus), out, config_for(server))
        first_asks = sum(server.asks.values())
        first = Path(out).read_bytes()
        again = collect_pairs(str(corpus), out, config_for(server))
        assert sum(server.asks.values()) == first_asks + 1  # only the malformed reply (never cached) again
    assert Path(out).read_bytes() == first
    assert again.stats["steps"]["summarize"]["asked"] == 0 and again.stats["steps"]["summarize"]["from_cache"] == 6


def _cli_args(corpus: Path, out: Path, server: FakeChatServer) -> list[str]:
    udp = (f"teacher_base_url={server.base_url} teacher_model=fake teacher_api_key_env= teacher_concurrency=2 "
           f"teacher_backoff_s=0.01 filters={FAST_FILTERS} progress=false")
    return ["--app_name=beautiful_prompt_data", "--mode=predict", f"--tables={corpus}", f"--outputs={out}",
            f"--user_defined_parameters={udp}"]


def test_killed_run_resumes_without_asking_again_and_matches_uninterrupted(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, n=20)
    killed_out, clean_out = tmp_path / "killed" / "pairs.jsonl", tmp_path / "clean" / "pairs.jsonl"
    cache_file = tmp_path / "killed" / "pairs.teacher_cache.jsonl"
    with FakeChatServer(delay_s=0.08) as server:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        proc = subprocess.Popen([sys.executable, "-m", "easynlp_bp.cli", *_cli_args(corpus, killed_out, server)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if cache_file.exists() and len(cache_file.read_text().splitlines()) >= 12:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed; raise delay_s"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not killed_out.exists()  # the output appears only complete
        finished = {json.loads(line)["input"] for line in cache_file.read_text().splitlines()
                    if line.strip().endswith("}")}
        asks_before = dict(server.asks)
        assert 12 <= len(finished) < 43
        assert main(_cli_args(corpus, killed_out, server)) == 0
        asked_again = {text for text in finished
                       for user, n in server.asks.items() if text in user and n > asks_before.get(user, 0)}
        assert asked_again == set()
        new_asks = sum(server.asks.values()) - sum(asks_before.values())
        # the rest (+ the malformed reply, which is never cached, + the two failed asks of "#429x2" when that
        # row was not done before the kill)
        retries = 0 if any("#429x2" in text for text in finished) else 2
        assert new_asks <= 43 - len(finished) + 1 + retries
        assert main(_cli_args(corpus, clean_out, server)) == 0
    assert killed_out.read_bytes() == clean_out.read_bytes()
    assert len(killed_out.read_text().splitlines()) > 20


def test_app_errors_are_clear(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a cat\n", encoding="utf-8")
    assert main(["--app_name=beautiful_prompt_data", "--mode=train", f"--tables={corpus}"]) == 2
    assert "supports: predict" in capsys.readouterr().err
    assert main(["--app_name=beautiful_prompt_data", "--mode=predict", f"--tables={corpus}",
                 f"--outputs={tmp_path / 'o.tsv'}", "--user_defined_parameters=teacher_api_key_env="]) == 2
    assert "give a path ending in .jsonl" in capsys.readouterr().err
    assert main(["--app_name=beautiful_prompt_data", "--mode=predict", f"--tables={corpus}",
                 f"--outputs={tmp_path / 'o.jsonl'}", "--user_defined_parameters=steps=sumarize"]) == 2
    assert "unknown step(s) sumarize; choose from caption, expand, summarize" in capsys.readouterr().err


def test_config_validation_messages():
    with pytest.raises(ValueError, match="caption_model is not set"):
        CollectConfig(steps="caption")
    with pytest.raises(ValueError, match="unknown filter\\(s\\) nsfv"):
        CollectConfig(filters="nsfv")
    with pytest.raises(ValueError, match="low_max_words=12 must be smaller than high_min_words=12"):
        CollectConfig(low_max_words=12)


def test_html_replies_and_over_long_rows_get_row_level_rejects(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"prompt": "a red fox"},
            {"prompt": "a cat <script>alert(1)</script>"},  # the fake teacher echoes it into its reply
            {"prompt": "a dog <lora:style:0.8>"},            # prompt syntax, not HTML: kept
            {"prompt": " ".join(["word"] * 5000)}]          # no pair could keep it: never sent to the teacher
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "pairs.jsonl"
    with FakeChatServer() as server:
        result = collect_pairs(str(corpus), str(out), config_for(server, filters="nsfw,duplicates,length"))
        assert not any(len(user.split()) > 1000 for user in server.log)
    assert [p["row"] for p in result.pairs] == [1, 3]
    rejects = {r["row"]: r["reason"] for r in map(json.loads, Path(result.stats["rejects_file"]).read_text().splitlines())}
    assert rejects[2].startswith("expand: reply holds HTML markup ('<script>')")
    assert rejects[4].startswith("read: prompt has 5000 words, more than any pair may keep (150")
    assert len(rejects) == 2
