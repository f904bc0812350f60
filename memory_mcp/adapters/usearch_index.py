"""UsearchVectorIndex: HNSW search over memory vectors, one usearch index per user.

The index is a derived cache of the vectors the store holds. Each user's index is loaded on first
use from its file in ``directory`` (``<db>.vectors/`` by default), after checking it against the
record the store keeps of it (size, CRC-32, model, dimension): a missing, stale or damaged file is
never trusted, the index is rebuilt from the store instead. The record also holds the last change
the file contains; changes after it (from this process or another) are replayed from the store's
change feed before every search, so a memory written by one process is found by the next search of
another. It speaks to the store through the ports only.

One index per user keeps users apart physically: a search can neither return nor be slowed by
another user's vectors.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from usearch.index import Index

from ..errors import StorageError
from ..memory.ports import MemoryStore, Vector, VectorFile, VectorFilter

log = logging.getLogger(__name__)

# Below this many vectors an exact scan is as fast as HNSW and never misses.
EXACT_BELOW = 2048

# Threads for a batch of adds or searches: the cores, less one that the event loop and SQLite need.
_THREADS = max(1, (os.cpu_count() or 1) - 1)


@dataclass
class _Partition:
    index: Index
    seq: int  # last change applied
    saved_seq: int  # last change in the saved file
    unsaved: int = 0


class UsearchVectorIndex:
    def __init__(
        self,
        store: MemoryStore,
        directory: str | Path,
        *,
        ndim: int,
        model_name: str,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 50,
        save_every: int = 1000,
    ):
        self._store = store
        self.directory = Path(directory)
        self.ndim = ndim
        self.model_name = model_name
        self._params = dict(connectivity=connectivity, expansion_add=expansion_add, expansion_search=expansion_search)
        self._save_every = save_every
        self._parts: dict[int, _Partition] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self.rebuilds = 0  # how many partitions were rebuilt rather than loaded (for tests and logs)
        self.problem: str | None = None  # why the index cannot be saved now; it serves from memory meanwhile
        _remove_stale_temporaries(self.directory)

    def _new_index(self) -> Index:
        # Half-precision vectors halve the index's memory; cosine ranks are unchanged in practice (and
        # the store keeps every vector in full precision, from which any index can be rebuilt).
        return Index(ndim=self.ndim, metric="cos", dtype="f16", **self._params)

    # -- the protocol -------------------------------------------------------------------------

    async def search(self, query: Vector, count: int, flt: VectorFilter) -> list[tuple[int, float]]:
        part = await self._synced(flt.user_key)
        size = len(part.index)
        if size == 0 or count <= 0:
            return []
        matches = part.index.search(
            np.asarray(query, dtype=np.float32), min(count, size), exact=size <= EXACT_BELOW
        )
        return [(int(k), 1.0 - float(d)) for k, d in zip(matches.keys, matches.distances, strict=True)]

    async def search_many(self, queries: Vector, count: int, flt: VectorFilter) -> list[list[tuple[int, float]]]:
        matrix = np.asarray(queries, dtype=np.float32).reshape(-1, self.ndim)
        if len(matrix) == 1:  # one query is quicker inline than on a trip to a thread
            return [await self.search(matrix[0], count, flt)]
        async with self._lock(flt.user_key):
            part = await self._sync(flt.user_key)
            size = len(part.index)
            if size == 0 or count <= 0 or not len(matrix):
                return [[] for _ in matrix]
            # In a worker thread, holding the user's lock so that nothing changes the index meanwhile.
            found = await asyncio.to_thread(
                part.index.search, matrix, min(count, size), exact=size <= EXACT_BELOW, threads=_THREADS
            )
        return [
            [(int(k), 1.0 - float(d)) for k, d in zip(found.keys[i][:n], found.distances[i][:n], strict=True)]
            for i, n in enumerate(found.counts)
        ]

    async def size(self, user_key: int) -> int:
        return len((await self._synced(user_key)).index)

    async def keys(self, user_key: int) -> set[int]:
        """The memory keys in this user's index (caught up first), for consistency checks."""
        return {int(k) for k in (await self._synced(user_key)).index.keys}

    async def sync(self, user_key: int) -> None:
        await self._synced(user_key)

    async def rebuild(self, user_key: int | None = None) -> int:
        """Rebuild one user's index (or every loaded one) from the store; returns the vectors indexed."""
        keys = [user_key] if user_key is not None else list(self._parts)
        total = 0
        for key in keys:
            async with self._lock(key):
                part = await self._rebuild(key)
                self._parts[key] = part
                total += len(part.index)
        return total

    async def save(self) -> None:
        for user_key in list(self._parts):
            async with self._lock(user_key):
                part = self._parts.get(user_key)
                if part is not None and part.seq != part.saved_seq:
                    await self._save(user_key, part)

    async def close(self) -> None:
        await self.save()
        self._parts.clear()

    # -- loading, catching up, saving ---------------------------------------------------------

    def _lock(self, user_key: int) -> asyncio.Lock:
        return self._locks.setdefault(user_key, asyncio.Lock())

    async def _synced(self, user_key: int) -> _Partition:
        async with self._lock(user_key):
            return await self._sync(user_key)

    async def _sync(self, user_key: int) -> _Partition:
        """The user's partition, loaded and caught up (the caller holds the user's lock)."""
        part = self._parts.get(user_key)
        if part is None:
            part = await self._load(user_key)
            self._parts[user_key] = part
            await self._catch_up(user_key, part)
            await self._verify(user_key, part)
        else:
            await self._catch_up(user_key, part)
        # Saving writes the whole index, so a big one is saved less often: the cost of saves
        # stays constant per change. What is unsaved is caught up from the change log on load.
        if part.unsaved >= max(self._save_every, len(part.index) // 8):
            await self._save(user_key, part)
        return part

    async def _load(self, user_key: int) -> _Partition:
        async with self._store.reading() as db:
            record = await db.vector_file(user_key)
        if record is None:
            return await self._rebuild(user_key)
        _, file_name, seq, count, crc, size, model, dim = record
        problem = None
        path = self.directory / file_name
        if model != self.model_name or dim != self.ndim:
            problem = f"it was built with {model} ({dim} dimensions)"
        elif not path.exists():
            problem = "its file is missing"
        else:
            data = await asyncio.to_thread(path.read_bytes)
            if len(data) != size or zlib.crc32(data) != crc:
                problem = "its file is damaged (size or checksum differs)"
            else:
                index = self._new_index()
                try:
                    index.load(data)
                except Exception as exc:  # usearch reports format errors as RuntimeError/ValueError
                    problem = f"its file could not be read ({exc})"
                else:
                    if len(index) != count or index.ndim != self.ndim:
                        problem = "its file does not match its record"
                    else:
                        return _Partition(index, seq=seq, saved_seq=seq)
        log.warning("vector index of user #%d is rebuilt from the database: %s", user_key, problem)
        return await self._rebuild(user_key)

    async def _rebuild(self, user_key: int) -> _Partition:
        async with self._store.reading() as db:
            seq = await db.last_change(user_key)
            keys, vectors = await db.user_embeddings(user_key)
        index = self._new_index()
        if len(keys):
            self._check_dim(vectors)
            await asyncio.to_thread(index.add, keys, vectors)
        self.rebuilds += 1
        part = _Partition(index, seq=seq, saved_seq=-1)
        await self._save(user_key, part)
        return part

    async def _catch_up(self, user_key: int, part: _Partition) -> None:
        async with self._store.reading() as db:
            changes = await db.changes_since(part.seq, user_key)
            if not changes:
                return
            touched = sorted({change.memory_key for change in changes})
            vectors = await db.embeddings(touched)
        index = part.index
        added: list[int] = []
        for key in touched:
            present = bool(index.contains(key))
            vector = vectors.get(key)
            # Vectors never change once stored (a new embedding is a new memory or a full reindex),
            # so an add is needed only for a key the index lacks.
            if vector is None and present:
                index.remove(key)
            elif vector is not None and not present:
                added.append(key)
        if added:
            matrix = np.stack([vectors[key] for key in added])
            self._check_dim(matrix)
            keys = np.asarray(added, dtype=np.uint64)
            if len(added) < 8:  # a write or two: quicker here than a trip to a thread
                index.add(keys, matrix, threads=1)
            else:  # a batch: in a worker thread (the caller holds the user's lock), the loop serves on
                await asyncio.to_thread(index.add, keys, matrix, threads=_THREADS)
        part.seq = changes[-1].seq
        part.unsaved += len(changes)

    async def _verify(self, user_key: int, part: _Partition) -> None:
        """After loading: the index must hold exactly the user's stored vectors, or be rebuilt."""
        async with self._store.reading() as db:
            expected = await db.embedded_count(user_key)
        index = part.index
        if len(index) != expected:
            log.warning(
                "vector index of user #%d holds %d vectors, the database %d: rebuilding",
                user_key, len(index), expected,
            )
            rebuilt = await self._rebuild(user_key)
            part.index, part.seq, part.saved_seq, part.unsaved = rebuilt.index, rebuilt.seq, rebuilt.saved_seq, 0

    def _check_dim(self, vectors: np.ndarray) -> None:
        if vectors.shape[1] != self.ndim:
            raise ValueError(f"stored vectors have {vectors.shape[1]} dimensions, the index {self.ndim}")

    async def _save(self, user_key: int, part: _Partition) -> None:
        """Write the index atomically and record it, unless a newer file is already recorded.

        usearch writes the file itself, in a worker thread: no copy of the index is held in memory
        and the event loop goes on serving (this user's lock keeps the index unchanged meanwhile)."""
        file_name = f"u{user_key}-{part.seq}-{uuid.uuid4().hex[:8]}.usearch"
        # The file only spares a rebuild at the next start: when it cannot be written (a full disk,
        # a file where the directory should be), the index goes on serving from memory, the
        # problem is told (``problem``), and saving is tried again after as many changes.
        try:
            size, crc = await asyncio.to_thread(self._write_atomically, part.index, self.directory / file_name)
            record = VectorFile(user_key, file_name, part.seq, len(part.index), crc, size, self.model_name, self.ndim)
            async with self._store.transaction() as db:
                recorded, previous = await db.record_vector_file(record)
        except (OSError, StorageError) as exc:
            _unlink(self.directory / file_name, quietly=True)
            _unlink(_temporary(self.directory / file_name), quietly=True)
            if self.directory.exists() and not self.directory.is_dir():
                said, fix = "a file is in its place", "move that file away"
            elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                said, fix = exc.strerror, "free some space on that disk"
            else:
                said = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                fix = "make that path a writable directory"
            problem = (f"cannot write the vector index at {self.directory} ({said}): it is kept in memory "
                       f"and rebuilt from the database at the next start; {fix}")
            if problem != self.problem:
                log.warning("%s", problem)
            self.problem, part.unsaved = problem, 0
            return
        self.problem = None
        if not recorded:  # another process saved a newer one meanwhile
            _unlink(self.directory / file_name)
        elif previous and previous != file_name:
            _unlink(self.directory / previous)
        part.saved_seq = part.seq
        part.unsaved = 0

    @staticmethod
    def _write_atomically(index: Index, path: Path) -> tuple[int, int]:
        """Save ``index`` to ``path`` durably (temporary file, fsync, rename); its size and CRC-32."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temporary(path)
        try:
            index.save(str(tmp))
        except RuntimeError as exc:  # usearch says only "Failed to serialize into stream"
            disk = os.statvfs(path.parent)
            free, needed = disk.f_bavail * disk.f_frsize, index.serialized_length
            if free < needed:
                raise OSError(errno.ENOSPC, f"the disk is full: {needed / 1e6:.1f} MB to write, "
                              f"{free / 1e6:.1f} MB free") from None
            raise OSError(f"usearch could not write it: {exc}") from None
        size, crc = 0, 0
        with open(tmp, "rb+") as f:
            while chunk := f.read(1 << 20):
                size += len(chunk)
                crc = zlib.crc32(chunk, crc)
            os.fsync(f.fileno())
        os.replace(tmp, path)
        try:  # make the rename itself durable
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
        return size, crc


def _unlink(path: Path, *, quietly: bool = False) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        if not quietly:
            raise


def _temporary(path: Path) -> Path:
    """Where ``path`` is written before its rename: named by the writing process, so that a file
    left by a crash is told apart from one another live process is writing now."""
    return path.with_suffix(f".{os.getpid()}.tmp")


def _remove_stale_temporaries(directory: Path) -> None:
    """Delete the temporary files of saves that a crash cut short: nothing refers to them."""
    try:
        for tmp in directory.glob("*.tmp"):
            if not _writer_alive(tmp):
                _unlink(tmp, quietly=True)
                log.info("removed %s, left by a save that did not finish", tmp)
    except OSError:  # an unusable directory is reported when the index is saved
        pass


def _writer_alive(tmp: Path) -> bool:
    pid = tmp.suffixes[-2].lstrip(".") if len(tmp.suffixes) >= 2 else ""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True
