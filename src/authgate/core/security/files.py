"""Private directories for key material: every directory we create is 0700 from the start."""

from __future__ import annotations

from pathlib import Path

PRIVATE_DIR_MODE = 0o700


def ensure_private_directory(directory: Path) -> None:
    """Create ``directory`` and each missing parent with mode 0700 (whatever the umask).

    ``Path.mkdir(parents=True, mode=...)`` applies ``mode`` to the last component only, so a
    parent it creates on the way (``var/keys`` for ``var/keys/signing``) would be 0755. Existing
    directories are left as they are: an operator-supplied directory is the operator's to set.
    """
    missing: list[Path] = []
    current = Path(directory)
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            if not path.is_dir():
                raise
            continue  # another process created it first: it applied the same mode
        path.chmod(PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
