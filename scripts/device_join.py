"""Join and check what scripts/device_train.py returned from a lent GPU machine.

    python scripts/device_join.py FILES_AT --out work/device_result

FILES_AT holds ``<phase>.tar.partNN`` files and SHA256SUMS. Every part's checksum is checked,
the parts of each phase are joined in order, the joined tar's checksum is checked, and the tar is
unpacked into ``--out`` (``l1/model``, ``l1/run``, ``gan/model``, ``gan/run``). A missing or
corrupt part is an error naming it; nothing of that phase is unpacked. By hand, the same is::

    cd FILES_AT && sha256sum -c --ignore-missing SHA256SUMS
    cat gan.tar.part* > /tmp/gan.tar && tar -xf /tmp/gan.tar -C work/device_result

Then, e.g.: ``collaface export work/device_result/gan/model --interpolate
work/device_result/l1/model --alpha 0.7 --out work/models/device_a07`` and ``collaface evaluate``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tarfile
from pathlib import Path

PART = re.compile(r"(?P<phase>[A-Za-z0-9_-]+)\.tar\.part(?P<index>\d+)")


class JoinError(RuntimeError):
    pass


def read_sums(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise JoinError(f"{path} not found: copy every returned file, SHA256SUMS included")
    sums = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest
    return sums


def join(files: Path, out: Path) -> dict[str, Path]:
    """Check, join and unpack every phase in ``files``; returns {phase: unpacked folder}."""
    sums = read_sums(files / "SHA256SUMS")
    phases: dict[str, list[str]] = {}
    for name in sums:
        match = PART.fullmatch(name)
        if match:
            phases.setdefault(match["phase"], []).append(name)
    if not phases:
        raise JoinError(f"{files / 'SHA256SUMS'} lists no parts")
    out.mkdir(parents=True, exist_ok=True)
    done = {}
    for phase, parts in sorted(phases.items()):
        parts.sort(key=lambda n: int(PART.fullmatch(n)["index"]))
        expected = [f"{phase}.tar.part{i:02d}" for i in range(len(parts))]
        if parts != expected:
            raise JoinError(f"{phase}: parts {', '.join(parts)} are not numbered 00..{len(parts) - 1:02d}")
        whole = hashlib.sha256()
        tar_path = out / f"{phase}.tar"
        with open(tar_path, "wb") as joined:
            for name in parts:
                path = files / name
                if not path.is_file():
                    raise JoinError(f"{path} is missing")
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != sums[name]:
                    raise JoinError(f"{path}: checksum differs from SHA256SUMS (corrupt or truncated)")
                whole.update(data)
                joined.write(data)
        if f"{phase}.tar" in sums and whole.hexdigest() != sums[f"{phase}.tar"]:
            raise JoinError(f"{phase}.tar: joined checksum differs from SHA256SUMS")
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                target = (out / member.name).resolve()
                if not (member.isfile() or member.isdir()) or out.resolve() not in target.parents:
                    raise JoinError(f"{tar_path}: unexpected member {member.name}")
            tar.extractall(out)
        tar_path.unlink()
        done[phase] = out / phase
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", type=Path, help="the folder the device's $OUT files were copied to")
    parser.add_argument("--out", type=Path, required=True, help="where to unpack <phase>/model and <phase>/run")
    args = parser.parse_args(argv)
    try:
        done = join(args.files, args.out)
    except (JoinError, OSError, tarfile.TarError) as err:
        print(f"device_join: error: {err}", file=sys.stderr)
        return 2
    for phase, folder in done.items():
        model = folder / "model" / "generator.safetensors"
        print(f"{phase}: {folder}" + ("" if model.is_file() else " (no exported model: logs only)"))
    if all((done.get(p, Path("-")) / "model" / "generator.safetensors").is_file() for p in ("l1", "gan")):
        print(f"pick alpha: collaface export {done['gan']}/model --interpolate {done['l1']}/model "
              "--alpha A --out work/models/device_aA")
    return 0


if __name__ == "__main__":
    sys.exit(main())
