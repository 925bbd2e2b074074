"""Pull an image: resolve, fetch into the content store, unpack each layer, record.

The steps, in order:

1. Resolve the reference to a manifest (through an index when there is one,
   choosing the platform) and store the index, the manifest and the config.
2. For each layer without a snapshot, create a temporary snapshot directory
   and fork its applier child. This happens before any thread starts.
3. Download missing layers in parallel (at most `jobs` at once). Each chunk
   goes to the ingest file and, decompressed, to the layer's applier, so a
   layer is unpacked while it streams. Layers already in the content store are
   unpacked from there.
4. Verify each blob's digest and size and each layer's diff_id, then commit
   the blob and the snapshot by rename.
5. Write the image record. Until then `list-images` does not show the image,
   so an interrupted pull leaves nothing visible, and the next pull reuses the
   verified blobs and snapshots and resumes a partial download.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from minict.content import ContentStore
from minict.digest import Verifier, parse_digest
from minict.errors import ContentError, InvalidArgument, LayerError, MinictError, RegistryError
from minict.fsutil import file_lock
from minict.images import save_record
from minict.log import get_logger
from minict.platform import Platform, choose_manifest, descriptor_platform, host_platform
from minict.progress import Progress, short
from minict.reference import Reference, parse_reference
from minict.registry.client import INDEX_TYPES, MANIFEST_TYPES, ClientOptions, RegistryClient, backoff_delay
from minict.registry.transport import TransportError
from minict.snapshots import PreparedSnapshot, Snapshots, chain_ids, choose_snapshotter
from minict.store import Store
from minict.unpack.applier import NATIVE, Applier
from minict.unpack.compression import StreamDecompressor

log = get_logger(__name__)

# Exceptions of a broken or stalled download; each one is retried with a Range request.
_STREAM_ERRORS = (TransportError,)

MAX_CONFIG_BYTES = 8 << 20
CHUNK = 1 << 16
LAYER_MEDIA_PREFIXES = (
    "application/vnd.oci.image.layer.",
    "application/vnd.docker.image.rootfs.",
)


def _env_number(name: str, default, kind):
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise InvalidArgument(f"invalid {name}={text!r}: give a positive number")
    return value


class PullOptions:
    """The platform to pull, parallel downloads, and the layer size limits.

    max_layer_bytes is the largest uncompressed layer accepted
    ($MINICT_MAX_LAYER_BYTES); max_layer_ratio the largest ratio of
    uncompressed to compressed size, checked past 256 MiB
    ($MINICT_MAX_LAYER_RATIO).
    """

    def __init__(self, platform: Platform | None = None, jobs: int = 3, max_layer_bytes: int | None = None,
                 max_layer_ratio: float | None = None):
        self.platform = platform
        self.jobs = jobs
        self.max_layer_bytes = (_env_number("MINICT_MAX_LAYER_BYTES", 64 << 30, int)
                                if max_layer_bytes is None else max_layer_bytes)
        self.max_layer_ratio = (_env_number("MINICT_MAX_LAYER_RATIO", 1000.0, float)
                                if max_layer_ratio is None else max_layer_ratio)


class _Layer:
    """One layer of the image being pulled, and the state of its download and unpack."""

    def __init__(self, index: int, digest: str, size: int, media_type: str, diff_id: str, chain_id: str,
                 need_blob: bool, need_snapshot: bool):
        self.index = index
        self.digest = digest
        self.size = size
        self.media_type = media_type
        self.diff_id = diff_id
        self.chain_id = chain_id
        self.need_blob = need_blob
        self.need_snapshot = need_snapshot
        self.snapshot: PreparedSnapshot | None = None
        self.applier: Applier | None = None
        self.fed = 0  # compressed bytes passed to the decompressor so far
        self.decompressed = 0
        self.decompressor: StreamDecompressor | None = None
        self.diff_verifier: Verifier | None = None


def _load_json(body: bytes, what: str) -> dict:
    try:
        data = json.loads(body)
    except ValueError as error:
        raise RegistryError(f"{what} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return data


def _check_descriptor(descriptor: object, what: str) -> dict:
    if not isinstance(descriptor, dict):
        raise RegistryError(f"{what} is not a descriptor object")
    digest = descriptor.get("digest")
    size = descriptor.get("size")
    if not isinstance(digest, str):
        raise RegistryError(f"{what} has no digest")
    try:
        parse_digest(digest)
    except InvalidArgument as error:
        raise RegistryError(f"{what}: {error}") from error
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{what} ({digest}) has an invalid size {size!r}")
    return descriptor


def parse_manifest(body: bytes, what: str) -> dict:
    """Validate an image manifest's structure; return it as a dict."""
    manifest = _load_json(body, what)
    if manifest.get("schemaVersion") != 2:
        raise RegistryError(f"{what} has schemaVersion {manifest.get('schemaVersion')!r}; only 2 is supported")
    _check_descriptor(manifest.get("config"), f"{what}: config")
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise RegistryError(f"{what} has no layers list")
    for number, layer in enumerate(layers, 1):
        _check_descriptor(layer, f"{what}: layer {number}")
        media_type = layer.get("mediaType", "")
        if not isinstance(media_type, str) or not media_type.startswith(LAYER_MEDIA_PREFIXES):
            raise RegistryError(f"{what}: layer {number} has unsupported media type {media_type!r}")
        if "encrypted" in media_type:
            raise RegistryError(f"{what}: layer {number} is encrypted ({media_type}); minict cannot decrypt layers")
    return manifest


def parse_index(body: bytes, what: str) -> list[dict]:
    index = _load_json(body, what)
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise RegistryError(f"{what} has no manifests list")
    return [_check_descriptor(m, f"{what}: entry {i}") for i, m in enumerate(manifests, 1)]


def parse_config(body: bytes, what: str, layer_count: int) -> dict:
    config = _load_json(body, what)
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers" or not isinstance(rootfs.get("diff_ids"), list):
        raise RegistryError(f"{what} has no rootfs.diff_ids list")
    diff_ids = rootfs["diff_ids"]
    for diff_id in diff_ids:
        if not isinstance(diff_id, str):
            raise RegistryError(f"{what} has a diff_id that is not a string: {diff_id!r}")
        try:
            parse_digest(diff_id)
        except InvalidArgument as error:
            raise RegistryError(f"{what}: {error}") from error
    if len(diff_ids) != layer_count:
        raise RegistryError(f"{what} lists {len(diff_ids)} diff_ids for {layer_count} layers")
    return config


class Puller:
    def __init__(self, store: Store, client_options: ClientOptions, options: PullOptions, progress: Progress):
        self.store = store
        self.client_options = client_options
        self.options = options
        self.progress = progress
        self.content = ContentStore(store)
        self.cancelled = threading.Event()

    def pull(self, text: str) -> dict:
        reference = parse_reference(text)
        # Load libarchive before forking the appliers, so children do not import.
        import libarchive.ffi  # noqa: F401

        with file_lock(self.store.gc_lock, shared=True):
            mode = choose_snapshotter(self.store)
            snapshots = Snapshots(self.store, mode)
            snapshots.cleanup_stale()
            client = RegistryClient(reference.domain, self.client_options)
            resolved = self._resolve(client, reference)
            layers = self._plan(resolved, snapshots)
            try:
                self._run(client, reference, layers, snapshots)
            except BaseException:
                self.cancelled.set()
                for layer in layers:
                    if layer.applier is not None:
                        layer.applier.abort()
                    if layer.snapshot is not None:
                        layer.snapshot.discard()
                raise
            record = self._record(reference, resolved, layers)
            save_record(self.store, record)
        return record

    # -- resolving --------------------------------------------------------------

    def _resolve(self, client: RegistryClient, reference: Reference) -> dict:
        repository = reference.path
        body, media_type, digest = client.get_manifest(repository, reference.object)
        if reference.digest and digest != reference.digest:
            raise ContentError(f"{reference}: the registry returned {digest}")
        index_digest = None
        platform = None
        if media_type in INDEX_TYPES:
            entries = parse_index(body, f"index {digest}")
            wanted = self.options.platform or host_platform()
            chosen = choose_manifest(entries, wanted, reference.familiar())
            self.content.write_bytes(digest, body)
            index_digest = digest
            platform = descriptor_platform(chosen)
            body, media_type, digest = client.get_manifest(repository, chosen["digest"])
            if media_type not in MANIFEST_TYPES:
                raise RegistryError(f"index entry {chosen['digest']} of {reference} is a {media_type}, not an image manifest")
            if len(body) != chosen["size"]:
                raise ContentError(f"manifest {digest} is {len(body)} bytes, but the index declares {chosen['size']}")
        manifest = parse_manifest(body, f"manifest {digest}")
        self.content.write_bytes(digest, body)

        config_descriptor = manifest["config"]
        config_digest = config_descriptor["digest"]
        if self.content.exists(config_digest):
            config_body = self.content.read(config_digest)
        else:
            config_body = client.get_blob_bytes(repository, config_digest, config_descriptor["size"], MAX_CONFIG_BYTES)
            self.content.write_bytes(config_digest, config_body)
        config = parse_config(config_body, f"image config {config_digest}", len(manifest["layers"]))
        image_platform = Platform(str(config.get("os", "")), str(config.get("architecture", "")), str(config.get("variant", "")))
        if platform is None:
            platform = image_platform
            wanted = self.options.platform or host_platform()
            if (image_platform.os, image_platform.architecture) != (wanted.os, wanted.architecture):
                log.warning("%s is an image for %s, but %s was requested; it will not run here without emulation",
                            reference.familiar(), image_platform, wanted)
        return {
            "digest": digest,
            "media_type": media_type,
            "index_digest": index_digest,
            "platform": str(platform),
            "manifest": manifest,
            "config_descriptor": config_descriptor,
            "diff_ids": config["rootfs"]["diff_ids"],
        }

    # -- planning -----------------------------------------------------------------

    def _plan(self, resolved: dict, snapshots: Snapshots) -> list[_Layer]:
        descriptors = resolved["manifest"]["layers"]
        diff_ids = resolved["diff_ids"]
        chains = chain_ids(diff_ids)
        layers = []
        for index, (descriptor, diff_id, chain_id) in enumerate(zip(descriptors, diff_ids, chains)):
            layers.append(_Layer(
                index=index,
                digest=descriptor["digest"],
                size=descriptor["size"],
                media_type=descriptor.get("mediaType", ""),
                diff_id=diff_id,
                chain_id=chain_id,
                need_blob=not self.content.exists(descriptor["digest"]),
                need_snapshot=not snapshots.exists(chain_id),
            ))
        # Fork every applier now, before the download threads exist.
        try:
            for layer in layers:
                if layer.need_snapshot:
                    layer.snapshot = snapshots.prepare()
                    layer.applier = Applier(layer.snapshot.fs, snapshots.mode, f"layer {layer.digest}")
        except BaseException:
            for layer in layers:
                if layer.applier:
                    layer.applier.abort()
                if layer.snapshot:
                    layer.snapshot.discard()
            raise
        return layers

    # -- downloading and unpacking -----------------------------------------------------

    def _run(self, client: RegistryClient, reference: Reference, layers: list[_Layer], snapshots: Snapshots) -> None:
        for layer in layers:
            if layer.need_blob:
                status = "Waiting"
            elif layer.need_snapshot:
                status = "Extracting"
            else:
                status = "Already exists"
            self.progress.layer_added(layer.digest, layer.size, status)
        if snapshots.mode == NATIVE:
            # Each native snapshot copies its parent, so layers apply in order;
            # only the downloads run in parallel.
            self._parallel(lambda layer: self._fetch(client, reference, layer, unpack=False), layers)
            for layer in layers:
                if layer.need_snapshot:
                    if layer.index > 0:
                        layer.snapshot.copy_from(snapshots.fs(layers[layer.index - 1].chain_id))
                    self._unpack_from_store(layer)
                    self._commit_snapshot(layer)
        else:
            self._parallel(lambda layer: self._process_overlay(client, reference, layer), layers)

    def _parallel(self, function, layers: list[_Layer]) -> None:
        work = [layer for layer in layers if layer.need_blob or layer.need_snapshot]
        if not work:
            return
        with ThreadPoolExecutor(max_workers=max(1, self.options.jobs), thread_name_prefix="pull") as pool:
            futures = [pool.submit(function, layer) for layer in work]
            first_error: BaseException | None = None
            try:
                for future in futures:
                    try:
                        future.result()
                    except BaseException as error:  # stop the others, report the first
                        if first_error is None:
                            first_error = error
                            self.cancelled.set()
            except KeyboardInterrupt:
                self.cancelled.set()
                raise
            if first_error is not None:
                raise first_error

    def _process_overlay(self, client: RegistryClient, reference: Reference, layer: _Layer) -> None:
        if layer.need_blob:
            self._fetch(client, reference, layer, unpack=layer.need_snapshot)
        elif layer.need_snapshot:
            self._unpack_from_store(layer)
        if layer.need_snapshot:
            self._commit_snapshot(layer)

    def _start_unpack(self, layer: _Layer) -> None:
        layer.decompressor = StreamDecompressor(f"layer {layer.digest}")
        layer.diff_verifier = Verifier(layer.diff_id, None, f"layer {layer.digest}: uncompressed content")
        layer.fed = 0
        layer.decompressed = 0

    def _feed(self, layer: _Layer, chunk: bytes | memoryview) -> None:
        data = layer.decompressor.decompress(bytes(chunk))
        layer.fed += len(chunk)
        if data:
            self._account(layer, len(data))
            layer.diff_verifier.update(data)
            layer.applier.write(data)

    def _account(self, layer: _Layer, count: int) -> None:
        layer.decompressed += count
        if layer.decompressed > self.options.max_layer_bytes:
            raise LayerError(
                f"layer {layer.digest} unpacks to more than {self.options.max_layer_bytes} bytes; "
                "raise MINICT_MAX_LAYER_BYTES if the image is trusted"
            )
        if layer.decompressed > (256 << 20) and layer.decompressed > self.options.max_layer_ratio * max(layer.fed, 1):
            raise LayerError(
                f"layer {layer.digest} expands more than {self.options.max_layer_ratio:g} times (a decompression bomb?); "
                "raise MINICT_MAX_LAYER_RATIO if the image is trusted"
            )

    def _finish_unpack(self, layer: _Layer) -> None:
        tail = layer.decompressor.finish()
        if tail:
            self._account(layer, len(tail))
            layer.diff_verifier.update(tail)
            layer.applier.write(tail)
        try:
            layer.diff_verifier.verify()
        except ContentError as error:
            raise ContentError(f"{error} (the config's diff_id)") from None
        layer.applier.finish()
        layer.applier = None

    def _unpack_from_store(self, layer: _Layer) -> None:
        self.progress.layer_status(layer.digest, "Extracting")
        self._start_unpack(layer)
        with open(self.content.path(layer.digest), "rb") as file:
            while chunk := file.read(1 << 20):
                if self.cancelled.is_set():
                    raise MinictError("pull cancelled")
                self._feed(layer, chunk)
        self._finish_unpack(layer)

    def _commit_snapshot(self, layer: _Layer) -> None:
        layer.snapshot.commit(layer.chain_id, {"diff_id": layer.diff_id, "digest": layer.digest})
        layer.snapshot = None
        self.progress.layer_status(layer.digest, "Pull complete")

    def _fetch(self, client: RegistryClient, reference: Reference, layer: _Layer, unpack: bool) -> None:
        """Download a layer blob into the content store, feeding the applier as bytes arrive."""
        with self.content.ingest(layer.digest, layer.size) as ingest:
            if ingest.done:
                # Another process committed it while this one waited for the lock.
                if unpack:
                    self._unpack_from_store(layer)
                else:
                    self.progress.layer_status(layer.digest, "Downloaded")
                return
            if unpack:
                self._start_unpack(layer)
                for chunk in ingest.read_partial():
                    self._feed(layer, chunk)
            if ingest.offset:
                self.progress.layer_advance(layer.digest, ingest.offset)
            self.progress.layer_status(layer.digest, "Downloading")
            try:
                self._download(client, reference, layer, ingest, unpack)
                ingest.commit()
            except (ContentError, LayerError):
                # Content that fails its digest or does not decompress is not kept for a resume.
                ingest.discard()
                raise
            if unpack:
                self.progress.layer_status(layer.digest, "Extracting")
                self._finish_unpack(layer)
            else:
                self.progress.layer_status(layer.digest, "Downloaded")

    def _download(self, client, reference: Reference, layer: _Layer, ingest, unpack: bool) -> None:
        attempts = 0
        while True:
            offset = ingest.offset if attempts == 0 else ingest.verifier.size
            if layer.size and offset >= layer.size:
                # A killed pull wrote the whole blob but did not commit it; the commit checks its digest.
                return
            try:
                response = client.open_blob(reference.path, layer.digest, offset)
            except RegistryError as error:
                if offset and getattr(error, "status", None) == 416:
                    # The registry cannot serve that range: start again from the first byte.
                    log.info("%s: the registry rejected the range from byte %d; downloading from the start",
                             short(layer.digest), offset)
                    self.progress.layer_advance(layer.digest, -offset)
                    ingest.reset()
                    attempts += 1
                    continue
                raise
            try:
                if offset and response.status_code == 200:
                    log.info("%s: the registry ignored the Range request; downloading from the start", short(layer.digest))
                    ingest.reset()
                    self.progress.layer_advance(layer.digest, -offset)
                while True:
                    if self.cancelled.is_set():
                        raise MinictError("pull cancelled")
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    position = ingest.verifier.size
                    ingest.write(chunk)
                    self.progress.layer_advance(layer.digest, len(chunk))
                    if unpack:
                        end = position + len(chunk)
                        if end > layer.fed:
                            # After a restart from zero, bytes already fed are skipped.
                            self._feed(layer, memoryview(chunk)[max(0, layer.fed - position):])
                return
            except _STREAM_ERRORS as error:
                attempts += 1
                if attempts >= self.client_options.max_attempts:
                    raise RegistryError(
                        f"download of {layer.digest} failed after {attempts} attempts: {error}; run the pull again to resume"
                    ) from error
                delay = backoff_delay(attempts + 1)
                log.warning("%s: download interrupted at %d bytes (%s); resuming in %.1f s",
                            short(layer.digest), ingest.verifier.size, error, delay)
                time.sleep(delay)
            finally:
                response.close()

    # -- recording -------------------------------------------------------------------

    def _record(self, reference: Reference, resolved: dict, layers: list[_Layer]) -> dict:
        config = resolved["config_descriptor"]
        return {
            "name": str(reference),
            "digest": resolved["digest"],
            "media_type": resolved["media_type"],
            "index_digest": resolved["index_digest"],
            "platform": resolved["platform"],
            "config": {"digest": config["digest"], "size": config["size"]},
            "layers": [
                {
                    "digest": layer.digest,
                    "size": layer.size,
                    "media_type": layer.media_type,
                    "diff_id": layer.diff_id,
                    "chain_id": layer.chain_id,
                }
                for layer in layers
            ],
            "size": sum(layer.size for layer in layers),
            "pulled": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
