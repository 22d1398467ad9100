#!/usr/bin/env python3
"""The peer benchmark: kafkawire against librdkafka (rdkafka crate), franz-go
and the Java client on the same broker and workloads (benches/README.md).

    benches/run.py --quick        # ~3-5 minutes, one round, for development
    benches/run.py                # the full comparison, bounded by --budget

Builds the four clients, starts a one-broker Kafka 4 cluster (or uses
KAFKAWIRE_BOOTSTRAP), runs every workload in rounds with the clients in
shuffled order, measures each client process (CPU = utime + stime from
wait4, peak RSS), checks every run (count, checksum, no duplicates, only
committed records) before its figures count, and writes the ratio table
(median of per-round ratios kafkawire / peer, with min and max) to
benches/results/.
"""
import argparse, json, os, random, re, shutil, statistics, struct, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KL = os.path.join(ROOT, "compose", "kafka-local")
TARGET = os.path.join(ROOT, "target", "peer-bench")
CLIENTS = ["kafkawire", "librdkafka", "franz-go", "java"]
PEERS = CLIENTS[1:]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, cwd=ROOT, **kw).stdout.strip()


# ---------------------------------------------------------------- workloads

def workloads(quick):
    """(id, label, spec) for every comparison. spec keys: kind (produce, txn,
    latency, consume), count, size, partitions, compression, txn_every,
    isolation, duration_s and skip_s (latency: run time, and the start that
    the latency percentiles leave out)."""
    w = []
    if quick:
        w.append(("W1-p4-none", "W1 100 B x {n}, 4 partitions, none", dict(kind="produce", count=500_000, size=100, partitions=4, compression="none")))
        w.append(("W2-p4-lz4", "W2 1 KiB x {n}, 4 partitions, lz4", dict(kind="produce", count=100_000, size=1024, partitions=4, compression="lz4")))
        w.append(("W3-p4-t1000", "W3 txn 100 B x {n}, commit every 1,000", dict(kind="txn", count=200_000, size=100, partitions=4, compression="none", txn_every=1000)))
        w.append(("W4-p4-committed", "W4 consume {n} (+aborted), read_committed", dict(kind="consume", count=400_000, size=100, partitions=4, isolation="read_committed")))
        w.append(("W5-p4", "W5 100 B at fixed rate, 10 s (first 2 s not in the percentiles)", dict(kind="latency", size=100, partitions=4, compression="none", duration_s=10, skip_s=2)))
        return w
    for comp in ["none", "lz4", "zstd"]:
        w.append((f"W1-p4-{comp}", f"W1 100 B x {{n}}, 4 partitions, {comp}", dict(kind="produce", count=10_000_000, size=100, partitions=4, compression=comp)))
    w.append(("W1-p1-none", "W1 100 B x {n}, 1 partition, none", dict(kind="produce", count=10_000_000, size=100, partitions=1, compression="none")))
    for comp in ["none", "lz4", "zstd"]:
        w.append((f"W2-p4-{comp}", f"W2 1 KiB x {{n}}, 4 partitions, {comp}", dict(kind="produce", count=2_000_000, size=1024, partitions=4, compression=comp)))
    w.append(("W2-p1-none", "W2 1 KiB x {n}, 1 partition, none", dict(kind="produce", count=2_000_000, size=1024, partitions=1, compression="none")))
    for every in [1000, 10000]:
        w.append((f"W3-p4-t{every}", f"W3 txn 100 B x {{n}}, commit every {every:,}", dict(kind="txn", count=2_000_000, size=100, partitions=4, compression="none", txn_every=every)))
    for iso in ["read_uncommitted", "read_committed"]:
        w.append((f"W4-p4-{iso.split('_')[1]}", f"W4 consume {{n}} (+aborted), {iso}", dict(kind="consume", count=4_000_000, size=100, partitions=4, isolation=iso)))
    w.append(("W5-p4", "W5 100 B at fixed rate, 30 s (first 2 s not in the percentiles)", dict(kind="latency", size=100, partitions=4, compression="none", duration_s=30, skip_s=2)))
    return w


# ---------------------------------------------------------------- clients

class Clients:
    def __init__(self, args):
        self.bootstrap = args.bootstrap
        self.pin = args.pin
        self.java_cp = None
        self.perf = args.perf

    def build(self, compile=True):
        if not compile:
            cp = sh([KL, "--kafka", "4", "classpath"])
            self.java_cp = os.path.join(TARGET, "java") + ":" + cp
            return
        log("building the clients (cargo profile peer-bench, go build, javac)")
        subprocess.run(["cargo", "build", "--quiet", "--locked", "--profile", "peer-bench", "-p", "kafkawire-bench", "-p", "rdkafka-bench"], check=True, cwd=ROOT)
        subprocess.run(["go", "build", "-o", os.path.join(TARGET, "franz-client"), "."], check=True, cwd=os.path.join(ROOT, "benches", "franz"))
        cp = sh([KL, "--kafka", "4", "classpath"])
        out = os.path.join(TARGET, "java")
        os.makedirs(out, exist_ok=True)
        subprocess.run(["javac", "-nowarn", "-cp", cp, "-d", out, os.path.join(ROOT, "benches", "java", "BenchClient.java")], check=True)
        self.java_cp = out + ":" + cp

    def argv(self, client):
        return {
            "kafkawire": [os.path.join(TARGET, "kw-client")],
            "librdkafka": [os.path.join(TARGET, "rdk-client")],
            "franz-go": [os.path.join(TARGET, "franz-client")],
            "java": ["java", "-Xmx1g", f"-Dlog4j2.configurationFile={ROOT}/protocol-tests/interop/peer-log4j2.properties",
                     "-cp", self.java_cp, "BenchClient"],
        }[client]


def run_client(clients, client, opts, timeout):
    """One client process, measured by GNU time: CPU = user + system
    seconds, peak RSS = its ru_maxrss. (Not wait4 from here: a child forked
    from this Python process inherits the driver's RSS high-water mark.)"""
    argv = clients.argv(client) + ["--bootstrap", clients.bootstrap]
    for k, v in opts.items():
        argv += [f"--{k}", str(v)]
    if clients.perf and client == "kafkawire" and opts.get("workload") in ("produce", "consume", "txn", "latency"):
        data = os.path.join(TARGET, f"perf-{opts['workload']}.data")
        argv = ["perf", "record", "-q", "-g", "-F", "499", "-o", data, "--"] + argv
    usage = os.path.join(TARGET, "client.rusage")
    argv = ["/usr/bin/time", "-f", "%U %S %M", "-o", usage] + argv
    pin = (lambda: os.sched_setaffinity(0, {1})) if clients.pin else None
    out_path = os.path.join(TARGET, "client.out")
    err_path = os.path.join(TARGET, "client.err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT, preexec_fn=pin)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise RuntimeError(f"{client} {opts.get('workload')} timed out after {timeout}s")
        wall = time.monotonic() - t0
    stderr = open(err_path).read()
    if rc != 0:
        raise RuntimeError(f"{client} {opts.get('workload')} exited {rc}: {stderr[-2000:]}")
    lines = [l for l in open(out_path).read().splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"{client} printed no JSON line; stderr: {stderr[-2000:]}")
    r = json.loads(lines[-1])
    u, s, m = open(usage).read().split()[-3:]
    r["cpu_s"] = float(u) + float(s)
    r["rss_mib"] = int(m) / 1024.0
    r["wall_s"] = wall
    return r


# ---------------------------------------------------------------- broker side

def clusters_dir():
    """Where compose/kafka-local keeps cluster state (its KAFKAWIRE_CLUSTERS)."""
    if os.environ.get("KAFKAWIRE_CLUSTERS"):
        return os.environ["KAFKAWIRE_CLUSTERS"]
    cache = os.environ.get("KAFKAWIRE_CACHE") or os.path.expanduser("~/.cache/kafkawire")
    return os.path.join(cache, "clusters")


def use_tmpfs_for_broker_logs():
    """Puts the broker's log on /dev/shm when it has room: on this machine's
    disk, dirty-page writeback throttles the broker a little more with every
    run, so throughput (and the clients' CPU while they wait) depended on
    the order the clients ran in. In memory the broker never waits."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    if st.f_bavail * st.f_frsize < 8 << 30:
        return None
    d = "/dev/shm/kafkawire-peer-bench"
    os.makedirs(d, exist_ok=True)
    os.environ["KAFKAWIRE_CLUSTERS"] = d
    return d


def broker_pid(cluster):
    d = os.path.join(clusters_dir(), cluster, "node-1")
    return int(open(os.path.join(d, "pid")).read().strip()), os.path.join(d, "data")


def pin_broker(pid):
    """Every thread of the broker to core 0 (the clients get core 1)."""
    n = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(t), {0})
            n += 1
        except OSError:
            pass
    return n


def batches_in_log(data_dir, topic):
    """(records, batches) of the data batches (control batches skipped) in
    the topic's log segments, read straight from the broker's files."""
    recs = bats = 0
    for d in os.listdir(data_dir):
        if not re.fullmatch(re.escape(topic) + r"-\d+", d):
            continue
        for f in sorted(os.listdir(os.path.join(data_dir, d))):
            if not f.endswith(".log"):
                continue
            with open(os.path.join(data_dir, d, f), "rb") as fh:
                buf = fh.read()
            pos = 0
            while pos + 61 <= len(buf):
                length = struct.unpack_from(">i", buf, pos + 8)[0]
                if length <= 0:
                    break
                attrs = struct.unpack_from(">h", buf, pos + 21)[0]
                count = struct.unpack_from(">i", buf, pos + 57)[0]
                if not attrs & 0x20:
                    recs += count
                    bats += 1
                pos += 12 + length
    return recs, bats


# ---------------------------------------------------------------- one run

class Bench:
    def __init__(self, args, clients, cluster):
        self.args = args
        self.c = clients
        self.cluster = cluster
        self.seq = 0
        self.prefilled = {}
        self.rate = None

    def topic(self, wid, client):
        self.seq += 1
        return f"bench-{wid}-{client}-{os.getpid()}-{self.seq}".lower()

    def admin(self, workload, topic, partitions=1):
        run_client(self.c, "kafkawire", {"workload": workload, "topic": topic, "partitions": partitions}, 60)

    def verify(self, topic, spec, produced):
        """kafkawire read-back, read_committed: exactly the produced records,
        no duplicate, no aborted record, the producer's checksum."""
        r = run_client(self.c, "kafkawire", {"workload": "consume", "topic": topic, "partitions": spec["partitions"],
                                            "count": spec["count"], "isolation": "read_committed", "idle-ms": 10000}, 600)
        problems = []
        if r["unique"] != spec["count"]:
            problems.append(f"read back {r['unique']} of {spec['count']} records")
        for k in ("dups", "aborted_seen", "bad"):
            if r[k]:
                problems.append(f"{k}={r[k]}")
        if r["checksum"] != produced["checksum"]:
            problems.append(f"checksum {r['checksum']} != produced {produced['checksum']}")
        if produced.get("errors"):
            problems.append(f"{produced['errors']} delivery errors")
        return problems

    def prefill(self, spec):
        """The W4 topic: `count` committed records in transactions of 10,000
        (every 4th transaction aborted, its records marked), by kafkawire;
        checked by a read_committed read-back before use."""
        key = (spec["count"], spec["size"], spec["partitions"])
        if key not in self.prefilled:
            topic = self.topic("w4-fill", "kafkawire")
            self.admin("create-topic", topic, spec["partitions"])
            r = run_client(self.c, "kafkawire", {"workload": "txn", "topic": topic, "count": spec["count"], "size": spec["size"],
                                                "txn-every": 10000, "abort-every": 4, "transactional-id": f"fill-{topic}"}, 900)
            problems = self.verify(topic, spec, r)
            if problems:
                raise RuntimeError(f"W4 pre-fill failed its check: {problems}")
            self.prefilled[key] = (topic, r["checksum"])
            log(f"W4 pre-fill {topic}: {spec['count']} committed records (+ aborted transactions), checked")
        return self.prefilled[key]

    def warm_up(self):
        """Untimed runs before round 1, so no client pays for the fresh
        broker's JIT compilation and first-use paths (produce, transactions,
        fetch). On a fresh broker the same client's W3 runs sped up from
        47k to 360k records/s over its first ~2M transactional records, with
        commits stalled over 10 ms falling from 134 to 5 in 200."""
        t0 = time.time()
        n = 1_000_000
        for wid, spec in (("warmup-produce", dict(kind="produce", count=2 * n, size=100, partitions=4, compression="none")),
                          ("warmup-txn", dict(kind="txn", count=n, size=100, partitions=4, compression="none", txn_every=1000)),
                          ("warmup-txn", dict(kind="txn", count=n, size=100, partitions=4, compression="none", txn_every=1000))):
            _, problems = self.one(wid, spec, "kafkawire")
            if problems:
                log(f"warm-up {wid} failed its check: {problems}")
        log(f"broker warmed up in {time.time() - t0:.0f} s (not counted)")

    def one(self, wid, spec, client):
        """One client on one workload: returns (metrics, problems)."""
        kind = spec["kind"]
        base = {"size": spec["size"], "partitions": spec["partitions"]}
        if kind == "consume":
            topic, fill_sum = self.prefill(spec)
            r = run_client(self.c, client, dict(base, workload="consume", topic=topic, count=spec["count"],
                                                isolation=spec["isolation"], **{"idle-ms": 10000}), 600)
            problems = []
            if r["unique"] != spec["count"] or r["dups"] or r["bad"]:
                problems.append(f"read {r['unique']} unique of {spec['count']}, dups={r['dups']}, bad={r['bad']}")
            if spec["isolation"] == "read_committed" and r["aborted_seen"]:
                problems.append(f"read_committed returned {r['aborted_seen']} aborted records")
            if spec["isolation"] == "read_uncommitted" and not r["aborted_seen"]:
                problems.append("read_uncommitted returned no record of the aborted transactions")
            if r["checksum"] != fill_sum:
                problems.append(f"checksum {r['checksum']} != the pre-fill's {fill_sum}")
            return self.metrics(r, spec["count"]), problems
        topic = self.topic(wid, client)
        self.admin("create-topic", topic, spec["partitions"])
        opts = dict(base, workload=kind, topic=topic, compression=spec["compression"])
        if kind == "latency":
            count = int(self.rate * spec["duration_s"])
            # The producer's start-up (connections, metadata, producer id)
            # is reported as first_ack_ms, not mixed into the steady-state
            # percentiles: librdkafka's first ack takes ~0.6 s, which alone
            # made its p99 400 ms.
            opts.update({"count": count, "rate": self.rate, "lat-skip": int(self.rate * spec["skip_s"])})
            vspec = dict(spec, count=count)
        else:
            opts.update(count=spec["count"])
            vspec = spec
        if kind == "txn":
            opts.update({"txn-every": spec["txn_every"], "transactional-id": f"txn-{topic}"})
        r = run_client(self.c, client, opts, 900)
        problems = self.verify(topic, vspec, r)
        m = self.metrics(r, vspec["count"])
        recs, bats = batches_in_log(self.data_dir, topic)
        m["rec_per_batch"] = recs / bats if bats else None
        if kind == "txn" and r.get("commit_n") != -(-spec["count"] // spec["txn_every"]):
            problems.append(f"{r.get('commit_n')} commits measured")
        self.admin("delete-topic", topic)
        return m, problems

    def metrics(self, r, count):
        m = {"records_s": r["records"] / r["elapsed_s"], "mb_s": r["bytes"] / r["elapsed_s"] / 1e6,
             "cpu_per_m": r["cpu_s"] / (count / 1e6), "rss_mib": r["rss_mib"], "elapsed_s": r["elapsed_s"], "cpu_s": r["cpu_s"]}
        for k in ("lat_p50_ms", "lat_p99_ms", "lat_p999_ms", "commit_p50_ms", "commit_p99_ms", "commit_mean_ms", "commit_over10ms_n", "first_ack_ms"):
            if k in r:
                m[k] = r[k]
        return m


# ---------------------------------------------------------------- report

# metric, label, better ("higher"/"lower"), format
METRICS = [
    ("records_s", "records/s", "higher"),
    ("cpu_per_m", "CPU s / M records", "lower"),
    ("rss_mib", "peak RSS", "lower"),
    ("rec_per_batch", "records / batch", "higher"),
    ("lat_p50_ms", "latency p50", "lower"),
    ("lat_p99_ms", "latency p99", "lower"),
    ("lat_p999_ms", "latency p99.9", "lower"),
    ("first_ack_ms", "first ack (start-up)", "lower"),
    ("commit_p50_ms", "commit p50", "lower"),
    ("commit_p99_ms", "commit p99", "lower"),
    ("commit_mean_ms", "commit mean", "lower"),
]


def fmt_ratio(rs):
    if not rs:
        return "—"
    med = statistics.median(rs)
    if len(rs) == 1:
        return f"{med:.2f}"
    return f"{med:.2f} ({min(rs):.2f}–{max(rs):.2f})"


def report(results, wls, rounds_done, meta):
    """Markdown: per workload and metric, the median (min–max) over rounds
    of kafkawire / peer, then the absolute medians."""
    out = [f"Mode: {meta['mode']} (scale {meta['scale']}), {rounds_done} round(s), {meta['started']} to {meta['ended']} ({meta['minutes']:.1f} min). "
           f"W5 offered rate: {meta['rate']} records/s. Ratios are kafkawire / peer, median of per-round ratios (min–max); "
           "for records/s and records/batch higher is better for kafkawire, for the others lower is better.", ""]
    out.append("| workload | metric | vs librdkafka | vs franz-go | vs java |")
    out.append("|---|---|---|---|---|")
    for wid, label, spec in wls:
        per = results.get(wid, {})
        for key, name, _ in METRICS:
            cells = []
            anyv = False
            for peer in PEERS:
                rs = []
                for rnd in per.values():
                    k, p = rnd.get("kafkawire"), rnd.get(peer)
                    if k and p and k.get(key) is not None and p.get(key) and key in k:
                        rs.append(k[key] / p[key])
                anyv |= bool(rs)
                cells.append(fmt_ratio(rs))
            if anyv:
                out.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    out += ["", "Absolute medians over rounds:", "",
            "| workload | client | records/s | MB/s | CPU s/M rec | peak RSS MiB | rec/batch | lat p50/p99/p99.9 ms | commit p50/p99/mean ms |",
            "|---|---|---|---|---|---|---|---|---|"]
    for wid, label, spec in wls:
        per = results.get(wid, {})
        for client in CLIENTS:
            ms = [rnd[client] for rnd in per.values() if client in rnd]
            if not ms:
                continue
            med = lambda k: statistics.median([m[k] for m in ms if m.get(k) is not None]) if any(m.get(k) is not None for m in ms) else None
            f = lambda v, d=1: "—" if v is None else f"{v:,.{d}f}"
            lat = "—" if med("lat_p50_ms") is None else f"{med('lat_p50_ms'):.2f} / {med('lat_p99_ms'):.2f} / {med('lat_p999_ms'):.2f}"
            com = "—" if med("commit_p50_ms") is None else f"{med('commit_p50_ms'):.1f} / {med('commit_p99_ms'):.1f} / {f(med('commit_mean_ms'))}"
            out.append(f"| {label} | {client} | {f(med('records_s'), 0)} | {f(med('mb_s'))} | {f(med('cpu_per_m'), 2)} | {f(med('rss_mib'))} | {f(med('rec_per_batch'))} | {lat} | {com} |")
    if meta["failures"]:
        out += ["", "Runs that failed their check (figures not counted):", ""] + [f"- {x}" for x in meta["failures"]]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts, one round (~3-5 min)")
    ap.add_argument("--rounds", type=int, help="rounds (default 1 quick, 3 full)")
    ap.add_argument("--budget", type=float, help="minutes: a new round starts only if it would end within this (default 6 quick, 30 full)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every record count (not the W5 duration) by this, e.g. 0.1 on a busy machine")
    ap.add_argument("--only", help="comma-separated workload ids (e.g. W1-p4-none,W5-p4)")
    ap.add_argument("--clients", default=",".join(CLIENTS), help="subset of " + ",".join(CLIENTS))
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin broker to core 0 and clients to core 1")
    ap.add_argument("--perf", action="store_true", help="perf record -g the kafkawire produce/consume runs")
    ap.add_argument("--disk", action="store_true", help="keep the broker log on disk (default: on /dev/shm when it has 8 GiB free)")
    ap.add_argument("--cluster", default="peer-bench", help="compose/kafka-local cluster name (started and stopped here)")
    ap.add_argument("--no-build", dest="build", action="store_false", help="use the clients built last time")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=os.path.join(ROOT, "benches", "results"))
    args = ap.parse_args()
    mode = "quick" if args.quick else "full"
    rounds = args.rounds or (1 if args.quick else 3)
    budget = (args.budget or (6 if args.quick else 30)) * 60
    wls = workloads(args.quick)
    for _, _, spec in wls:
        if "count" in spec:
            spec["count"] = max(1, int(spec["count"] * args.scale))
    wls = [(wid, label.format(n=human(spec.get("count", 0))), spec) for wid, label, spec in wls]
    if args.only:
        keep = set(args.only.split(","))
        wls = [w for w in wls if w[0] in keep]
    chosen = [c for c in CLIENTS if c in args.clients.split(",")]
    if "kafkawire" not in chosen:
        sys.exit("kafkawire must be among the clients (it is the numerator)")
    rng = random.Random(args.seed)
    started = time.time()
    os.makedirs(TARGET, exist_ok=True)

    started_cluster = False
    if os.environ.get("KAFKAWIRE_BOOTSTRAP") and os.environ.get("KAFKAWIRE_CLUSTER"):
        args.cluster = os.environ["KAFKAWIRE_CLUSTER"]
        args.bootstrap = os.environ["KAFKAWIRE_BOOTSTRAP"]
    else:
        if not args.disk:
            d = use_tmpfs_for_broker_logs()
            log(f"broker log in {d} (tmpfs)" if d else "broker log on disk: /dev/shm is missing or has under 8 GiB free")
        subprocess.run([KL, "--kafka", "4", "--brokers", "1", "--name", args.cluster, "up"], check=True, cwd=ROOT)
        started_cluster = True
        args.bootstrap = sh([KL, "--name", args.cluster, "bootstrap"])
    try:
        clients = Clients(args)
        clients.build(args.build)
        bpid, data_dir = broker_pid(args.cluster)
        if args.pin:
            log(f"pinned {pin_broker(bpid)} broker threads to core 0; clients run on core 1")
        bench = Bench(args, clients, args.cluster)
        bench.data_dir = data_dir
        bench.warm_up()
        results = {}   # wid -> round -> client -> metrics
        failures = []
        rounds_done = 0
        round_secs = []
        for rnd in range(rounds):
            # A round starts only if one more, as long as the longest so far,
            # still ends within the budget.
            if rnd > 0 and time.time() - started + max(round_secs) > budget:
                log(f"another round would end past the budget of {budget/60:.0f} min: stopping after {rounds_done} round(s)")
                break
            round_start = time.time()
            for wid, label, spec in wls:
                if time.time() - started > budget * 1.5:
                    log(f"hard budget of {budget*1.5/60:.0f} min reached: skipping {wid} in round {rnd+1}")
                    continue
                if spec["kind"] == "latency" and bench.rate is None:
                    bench.rate = fixed_rate(results, chosen)
                    log(f"W5 offered rate: {bench.rate} records/s (half the slowest client's W1 maximum)")
                order = chosen[:]
                rng.shuffle(order)
                for client in order:
                    try:
                        m, problems = bench.one(wid, spec, client)
                    except Exception as e:  # a failed run is reported, not counted
                        m, problems = None, [str(e)[-600:]]
                    if problems:
                        failures.append(f"round {rnd+1} {wid} {client}: {'; '.join(problems)}")
                        log(f"FAILED round {rnd+1} {wid} {client}: {problems}")
                        continue
                    results.setdefault(wid, {}).setdefault(rnd, {})[client] = m
                    log(f"round {rnd+1} {wid} {client}: {m['records_s']:,.0f} rec/s, {m['cpu_per_m']:.2f} CPU s/M, "
                        f"{m['rss_mib']:.0f} MiB" + (f", p99 {m['lat_p99_ms']:.2f} ms, first ack {m.get('first_ack_ms', float('nan')):.0f} ms" if "lat_p99_ms" in m else "")
                        + (f", commit p99 {m['commit_p99_ms']:.1f} ms, mean {m['commit_mean_ms']:.2f} ms, "
                           f"{m['commit_over10ms_n']} over 10 ms" if "commit_p99_ms" in m else ""))
            rounds_done += 1
            round_secs.append(time.time() - round_start)
        ended = time.time()
        meta = {"mode": mode, "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
                "ended": time.strftime("%H:%M UTC", time.gmtime(ended)), "minutes": (ended - started) / 60,
                "rate": bench.rate, "failures": failures, "scale": args.scale}
        md = report(results, wls, rounds_done, meta)
        os.makedirs(args.out, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M", time.gmtime(started))
        with open(os.path.join(args.out, f"{mode}-{stamp}.md"), "w") as f:
            f.write(md)
        with open(os.path.join(args.out, f"{mode}-{stamp}.json"), "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
        print(md)
        log(f"wrote {args.out}/{mode}-{stamp}.md and .json")
        return 1 if failures else 0
    finally:
        if started_cluster:
            subprocess.run([KL, "--name", args.cluster, "down"], cwd=ROOT)


def human(n):
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div:
            return f"{n / div:g}{unit}"
    return str(n)


def fixed_rate(results, chosen):
    """Half the slowest client's W1 (4 partitions, uncompressed) maximum in
    this run; 50,000 records/s if W1 was not run."""
    w1 = results.get("W1-p4-none", {})
    best = {}
    for rnd in w1.values():
        for c, m in rnd.items():
            best[c] = max(best.get(c, 0), m["records_s"])
    if not best:
        return 50_000
    return int(min(best.values()) / 2)


if __name__ == "__main__":
    sys.exit(main())
