"""Interop peer: librdkafka (through Python confluent-kafka) driven from the
command line, mirroring JavaPeer's modes. One JSON object per line on stdout;
diagnostics on stderr.

Modes (all take --bootstrap):
  partition --topic T KEY...        partition librdkafka's murmur2_random picks
                                    (produces one record per key to T)
  produce --topic T --count N [--partition P] [--compression C]
          [--key-prefix S] [--value-prefix S] [--headers] [--timestamp MS]
  txn-produce --topic T --transactional-id X --transactions N
          --per-transaction M [--abort-every K] [--partition P]
          [--value-prefix S] [--hold-open-ms MS] [--compression C]
          [--timestamp MS]
--timestamp MS gives the records explicit create times MS, MS+1, ... in send
order (otherwise the client's clock is used).
  consume --topic T [--isolation read_committed|read_uncommitted]
          [--expect N] [--idle-ms MS] [--group G]
  group-consume --topic T --group G [--assignor A] [--run-ms MS]
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def parse(argv):
    opts, rest, i = {}, [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                opts[a[2:]] = "true"
            else:
                opts[a[2:]] = argv[i + 1]
                i += 1
        else:
            rest.append(a)
        i += 1
    return opts, rest


def out(obj):
    print(json.dumps(obj), flush=True)


def text(b):
    return None if b is None else b.decode("utf-8", "replace")


def producer(opts, extra=None):
    conf = {
        "bootstrap.servers": opts["bootstrap"],
        "compression.type": opts.get("compression", "none"),
        "linger.ms": 5,
        "partitioner": "murmur2_random",
    }
    conf.update(extra or {})
    return Producer(conf)


def check_delivery(errors):
    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
    return cb


def mode_partition(opts, rest):
    p = producer(opts)
    results = {}

    def cb(err, msg):
        if err is None:
            results[text(msg.key())] = msg.partition()
        else:
            print(f"rdkafka-peer: delivery failed: {err}", file=sys.stderr)

    for key in rest:
        p.produce(opts["topic"], key=key.encode(), value=b"p", on_delivery=cb)
    p.flush(60)
    for key in rest:
        print(f"{key}\t{results.get(key, -1)}")


def mode_produce(opts, rest):
    p = producer(opts)
    topic, count = opts["topic"], int(opts["count"])
    kp, vp = opts.get("key-prefix"), opts.get("value-prefix", "rdkafka-")
    part = int(opts["partition"]) if "partition" in opts else None
    acked, errors = {}, []

    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked[text(msg.value())] = (msg.partition(), msg.offset())

    for i in range(count):
        kw = {"value": f"{vp}{i}".encode(), "on_delivery": cb}
        if kp is not None:
            kw["key"] = f"{kp}{i}".encode()
        if part is not None:
            kw["partition"] = part
        if "headers" in opts:
            kw["headers"] = [(f"h{i}", f"hv{i}".encode())]
        if "timestamp" in opts:
            kw["timestamp"] = int(opts["timestamp"]) + i
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    p.flush(120)
    if errors:
        sys.exit(f"rdkafka-peer: {len(errors)} deliveries failed, first: {errors[0]}")
    for i in range(count):
        v = f"{vp}{i}"
        part_, off = acked[v]
        out({"partition": part_, "offset": off, "value": v})


def mode_txn_produce(opts, rest):
    errors = []
    p = producer(opts, {"transactional.id": opts["transactional-id"]})
    p.init_transactions(60)
    topic = opts["topic"]
    txns, per = int(opts["transactions"]), int(opts["per-transaction"])
    abort_every = int(opts.get("abort-every", "0"))
    hold = int(opts.get("hold-open-ms", "0"))
    part = int(opts["partition"]) if "partition" in opts else None
    vp = opts.get("value-prefix", "rdkafka-txn-")
    committed, aborted = [], []
    for t in range(txns):
        p.begin_transaction()
        vals = []
        for i in range(per):
            v = f"{vp}{t}-{i}"
            vals.append(v)
            kw = {"value": v.encode(), "on_delivery": check_delivery(errors)}
            if part is not None:
                kw["partition"] = part
            if "timestamp" in opts:
                kw["timestamp"] = int(opts["timestamp"]) + t * per + i
            p.produce(topic, **kw)
        p.flush(60)
        if hold:
            out({"open": t})
            time.sleep(hold / 1000.0)
        if abort_every and (t + 1) % abort_every == 0:
            p.abort_transaction(60)
            aborted += vals
        else:
            p.commit_transaction(60)
            committed += vals
    if errors:
        sys.exit(f"rdkafka-peer: {len(errors)} deliveries failed, first: {errors[0]}")
    out({"committed": committed, "aborted": aborted})


def mode_consume(opts, rest, group=False):
    conf = {
        "bootstrap.servers": opts["bootstrap"],
        "group.id": opts.get("group", "rdkafka-peer-unused"),
        "isolation.level": opts.get("isolation", "read_uncommitted"),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    }
    if "assignor" in opts:
        conf["partition.assignment.strategy"] = opts["assignor"]
    c = Consumer(conf)
    topic = opts["topic"]
    expect = int(opts.get("expect", "-1"))
    idle_ms = int(opts.get("idle-ms", "5000"))
    run_ms = int(opts.get("run-ms", "0"))

    def event(kind):
        def cb(consumer, parts):
            out({"event": kind, "partitions": [[tp.topic, tp.partition] for tp in parts]})
            if kind == "assigned" and opts.get("assignor") == "cooperative-sticky":
                consumer.incremental_assign(parts)
            elif kind != "assigned" and opts.get("assignor") == "cooperative-sticky":
                consumer.incremental_unassign(parts)
        return cb

    if group:
        c.subscribe([topic], on_assign=event("assigned"), on_revoke=event("revoked"), on_lost=event("lost"))
    else:
        md = c.list_topics(topic, timeout=30)
        parts = md.topics[topic].partitions
        c.assign([TopicPartition(topic, p, -2) for p in parts])  # -2: beginning
    start = last = time.time()
    seen = 0
    try:
        while True:
            now = time.time()
            if run_ms and (now - start) * 1000 >= run_ms:
                break
            if not run_ms and 0 <= expect <= seen:
                break
            if not run_ms and (now - last) * 1000 >= idle_ms:
                break
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                print(f"rdkafka-peer: {m.error()}", file=sys.stderr)
                continue
            seen += 1
            last = time.time()
            out({
                "partition": m.partition(),
                "offset": m.offset(),
                "key": text(m.key()),
                "value": text(m.value()),
                "headers": [[k, text(v)] for k, v in (m.headers() or [])],
            })
            if group:
                c.commit(message=m, asynchronous=False)
    finally:
        c.close()


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: rdkafka_peer.py MODE [--opt value]...")
    mode = sys.argv[1]
    opts, rest = parse(sys.argv[2:])
    try:
        if mode == "partition":
            mode_partition(opts, rest)
        elif mode == "produce":
            mode_produce(opts, rest)
        elif mode == "txn-produce":
            mode_txn_produce(opts, rest)
        elif mode == "consume":
            mode_consume(opts, rest)
        elif mode == "group-consume":
            mode_consume(opts, rest, group=True)
        else:
            sys.exit(f"rdkafka-peer: unknown mode {mode}")
    except KafkaException as e:
        sys.exit(f"rdkafka-peer: {e}")


if __name__ == "__main__":
    main()
