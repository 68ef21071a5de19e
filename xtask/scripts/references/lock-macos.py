#!/usr/bin/env python3
"""Regenerates requirements-macos.lock from requirements-macos.in on any
machine (Linux included): the references' packages on a Mac (macOS arm64,
CPython 3.11), every one pinned `name==version` with the sha256 of each of
its macOS arm64 wheels.

pip resolves for a foreign platform with `--platform`, but evaluates the
requirements' environment markers (`platform_system == "Linux"`,
`sys_platform == "darwin"`) for the machine it runs on, which would pull
torch's NVIDIA libraries into a Mac's lock. So pip runs here in-process with
packaging's marker environment set to the Mac's (MARKERS). It downloads the
wheels once per macOS version in MACOS (some packages, MLX's Metal library
among them, ship a wheel per macOS version and pip installs the newest that
the Mac takes, so the lock holds each one's hash; every resolution must come
to the same versions) into a temporary folder, which is deleted afterwards.
Every package that requirements.lock (Linux) pins too is held to its Linux
version (a pip constraint), except those in MAC_VERSIONS: where that version
has no macOS arm64 wheel, the package is named there with why.

usage: python3 xtask/scripts/references/lock-macos.py [--keep-wheels DIR]
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "requirements-macos.in")
LOCK = os.path.join(HERE, "requirements-macos.lock")
LINUX_LOCK = os.path.join(HERE, "requirements.lock")
PYTHON = "3.11"
# The macOS versions whose wheels the lock admits (MLX's Metal build needs 14).
MACOS = ("14_0", "15_0", "26_0")
# packaging's marker environment of a Mac on Apple silicon with CPython 3.11.
MARKERS = dict(os_name="posix", sys_platform="darwin", platform_system="Darwin",
               platform_machine="arm64", platform_release="23.0.0",
               platform_version="Darwin Kernel Version 23.0.0", implementation_name="cpython",
               platform_python_implementation="CPython", implementation_version=f"{PYTHON}.9",
               python_version=PYTHON, python_full_version=f"{PYTHON}.9")
# Packages whose Linux version the Mac cannot take: {name: why}.
MAC_VERSIONS = {}
WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-(?P<platform>[^-]+)\.whl$")


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_as_a_mac(argv):
    """pip's command line, its environment markers those of MARKERS."""
    from pip._vendor.packaging import markers
    environment = dict(markers.default_environment(), **MARKERS)
    markers.default_environment = lambda: dict(environment)
    from pip._internal.cli.main import main
    return main(argv)


def download(folder):
    constraints = os.path.join(tempfile.mkdtemp(prefix="references-macos-"), "constraints.txt")
    with open(constraints, "w") as f:
        f.writelines(f"{name}=={version}\n" for name, version in linux_versions().items()
                     if name not in MAC_VERSIONS)
    for macos in MACOS:
        print(f"resolving for macosx_{macos}_arm64, CPython {PYTHON}", flush=True)
        subprocess.run([sys.executable, __file__, "--pip", "download", "--quiet",
                        "--disable-pip-version-check", "--no-cache-dir", "--only-binary", ":all:",
                        "--platform", f"macosx_{macos}_arm64", "--python-version", PYTHON,
                        "--implementation", "cp", "-d", folder, "-c", constraints, "-r", SOURCE],
                       check=True)
    shutil.rmtree(os.path.dirname(constraints))


def wheels(folder):
    """{canonical name: (version, [(file, sha256)])} of the downloaded wheels."""
    found = {}
    for file in sorted(os.listdir(folder)):
        match = WHEEL.match(file)
        if not match:
            raise SystemExit(f"{file}: not a wheel")
        platform = match["platform"]
        if platform != "any" and not all(p.startswith("macosx_") and p.endswith(("_arm64", "_universal2"))
                                          for p in platform.split(".")):
            raise SystemExit(f"{file}: not a macOS arm64 wheel")
        name, version = canonical(match["name"]), match["version"]
        if name in found and found[name][0] != version:
            raise SystemExit(f"{name}: the macOS versions resolved to {found[name][0]} and {version}")
        with open(os.path.join(folder, file), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        found.setdefault(name, (version, []))[1].append((file, digest))
    return found


def linux_versions():
    versions = {}
    for line in open(LINUX_LOCK):
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if match:
            versions[canonical(match[1])] = match[2]
    return versions


def write_lock(found):
    linux = linux_versions()
    differ = [f"{n} {linux[n]} (Linux) / {v} (macOS): {MAC_VERSIONS.get(n, 'no pin held it')}"
              for n, (v, _) in sorted(found.items()) if n in linux and linux[n] != v]
    only_mac = [n for n in sorted(found) if n not in linux]
    lines = [
        "# The Python references' packages for `cargo xtask bench --references` on a Mac",
        f"# (macOS {MACOS[0].replace('_', '.')} or later on Apple silicon, CPython {PYTHON}), every dependency",
        "# pinned by version and the sha256 of each of its macOS arm64 wheels (the line",
        "# above each names them). Generated from requirements-macos.in by lock-macos.py;",
        "# do not edit by hand. reference_runs.rs installs it on macOS with",
        "#   pip install --no-deps --require-hashes --only-binary :all: -r requirements-macos.lock",
        "# Versions that differ from requirements.lock (Linux): "
        + ("; ".join(differ) if differ else "none") + ".",
        "# Only on macOS: " + (", ".join(only_mac) if only_mac else "none") + ".",
    ]
    for name, (version, files) in sorted(found.items()):
        lines.append("# " + " ".join(file for file, _ in files))
        lines.append(f"{name}=={version} " + " ".join(f"--hash=sha256:{d}" for _, d in files))
    with open(LOCK, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {LOCK}: {len(found)} packages")
    for line in differ:
        print(f"  differs: {line}")


def main():
    if sys.argv[1:2] == ["--pip"]:
        raise SystemExit(pip_as_a_mac(sys.argv[2:]))
    keep = sys.argv[2] if sys.argv[1:2] == ["--keep-wheels"] else None
    folder = keep or tempfile.mkdtemp(prefix="references-macos-wheels-")
    try:
        download(folder)
        write_lock(wheels(folder))
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
