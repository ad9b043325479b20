"""Compile csrc/*.c into the extension module ``minigrad._kernels`` with cffi (out-of-line API mode).

Run by ``pip install .`` through setup.py's ``cffi_modules``. Environment knobs:
  MINIGRAD_PORTABLE=1    build without -march=native (a binary that runs on any CPU of this arch)
  MINIGRAD_NO_OPENMP=1   build without OpenMP even when the compiler has it
  MINIGRAD_CFLAGS="..."  extra compiler flags, appended last
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
CSRC = HERE / "csrc"
HEADER = CSRC / "minigrad.h"


def _compiler() -> str:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    exe = cc.split()[0]
    if shutil.which(exe) is None:
        sys.exit(
            f"minigrad: no C compiler found (looked for {exe!r}). minigrad compiles its kernels at "
            "install time; install one and retry, e.g. `apt-get install gcc python3-dev` on "
            "Debian/Ubuntu, `dnf install gcc python3-devel` on Fedora, or the Xcode command line "
            "tools on macOS (`xcode-select --install`)."
        )
    return exe


def _accepts(cc: str, flags: list[str], source: str = "int main(void){return 0;}\n") -> bool:
    """True if the compiler builds and links a tiny program with these flags."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(source)
        proc = subprocess.run(
            [cc, *flags, str(src), "-o", str(Path(tmp) / "probe")],
            capture_output=True,
        )
        return proc.returncode == 0


def compile_flags() -> tuple[list[str], list[str]]:
    cc = _compiler()
    cflags = ["-O3", "-std=c99", "-fno-math-errno", "-fno-trapping-math"]
    # ISO C mode turns off a*b+c -> fma contraction; the polynomial kernels want it back
    if _accepts(cc, ["-ffp-contract=fast"]):
        cflags.append("-ffp-contract=fast")
    if os.environ.get("MINIGRAD_PORTABLE", "") in ("", "0"):
        if _accepts(cc, ["-march=native"]):
            cflags.append("-march=native")
        elif _accepts(cc, ["-mcpu=native"]):
            cflags.append("-mcpu=native")
    ldflags: list[str] = []
    omp_probe = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    if os.environ.get("MINIGRAD_NO_OPENMP", "") in ("", "0") and _accepts(
        cc, ["-fopenmp"], omp_probe
    ):
        cflags.append("-fopenmp")
        ldflags.append("-fopenmp")
    cflags += os.environ.get("MINIGRAD_CFLAGS", "").split()
    return cflags, ldflags


def cdef_source() -> str:
    """The header without preprocessor lines: what cffi's parser accepts."""
    text = HEADER.read_text()
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


cflags, ldflags = compile_flags()
# for the MG_BUILD_FLAGS string literal: no quotes, backslashes or '?' (with -std=c99 a "??/"
# trigraph is a backslash)
flags_text = re.sub(r'["\\?]', "", " ".join(cflags))

ffibuilder = FFI()
ffibuilder.cdef(cdef_source())
ffibuilder.set_source(
    "minigrad._kernels",
    # a digest of the flags goes into the generated source too: a change of flags
    # (MINIGRAD_PORTABLE, say) in a tree built before then changes that file, so setuptools
    # rebuilds instead of reusing the extension it built with the old flags. (A digest, not the
    # flags: a user's flag could contain the comment's end.)
    f"/* compile flags {hashlib.sha256(' '.join(cflags + ldflags).encode()).hexdigest()[:16]} */\n"
    '#include "minigrad.h"',
    sources=[os.path.relpath(p, Path.cwd()) for p in sorted(CSRC.glob("*.c"))],
    include_dirs=[os.path.relpath(CSRC, Path.cwd())],
    define_macros=[("MG_BUILD_FLAGS", f'"{flags_text}"')],
    extra_compile_args=cflags,
    extra_link_args=ldflags,
)

if __name__ == "__main__":  # a development build in place: src/minigrad/_kernels*.so
    os.chdir(HERE)
    built = Path(ffibuilder.compile(verbose=True)).resolve()  # lands in ./minigrad/
    shutil.move(str(built), HERE / "src" / "minigrad" / built.name)
    shutil.rmtree(HERE / "minigrad")  # only generated files; left there it would shadow src/

