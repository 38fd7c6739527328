"""`make install` puts every piece where GNU conventions say, and what it
installs works: the tool runs, the header and pkg-config file build a
program against the installed library."""
import os
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("LW_BUILD", "build")


def test_make_install_destdir():
    with tempfile.TemporaryDirectory() as dest:
        subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "BUILD=" + BUILD,
                        "install", "DESTDIR=" + dest, "PREFIX=/opt/lw"],
                       check=True, timeout=300, capture_output=True)
        p = lambda *a: os.path.join(dest, "opt/lw", *a)
        for f in ["bin/lossweight", "sbin/lossweightd", "include/lossweight.h",
                  "lib/liblossweight.a", "lib/liblossweight.so.0", "lib/liblossweight.so",
                  "lib/pkgconfig/lossweight.pc", "share/man/man1/lossweight.1", "share/man/man8/lossweightd.8",
                  "lib/systemd/system/lossweightd.service",
                  "lib/systemd/system/lossweightd.socket"]:
            assert os.path.exists(p(f)), f
        out = subprocess.run([p("bin/lossweight"), "--version"], capture_output=True,
                             text=True, timeout=10, check=True).stdout
        assert out.startswith("lossweight ")
        unit = open(p("lib/systemd/system/lossweightd.service")).read()
        assert "ExecStart=/opt/lw/sbin/lossweightd" in unit
        # The socket unit listens where the service would: one ListenStream=,
        # the service's --listen address (either way, the same daemon address).
        sock = open(p("lib/systemd/system/lossweightd.socket")).read()
        streams = [l.split("=", 1)[1] for l in sock.splitlines() if l.startswith("ListenStream=")]
        listen = unit.split("--listen ", 1)[1].split()[0]
        assert streams == [listen]
        pc = open(p("lib/pkgconfig/lossweight.pc")).read()
        assert "prefix=/opt/lw" in pc and "@" not in pc
        src = os.path.join(dest, "x.c")
        with open(src, "w") as f:
            f.write('#include <lossweight.h>\n#include <stdio.h>\n'
                    'int main(void) { printf("%zu\\n", lw_method_count()); return 0; }\n')
        env = dict(os.environ, PKG_CONFIG_PATH=p("lib/pkgconfig"), PKG_CONFIG_SYSROOT_DIR=dest)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "--static", "lossweight"],
                               capture_output=True, text=True, env=env, check=True).stdout.split()
        # the sysroot prefixes every -L, including the system's LAPACK dirs: undo those
        flags = [f.replace(dest + "/usr/", "/usr/") for f in flags]
        # under `make check` the library is built with sanitizers: link as it was built
        mk = lambda target: subprocess.run(
            ["make", "-s", "--no-print-directory", "-C", ROOT, "BUILD=" + BUILD, target],
            capture_output=True, text=True, timeout=60, check=True).stdout.split()
        cc = mk("print-cc")
        flags += [f for f in mk("print-lapack-libs") if f.startswith("-fsanitize")]
        exe = os.path.join(dest, "x")
        # the static library from the install (the .so would need a loader path)
        flags = [f for f in flags if f != "-llossweight"]
        subprocess.run(cc + ["-o", exe, src, p("lib/liblossweight.a")] + flags,
                       check=True, timeout=60, capture_output=True)
        n = int(subprocess.run([exe], capture_output=True, text=True, timeout=10,
                               check=True).stdout)
        assert n >= 20
