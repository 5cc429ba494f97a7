"""The README and docs/ stay true: their links resolve, and every command line they show names
options the app has (composed with Hydra and checked by the options schema, not run). The
README's Python example runs in test_api.py."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from gemdiff.common.config import compose_config
from gemdiff.runtime.options import check_options

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
HYDRA_APPS = ("train", "sample", "perturb", "evaluate", "screen", "subset", "core", "enrich")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_docs_pages_exist_and_the_readme_stays_short():
    assert {p.name for p in PAGES} >= {"README.md", "commands.md", "data.md", "model.md",
                                        "architecture.md"}
    assert len((ROOT / "README.md").read_text().splitlines()) <= 160


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: link to missing {target}"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"{page.name}: no heading for {target}"


def command_lines() -> list[tuple[str, str]]:
    """(page, command) for each ``python -m gemdiff.<app>`` line of a bash block."""
    out = []
    for page in PAGES:
        for block in re.findall(r"^```bash\n(.*?)^```", page.read_text(), re.S | re.M):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].split(" # ")[0].strip()
                if "python -m gemdiff." in line:
                    out.append((page.name, line[line.index("python -m gemdiff."):]))
    return out


COMMANDS = command_lines()


def test_the_docs_show_commands():
    apps = {cmd.split()[2].removeprefix("gemdiff.") for _, cmd in COMMANDS}
    assert {"train", "sample", "perturb", "screen", "core", "enrich", "evaluate"} <= apps


@pytest.mark.parametrize("page, command", COMMANDS, ids=[c for _, c in COMMANDS])
def test_shown_commands_name_real_options(page, command, tmp_path):
    words = shlex.split(command)
    app = words[2].removeprefix("gemdiff.")
    args = words[3:]
    if app not in HYDRA_APPS or "-m" in args or "--config-dir" in args or any(
            a.startswith("--") for a in args):
        pytest.skip("not a single run of the packaged configs (multirun, own configs, --flag)")
    # placeholders (<time>, ...) stand for values a user fills in, not for option names
    overrides = [a for a in args if "=" in a and "<" not in a and "..." not in a.split("=")[1]]
    overrides += [f"{a.split('=')[0]}=x" for a in args if "=" in a and ("<" in a or "..." in a)
                  and a.split("=")[0] in ("ckpt_path", "screen", "genes")]
    try:
        cfg = compose_config(overrides, tmp_path, config_name=app)
    except (HydraException, OmegaConfBaseException) as err:
        pytest.fail(f"{page}: `{command}` does not compose: {err}")
    check_options(app, cfg)
