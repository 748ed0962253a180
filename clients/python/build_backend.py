"""A PEP 517 build backend for this package, standard library only.

pip builds a project in an isolated environment and installs the backend's
requirements there first; setuptools or flit would have to come from an
index. This backend needs none (``requires = []``), so ``pip install
./clients/python`` works without network. It builds a pure-Python wheel of
the packages listed under ``[tool.lockservice-build]``, an sdist, and an
editable wheel (PEP 660: a .pth file pointing at this directory).
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def _project():
    """name, version, description, requires-python, packages from
    pyproject.toml (tomllib where there is one, else the few keys by
    pattern)."""
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        raw = f.read()
    try:
        import tomllib

        doc = tomllib.loads(raw.decode())
        proj = doc["project"]
        packages = doc["tool"]["lockservice-build"]["packages"]
    except ImportError:
        text = raw.decode()

        def key(name):
            m = re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(name), text,
                          re.M)
            return m.group(1) if m else ""

        proj = {k: key(k) for k in ("name", "version", "description",
                                    "requires-python")}
        packages = re.findall(r'"([^"]+)"',
                              re.search(r"^packages\s*=\s*\[(.*)\]", text,
                                        re.M).group(1))
    return proj, packages


def _dist(proj):
    return re.sub(r"[-_.]+", "_", proj["name"]).lower()


def _metadata(proj):
    lines = ["Metadata-Version: 2.1", "Name: " + proj["name"],
             "Version: " + proj["version"],
             "Summary: " + proj.get("description", ""),
             "License: MIT"]
    if proj.get("requires-python"):
        lines.append("Requires-Python: " + proj["requires-python"])
    readme = os.path.join(HERE, "README.md")
    body = ""
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            body = f.read()
    return "\n".join(lines) + "\n\n" + body


def _wheel_name(proj):
    return "%s-%s-py3-none-any.whl" % (_dist(proj), proj["version"])


def _write_wheel(path, proj, files):
    """files: list of (archive name, bytes). Adds the dist-info."""
    info = "%s-%s.dist-info" % (_dist(proj), proj["version"])
    files = list(files) + [
        (info + "/METADATA", _metadata(proj).encode()),
        (info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: build_backend\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(name, data)
            digest = base64.urlsafe_b64encode(
                hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append("%s,sha256=%s,%d" % (name, digest, len(data)))
        record.append(info + "/RECORD,,")
        z.writestr(info + "/RECORD", "\n".join(record) + "\n")


def _package_files(packages):
    for pkg in packages:
        root = os.path.join(HERE, pkg)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for fn in sorted(filenames):
                if fn.endswith((".pyc", ".pyo")):
                    continue
                full = os.path.join(dirpath, fn)
                with open(full, "rb") as f:
                    yield os.path.relpath(full, HERE).replace(os.sep, "/"), \
                        f.read()


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None,
                metadata_directory=None):
    proj, packages = _project()
    name = _wheel_name(proj)
    _write_wheel(os.path.join(wheel_directory, name), proj,
                 _package_files(packages))
    return name


def build_editable(wheel_directory, config_settings=None,
                   metadata_directory=None):
    proj, _ = _project()
    name = _wheel_name(proj)
    pth = (_dist(proj) + ".pth", (HERE + "\n").encode())
    _write_wheel(os.path.join(wheel_directory, name), proj, [pth])
    return name


def build_sdist(sdist_directory, config_settings=None):
    proj, packages = _project()
    base = "%s-%s" % (_dist(proj), proj["version"])
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as tar:
        members = [("pyproject.toml", None), ("build_backend.py", None),
                   ("README.md", None)]
        for rel, _ in members:
            if os.path.exists(os.path.join(HERE, rel)):
                tar.add(os.path.join(HERE, rel), arcname=base + "/" + rel)
        for rel, data in _package_files(packages):
            ti = tarfile.TarInfo(base + "/" + rel)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        pkg_info = _metadata(proj).encode()
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(pkg_info)
        tar.addfile(ti, io.BytesIO(pkg_info))
    return name
