"""The native edge reader (``src/wattprint/sensors/_edge.c``): built at install where a C
compiler is found, reading what ``int(os.pread(fd, 32, 0))`` reads or handing the edge back
to Python; and the wheels the build hook makes, with it and without it."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import wattprint.sensors.rapl as rapl

ROOT = Path(__file__).resolve().parents[1]
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")


def compiler_here() -> bool:
    """Whether this Python can build extensions here: what hatch_build.py asks."""
    ldshared = sysconfig.get_config_var("LDSHARED")
    include = sysconfig.get_paths().get("include")
    return bool(ldshared and include and Path(include, "Python.h").is_file()
                and shutil.which(shlex.split(ldshared)[0]))


def test_the_native_reader_is_built_wherever_a_compiler_is() -> None:
    """Else every test of the native reader would be skipped without anyone seeing it."""
    if os.environ.get("WATTPRINT_PURE_PYTHON", "0") not in ("", "0"):
        pytest.skip("WATTPRINT_PURE_PYTHON is set")
    if not compiler_here():
        assert rapl.edge_reader() == "python"
        pytest.skip("no C compiler for Python extensions here")
    assert rapl.edge_reader() == "native", "installed without building _edge.c"


@pytest.fixture
def read_counters() -> object:
    if rapl._read_counters is None:
        pytest.skip("the native edge reader is not built here")
    return rapl._read_counters


class Counter:
    """What the reader needs of a sensor: its kept descriptor."""

    def __init__(self, path: Path, text: bytes) -> None:
        path.write_bytes(text)
        self._fd = os.open(path, os.O_RDONLY)

    def close(self) -> None:
        os.close(self._fd)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"123\n", 123),
        (b"0\n", 0),
        (b"42", 42),
        (b"000917\n", 917),
        (b"18446744073709551615\n", 2**64 - 1),
        (b"262143328850\n", 262143328850),
    ],
)
def test_plain_digits_read_as_python_reads_them(
    tmp_path: Path, read_counters: object, text: bytes, value: int
) -> None:
    counter = Counter(tmp_path / "energy_uj", text)
    try:
        got = read_counters((counter,))  # type: ignore[operator]
        assert got == (value,) == (int(os.pread(counter._fd, 32, 0)),)
        assert read_counters([counter, counter]) == (value, value)  # type: ignore[operator]
    finally:
        counter.close()


@pytest.mark.parametrize(
    "text",
    [
        b"",  # Python: ValueError
        b"\n",
        b"12a\n",
        b" 12\n",  # Python reads these three, and the edge is read again in Python
        b"-5\n",
        b"1_000\n",
        b"18446744073709551616\n",  # over 2**64 - 1
        b"1" * 40,  # over the 32 bytes a read takes
        b"12\n\n",
    ],
)
def test_anything_else_hands_the_edge_back_to_python(
    tmp_path: Path, read_counters: object, text: bytes
) -> None:
    good = Counter(tmp_path / "good", b"7\n")
    odd = Counter(tmp_path / "odd", text)
    try:
        assert read_counters((good, odd)) is None  # type: ignore[operator]
        assert read_counters((odd, good)) is None  # type: ignore[operator]
        assert read_counters((good,)) == (7,)  # type: ignore[operator]
    finally:
        good.close()
        odd.close()


def test_a_closed_or_bad_descriptor_hands_the_edge_back(
    tmp_path: Path, read_counters: object
) -> None:
    counter = Counter(tmp_path / "energy_uj", b"5\n")
    counter.close()
    assert read_counters((counter,)) is None  # type: ignore[operator]
    for fd in (-1, 2**40):
        counter._fd = fd
        assert read_counters((counter,)) is None  # type: ignore[operator]
    directory = os.open(tmp_path, os.O_RDONLY)
    try:
        counter._fd = directory  # EISDIR
        assert read_counters((counter,)) is None  # type: ignore[operator]
    finally:
        os.close(directory)


def test_what_is_not_a_sensor_raises(read_counters: object) -> None:
    with pytest.raises(AttributeError):
        read_counters((object(),))  # type: ignore[operator]
    with pytest.raises(TypeError):
        read_counters(3)  # type: ignore[operator]

    class NotAnInt:
        _fd = "3"

    with pytest.raises(TypeError):
        read_counters((NotAnInt(),))  # type: ignore[operator]
    assert read_counters(()) == ()  # type: ignore[operator]


def test_pure_python_is_one_variable_away() -> None:
    code = "from wattprint.sensors import rapl; print(rapl.edge_reader())"
    for value, expected in (("1", "python"), ("0", None)):
        env = {**os.environ, "WATTPRINT_PURE_PYTHON": value}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=120, check=True)
        assert done.stdout.strip() == (expected or rapl.edge_reader())


# -- the wheels ------------------------------------------------------------------------------------


def build_wheel(out: Path, **env: str) -> Path:
    """``pip wheel`` of this checkout, offline (the build backend is installed with the dev
    extra)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(out), str(ROOT)],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = out.glob("wattprint-*.whl")
    return wheel


@pytest.mark.slow
def test_the_wheel_carries_the_reader_it_built(tmp_path: Path) -> None:
    if not compiler_here():
        pytest.skip("no C compiler for Python extensions here")
    wheel = build_wheel(tmp_path / "native", WATTPRINT_PURE_PYTHON="0")
    assert not wheel.name.endswith("-py3-none-any.whl"), wheel.name  # a platform wheel
    names = zipfile.ZipFile(wheel).namelist()
    assert f"wattprint/sensors/_edge{SUFFIX}" in names
    assert "wattprint/sensors/_edge.pyi" in names
    assert not [n for n in names if n.endswith(".c")]
    # unpacked as pip would, the package it holds reads its edges natively
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    code = ("import wattprint.sensors.rapl as r, sys; "
            "assert r.__file__.startswith(sys.argv[1]), r.__file__; print(r.edge_reader())")
    done = subprocess.run([sys.executable, "-c", code, str(unpacked)],
                          env={**os.environ, "PYTHONPATH": str(unpacked)}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "native"

    pure = build_wheel(tmp_path / "pure", WATTPRINT_PURE_PYTHON="1")
    assert pure.name.endswith("-py3-none-any.whl"), pure.name
    assert not [n for n in zipfile.ZipFile(pure).namelist() if n.endswith((".so", ".pyd", ".c"))]
