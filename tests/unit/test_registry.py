import json
import multiprocessing as mp
import shutil

import pytest

from tunegate.errors import RegistryError
from tunegate.registry import Registry


def artifact(tmp_path, name="art"):
    d = tmp_path / name
    (d / "adapter").mkdir(parents=True)
    (d / "adapter" / "w.bin").write_bytes(b"x" * 100)
    return d


def test_versions_aliases_and_resolve(tmp_path):
    reg = Registry(tmp_path / "reg")
    a = artifact(tmp_path)
    v1 = reg.register("m", files={"card.md": "one"}, dirs={"artifact": a}, meta={"decision": "promote"})
    v2 = reg.register("m", files={"card.md": "two"}, dirs={"artifact": a}, meta={"decision": "reject"})
    assert (v1.version, v2.version) == (1, 2)
    assert (v2.path / "artifact" / "adapter" / "w.bin").is_file()
    reg.set_alias("m", "production", 1)
    assert reg.resolve("m").version == 1 and reg.resolve("m@production").version == 1
    assert reg.resolve("m@2").version == 2 and reg.resolve("m@v2").version == 2
    assert reg.get("m", 1).aliases == ("production",)
    hist = json.loads((tmp_path / "reg" / "m" / "aliases.json").read_text())["_history"]
    assert hist[-1] == {**hist[-1], "alias": "production", "from": None, "to": 1}


def test_clear_errors(tmp_path):
    reg = Registry(tmp_path / "reg")
    with pytest.raises(RegistryError, match="no model 'nope'"):
        reg.resolve("nope")
    reg.register("m", files={}, dirs={}, meta={})
    with pytest.raises(RegistryError, match="no alias 'production'.*no version has been promoted"):
        reg.resolve("m@production")
    with pytest.raises(RegistryError, match="no version 7"):
        reg.resolve("m@7")
    with pytest.raises(RegistryError, match="no version 9"):
        reg.set_alias("m", "production", 9)


def test_failed_register_leaves_nothing_visible(tmp_path, monkeypatch):
    reg = Registry(tmp_path / "reg")
    reg.register("m", files={}, dirs={"artifact": artifact(tmp_path)}, meta={})
    reg.set_alias("m", "production", 1)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copytree", boom)
    with pytest.raises(OSError):
        reg.register("m", files={}, dirs={"artifact": artifact(tmp_path, "b")}, meta={})
    assert reg.versions("m") == [1]
    assert reg.resolve("m@production").version == 1
    assert not [p for p in (tmp_path / "reg" / "m").iterdir() if p.name.startswith(".tmp-")]


def test_failed_alias_write_keeps_the_old_alias(tmp_path, monkeypatch):
    import tunegate.registry as r

    reg = Registry(tmp_path / "reg")
    for _ in range(2):
        reg.register("m", files={}, dirs={}, meta={})
    reg.set_alias("m", "production", 1)
    monkeypatch.setattr(r.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("crash before rename")))
    with pytest.raises(OSError):
        reg.set_alias("m", "production", 2)
    assert reg.resolve("m@production").version == 1


def _register_many(root, n):
    reg = Registry(root)
    return [reg.register("m", files={"x": "y"}, dirs={}, meta={}).version for _ in range(n)]


def test_concurrent_registers_get_distinct_versions(tmp_path):
    with mp.get_context("spawn").Pool(3) as pool:
        results = pool.starmap(_register_many, [(str(tmp_path / "reg"), 5)] * 3)
    got = sorted(v for r in results for v in r)
    assert got == list(range(1, 16))
