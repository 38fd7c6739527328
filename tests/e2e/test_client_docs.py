"""clients/README.md against the code: the "Use it from PyTorch" code is the
code the DDP test trains with, the methods table lists every method of
`lossweight methods` with the inputs and output the tool gives, and the
Python package installs with pip and parses as Python 3.9. Once the section
or the table is merged into the top README.md, the same checks hold there."""
import ast
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
README = os.path.join(ROOT, "clients", "README.md")
TOP_README = os.path.join(ROOT, "README.md")
EXAMPLE = os.path.join(ROOT, "clients", "python", "examples", "ddp_example.py")
PKG = os.path.join(ROOT, "clients", "python")

sys.path.insert(0, os.path.join(ROOT, "clients"))
import methods_table  # noqa: E402


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def docs_with(marker):
    """clients/README.md, and README.md too when it holds `marker`."""
    out = [README]
    if os.path.exists(TOP_README) and marker in read(TOP_README):
        out.append(TOP_README)
    return out


def test_pytorch_section_is_the_tested_code():
    with open(EXAMPLE, encoding="utf-8") as f:
        src = f.read()
    begin = "# --- README: Use it from PyTorch (begin) ---\n"
    end = "# --- README: Use it from PyTorch (end) ---"
    code = src[src.index(begin) + len(begin):src.index(end)]
    for path in docs_with("## Use it from PyTorch"):
        text = read(path)
        section = text[text.index("## Use it from PyTorch"):]
        blocks = re.findall(r"```python\n(.*?)```", section, re.S)
        assert blocks and blocks[0] == code, path
    # and the DDP test drives exactly this module
    with open(os.path.join(ROOT, "tests", "e2e", "ddp_worker.py"), encoding="utf-8") as f:
        assert "import ddp_example as ex" in f.read()


def table_rows(path):
    text = read(path)
    a = text.index(methods_table.BEGIN) + len(methods_table.BEGIN)
    b = text.index(methods_table.END)
    rows = {}
    for line in text[a:b].strip().splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0].strip("`")] = cells
    return rows


def names(cell):
    return [] if cell == "-" else [x.strip().strip("`") for x in cell.split(",")]


def test_every_method_is_in_the_table_with_what_it_needs(tool):
    out = subprocess.run([tool, "methods"], capture_output=True, text=True, timeout=60,
                         check=True)
    ms = json.loads(out.stdout)["methods"]
    for path in docs_with(methods_table.BEGIN):
        rows = table_rows(path)
        missing = [m["name"] for m in ms if m["name"] not in rows]
        assert not missing, "not in %s (run clients/methods_table.py --update): %s" % (
            path, missing)
        stale = sorted(set(rows) - {m["name"] for m in ms})
        assert not stale, "in the table of %s but not a method: %s" % (path, stale)
        for m in ms:
            _, output, sends, optional, needs, _ = rows[m["name"]]
            assert output == m["output"], m["name"]
            assert names(sends) == m["inputs"], m["name"]
            assert names(optional) == m["optional_inputs"], m["name"]
            assert needs == methods_table.weighter_needs(m), m["name"]


def test_client_sources_parse_as_python_3_9():
    for d in (os.path.join(PKG, "lossweight"), PKG):
        for fn in os.listdir(d):
            if fn.endswith(".py"):
                with open(os.path.join(d, fn), encoding="utf-8") as f:
                    ast.parse(f.read(), fn, feature_version=(3, 9))


def test_pip_installs_the_package_without_an_index(tmp_path):
    if subprocess.run([sys.executable, "-m", "pip", "--version"],
                      capture_output=True).returncode != 0:
        pytest.skip("no pip for %s" % sys.executable)
    target = tmp_path / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--quiet",
                        "--target", str(target), PKG], capture_output=True, text=True,
                       timeout=120, cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    code = "import lossweight, lossweight.client; print(lossweight.__file__)"
    q = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=str(target)))
    assert q.returncode == 0, q.stderr
    assert q.stdout.startswith(str(target))
