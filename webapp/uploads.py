"""Generic upload checks, done in memory before anything large is built.

Files are never written to disk under a user-chosen name and never unpickled. Each check
raises :class:`InputError` naming the file and what is wrong (400, 413 or 415). A table
upload is read once in blocks (:func:`scan_upload`) for its sha256 and line count, so the
row limit is checked before any parser runs; the stream is then parsed in chunks. In an
upload of several files each file is read on its own (:class:`Rejections`): a refused one is
left out with its reason, and only count limits on the whole request refuse all of it.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from flask import Request, current_app
from werkzeug.datastructures import FileStorage

from pipelines.core import budget
from pipelines.core.problems import SchemaError
from webapp.errors import MAX_PROBLEMS, InputError, schema_error

CSV_EXTENSIONS = (".csv", ".txt", ".tsv")
SPREADSHEET_EXTENSIONS = (".xlsx",)
BINARY_SIGNATURES = (b"\x89PNG", b"PK\x03\x04", b"%PDF", b"\xff\xd8", b"\x1f\x8b")
BLOCK = 1024 * 1024


@dataclass(frozen=True)
class UploadFacts:
    """What one read of an upload found: its name, size, sha256 and number of line breaks."""

    filename: str
    size: int
    sha256: str
    lines: int
    head: bytes
    ends_with_newline: bool = True

    @property
    def rows(self) -> int:
        """Data rows of a text table at most (lines after the header; blank lines counted)."""
        return self.lines - 1 if self.ends_with_newline else self.lines

    @property
    def is_spreadsheet(self) -> bool:
        return self.filename.lower().endswith(SPREADSHEET_EXTENSIONS)


def looks_binary(data: bytes) -> bool:
    """True for bytes that are clearly not text (NUL bytes or a known binary signature)."""
    head = data[:4096]
    return b"\x00" in head or head.startswith(BINARY_SIGNATURES)


def uploaded_file(req: Request, field: str = "file", what: str = "a CSV") -> FileStorage:
    """The uploaded file in ``field``; a 400 when none was sent."""
    storage = req.files.get(field)
    if storage is None or not storage.filename:
        raise InputError(f"no file was uploaded: send {what} in the form field '{field}'")
    return storage


def scan_upload(storage: FileStorage) -> UploadFacts:
    """Read the upload once in blocks: size, sha256, line breaks; the stream is rewound."""
    stream = storage.stream
    digest, size, lines, head, last = hashlib.sha256(), 0, 0, b"", b"\n"
    while block := stream.read(BLOCK):
        if not head:
            head = block[:64 * 1024]
        digest.update(block)
        size += len(block)
        lines += block.count(b"\n")
        last = block[-1:]
    stream.seek(0)
    return UploadFacts(storage.filename, size, digest.hexdigest(), lines, head, last == b"\n")


def check_table_upload(facts: UploadFacts) -> None:
    """Reject empty files (400), and files that are neither CSV text nor .xlsx (415)."""
    name = facts.filename
    if not facts.head.strip():
        raise InputError(f"{name}: the file is empty")
    if facts.is_spreadsheet:
        if not facts.head.startswith(b"PK\x03\x04"):
            raise InputError(f"{name}: not an Excel .xlsx workbook; save it as .xlsx or CSV",
                             code=415)
        return
    if looks_binary(facts.head) or not name.lower().endswith(CSV_EXTENSIONS):
        raise InputError(f"{name}: not a CSV file; upload a .csv (comma, semicolon or tab "
                         f"separated, with a header row) or an .xlsx workbook", code=415)
    limit = current_app.config["MAX_ROWS"]
    if facts.rows > limit:
        raise InputError(f"{name}: {facts.rows} rows is more than the {limit} row limit; "
                         f"split the file", code=413)


def check_row_limit(n_rows: int, source: str) -> None:
    """A 413 when a request holds more rows than ``MAX_ROWS``."""
    limit = current_app.config["MAX_ROWS"]
    if n_rows > limit:
        raise InputError(f"{source}: {n_rows} rows is more than the {limit} row limit; "
                         f"split the file", code=413)


# -- several files: each read on its own, the refused ones left out with their reason --------------
T = TypeVar("T")


class RequestLimitError(InputError):
    """The request as a whole is over a count limit (files, maps, images in one call): a 413
    for all of it. Never one file left out: that would score a batch cut at an arbitrary
    point, and the user has to split the request anyway."""

    code = 413


@dataclass(frozen=True)
class Rejected:
    """One file of a batch left out: its name, the reason (naming the file, as a request of
    that file alone would have been answered) and the error itself."""

    file: str
    reason: str
    error: InputError = field(repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"file": self.file, "reason": self.reason}


@dataclass
class Rejections:
    """The files of one upload that were refused, while the others go on.

    :meth:`attempt` reads one file (or archive, or archive member): a refused file
    (:class:`InputError`, or a :class:`SchemaError` with its located problems) is recorded with
    its reason and skipped; a :class:`RequestLimitError` still refuses the whole request, so the
    bound on the work is the same as when one bad file refused everything. When nothing could
    be read, :meth:`raise_if_all_rejected` answers with every reason.
    """

    items: list[Rejected] = field(default_factory=list)

    def attempt(self, name: str, read: Callable[..., T], *args, **kwargs) -> T | None:
        """``read(*args, **kwargs)``; None (and the reason recorded) when the file is refused."""
        try:
            return read(*args, **kwargs)
        except RequestLimitError:
            raise
        except SchemaError as exc:
            error = schema_error(exc)
        except InputError as exc:
            error = exc
        reason = error.description or error.name
        if not reason.startswith(name):
            reason = f"{name}: {reason}"
        self.items.append(Rejected(name, reason, error))
        return None

    def raise_if_all_rejected(self, n_read: int, nothing: str) -> None:
        """When ``n_read`` is 0: the one refused file's own error, or one naming every refused
        file (400, or the status they all share), or ``nothing`` (400) when none was refused."""
        if n_read:
            return
        if not self.items:
            raise InputError(nothing)
        if len(self.items) == 1:
            raise self.items[0].error
        codes = {r.error.code for r in self.items}
        n = len(self.items)
        first = self.items[0].reason
        first = first if len(first) <= 160 else first[:157] + "..."
        problems = [{"file": r.file, "message": r.reason} for r in self.items[:MAX_PROBLEMS]]
        if n > MAX_PROBLEMS:
            problems.append({"message": f"{n - MAX_PROBLEMS} more files refused, not listed"})
        raise InputError(f"none of the {n} files could be read: {first} (and {n - 1} more; "
                         f"each is listed)", problems, code=codes.pop() if len(codes) == 1
                         else 400)

    def to_list(self) -> list[dict]:
        """``[{"file", "reason"}]`` for the response head."""
        return [r.to_dict() for r in self.items]

    def warnings(self) -> list[str]:
        """One line per refused file, for the run record (History)."""
        return [f"left out: {r.reason}" for r in self.items]


# -- several files, zip archives, npz and images --------------------------------------------------
IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
MAX_IMAGE_PIXELS = 4096 * 4096  # Pillow refuses larger images (decompression bombs) before decoding
ZIP_SIGNATURE = b"PK\x03\x04"
EMPTY_ZIP_SIGNATURE = b"PK\x05\x06"


@dataclass(frozen=True)
class UploadedBytes:
    """One uploaded file (or zip member) read into memory: its name and bytes."""

    name: str
    data: bytes


def uploaded_files(req: Request, field: str = "file", what: str = "a file") -> list[FileStorage]:
    """Every file sent in ``field`` (a form may repeat it); a 400 when none was sent."""
    files = [f for f in req.files.getlist(field) if f is not None and f.filename]
    if not files:
        raise InputError(f"no file was uploaded: send {what} in the form field '{field}' "
                         f"(repeat the field for several files)")
    return files


def read_uploads(files: list[FileStorage], *, max_files: int) -> tuple[list[UploadedBytes], str]:
    """The files' bytes (the request is already bounded by ``MAX_CONTENT_LENGTH``) and one
    sha256 over all of them in order; 413 for more than ``max_files`` files."""
    if len(files) > max_files:
        raise RequestLimitError(f"{len(files)} files in one request; at most {max_files} are "
                                f"accepted; send them in several requests or as an npz")
    digest, out = hashlib.sha256(), []
    for storage in files:
        data = storage.stream.read()
        digest.update(data)
        out.append(UploadedBytes(_display_name(storage.filename), data))
    return out, digest.hexdigest()


def _display_name(name: str) -> str:
    """A file name as the user sent it, kept only for messages and results (never a path)."""
    return name.replace("\\", "/").rsplit("/", 1)[-1][:200] or "upload"


def is_zip_archive(item: UploadedBytes) -> bool:
    """A zip archive of files (not an npz or .xlsx, which are zip files too)."""
    lower = item.name.lower()
    if lower.endswith(".zip"):
        return True
    return item.data.startswith((ZIP_SIGNATURE, EMPTY_ZIP_SIGNATURE)) \
        and not lower.endswith((".npz", *SPREADSHEET_EXTENSIONS))


def _unsafe_member(name: str) -> str | None:
    """Why a zip member's path is refused (it climbs out, is absolute or has a drive), or None."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or (parts and len(parts[0]) == 2 and parts[0][1] == ":"):
        return "is an absolute path"
    if ".." in parts:
        return "climbs out of the archive with '../'"
    if "\x00" in name:
        return "holds a NUL character"
    return None


def _zip_infos(data: bytes, name: str, max_total: int, max_members: int | None):
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise InputError(f"{name}: not a readable zip archive ({str(exc)[:80]})") from None
    for info in infos:
        why = _unsafe_member(info.filename)
        if why:
            raise InputError(f"{name}: member '{info.filename[:80]}' {why}; refused (the "
                             f"archive is never extracted by its member names)")
    if max_members is not None and len(infos) > max_members:
        raise RequestLimitError(f"{name}: {len(infos)} files in the archive; at most "
                                f"{max_members} are accepted in one request")
    total = sum(i.file_size for i in infos)
    if total > max_total:
        raise InputError(f"{name}: expands to {total / 1024 ** 2:.1f} MB, more than the "
                         f"{max_total / 1024 ** 2:g} MB upload limit; refused before reading",
                         code=413)
    return archive, infos


def check_archive_size(item: UploadedBytes, max_total: int) -> None:
    """A zip-based file (npz, .xlsx) whose members expand past ``max_total`` bytes: 413."""
    archive, _ = _zip_infos(item.data, item.name, max_total, None)
    archive.close()


def zip_members(item: UploadedBytes, *, max_members: int, max_total: int) -> list[UploadedBytes]:
    """The files of a zip archive, read in memory (never extracted to disk by member names).

    Refused before anything is read: a member path that is absolute or climbs out with
    ``../`` (400), more than ``max_members`` files or a total uncompressed size over
    ``max_total`` bytes (413). Each member is read with a bound of its declared size, so a
    member that lies about its size cannot expand further. Folders, ``__MACOSX/`` and hidden
    files are skipped; members are named ``archive.zip/path/in/archive``.
    """
    archive, infos = _zip_infos(item.data, item.name, max_total, max_members)
    out = []
    with archive:
        for info in infos:
            budget.check()
            base = info.filename.rsplit("/", 1)[-1]
            if info.filename.startswith("__MACOSX/") or base.startswith("."):
                continue
            if info.flag_bits & 0x1:
                raise InputError(f"{item.name}: member '{info.filename[:80]}' is encrypted")
            try:
                with archive.open(info) as handle:
                    data = handle.read(info.file_size + 1)
            except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError,
                    RuntimeError) as exc:
                raise InputError(f"{item.name}: member '{info.filename[:80]}' cannot be read "
                                 f"({str(exc)[:80]})") from None
            if len(data) > info.file_size:
                raise InputError(f"{item.name}: member '{info.filename[:80]}' expands past the "
                                 f"size it declares; refused", code=413)
            out.append(UploadedBytes(f"{item.name}/{info.filename}", data))
    if not out:
        raise InputError(f"{item.name}: the archive holds no files")
    return out


def check_image(item: UploadedBytes) -> tuple[str, int, int]:
    """(format, width, height) of a PNG or JPEG, read from its header with Pillow.

    The signature must be PNG's or JPEG's; images over ``MAX_IMAGE_PIXELS`` pixels
    (decompression bombs) are refused before anything is decoded.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    if not item.data.startswith(tuple(IMAGE_SIGNATURES)):
        raise InputError(f"{item.name}: not a PNG or JPEG image (its first bytes are neither "
                         f"signature)", code=415)
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(item.data)) as image:
                kind, (width, height) = image.format, image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{item.name}: the image is too large to decode (more than "
                         f"{MAX_IMAGE_PIXELS:,} pixels); refused", code=413) from None
    except UnidentifiedImageError:  # its text names a Python object at a memory address
        raise InputError(f"{item.name}: not a readable PNG or JPEG image (its header is "
                         f"damaged or not an image's)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{item.name}: not a readable PNG or JPEG image ({str(exc)[:80]})") \
            from None
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(f"{item.name}: the image is {width} x {height} pixels, more than "
                         f"{MAX_IMAGE_PIXELS:,}; refused", code=413)
    return kind, width, height


# -- files on disk (batch jobs) --------------------------------------------------------------------
def files_on_disk(path: Path, name: str, extensions: Sequence[str]) -> list[tuple[Path, str]]:
    """A batch job's data (``webapp/jobs``) as ``(file, name)`` pairs: the file itself, called
    ``name``; or every file with one of ``extensions`` under a folder (an input folder, an
    unpacked zip), in path order, named by its path under it, as a zip's members are named in
    an upload. Hidden files, ``__MACOSX`` and links are left out; a folder holding no such
    file is a 400 naming what was looked for."""
    path = Path(path)
    if not path.is_dir():
        return [(path, name)]
    wanted = tuple(e.lower() for e in extensions)
    root = path.resolve()
    found = []
    for file in sorted(path.rglob("*")):
        parts = file.relative_to(path).parts
        if file.is_symlink() or not file.is_file() or parts[0] == "__MACOSX" \
                or any(p.startswith(".") for p in parts) \
                or not file.resolve().is_relative_to(root):  # through a linked folder
            continue
        if file.name.lower().endswith(wanted):
            found.append((file, "/".join(parts)))
    if not found:
        raise InputError(f"{name}: holds no {', '.join(wanted)} files")
    return found
