"""The write-ahead spool: every accepted request is appended here before it is answered.

A record is appended with a plain write(): once write() returns the bytes are in the kernel, so
they survive `kill -9` of this process (docs/design.md "Durability costs"). With the `fsync`
setting at `batch`, the request also waits for a group fsync that covers its record (GroupFsync,
docs/reliability.md "Power loss"), so it survives a power cut too. The writer
stores the events of a record and the record's end position in the same SQLite transaction; on
start, records after the stored position are replayed. So a 200 is never lost and never stored twice.

Layout: data/spool/<segment>.log, each record = magic, length, crc32, payload (the payload's
format is phlite/ingest/record.py). A record
cut short by a crash fails its length or CRC check and is ignored (it was never
acknowledged); a damaged record in the middle is skipped and recovery resumes at the next valid
one. Segments wholly behind the stored position are deleted.
"""

import logging
import os
import struct
import threading
import zlib

from phlite.errors import StartupError

log = logging.getLogger(__name__)

MAGIC = b"\xa5\x5a"
HEADER = struct.Struct("<2sII")  # magic, payload length, crc32 of payload


# spool/damaged.log (bytes recovery skipped) grows to this, then starts again, one older generation kept.
DAMAGED_LOG_BYTES = 64 * 1024 * 1024


class SpoolError(StartupError):
    """The spool directory cannot be used as it is (a file where the directory should be, a
    directory named like a segment): a one-line start-up error for the operator."""


def _record_at(data, pos):
    """(payload, end) of a valid record starting at pos, or (None, None)."""
    magic, length, crc = HEADER.unpack_from(data, pos)
    end = pos + HEADER.size + length
    if magic != MAGIC or end > len(data):
        return None, None
    payload = data[pos + HEADER.size:end]
    if zlib.crc32(payload) != crc:
        return None, None
    return payload, end


def _next_record(data, pos):
    """The offset of the next valid record at or after pos, or None."""
    while True:
        pos = data.find(MAGIC, pos)
        if pos < 0 or pos + HEADER.size > len(data):
            return None
        if _record_at(data, pos)[0] is not None:
            return pos
        pos += 1


class SpoolLost(OSError):
    """The live segment is no longer where recovery will look for it (deleted or replaced, say by a
    second phlite on the same data dir): what is appended to it would not survive a restart."""


class Spool:
    def __init__(self, directory, segment_bytes=64 * 1024 * 1024, *, fsync="off", fsync_fn=os.fdatasync):
        self.dir = directory
        self.segment_bytes = segment_bytes
        # "batch": a segment is synced before the next one starts (GroupFsync syncs only the live one)
        # and the directory after a segment is created, so its name survives a power cut too.
        self.durable = fsync == "batch"
        self.fsync_fn = fsync_fn
        self.damaged = 0
        if self.dir.exists() and not self.dir.is_dir():
            raise SpoolError(f"{self.dir} is not a directory: phlite keeps its spool there (move that file away)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fd = None
        # Every segment this process appended to and has not released, open for reading: a queued
        # record is read back by pread() on its fd, so it stays readable even if its file is
        # unlinked, and can be copied to a new segment (Writer._respool).
        self.fds = {}
        self.segment = 0
        self.size = 0
        self.released_below = 0  # segments before this one were already released

    def _path(self, segment):
        return self.dir / f"{segment:010d}.log"

    def _segments(self):
        out = []
        for p in self.dir.glob("*.log"):
            try:
                out.append(int(p.stem))
            except ValueError:
                continue
        return sorted(out)

    def disk_bytes(self):
        """(segments, bytes) of the spool's segment files now on disk."""
        count = size = 0
        for segment in self._segments():
            try:
                size += self._path(segment).stat().st_size
                count += 1
            except FileNotFoundError:  # released meanwhile
                pass
        return count, size

    def recover(self, committed):
        """Records after `committed` ((segment, offset)) as [(position, payload)], then
        open a fresh segment for new appends.

        A damaged record (bad magic, length or CRC: a flipped bit, a torn page) does not end the
        segment: recovery resynchronises on the next valid record and copies the damaged bytes to
        spool/damaged.log (bounded), so only the damaged record is lost."""
        records = []
        self.damaged = 0  # damaged stretches found (each: at least one record lost)
        for seg in self._segments():
            if seg < committed[0]:
                continue
            start = committed[1] if seg == committed[0] else 0
            path = self._path(seg)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except IsADirectoryError:
                raise SpoolError(f"{path} is a directory, not a spool file: move it out of {self.dir}") from None
            pos = start
            while pos + HEADER.size <= len(data):
                payload, end = _record_at(data, pos)
                if payload is not None:
                    records.append(((seg, end), payload))
                    pos = end
                    continue
                resume = _next_record(data, pos + 1)
                if resume is None:
                    break  # the tail: a record cut short by a crash, never acknowledged
                self._keep_damaged(path, pos, data[pos:resume])
                pos = resume
            if pos < len(data):
                log.warning("spool %s: ignoring %d bytes of an unacknowledged, cut-short record",
                            path.name, len(data) - pos)
        segments = self._segments()
        self._open(max(segments[-1] if segments else 0, committed[0]) + 1)
        if records:
            log.info("spool: replaying %d accepted requests not yet stored", len(records))
        return records

    def _keep_damaged(self, path, pos, data):
        self.damaged += 1
        log.error("spool %s: %d damaged bytes at offset %d skipped (kept in damaged.log); resuming at the next"
                  " valid record", path.name, len(data), pos)
        out = self.dir / "damaged.log"
        try:
            if out.exists() and out.stat().st_size + len(data) > DAMAGED_LOG_BYTES:
                out.replace(out.with_suffix(".log.1"))
            with open(out, "ab") as f:
                f.write(b"%s %d %d\n" % (path.name.encode(), pos, len(data)) + data + b"\n")
        except OSError as e:  # keeping the evidence must not stop the replay of the rest
            log.error("cannot write %s: %s", out, e)

    def _open(self, segment):
        # Open the new segment before letting go of the old one: if the open fails (EMFILE, no
        # inodes), self.fd still names a file of ours, never a number the kernel has since given
        # to someone else (a client socket) that a later close() would take from them.
        fd = os.open(self._path(segment), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        if self.durable:
            try:
                if self.fd is not None:
                    self.fsync_fn(self.fd)  # the records of the segment we leave: GroupFsync syncs only the new one
                self._sync_dir()
            except OSError:
                os.close(fd)
                raise
        self.fds[segment] = fd
        self.fd = fd
        self.live_path = str(self._path(segment))  # check() runs after every append: no pathlib there
        self.segment = segment
        self.size = os.fstat(fd).st_size

    def _sync_dir(self):
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def sync_point(self):
        """(end position of the last record appended, a dup of the live segment's fd): what one
        fsync of that fd makes durable. The caller serialises this with appends, fsyncs the fd
        without any lock and closes it (a dup, so a concurrent release() cannot close it under it)."""
        return (self.segment, self.size), os.dup(self.fd)

    def check(self):
        """Why appends would not survive a restart, or None: the live segment is still the file
        recovery reads."""
        if self.fd is None:
            return "the spool is closed"
        path = self.live_path
        st = os.fstat(self.fd)
        try:
            on_disk = os.stat(path)
        except OSError as e:
            return f"spool segment {path} is gone ({e.strerror}); is another phlite using this data dir?"
        if st.st_nlink == 0 or (on_disk.st_ino, on_disk.st_dev) != (st.st_ino, st.st_dev):
            return f"spool segment {path} was deleted or replaced; is another phlite using this data dir?"
        return None

    def append(self, payload):
        """Append one record; returns its end position. Raises OSError (e.g. disk full),
        leaving no partial record behind, or SpoolLost. Callers serialise appends."""
        if self.size >= self.segment_bytes:
            self._open(self.segment + 1)
        record = HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload
        try:
            written = os.write(self.fd, record)
            if written != len(record):
                raise OSError(28, "short write to spool")
        except OSError:
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                pass
            raise
        self.size += len(record)
        lost = self.check()
        if lost:
            raise SpoolLost(lost)
        return (self.segment, self.size)

    def reopen(self):
        """Start a new segment (after SpoolLost), recreating the directory if it was removed."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._open(self.segment + 1)

    def read(self, position, length):
        """The payload of the record that ends at `position` and is `length` bytes long (one
        appended by this process and not yet released, or a recovered one)."""
        segment, end = position
        fd = self.fds.get(segment)
        if fd is not None:
            data = os.pread(fd, length, end - length)
        else:
            with open(self._path(segment), "rb") as f:
                f.seek(end - length)
                data = f.read(length)
        if len(data) != length:
            raise OSError(f"spool record ending at {position} is cut short")
        return data

    def release(self, committed):
        """Delete segments whose records are all stored."""
        # Called after every group commit: list the directory only when the stored
        # position has moved to a later segment (a glob per commit cost ~3% of the writer).
        if committed[0] <= self.released_below:
            return
        self.released_below = committed[0]
        for seg in list(self.fds):
            if seg < committed[0] and seg != self.segment:
                os.close(self.fds.pop(seg))
        for seg in self._segments():
            if seg < committed[0] and seg != self.segment:
                try:
                    self._path(seg).unlink()
                except OSError:
                    pass

    def close(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()
        self.fd = None


class GroupFsync:
    """Group fsync of the spool before a 200 (the `fsync` setting at `batch`).

    `wait(position)` returns once an fsync that started after the record ending at `position`
    was appended has completed. One request at a time runs the fsync (the leader); every request
    that appends while it runs waits and shares the next one, so concurrent requests pay one
    fsync per round instead of one each: the window is the fsync in flight.

    :param sync_point: () -> (position, fd) as Spool.sync_point, serialised with appends by the caller.
    :param fsync_fn: the fsync to run (os.fdatasync; tests inject one that counts or blocks).
    """

    def __init__(self, sync_point, fsync_fn=os.fdatasync):
        self._sync_point = sync_point
        self.fsync_fn = fsync_fn
        self.cond = threading.Condition()
        self.synced = (-1, -1)  # every record ending at or before this position is on disk
        self.running = False
        self.waiting = 0  # requests waiting for the fsync in flight to end (tests watch this)
        self.fsyncs = 0

    def wait(self, position):
        """Block until `position` is on disk. Raises OSError if the fsync this request ran failed."""
        with self.cond:
            while self.synced < position:
                if self.running:
                    self.waiting += 1
                    self.cond.notify_all()
                    try:
                        self.cond.wait()
                    finally:
                        self.waiting -= 1
                    continue
                self.running = True
                self.cond.release()
                target = None
                try:
                    target, fd = self._sync_point()
                    try:
                        self.fsync_fn(fd)
                    finally:
                        os.close(fd)
                finally:
                    self.cond.acquire()
                    self.running = False
                    self.cond.notify_all()
                self.fsyncs += 1
                self.synced = max(self.synced, target)
