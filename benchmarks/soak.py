"""Soak test of the shipping path (documented in docs/daemon.md; not in CI).

    nice -n 10 python benchmarks/soak.py --minutes 10 [--streams 20] [--fps 10] [--seed 1]
                                         [--out benchmarks/results/soak.json]

Loopback only. ``--streams`` ``sensor-encode`` processes (``--model raw``, a synthetic source,
their spools on one small tmpfs when this machine may mount one) ship to one ``sensor-receive``
while a chaos loop injects, at random, for ``--minutes``:

- ``kill -9`` of an encoder (sometimes with a byte flipped in its unsynced active segment
  while it is down), restarted after 0.2-2 s;
- ``kill -9`` of the receiver, restarted after 0.5-3 s (sometimes with a byte flipped inside a
  stored FRAME while it is down: acknowledged data damaged at rest);
- disk filling: a filler file takes every free byte of the spool disk for 3-10 s, then drains;
- a byte flip in a sealed spool segment.

Then the backlogs drain (up to 60 s), the encoders get SIGTERM (they seal and upload for up to
20 s) and every stream is checked:

- every acknowledged frame (the encoders log each acknowledged segment's frame seqs at debug
  level) is stored exactly once, unless the soak itself damaged that stored frame;
- no seq is stored twice; every seq up to the highest stored is a stored frame or in a GAP,
  except seqs the soak damaged in the store (the receiver reports them as missing) and seqs
  still in a spool at the end (not yet acknowledged);
- every stored frame decodes.

Writes JSON with the machine, versions, counts of each fault, per-stream totals and ``ok``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from encoder_runtime.container import PREAMBLE, RecordType, scan_records  # noqa: E402
from encoder_runtime.daemon.faults import (ReceiverProcess, SmallDisk, encoder_process, flip_byte,  # noqa: E402
                                           verify_stream)
from encoder_runtime.daemon.spool import inspect_segment  # noqa: E402
from encoder_runtime.daemon.store import RangeSet  # noqa: E402

ACK_RE = re.compile(r"acked segment \d+ stream (\S+) frames (\S+)")


def machine() -> dict:
    """Machine, versions and thread settings recorded with the result."""
    import numpy
    import zstandard

    return {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "numpy": numpy.__version__,
            "zstandard": zstandard.__version__, "encoder_threads": 1, "loadavg_start": list(os.getloadavg())}


class Soak:
    """The processes, the chaos and the bookkeeping of one soak run."""

    def __init__(self, work: Path, spool_root: Path, args) -> None:
        self.work, self.spool_root, self.args = work, spool_root, args
        self.rng = random.Random(args.seed)
        # All senders share 127.0.0.1: lift the per-address limits (defaults 16 and 4) above the fleet.
        self.rx = ReceiverProcess(work / "store", work / "rx.log", "--max-connections-per-peer",
                                  str(4 * args.streams), "--max-handshakes-per-peer", str(2 * args.streams),
                                  "--max-handshakes", str(2 * args.streams + 8))
        self.streams = [f"soak{i:02d}" for i in range(args.streams)]
        self.enc: dict[str, object] = {}
        self.events = {"encoder_kill9": 0, "active_flip": 0, "receiver_kill9": 0, "store_flip": 0,
                       "disk_fill": 0, "spool_flip": 0, "disk_full_seconds": 0.0}
        self.store_damaged: dict[str, set[int]] = {s: set() for s in self.streams}

    # -- processes ---------------------------------------------------------------------------
    def start_encoder(self, sid: str) -> None:
        a = self.args
        self.enc[sid] = encoder_process(
            self.spool_root, self.rx.port, sid, self.work / f"enc-{sid}.log",
            "--source", f"synthetic:{a.shape},fps={a.fps}", "--spool-max-bytes", "2MiB",
            "--segment-max-bytes", "64KiB", "--spool-min-free-bytes", "256KiB", "--segment-max-age", "300ms",
            "--shutdown-timeout", "20s", "--log-level", "debug")

    def kill_encoder(self, sid: str) -> None:
        p = self.enc[sid]
        if p.poll() is None:
            p.kill()
            p.wait()

    # -- faults ------------------------------------------------------------------------------
    def fault_encoder(self) -> None:
        sid = self.rng.choice(self.streams)
        self.kill_encoder(sid)
        self.events["encoder_kill9"] += 1
        active = self.spool_root / sid / "active.scd.open"
        if self.rng.random() < 0.3 and active.exists() and active.stat().st_size > 200:
            flip_byte(active, self.rng.randrange(PREAMBLE.size, active.stat().st_size))
            self.events["active_flip"] += 1
        time.sleep(self.rng.uniform(0.2, 2.0))
        self.start_encoder(sid)

    def fault_receiver(self) -> None:
        self.rx.kill()
        self.events["receiver_kill9"] += 1
        if self.rng.random() < 0.5:
            self.flip_store()
        time.sleep(self.rng.uniform(0.5, 3.0))
        if self.rng.random() < 0.5:   # sealed segments pile up while the receiver is down
            self.fault_spool()
        self.rx.start()

    def flip_store(self) -> None:
        """Flip a byte inside one stored FRAME's payload (receiver down); remember its seq."""
        sid = self.rng.choice(self.streams)
        files = sorted((self.rx.store / sid).glob("*.scd"))
        if not files:
            return
        path = self.rng.choice(files)
        data = path.read_bytes()
        res = scan_records(data, offset=PREAMBLE.size)
        pos, frames = PREAMBLE.size, []
        for r in res.records:
            if r.type == RecordType.FRAME and len(r.payload) > 8:
                frames.append((pos, r))
            pos += r.size
        if not frames:
            return
        pos, rec = self.rng.choice(frames)
        flip_byte(path, pos + 32 + self.rng.randrange(len(rec.payload)))
        self.store_damaged[sid].add(rec.seq)
        self.events["store_flip"] += 1

    def fault_disk(self) -> None:
        filler = self.spool_root / "filler"
        st = os.statvfs(self.spool_root)
        try:
            with open(filler, "wb") as f:
                f.write(b"\0" * (st.f_bavail * st.f_frsize))
        except OSError:
            pass   # the disk is full: that is the point
        self.events["disk_fill"] += 1
        hold = self.rng.uniform(3.0, 10.0)
        time.sleep(hold)
        self.events["disk_full_seconds"] += hold
        filler.unlink()

    def fault_spool(self) -> None:
        sid = self.rng.choice(self.streams)
        segs = sorted((self.spool_root / sid / "ready").glob("*.scd"))
        if not segs:
            return
        seg = self.rng.choice(segs)
        try:
            flip_byte(seg, self.rng.randrange(PREAMBLE.size, seg.stat().st_size))
            self.events["spool_flip"] += 1
        except (OSError, ValueError):
            pass   # acknowledged and deleted meanwhile

    def chaos(self, seconds: float) -> None:
        faults = [(self.fault_encoder, 4), (self.fault_receiver, 1), (self.fault_spool, 3)]
        if self.args.disk_ok:
            faults.append((self.fault_disk, 1))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(self.rng.uniform(0.5, 3.0))
            fn = self.rng.choices([f for f, _w in faults], [w for _f, w in faults])[0]
            fn()
            for sid, p in self.enc.items():   # an encoder that exits on its own is a failure
                if p.poll() is not None and p.returncode != -9:
                    raise RuntimeError(f"encoder {sid} exited with {p.returncode}: "
                                       f"{(self.work / f'enc-{sid}.log').read_text()[-2000:]}")

    # -- checks ------------------------------------------------------------------------------
    def acked(self, sid: str) -> RangeSet:
        """Frame seqs the encoders of ``sid`` saw acknowledged (from their debug logs)."""
        out = RangeSet()
        for line in (self.work / f"enc-{sid}.log").read_text(errors="replace").splitlines():
            m = ACK_RE.search(line)
            if not m or m.group(1) != sid or m.group(2) == "-":
                continue
            for part in m.group(2).split(","):
                try:
                    a, b = (int(x) for x in part.split("-"))
                except ValueError:
                    continue   # a line cut by kill -9
                out.add(a, b)
        return out

    def spooled(self, sid: str) -> RangeSet:
        """Seqs still in the spool at the end (never acknowledged)."""
        out = RangeSet()
        d = self.spool_root / sid
        for p in list((d / "ready").glob("*.scd")) + list(d.glob("*.open")):
            try:
                info = inspect_segment(p.read_bytes(), strict=False, resync=True)
            except ValueError:
                continue
            for s in info.frame_seqs:
                out.add(s, s)
            for a, b, _r in info.gaps:
                out.add(a, b)
        return out

    def check(self, sid: str) -> dict:
        res = verify_stream(self.rx.store, sid, allow_missing=True)
        acked, stored, damaged = self.acked(sid), res["frame_seqs"], self.store_damaged[sid]
        spooled = self.spooled(sid)
        lost_acked = [(a, b) for a, b in acked.ranges() for x, y in stored.uncovered(a, b)
                      if any(s not in damaged for s in range(x, y + 1))][:20]
        unexplained = []
        for a, b in res["missing"]:
            for s in range(a, b + 1):
                if s not in damaged and s not in spooled:
                    unexplained.append(s)
        reasons: dict[str, int] = {}
        for a, b, r in res["gaps"]:
            reasons[r] = reasons.get(r, 0) + b - a + 1
        return {"frames_stored": res["frames"], "acked_frames": acked.count(), "highest_seq": res["highest"],
                "gap_seqs": res["gap_seqs"], "gap_seqs_by_reason": reasons,
                "store_damaged_frames": len(damaged), "missing_seqs": sum(b - a + 1 for a, b in res["missing"]),
                "unacked_in_spool_at_end": spooled.count(),
                "acked_but_not_stored": lost_acked, "unexplained_missing": unexplained[:20],
                "ok": not lost_acked and not unexplained}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="chaos duration")
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--shape", default="32x32x3")
    ap.add_argument("--disk-mib", type=int, default=24, help="size of the spool tmpfs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "soak.json"))
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sensorcodec-soak-"))
    disk = SmallDisk(work / "spooldisk", args.disk_mib * 1024 * 1024).__enter__()
    args.disk_ok = disk.mounted
    if not disk.mounted:
        print(f"soak: no small disk ({disk.error}); disk-fill faults are skipped", file=sys.stderr)
    soak = Soak(work, disk.path, args)
    result: dict = {"machine": machine(), "config": {k: v for k, v in vars(args).items()},
                    "model": "raw", "work": str(work)}
    t0 = time.monotonic()
    try:
        soak.rx.start()
        for sid in soak.streams:
            soak.start_encoder(sid)
        print(f"soak: {args.streams} streams, {args.minutes} min of chaos, work {work}", flush=True)
        soak.chaos(args.minutes * 60)
        if not soak.rx.alive():
            soak.rx.start()
        (disk.path / "filler").unlink(missing_ok=True)
        deadline = time.monotonic() + 60   # let the backlogs drain (the sources keep running)
        while time.monotonic() < deadline and any(
                len(list((disk.path / sid / "ready").glob("*.scd"))) > 2 for sid in soak.streams):
            time.sleep(1.0)
        time.sleep(5.0)   # every encoder restarted by the chaos has installed its SIGTERM handler
        for p in soak.enc.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        exit_codes = {}
        for sid, p in soak.enc.items():
            try:
                exit_codes[sid] = p.wait(60)
            except Exception:
                p.kill()
                exit_codes[sid] = "timeout"
        time.sleep(1.0)
        soak.rx.stop()
        streams = {sid: soak.check(sid) for sid in soak.streams}
        tracebacks = sum((work / f"enc-{sid}.log").read_text(errors="replace").count("Traceback")
                         for sid in soak.streams)
        tot = {k: sum(s[k] for s in streams.values()) for k in
               ("frames_stored", "acked_frames", "gap_seqs", "store_damaged_frames", "missing_seqs",
                "unacked_in_spool_at_end")}
        result.update({
            "seconds": round(time.monotonic() - t0, 1), "events": soak.events, "totals": tot,
            "encoder_exit_codes_at_end": exit_codes, "tracebacks_in_encoder_logs": tracebacks,
            "streams": streams,
            "ok": all(s["ok"] for s in streams.values()) and tracebacks == 0
                  and all(c == 0 for c in exit_codes.values())})
    finally:
        for sid in soak.enc:
            soak.kill_encoder(sid)
        soak.rx.stop()
        disk.__exit__(None, None, None)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result.get(k) for k in ("seconds", "events", "totals", "ok")}, indent=2))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
