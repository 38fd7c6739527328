"""README.md is tested: its examples are run and its tables checked against
the binaries, so the documentation cannot drift from the code."""
import json
import os
import re
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("LW_BUILD", "build"))
TOOL = os.path.join(BUILD, "lossweight")
DAEMON = os.path.join(BUILD, "lossweightd")


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def blocks(lang):
    return re.findall(r"```" + lang + r"\n(.*?)```", readme(), re.S)


def test_readme_opens_with_the_two_commands():
    head = "\n".join(readme().splitlines()[:40])
    assert "make run" in head and "make test" in head


def test_replay_example_prints_what_the_readme_shows():
    sh = [b for b in blocks("sh") if "lossweight replay" in b]
    assert len(sh) == 1
    lines = re.findall(r"'(\{.*?\})'", sh[0])
    assert len(lines) == 3
    out = subprocess.run([TOOL, "replay"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, timeout=30, check=True).stdout
    shown = blocks("json")[blocks("json").index(next(
        b for b in blocks("json") if '"method":"uw"' in b))]
    assert out == shown


def test_library_example_compiles_and_runs():
    c = [b for b in blocks("c") if "#include <lossweight.h>" in b]
    assert len(c) == 1
    body = c[0].replace("#include <lossweight.h>", "")
    src = ("#include <stdio.h>\n#include \"lossweight.h\"\n"
           "int main(void) {\n" + body + "\nreturn 0;\n}\n")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "example.c")
        with open(path, "w") as f:
            f.write(src)
        exe = os.path.join(d, "example")
        mk = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT,
                             "BUILD=" + os.path.relpath(BUILD, ROOT), "print-lapack-libs"],
                            capture_output=True, text=True, timeout=60, check=True)
        libs = mk.stdout.split()
        cc = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "print-cc"],
                            capture_output=True, text=True, timeout=60,
                            check=True).stdout.split()
        subprocess.run(cc + ["-std=c11", "-Wall", "-Wextra", "-Werror",
                        "-I" + os.path.join(ROOT, "lib"), "-o", exe, path,
                        os.path.join(BUILD, "liblossweight.a")] + libs + ["-lm"],
                       check=True, timeout=60)
        r = subprocess.run([exe], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0
        assert r.stderr == "", r.stderr  # both calls succeed: nothing printed


def test_every_daemon_flag_is_in_the_readme():
    text = subprocess.run([DAEMON, "--help"], capture_output=True, text=True,
                          timeout=10).stdout
    flags = set(re.findall(r"^\s+(--[a-z-]+)", text, re.M)) - {"--help", "--version"}
    assert flags, text
    missing = [f for f in sorted(flags) if "`" + f not in readme()]
    assert not missing, "flags missing from README: %s" % missing


def test_every_daemon_flag_is_in_the_man_page():
    text = subprocess.run([DAEMON, "--help"], capture_output=True, text=True,
                          timeout=10).stdout
    flags = set(re.findall(r"--[a-z][a-z-]*[a-z]", text))
    with open(os.path.join(ROOT, "doc", "lossweightd.8"), encoding="utf-8") as f:
        man = f.read()
    # roff spells a flag's dashes \- in bold: ".BI \-\-data\-dir"
    documented = set(m.replace("\\-", "-") for m in re.findall(r"\\-\\-[a-z](?:[a-z]|\\-)*[a-z]", man))
    missing = sorted(flags - documented)
    assert flags and not missing, "flags missing from doc/lossweightd.8: %s" % missing
    extra = sorted(f for f in documented - flags if f not in ("--json",))
    assert not extra, "doc/lossweightd.8 documents flags lossweightd does not have: %s" % extra


def test_every_api_call_is_in_the_readme():
    r = readme()
    for call in ["PUT /v1/jobs/{job}`", "GET /v1/jobs`", "GET /v1/jobs/{job}`",
                 "DELETE /v1/jobs/{job}`", "POST /v1/jobs/{job}/reports`",
                 "GET /v1/jobs/{job}/steps/{step}`", "GET /v1/jobs/{job}/weights`",
                 "GET /v1/jobs/{job}/history`", "GET /v1/jobs/{job}/state`",
                 "PUT /v1/jobs/{job}/state`", "GET /v1/methods`"]:
        assert "`" + call in r, call


def test_methods_document_is_the_tools():
    doc = json.loads(subprocess.run([TOOL, "methods"], capture_output=True, text=True,
                                    timeout=10, check=True).stdout)
    names = [m["name"] for m in doc["methods"]]
    assert len(names) == len(set(names))
    assert {"ew", "uw", "gradnorm", "dwa", "pcgrad", "mgda"} <= set(names)
