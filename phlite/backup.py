"""`python app.py backup PATH` and `verify PATH` (docs/reliability.md "Backup and restore").

A backup is a directory shaped like a data dir: `phlite.db` and `spool/`. It is taken while the server
runs, without its lock: first the spool segments are copied (every acknowledged request not yet stored
is in one of them), then the database, by SQLite's online backup. So everything acknowledged before the
backup started is in the copy: stored in `phlite.db`, or in a copied segment after the spool position
`phlite.db` records, which the server replays when started on the restored directory.
"""

import shutil
from pathlib import Path

from phlite.errors import StartupError
from phlite.store import backup_database, verify_database


def _segments(spool):
    # The spool's own segment files, <number>.log (phlite/ingest/spool.py); not rejected.log.
    return sorted((p for p in spool.glob("*.log") if p.stem.isdigit() and p.is_file()), key=lambda p: int(p.stem))


def backup(config, dest) -> dict:
    src_db, spool = Path(config.db_path), Path(config.spool_dir)
    dest = Path(dest)
    if not src_db.is_file():
        raise StartupError(f"no database to back up at {src_db}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise StartupError(f"backup target {dest} exists and is not an empty directory")
    try:
        (dest / "spool").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StartupError(f"cannot create backup target {dest}: {e.strerror}") from None
    copied = 0
    for seg in _segments(spool) if spool.is_dir() else ():
        try:
            shutil.copyfile(seg, dest / "spool" / seg.name)
            copied += 1
        except FileNotFoundError:
            # Deleted meanwhile: a segment is deleted only once all of it is stored, so the
            # database copy taken next holds it.
            continue
    backup_database(src_db, dest / "phlite.db")
    return {"path": str(dest), "spool_segments": copied, **verify(dest)}


def verify(path) -> dict:
    path = Path(path)
    db = path / "phlite.db" if path.is_dir() else path
    if not db.is_file():
        raise StartupError(f"no phlite.db at {path}")
    return verify_database(db)
