#!/usr/bin/env python3
"""Print the README's table of methods from `lossweight methods`.

    clients/methods_table.py [TOOL]            print the table (markdown)
    clients/methods_table.py --update [TOOL]   rewrite it in clients/README.md

TOOL is the lossweight binary (default $LW_TOOL, else build/lossweight). The
table sits between the "methods table" markers of clients/README.md;
tests/e2e/test_client_docs.py checks that every method the tool lists is a row
there with the inputs and output the tool gives.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "README.md")
BEGIN = "<!-- methods table: begin (clients/methods_table.py --update) -->"
END = "<!-- methods table: end -->"

WHAT = {
    "losses": "`losses`",
    "grad_norms": "`grad_norms`",
    "gram": "`gram`",
    "epoch": "`epoch`",
    "losses_after": "`losses_after`",
    "samples": "`samples`",
}


def methods(tool):
    out = subprocess.run([tool, "methods"], capture_output=True, text=True, check=True,
                         timeout=60)
    return json.loads(out.stdout)["methods"]


def weighter_needs(m):
    """What a lossweight.torch.Weighter needs from the caller for m."""
    need = []
    ins = set(m.get("inputs", [])) | set(m.get("optional_inputs", []))
    if m.get("output") == "grad_coeffs" or "gram" in ins or "grad_norms" in ins:
        need.append("`shared_params`")
    if "epoch" in ins:
        need.append("`epoch=`")
    if "losses_after" in ins:
        need.append("`losses_after=`")
    return ", ".join(need) or "-"


def cell(text):
    return text.replace("|", "\\|").replace("\n", " ")


def table(ms):
    rows = ["| method | output | the trainer sends | optional | `Weighter` needs | what it does |",
            "| --- | --- | --- | --- | --- | --- |"]
    for m in ms:
        sends = ", ".join(WHAT.get(i, "`%s`" % i) for i in m.get("inputs", []))
        opt = ", ".join(WHAT.get(i, "`%s`" % i) for i in m.get("optional_inputs", [])) or "-"
        summary = m.get("summary", "")
        if not m.get("servable", True):
            summary = "**not served**: " + m.get("not_served_why", summary)
        rows.append("| `%s` | %s | %s | %s | %s | %s |" % (
            m["name"], m.get("output", ""), sends, opt, weighter_needs(m), cell(summary)))
    return "\n".join(rows) + "\n"


def main(argv):
    update = "--update" in argv
    args = [a for a in argv if a != "--update"]
    tool = args[0] if args else os.environ.get("LW_TOOL") or os.path.join(
        HERE, "..", "build", "lossweight")
    t = table(methods(tool))
    if not update:
        sys.stdout.write(t)
        return 0
    with open(README, encoding="utf-8") as f:
        text = f.read()
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    with open(README, "w", encoding="utf-8") as f:
        f.write(text[:a] + "\n" + t + text[b:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
