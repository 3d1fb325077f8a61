"""The review queue's records: items from past runs (``review_items``) and every label given to
them (``annotations``; migration 0011).

An item's state comes from its annotations, in one place (:func:`item_state`):

- ``pending``: nobody labelled it;
- ``annotated``: everyone who labelled it agrees (each annotator's latest label counts);
- ``conflict``: two annotators' latest labels differ; an engineer or admin settles it;
- ``settled``: the latest settlement's label is the item's label, whatever came before.

Re-annotating adds a row, so the history stays. Unlabelled items are kept for
``REVIEW_KEEP_DAYS`` and at most ``REVIEW_KEEP_ITEMS`` per module (the newest); labelled ones are
kept, since labels are what costs. Who recorded an annotation is
:func:`webapp.access.current_actor`; an imported one keeps its annotator (``user``) and says who
imported it (``recorded_by``).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Iterable, Iterator

from sqlalchemy import (Boolean, Column, DateTime, Float, ForeignKey, Index, Integer,
                        LargeBinary, String, Table, Text, and_, bindparam, delete, false, func,
                        insert, or_, select, update)
from sqlalchemy.exc import IntegrityError

from webapp import db
from webapp.db import metadata

STATES = ("pending", "annotated", "conflict", "settled")
LABELLED = ("annotated", "settled")
CHUNK = 500

review_items = Table(
    "review_items", metadata,
    Column("id", Integer, primary_key=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("module", String(32), nullable=False),
    Column("sha256", String(64), nullable=False),  # the content: one item however often sent
    Column("run_id", Integer),  # the run it came from first (it may since have been pruned)
    Column("position", Integer),  # its number in that run's results (1-based)
    Column("name", String(256)),
    Column("rows", Integer, nullable=False),
    Column("cols", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),  # packed die codes, or kinds.pack_photo
    Column("release", String(12)),
    Column("model_version", String(128)),
    Column("predicted", String(64)),  # the class, or the verdict
    Column("score", Float),  # the confidence, or the anomaly score
    Column("threshold", Float),  # the review level, or the anomaly threshold
    Column("details", Text),  # JSON: probabilities and top 3, or distance and spread
    Column("uncertainty", Float, nullable=False),  # the queue's order: higher first
    Column("features", LargeBinary),  # float32 numbers for the diversity step, once needed
    Column("upload_label", String(64)),  # the upload's own label, when it had one
    Index("uq_review_items_content", "module", "sha256", unique=True),
    Index("ix_review_items_queue", "module", "uncertainty"),
    Index("ix_review_items_created", "created"),
)

annotations = Table(
    "annotations", metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("review_items.id", ondelete="CASCADE"),
           nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("user", String(128), nullable=False),  # who labelled it
    Column("label", String(64), nullable=False),
    Column("regions", Text),  # JSON: {"boxes": [[x, y, w, h], ...]} (photos)
    Column("mask", LargeBinary),  # a brush mask: PNG, 0 = no defect (photos)
    Column("settles", Boolean, nullable=False, server_default=false()),
    Column("source", String(32), nullable=False, server_default="page"),  # page, api, import
    Column("recorded_by", String(128)),  # who put the row here (the importer, for an import)
    Index("ix_annotations_item_id", "item_id", "id"),
)




# -- the state of an item -------------------------------------------------------------------------
def item_state(history: list[dict]) -> dict:
    """``{"state", "label", "by": the annotation that decides (or None), "users": {user: label}}``
    from an item's annotations, oldest first (see the module doc)."""
    latest: dict[str, dict] = {}
    settled = None
    for row in history:
        latest[row["user"]] = row
        if row["settles"]:
            settled = row
    users = {user: row["label"] for user, row in latest.items()}
    if settled is not None:
        return {"state": "settled", "label": settled["label"], "by": settled, "users": users}
    if not latest:
        return {"state": "pending", "label": None, "by": None, "users": users}
    if len(set(users.values())) == 1:
        newest = max(latest.values(), key=lambda r: r["id"])
        return {"state": "annotated", "label": newest["label"], "by": newest, "users": users}
    return {"state": "conflict", "label": None, "by": None, "users": users}


def _histories(conn, ids: Iterable[int]) -> dict[int, list[dict]]:
    ids = list(ids)
    out: dict[int, list[dict]] = {i: [] for i in ids}
    for start in range(0, len(ids), CHUNK):
        part = ids[start:start + CHUNK]
        for row in conn.execute(select(annotations).where(annotations.c.item_id.in_(part))
                                .order_by(annotations.c.id)).mappings():
            row = dict(row)
            row["created"] = db.aware(row["created"])
            out[row["item_id"]].append(row)
    return out


def annotated_ids(conn, module: str) -> set[int]:
    """Ids of ``module``'s items that hold any annotation."""
    return {r[0] for r in conn.execute(
        select(annotations.c.item_id).distinct().join(
            review_items, review_items.c.id == annotations.c.item_id)
        .where(review_items.c.module == module))}


# -- writing --------------------------------------------------------------------------------------
def _batches(items: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert_new(conn, rows: list[dict]) -> None:
    """Insert ``rows``, leaving out any whose content another worker stored meanwhile (one
    statement, no error: ``ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL)."""
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        from importlib import import_module

        dialect_insert = import_module(f"sqlalchemy.dialects.{name}").insert
        conn.execute(dialect_insert(review_items).on_conflict_do_nothing(
            index_elements=["module", "sha256"]), rows)
        return
    for row in rows:  # another database: one by one, each in its own savepoint
        try:
            with conn.begin_nested():
                conn.execute(insert(review_items), [row])
        except IntegrityError:
            pass


def add_items(module: str, run_id: int | None, items: Iterable[dict], *, keep_days: int,
              keep_items: int) -> int:
    """Store ``items`` (rows of ``review_items`` without id, created, module, run_id) of run
    ``run_id``; an item whose content is already stored is left as it is. A value may be a
    function of nothing (a photo's packed pixels): it is called only for an item not stored
    yet. Then prune the module's unlabelled items beyond the retention. One transaction (one
    commit: the cost a prediction pays is mostly this). Returns how many items were new."""
    when = db.utcnow()
    seen: set[str] = set()
    added = 0
    with db.engine().begin() as conn:
        for part in _batches(items, CHUNK):
            known = {r[0] for r in conn.execute(select(review_items.c.sha256).where(
                review_items.c.module == module,
                review_items.c.sha256.in_([i["sha256"] for i in part])))}
            fresh = []
            for item in part:
                if item["sha256"] in known or item["sha256"] in seen:
                    continue
                seen.add(item["sha256"])
                fresh.append({k: v() if callable(v) else v for k, v in item.items()}
                             | {"module": module, "run_id": run_id, "created": when})
            if fresh:
                _insert_new(conn, fresh)
                added += len(fresh)
        if added:
            _prune(conn, module, keep_days=keep_days, keep_items=keep_items, when=when)
    return added


def prune(module: str, *, keep_days: int, keep_items: int, when: datetime | None = None) -> int:
    """Delete ``module``'s unlabelled items older than ``keep_days`` or beyond the newest
    ``keep_items``; how many. Labelled items are never pruned."""
    with db.engine().begin() as conn:
        return _prune(conn, module, keep_days=keep_days, keep_items=keep_items, when=when)


def _prune(conn, module: str, *, keep_days: int, keep_items: int,
           when: datetime | None = None) -> int:
    cutoff = (when or db.utcnow()) - timedelta(days=keep_days)
    unlabelled = and_(review_items.c.module == module,
                      review_items.c.id.not_in(select(annotations.c.item_id)))
    # the newest unlabelled item beyond the newest keep_items (ids grow with time)
    edge = conn.execute(select(review_items.c.id).where(unlabelled)
                        .order_by(review_items.c.id.desc()).offset(keep_items).limit(1)).scalar()
    old = review_items.c.created < cutoff
    return int(conn.execute(delete(review_items).where(
        unlabelled, old if edge is None else or_(old, review_items.c.id <= edge))).rowcount)


def add_annotation(item_id: int, label: str, *, user: str, regions: dict | None = None,
                   mask: bytes | None = None, settles: bool = False, source: str = "page",
                   recorded_by: str | None = None, created: datetime | None = None) -> dict:
    """Record one label of item ``item_id``; the row as stored."""
    row = {"item_id": item_id, "created": created or db.utcnow(), "user": user[:128],
           "label": label, "regions": json.dumps(regions) if regions else None, "mask": mask,
           "settles": bool(settles), "source": source, "recorded_by": (recorded_by or user)[:128]}
    with db.engine().begin() as conn:
        row["id"] = int(conn.execute(insert(annotations).values(**row)).inserted_primary_key[0])
    return row


# -- reading --------------------------------------------------------------------------------------
def get_item(item_id: int) -> dict | None:
    """One item with its annotations (``history``, oldest first) and its ``state``."""
    with db.engine().connect() as conn:
        row = conn.execute(select(review_items).where(review_items.c.id == item_id)
                           ).mappings().first()
        if row is None:
            return None
        item = dict(row)
        item["history"] = _histories(conn, [item_id])[item_id]
    item["created"] = db.aware(item["created"])
    item["state"] = item_state(item["history"])
    return item


def find_item(module: str, sha256: str) -> int | None:
    """The id of ``module``'s item with this content, or None."""
    with db.engine().connect() as conn:
        return conn.execute(select(review_items.c.id).where(
            review_items.c.module == module, review_items.c.sha256 == sha256)).scalar()


def insert_item(module: str, item: dict) -> int:
    """Store one item (an imported one); its id (the stored one when the content is known)."""
    found = find_item(module, item["sha256"])
    if found is not None:
        return found
    with db.engine().begin() as conn:
        return int(conn.execute(insert(review_items).values(
            {"created": db.utcnow(), "module": module, **item})).inserted_primary_key[0])


def module_items(module: str, *, keep_days: int | None = None,
                 columns: tuple[str, ...] = ("id", "uncertainty", "features")) -> list[dict]:
    """``module``'s items (``columns`` of each, newest first), those older than ``keep_days``
    left out unless labelled; each with its ``history``."""
    with db.engine().connect() as conn:
        query = select(*(review_items.c[c] for c in columns), review_items.c.created).where(
            review_items.c.module == module).order_by(review_items.c.id.desc())
        rows = [dict(r) for r in conn.execute(query).mappings()]
        histories = _histories(conn, annotated_ids(conn, module))
    cutoff = db.utcnow() - timedelta(days=keep_days) if keep_days else None
    out = []
    for row in rows:
        row["history"] = histories.get(row["id"], [])
        if cutoff is not None and not row["history"] and db.aware(row["created"]) < cutoff:
            continue
        out.append(row)
    return out


def items_by_id(ids: list[int], with_data: bool = False) -> dict[int, dict]:
    """Full rows of items ``ids`` (the stored bytes only ``with_data``), with their
    histories."""
    wanted = [c for c in review_items.c if c.name != "features"
              and (with_data or c.name != "data")]
    out = {}
    with db.engine().connect() as conn:
        for start in range(0, len(ids), CHUNK):
            part = ids[start:start + CHUNK]
            for row in conn.execute(select(*wanted).where(review_items.c.id.in_(part))
                                    ).mappings():
                out[row["id"]] = dict(row) | {"created": db.aware(row["created"])}
        for item_id, history in _histories(conn, list(out)).items():
            out[item_id]["history"] = history
    return out


def item_data(item_id: int) -> dict | None:
    """The stored bytes of an item (``data``, ``rows``, ``cols``, ``module``, ``sha256``)."""
    with db.engine().connect() as conn:
        row = conn.execute(select(review_items.c.data, review_items.c.rows,
                                  review_items.c.cols, review_items.c.module,
                                  review_items.c.sha256)
                           .where(review_items.c.id == item_id)).mappings().first()
    return dict(row) if row else None


def items_data(ids: list[int]) -> list[dict]:
    """``id``, ``data``, ``rows`` and ``cols`` of items ``ids`` (those still stored)."""
    out = []
    with db.engine().connect() as conn:
        for start in range(0, len(ids), CHUNK):
            out += [dict(r) for r in conn.execute(
                select(review_items.c.id, review_items.c.data, review_items.c.rows,
                       review_items.c.cols).where(
                    review_items.c.id.in_(ids[start:start + CHUNK]))).mappings()]
    return out


def set_features(features: dict[int, bytes]) -> None:
    """Store the diversity step's numbers of items (by id), computed when first needed."""
    if not features:
        return
    with db.engine().begin() as conn:
        conn.execute(update(review_items).where(review_items.c.id == bindparam("item"))
                     .values(features=bindparam("numbers")),
                     [{"item": i, "numbers": f} for i, f in features.items()])


def count_items(module: str) -> int:
    with db.engine().connect() as conn:
        return int(conn.execute(select(func.count()).select_from(review_items).where(
            review_items.c.module == module)).scalar())


def labelled_items(module: str) -> list[dict]:
    """Every item of ``module`` that holds an annotation (full rows, bytes included), with its
    history and state, oldest first: what the export writes."""
    with db.engine().connect() as conn:
        ids = sorted(annotated_ids(conn, module))
        histories = _histories(conn, ids)
        out = []
        for start in range(0, len(ids), CHUNK):
            for row in conn.execute(select(review_items).where(
                    and_(review_items.c.id.in_(ids[start:start + CHUNK])))
                    .order_by(review_items.c.id)).mappings():
                item = dict(row) | {"created": db.aware(row["created"])}
                item["history"] = histories[item["id"]]
                item["state"] = item_state(item["history"])
                out.append(item)
    return out
