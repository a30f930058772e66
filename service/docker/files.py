"""Files in running containers, for `service.docker`: a script run by the container's own shell
(a secret comes on its stdin, never in its arguments), or Docker's archive API for images without
a shell. aiodocker's errors are left to `DockerAdapter`, which translates them.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import aiodocker
from aiodocker.containers import DockerContainer
from aiodocker.stream import Stream

from service.docker.objects import SECRETS_DIR

CONFIG_PATH = "/etc/mcp/config.json"  # where a server finds its configuration
SECRET_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
SCRIPT_NAME = "dtma-secret"  # the scripts' $0, what `ps` shows
SHELL_MISSING = ("executable file not found", "no such file or directory")
STDOUT = 1

# $1 is the file's name (checked: a plain name). Stdin is "<length>\n<bytes>": an input cut short
# (the connection lost) fails the length check and replaces nothing. The old file goes only when
# the new one is complete (a rename in the same directory). The umask makes files 0400; mkdir
# runs before it, as 0500 directories would lock their owner out.
WRITE_SCRIPT = "; ".join(
    [
        "set -eu",
        "IFS= read -r n",
        f"d={SECRETS_DIR}",
        '[ -d "$d" ] || { umask 022; mkdir -p "${d%/*}"; mkdir -p -m 0700 "$d"; }',
        "umask 277",
        't="$d/.$1.dtma-$$"',
        "trap 'rm -f \"$t\"' EXIT",
        'head -c "$n" > "$t"',
        '[ $(wc -c < "$t") -eq "$n" ]',
        'mv -f "$t" "$d/$1"',
    ]
)
REMOVE_SCRIPT = f'rm -f "{SECRETS_DIR}/$1"'


def check_secret_name(name: str) -> None:
    """Raise `ValueError` unless `name` is a plain file name (no path, not "." or "..")."""
    if not SECRET_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError("a secret file name is 1 to 128 of A-Z a-z 0-9 . _ - (not . or ..)")


def framed(content: bytes) -> bytes:
    """WRITE_SCRIPT's input: the length on a line of its own, then the bytes."""
    return b"%d\n" % len(content) + content


@dataclass(frozen=True)
class ScriptResult:
    """How a script ran. `started` is false when Docker could not start the shell at all;
    `output` is then Docker's reason, else the script's stderr."""

    started: bool
    exit_code: int
    stdout: bytes
    output: str

    @property
    def shell_missing(self) -> bool:
        return not self.started and any(reason in self.output for reason in SHELL_MISSING)

    def failure(self) -> str | None:
        """None when the script succeeded; else what went wrong, in fixed words and the exit
        code. Never the container's output: a hostile or verbose shell can echo its stdin,
        which is the secret, and this text ends up in errors and in the permanent log."""
        if self.started and self.exit_code == 0:
            return None
        if not self.started:
            missing = " (the image has no /bin/sh)" if self.shell_missing else ""
            return f"the container's shell could not be started{missing}"
        return f"the container's shell exited with code {self.exit_code}"


# What `run_script` would have found in an image without /bin/sh, known without an exec.
NO_SHELL = ScriptResult(
    started=False, exit_code=-1, stdout=b"", output="/bin/sh: no such file or directory"
)


async def run_script(
    container: DockerContainer, script: str, argument: str, stdin: bytes | None = None
) -> ScriptResult:
    """Run `sh -c script dtma-secret argument` as the container's user, `stdin` on its input."""
    command = ["sh", "-c", script, SCRIPT_NAME, argument]
    execution = await container.exec(command, stdin=stdin is not None)
    stdout, stderr = await _communicate(execution.start(detach=False), stdin)
    details = await execution.inspect()
    exit_code = details.get("ExitCode")
    started = bool(details.get("Pid"))
    return ScriptResult(
        started=started,
        exit_code=-1 if exit_code is None else int(exit_code),
        stdout=stdout,
        output=(stderr if started else stdout + stderr).decode(errors="replace"),
    )


async def _communicate(stream: Stream, stdin: bytes | None) -> tuple[bytes, bytes]:
    """Write all of `stdin`, then read stdout and stderr until the process has ended."""
    out: list[bytes] = []
    err: list[bytes] = []
    async with stream:
        if stdin is not None:
            # A shell that could not start: Docker drops the connection after saying why.
            with suppress(ConnectionError):
                await stream.write_in(stdin)
        while (message := await stream.read_out()) is not None:
            (out if message.stream == STDOUT else err).append(message.data)
    return b"".join(out), b"".join(err)


# The archive API


def archive_unreachable(details: Mapping[str, Any]) -> bool:
    """Whether /run/secrets is on a tmpfs: the archive API writes beneath it, out of sight."""
    host_config = details.get("HostConfig") or {}
    targets = list(host_config.get("Tmpfs") or {})
    mounts = host_config.get("Mounts") or []
    targets += [m.get("Target", "") for m in mounts if m.get("Type") == "tmpfs"]
    secrets = PurePosixPath(SECRETS_DIR)
    return any(secrets.is_relative_to(PurePosixPath(target)) for target in targets if target)


def user_ids(user: str, passwd: bytes | None) -> tuple[int, int] | None:
    """The uid and gid of a container's `User` ("", "1000", "1000:1000", "app"), names looked up
    in its /etc/passwd; None for a name it does not hold. A group name counts as gid 0."""
    name, _, group = user.partition(":")
    gid = int(group) if group.isdigit() else None
    if name.isdigit():
        return int(name), gid or 0
    if name in ("", "root"):
        return 0, gid or 0
    for line in (passwd or b"").decode(errors="replace").splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0] == name and fields[2].isdigit():
            primary = int(fields[3]) if fields[3].isdigit() else 0
            return int(fields[2]), gid if gid is not None else primary
    return None


async def container_owner(
    container: DockerContainer, details: Mapping[str, Any]
) -> tuple[int, int] | None:
    """The uid and gid the container (inspected: `details`) runs as; see `user_ids`."""
    user = str((details.get("Config") or {}).get("User") or "")
    if (ids := user_ids(user, None)) is not None:
        return ids
    try:
        return user_ids(user, await read_archived(container, "/etc/passwd"))
    except aiodocker.DockerError as exc:
        if exc.status != 404:
            raise
    return None


async def put_secret(
    container: DockerContainer, name: str, content: bytes, *, mode: int, owner: tuple[int, int]
) -> None:
    """Extract /run/secrets/<name> into the container, owned by `owner` (uid, gid); missing
    directories are made (/run/secrets 0700 and owned by `owner`), existing ones left alone."""
    path = PurePosixPath(SECRETS_DIR) / name
    await put_file(container, path, content, mode=mode, owner=owner, last_dir=(0o700, *owner))


async def put_file(
    container: DockerContainer,
    path: PurePosixPath,
    content: bytes,
    *,
    mode: int,
    owner: tuple[int, int] = (0, 0),
    last_dir: tuple[int, int, int] = (0o755, 0, 0),
) -> None:
    """Extract the file at the absolute `path` into the container (created or not yet started,
    too), owned by `owner` (uid, gid), replacing one that is there. Missing directories are
    made, 0755 and root's, the innermost as `last_dir` says (mode, uid, gid); existing ones are
    left alone."""
    parts = path.parent.parts[1:]  # ("etc", "mcp") for /etc/mcp/config.json
    for depth in range(len(parts), -1, -1):
        base, missing = "/" + "/".join(parts[:depth]), parts[depth:]
        tar = _file_tar(missing, path.name, content, mode, owner, last_dir)
        try:
            await container.put_archive(base, tar)  # type: ignore[no-untyped-call]
            return
        except aiodocker.DockerError as exc:
            if exc.status != 404 or depth == 0:
                raise


def _file_tar(
    missing: tuple[str, ...],
    name: str,
    content: bytes,
    mode: int,
    owner: tuple[int, int],
    last_dir: tuple[int, int, int],
) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for depth in range(1, len(missing) + 1):
            directory = tarfile.TarInfo("/".join(missing[:depth]))
            directory.type = tarfile.DIRTYPE
            last = depth == len(missing)
            directory.mode, directory.uid, directory.gid = last_dir if last else (0o755, 0, 0)
            tar.addfile(directory)
        file = tarfile.TarInfo("/".join([*missing, name]))
        file.size, file.mode = len(content), mode
        file.uid, file.gid = owner
        tar.addfile(file, io.BytesIO(content))
    return buffer.getvalue()


async def read_archived(container: DockerContainer, path: str) -> bytes | None:
    """The regular file at `path` in the container's filesystem as the engine sees it (not what
    is on a tmpfs); None when `path` is something else. An absent one is Docker's 404."""
    archive = await container.get_archive(path)
    with archive:
        member = next(iter(archive.getmembers()), None)
        if member is None or not member.isfile():
            return None
        extracted = archive.extractfile(member)
        return extracted.read() if extracted is not None else None


def rendered_config(configuration: Mapping[str, Any]) -> bytes:
    """The configuration file's bytes: JSON with sorted keys, two-space indents and a final
    newline."""
    return (json.dumps(configuration, indent=2, sort_keys=True) + "\n").encode()
