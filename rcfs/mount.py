"""The composition root of a mount: build every layer, mount, serve, unmount cleanly.

Order of construction follows the layers bottom-up (API client -> content engine ->
namespace index -> FUSE operations). The index snapshot is opened before any network
call, so a remount while RingCentral is unreachable still shows everything known.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import os
import re
import signal
import ssl
import subprocess
import time
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyfuse3
import trio

from rcfs import __version__, sdnotify
from rcfs.api import Credentials, RcClient, RcError, TokenSet, TokenStore
from rcfs.api.authstate import auth_line
from rcfs.api.protocol import ApiClient
from rcfs.api.push import PushClient, PushSettings
from rcfs.api.scheduler import DEFAULT_LIMITS, Priority
from rcfs.config import Config
from rcfs.content.blockcache import BlockCache
from rcfs.content.bulk import BulkExport
from rcfs.content.reader import ContentReader, ReaderConfig
from rcfs.content.reports import ReportRunner
from rcfs.content.source import ApiContentSource
from rcfs.fs.ops import MountOptions, RcfsOperations
from rcfs.fs.readahead import raise_read_ahead
from rcfs.namespace import layout
from rcfs.namespace.account_calls import AccountCalls
from rcfs.namespace.exports import ExportManager
from rcfs.namespace.index import EXTENSIONS_REFRESH, MetadataIndex
from rcfs.namespace.pinning import PinManager
from rcfs.namespace.view import NamespaceView
from rcfs.notify import DesktopNotifier
from rcfs.outbox import Outbox, Settings
from rcfs.private import tighten_all
from rcfs.push import Freshness, IndexSync
from rcfs.storeheal import Healed

log = logging.getLogger(__name__)

STATUS_POLL_S = 2.0


class MountError(Exception):
    """A reason the mount cannot come up, phrased for the user."""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def check_mountpoint(path: Path) -> None:
    """Refuse a missing, non-directory, non-empty or already-mounted mountpoint; clean up a
    dead FUSE mount ("Transport endpoint is not connected") first."""
    try:
        os.stat(path)
        if os.path.ismount(path):
            # The kernel may answer stat from its attribute cache after the FUSE process
            # died; reading the directory reaches the (dead) connection.
            os.listdir(path)
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            log.warning("%s is a dead FUSE mount; unmounting it first", path)
            lazy_unmount(path)
        elif exc.errno == errno.ENOENT:
            raise MountError(f"mountpoint {path} does not exist") from None
        else:
            raise MountError(f"mountpoint {path}: {exc.strerror}") from None
    if not path.is_dir():
        raise MountError(f"mountpoint {path} is not a directory")
    if os.path.ismount(path):
        raise MountError(f"{path} is already a mount point (unmount it first: "
                         f"rcfs unmount {path})")
    if any(os.scandir(path)):
        raise MountError(f"mountpoint {path} is not empty")


def lazy_unmount(path: Path) -> None:
    for tool in ("fusermount3", "fusermount"):
        try:
            subprocess.run([tool, "-u", "-z", str(path)], check=False, timeout=30,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return
        except FileNotFoundError:
            continue


def _tz(name: str) -> tzinfo | None:
    if name == "local":
        return None  # astimezone(None) = the system's local zone
    if name == "UTC":
        return ZoneInfo("UTC")
    return ZoneInfo(name)


@dataclass
class Layers:
    client: RcClient
    cache: BlockCache
    reader: ContentReader
    index: MetadataIndex
    ops: RcfsOperations
    outbox: Outbox | None = None
    freshness: Freshness | None = None
    notifier: DesktopNotifier | None = None
    exports: ExportManager | None = None
    pins: PinManager | None = None


def make_client(cfg: Config, store: TokenStore) -> RcClient:
    creds = Credentials(platform_url=cfg.server.rstrip("/"), client_id=cfg.client_id,
                        client_secret=cfg.client_secret or None, jwt=cfg.jwt_value(),
                        redirect_uri=cfg.redirect_uri)
    verify: ssl.SSLContext | bool = True
    if cfg.ca_cert:
        verify = ssl.create_default_context(cafile=os.path.expanduser(cfg.ca_cert))
    return RcClient(creds, media_url=cfg.media_server or None, store=store, verify=verify,
                    refresh_margin=cfg.token_refresh_margin)


def outbox_settings(cfg: Config) -> Settings:
    """The sender's tuning, from the ``outbox_*`` configuration keys."""
    return Settings(
        send_concurrency=cfg.outbox_concurrency, max_attempts=cfg.outbox_max_attempts,
        retry_base_s=cfg.outbox_retry_base, retry_max_s=cfg.outbox_retry_max,
        poll_min_s=cfg.outbox_poll_min, poll_max_s=cfg.outbox_poll_max,
        settle_s=cfg.outbox_settle_time, skew_s=cfg.outbox_clock_skew,
        fax_deadline_s=cfg.outbox_fax_timeout, sms_deadline_s=cfg.outbox_sms_timeout,
        sms_delivery_wait_s=cfg.outbox_sms_delivery_wait)


def make_outbox(cfg: Config, client: ApiClient, spool_dir: Path) -> Outbox:
    return Outbox(client, spool_dir, outbox_settings(cfg))


def make_freshness(cfg: Config, client: RcClient, index: MetadataIndex, mountpoint: Path,
                   notifier: DesktopNotifier | None) -> Freshness:
    """Push events (unless ``push = false``) and the polling intervals around them."""
    context = None
    if cfg.ca_cert:
        context = ssl.create_default_context(cafile=os.path.expanduser(cfg.ca_cert))

    def push(fresh: Freshness) -> PushClient:
        # The idle socket's token check runs twice per margin, so a renewal is never late.
        settings = PushSettings(token_check=cfg.token_refresh_margin / 2)
        return PushClient(client, on_event=fresh.on_event, on_state=fresh.on_state,
                          on_gap=fresh.on_gap, ssl_context=context, settings=settings)

    return Freshness(IndexSync(index), refresh_interval=cfg.refresh_interval,
                     safety_interval=cfg.push_poll_interval,
                     push=push if cfg.push else None,
                     on_new=notifier.add if notifier is not None else None)


def message_file(index: MetadataIndex, mountpoint: Path, ext_id: str,
                 message_id: str) -> Path | None:
    """Where a message's file is in the mount (its first file: the recording, the PDF,
    the text), for the notification's "open" action."""
    if ext_id not in index.states:
        return None
    for rel in index.message_files(ext_id, message_id):
        if not rel[-1].endswith(".transcript.txt"):
            return mountpoint.joinpath(index.folder_name(ext_id), *rel)
    return None


def token_store(cfg: Config) -> TokenStore:
    state = Path(cfg.state_dir).expanduser()
    return TokenStore(state / "tokens" / f"{_digest(cfg.server, cfg.client_id)}.json")


def _local_dirs(cfg: Config) -> tuple[Path, Path]:
    """(state root, content cache root of this server)."""
    return (Path(cfg.state_dir).expanduser(),
            Path(cfg.cache_dir).expanduser() / _digest(cfg.server))


async def _private_dirs(cfg: Config) -> tuple[Path, Path]:
    """(state root, cache root), with everything this process creates (cache, index,
    spool, log) private whatever the umask it was started with; what an older rcfs left
    readable is fixed now."""
    state_root, cache_root = _local_dirs(cfg)
    os.umask(0o077)
    await trio.to_thread.run_sync(tighten_all, (cache_root.parent, state_root),
                                  (*_cache_roots(cache_root.parent), *(
                                      state_root / n for n in ("tokens", "accounts",
                                                               "rcfs.log"))))
    return state_root, cache_root


def _cache_roots(cache_dir: Path) -> list[Path]:
    """The block caches under ``cache_dir`` (one per server, named by its digest): rcfs's
    own, unlike whatever else the user keeps in a ``cache_dir`` they chose."""
    try:
        return [p for p in cache_dir.iterdir() if re.fullmatch(r"[0-9a-f]{16}", p.name)]
    except OSError:
        return []


RUNNING_MARK = "running"
"""Present in the cache directory while a mount uses it: found at the next start, the last
mount did not end cleanly (crash, kill -9, power loss)."""


def _mark_running(cache_root: Path) -> bool:
    """Mark the cache in use; True when the previous mount left its mark behind."""
    mark = cache_root / RUNNING_MARK
    unclean = mark.exists()
    mark.write_text(str(os.getpid()))
    return unclean


def _mark_clean(cache_root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (cache_root / RUNNING_MARK).unlink()


async def _check_cache(cache: BlockCache) -> None:
    """After an unclean shutdown: orphan value files and the usage counter are repaired
    in the background (reads meanwhile work: every block is verified anyway)."""
    log.warning("the last mount did not end cleanly: checking the content cache")
    try:
        used = await cache.check()
    except Exception:
        log.exception("content cache check failed")
        return
    log.info("content cache checked: %d bytes in use", used)


def _rate(client: RcClient, group: str) -> float:
    """Requests per second the group allows (learned from headers, else the default count
    over the window learned from another group: the groups share one window length, and a
    group never used yet, e.g. Heavy before the call log is first looked at, must not look
    ten times scarcer than it is)."""
    every = client.scheduler.stats()
    stats = every.get(group)
    if stats:
        return float(stats["limit"]) / max(float(stats["window"]), 1e-3)
    window = next((float(s["window"]) for s in every.values() if s and s.get("window")), 60.0)
    return float(DEFAULT_LIMITS.get(group, 40)) / max(window, 1e-3)


class Mount:
    def __init__(self, cfg: Config, mountpoint: Path) -> None:
        self.cfg = cfg
        self.mountpoint = mountpoint
        self.abs_mountpoint = os.path.abspath(mountpoint)  # for file:// URIs (thumbnails)
        self.started = time.time()
        # Seconds from the start of ``run`` (the program is loaded) to the index being open
        # and to the mount answering: what a remount of a big account costs.
        self.startup: dict[str, float] = {}
        self._t0 = time.monotonic()
        self.layers: Layers | None = None
        self.client: RcClient | None = None
        self.healed: list[Healed] = []  # local stores found damaged and rebuilt at open

    def auth_status(self) -> dict[str, Any]:
        """The login as ``status.json`` shows it, with the user's folder name when known."""
        if self.client is None:
            return {}
        out: dict[str, Any] = dict(self.client.tokens.status())
        owner = out.get("owner_id")
        if self.layers is not None and owner is not None:
            with contextlib.suppress(KeyError, LookupError):
                out["user"] = self.layers.index.folder_name(str(owner))
        return out

    def status(self) -> dict[str, Any]:
        """What ``.rcfs/status.json`` and ``rcfs status`` show."""
        out: dict[str, Any] = {"version": __version__, "mountpoint": str(self.mountpoint),
                               "pid": os.getpid(), "started": self.started,
                               "auth": self.auth_status(),
                               "rebuilt_stores": [h.as_dict() for h in self.healed],
                               "startup": self.startup}
        if self.layers is not None:
            layers = self.layers
            out["requests"] = layers.client.scheduler.stats()
            out["token_requests"] = layers.client.tokens.token_requests
            out["content"] = layers.reader.stats()
            out["extensions"] = layers.index.status()
            out["index"] = layers.index.index_status()
            out["filesystem"] = {**layers.ops.counters, "inodes": len(layers.ops.inodes)}
            out["readers"] = layers.ops.readers_status()
            out["outbox"] = layers.outbox.queue() if layers.outbox is not None else []
            if layers.freshness is not None:
                out["push"] = layers.freshness.status()
            if layers.notifier is not None:
                out["notify"] = {"state": layers.notifier.state,
                                 "raised": layers.notifier.raised}
            if layers.exports is not None:
                out["exports"] = layers.exports.status()
            if layers.pins is not None:
                out["pinning"] = layers.pins.status()
        return out

    async def run(self, ready: trio.Event | None = None) -> None:
        """Build the layers bottom-up, mount, serve until unmounted, then close them."""
        self._t0 = time.monotonic()
        cfg = self.cfg
        state_root, cache_root = await _private_dirs(cfg)
        store = token_store(cfg)
        tokens = store.load()
        client = self.client = make_client(cfg, store)
        async with client, trio.open_nursery() as nursery:
            owner = await self._owner(client, tokens)
            cache = await BlockCache.open(cache_root, budget=cfg.cache_size)
            if cache.healed is not None:
                self.healed.append(cache.healed)
            unclean = _mark_running(cache_root)
            if unclean:
                nursery.start_soon(_check_cache, cache)
            source = ApiContentSource(client, client.scheduler)
            reader = ContentReader(cache, source, nursery,
                                   ReaderConfig(read_deadline_s=cfg.read_timeout))
            index = await self._open_index(client, state_root, owner)
            self.layers = await self._assemble(client, cache, source, reader, index, nursery)
            await self._serve(self.layers, nursery, ready, cache_root)

    async def _owner(self, client: RcClient, tokens: TokenSet | None) -> str | None:
        """The token owner's extension id; logs in first when no session is stored."""
        if tokens is None or tokens.owner_id is None:
            try:
                await client.tokens.access_token(client.deadline_in(30))
            except RcError as exc:
                action = client.tokens.status().get("last_error") or {}
                hint = f" ({action['action']})" if action.get("action") else ""
                raise MountError(f"cannot log in to {self.cfg.server}: {exc}{hint}") from None
            tokens = client.tokens.current
        return tokens.owner_id if tokens is not None else "unknown"

    async def _open_index(self, client: RcClient, state_root: Path,
                          owner: str | None) -> MetadataIndex:
        """The metadata index of this account: its snapshot first (a remount shows what it
        knows without the network), the extension list only on a first mount."""
        cfg = self.cfg
        index = MetadataIndex(client, state_root / "accounts" / _digest(cfg.server,
                              owner or ""), refresh_interval=cfg.refresh_interval,
                              tz=_tz(cfg.timezone), lookup_deadline=cfg.lookup_deadline)
        await index.open()
        self.startup["index_open_s"] = round(time.monotonic() - self._t0, 3)
        if index.store is not None and index.store.healed is not None:
            self.healed.append(index.store.healed)
        if not index.states:
            # A first mount: the mailbox folders come from the extension list. A
            # remount shows what the index knows at once; refreshing starts after.
            try:
                await index.load_extensions()
            except RcError as exc:
                raise MountError(f"cannot reach {cfg.server} and nothing is cached: "
                                 f"{exc}") from None
        return index

    async def _assemble(self, client: RcClient, cache: BlockCache, source: ApiContentSource,
                        reader: ContentReader, index: MetadataIndex,
                        nursery: trio.Nursery) -> Layers:
        """The layers above the index (outbox, exports, pins, FUSE operations, freshness,
        notifications), wired to each other's callbacks and bound to ``nursery``."""
        cfg = self.cfg
        options = MountOptions(
            uid=cfg.uid if cfg.uid >= 0 else os.getuid(),
            gid=cfg.gid if cfg.gid >= 0 else os.getgid(),
            umask=cfg.umask, allow_delete=cfg.allow_delete, read_timeout=cfg.read_timeout,
            thumbnails=cfg.thumbnails, thumbnail_wait=cfg.thumbnail_wait,
            mountpoint=self.abs_mountpoint)
        # The outbox spool and journal live beside the index of the same account.
        outbox = make_outbox(cfg, client, index.state_dir / "outbox")
        await trio.to_thread.run_sync(outbox.open)
        runner = ReportRunner(client)

        def can_export() -> bool:
            return index.me is not None and index.me.is_admin and not exports.refused

        exports = ExportManager(runner, index.state_dir / "exports.json", can_export)
        exports.load()
        source.renew = exports.fresh_uri
        pins = PinManager(reader, index, index.state_dir / "pins.json",
                          rate_of=lambda group: _rate(client, group),
                          bulk=BulkExport(runner, source, cache, reader.forget),
                          can_export=can_export)
        pins.load()
        account_calls = AccountCalls(
            index, index.tz, lambda: index.me is not None and index.me.is_admin)
        # The tree the mount shows: the FUSE layer resolves inodes through it, and pinning
        # walks the folders it pins through it.
        view = NamespaceView(index, reader, outbox, [exports, pins, account_calls],
                             self.status)
        pins.resolve = view.resolve
        pins.children = view.children
        ops = RcfsOperations(view, options, outbox=outbox)
        exports.on_rename = ops.forget_path
        outbox.on_gone = ops.outbox_gone
        outbox.on_change = ops.outbox_changed
        notifier = None
        if cfg.notify:
            notifier = DesktopNotifier(
                lambda ext, mid: message_file(index, self.mountpoint, ext, mid))
        fresh = make_freshness(cfg, client, index, self.mountpoint, notifier)

        def changed(ext_id: str, removed: list[tuple[str, ...]],
                    folders: list[tuple[str, ...]]) -> None:
            ops.tree_changed(ext_id, removed, folders)
            pins.changed()
            account_calls.changed()

        index.on_change = changed
        index.on_messages = fresh.messages_written
        index.bind(nursery)
        ops.bind(nursery)
        exports.bind(nursery)
        return Layers(client, cache, reader, index, ops, outbox, freshness=fresh,
                      notifier=notifier, exports=exports, pins=pins)

    async def _serve(self, layers: Layers, nursery: trio.Nursery, ready: trio.Event | None,
                     cache_root: Path) -> None:
        """Mount, run the background tasks until unmounted, then close every layer (the
        unmount happens whatever went wrong)."""
        outbox, fresh, pins = layers.outbox, layers.freshness, layers.pins
        assert outbox is not None and fresh is not None and pins is not None
        fuse_options = set(pyfuse3.default_options)
        fuse_options |= {"fsname=rcfs", "subtype=rcfs", "noatime"}
        if self.cfg.allow_other:
            fuse_options.add("allow_other")
        pyfuse3.init(layers.ops, str(self.mountpoint), fuse_options)
        try:
            nursery.start_soon(self._signals, nursery)
            nursery.start_soon(self._announce, ready)
            nursery.start_soon(self._refresh_loop)
            nursery.start_soon(outbox.run)
            nursery.start_soon(fresh.run)
            if layers.notifier is not None:
                nursery.start_soon(layers.notifier.run)
            nursery.start_soon(pins.run)
            await pyfuse3.main()
        finally:
            # Always unmount: a dead mount freezes whoever touches the folder next.
            pyfuse3.close(unmount=True)
            sdnotify.notify("STOPPING=1")
            with trio.CancelScope(shield=True):
                # Blocks already downloaded were paid for: let them reach the disk.
                await layers.reader.aclose()
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await layers.index.close()
                await layers.cache.aclose()
                outbox.close()
                _mark_clean(cache_root)

    async def _signals(self, nursery: trio.Nursery) -> None:
        # Stays subscribed after the first signal, so a second Ctrl-C during the unmount
        # cannot interrupt the cleanup half-way.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            first = True
            async for signum in signals:
                if first:
                    log.info("signal %d: unmounting %s", signum, self.mountpoint)
                    pyfuse3.terminate()
                    first = False
                else:
                    log.info("signal %d: already unmounting", signum)

    async def _announce(self, ready: trio.Event | None) -> None:
        """READY once the mount answers (a stat of the root goes through FUSE)."""
        def _probe() -> bool:
            try:
                return os.path.ismount(self.mountpoint) and os.stat(self.mountpoint) is not None
            except OSError:
                return False

        for _ in range(600):
            if await trio.to_thread.run_sync(_probe):
                self.startup["answer_s"] = round(time.monotonic() - self._t0, 3)
                break
            await trio.sleep(0.05)
        # Only now: the kernel clamps read-ahead to what the server's INIT reply says.
        await trio.to_thread.run_sync(raise_read_ahead, self.mountpoint, self.cfg.read_ahead_kib)
        log.info("rcfs %s mounted at %s", __version__, self.mountpoint)
        sdnotify.notify("READY=1")
        if ready is not None:
            ready.set()
        # STATUS= every 30 s, and within STATUS_POLL_S when the login state changes (a lost
        # session must show in `systemctl --user status` before the next half minute).
        last_auth, last_sent = "", -math.inf
        while True:
            auth = auth_line(self.auth_status())
            if auth != last_auth or trio.current_time() - last_sent >= 30:
                sdnotify.notify("STATUS=" + self.status_line())
                last_auth, last_sent = auth, trio.current_time()
            await trio.sleep(STATUS_POLL_S)

    def status_line(self) -> str:
        if self.layers is None:
            return "starting"
        stats = self.layers.client.scheduler.stats()
        sent = sum(int(g.get("sent", 0)) for g in stats.get("groups", stats).values()
                   if isinstance(g, dict))
        content = self.layers.reader.stats()
        return (f"{len(self.layers.index.states)} mailboxes, {sent} requests, "
                f"{content.get('bytes_read', 0)} bytes read; {auth_line(self.auth_status())}")

    async def _refresh_loop(self) -> None:
        """Load every mailbox's message store once in the background (Light requests), then
        keep fresh only what is in use: nothing Medium or Heavy runs on a timer while
        nobody looks (the call log only for Recordings in use, greetings for Greetings).
        The sleep is the polling interval: ``refresh_interval``, or the push safety net's
        while the socket is healthy (push events sync a mailbox as soon as it changes)."""
        assert self.layers is not None and self.layers.freshness is not None
        index, fresh = self.layers.index, self.layers.freshness
        await index.check()  # the full integrity check, now that the mount answers
        if not index.extensions_at:
            try:
                await index.load_extensions(Priority.METADATA)
                fresh.mailboxes_changed()
            except RcError as exc:
                log.warning("RingCentral unreachable (%s); serving the cached listing", exc)
                index.extensions_at = time.time()
        for ext_id in list(index.states):
            try:
                await index.refresh(ext_id, Priority.METADATA)
            except RcError:
                pass  # logged by the index; stale-if-error
        fresh.arm()  # what the initial load found is not news
        while True:
            await fresh.wait_poll()
            used = [e for e in index.states if index.in_use(e)]
            if used and time.time() - index.extensions_at >= EXTENSIONS_REFRESH:
                # Users added to (or removed from) the account appear without a remount.
                try:
                    await index.load_extensions(Priority.BACKGROUND)
                    fresh.mailboxes_changed()
                except RcError as exc:
                    log.info("extension list not refreshed: %s", exc)
                    index.extensions_at = time.time()
            for ext_id in used:
                index.touch(ext_id, user=False)
                for area in (*layout.CALL_AREAS, layout.GREETINGS):
                    if index.in_use(ext_id, area):
                        index.touch(ext_id, area, user=False)
