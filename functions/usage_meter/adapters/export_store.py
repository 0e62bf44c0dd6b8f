"""Billing exports in S3 - the only module that knows their key layout.

One prefix per dataset and format, Hive-style partitions below it, so each Glue table in
template.yaml reads exactly one kind of file (partition projection, no crawler, no ``$path``)::

    exports/summary/csv/month=YYYY-MM/version=N/usage.csv
    exports/summary/jsonl/month=YYYY-MM/version=N/usage.jsonl
    exports/line_items/jsonl/month=YYYY-MM/version=N/line_items.jsonl.gz
    exports/manifests/month=YYYY-MM/version=N/manifest.json

A version is published when its manifest exists; the manifest is written last. Every object is
written with ``If-None-Match: *`` so a published file is never overwritten, even by two runs racing
each other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from usage_meter.logic.errors import TransientFailure
from usage_meter.logic.line_items import LINE_ITEMS_NAME
from usage_meter.logic.monthly_export import CSV_NAME, JSONL_NAME, MANIFEST_NAME, PublishedExport

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CONTENT_TYPES = {
    ".csv": "text/csv; charset=utf-8; header=present",
    ".jsonl": "application/x-ndjson",
    ".json": "application/json",
    ".gz": "application/gzip",
}
# File name -> its dataset folder (one Glue table each; see template.yaml).
DATASETS = {
    CSV_NAME: "summary/csv",
    JSONL_NAME: "summary/jsonl",
    LINE_ITEMS_NAME: "line_items/jsonl",
    MANIFEST_NAME: "manifests",
}
_VERSION = re.compile(r"version=(\d+)/$")


class ExportConflict(TransientFailure):
    """Another run published the same version first (a retry takes the next version)."""


class S3ExportStore:
    def __init__(self, client: S3Client, bucket: str, prefix: str = "exports") -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")

    def key(self, month: str, version: int, name: str) -> str:
        return f"{self._prefix}/{DATASETS[name]}/month={month}/version={version}/{name}"

    def _versions(self, month: str, datasets: frozenset[str] | None = None) -> list[int]:
        """Versions with any object under the given dataset folders (default: all of them, so a
        version an interrupted run left without a manifest is never reused)."""
        versions: set[int] = set()
        paginator = self._client.get_paginator("list_objects_v2")
        for folder in sorted(datasets or set(DATASETS.values())):
            try:
                for page in paginator.paginate(
                    Bucket=self._bucket,
                    Prefix=f"{self._prefix}/{folder}/month={month}/",
                    Delimiter="/",
                ):
                    for common in page.get("CommonPrefixes", []):
                        match = _VERSION.search(common.get("Prefix", ""))
                        if match:
                            versions.add(int(match.group(1)))
            except (ClientError, BotoCoreError) as exc:
                raise TransientFailure(f"cannot list exports: {type(exc).__name__}") from exc
        return sorted(versions)

    def latest(self, month: str) -> PublishedExport | None:
        for version in reversed(self._versions(month, frozenset({DATASETS[MANIFEST_NAME]}))):
            try:
                manifest = json.loads(self.read(month, version, MANIFEST_NAME))
            except FileNotFoundError:
                continue  # an interrupted run: files without a manifest are not published
            return PublishedExport(version=version, manifest=manifest)
        return None

    def next_version(self, month: str) -> int:
        versions = self._versions(month)
        return (versions[-1] + 1) if versions else 1

    def read(self, month: str, version: int, name: str) -> bytes:
        try:
            response = self._client.get_object(
                Bucket=self._bucket, Key=self.key(month, version, name)
            )
            return response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(self.key(month, version, name)) from exc
            raise TransientFailure(f"cannot read export: {type(exc).__name__}") from exc
        except BotoCoreError as exc:
            raise TransientFailure(f"cannot read export: {type(exc).__name__}") from exc

    def publish(self, month: str, version: int, files: Mapping[str, bytes | IO[bytes]]) -> None:
        """Put each file (bytes, or a seekable binary file streamed from disk), manifest last."""
        names = sorted(files, key=lambda n: n == MANIFEST_NAME)  # manifest last
        for name in names:
            suffix = name[name.rfind(".") :]
            body = files[name]
            if not isinstance(body, bytes):
                body.seek(0)
            try:
                self._client.put_object(
                    Bucket=self._bucket,
                    Key=self.key(month, version, name),
                    Body=body,
                    ContentType=CONTENT_TYPES.get(suffix, "application/octet-stream"),
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise ExportConflict(self.key(month, version, name)) from exc
                raise TransientFailure(f"cannot write export: {code}") from exc
            except BotoCoreError as exc:
                raise TransientFailure(f"cannot write export: {type(exc).__name__}") from exc
