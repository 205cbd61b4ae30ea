"""The PPO rule codes (K3, U6, ...) used in code and tests resolve to docs/ppo_checklist.md, and every test the
page names exists, so the codes never point to a document the repository does not contain."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "ppo_checklist.md"
CODE = re.compile(r"\b([KPNURS][1-8])\b")
ROW = re.compile(r"^\| ([KPNURS][1-8]) \|", re.M)


def _rule_codes_in(paths):
    found = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            if "checklist" in line.lower() or re.search(r"#.*\b[KPNURS][1-8]\b|\(([KPNURS][1-8][,/ )])", line):
                for code in CODE.findall(line):
                    found.setdefault(code, path)
    return found


def test_every_rule_code_in_the_ppo_code_and_tests_has_a_row_on_the_page():
    rows = set(ROW.findall(PAGE.read_text(encoding="utf-8")))
    sources = list((ROOT / "easynlp_bp").rglob("*.py")) + list((ROOT / "tests").rglob("test_ppo*.py"))
    used = _rule_codes_in(sources)
    assert {"K3", "U6", "P3", "N2"} <= set(used), "the scan no longer finds the codes the PPO code uses"
    missing = {code: str(path.relative_to(ROOT)) for code, path in used.items() if code not in rows}
    assert not missing, f"rule codes without a row in docs/ppo_checklist.md: {missing}"


def test_every_test_the_page_names_exists():
    text = PAGE.read_text(encoding="utf-8")
    for file, name in re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text):
        source = (ROOT / file).read_text(encoding="utf-8")
        assert f"def {name}(" in source, f"docs/ppo_checklist.md names {file}::{name}, which does not exist"
    for file in re.findall(r"`(tests/[\w/]+\.py)`", text):
        assert (ROOT / file).is_file(), file
