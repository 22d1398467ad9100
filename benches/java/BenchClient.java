// The Apache Kafka Java client's peer of the client benchmark: the same
// command line and JSON line as kafkawire's client (benches/README.md).
// Kafka's own perf tools lack the checksum, the commit-every-N transactions
// and the read_committed check, so one small program covers every workload.

import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class BenchClient {
    static final int POOL = 1024;
    static final long ABORTED_BIT = 1L << 62;

    static Map<String, String> a = new HashMap<>();

    static String arg(String k, String d) { return a.getOrDefault(k, d); }
    static long num(String k, String d) { return Long.parseLong(arg(k, d)); }

    static byte[][] payloadPool(int size) {
        long x = 0x2545F4914F6CDD1DL;
        byte[][] p = new byte[POOL][size];
        for (int i = 0; i < POOL; i++)
            for (int j = 0; j < size; j++) {
                x = x * 6364136223846793005L + 1442695040888963407L;
                p[i][j] = (byte) (0x41 + (x >>> 59));
            }
        return p;
    }

    static long be64(byte[] v, int off) {
        long r = 0;
        for (int i = 0; i < 8; i++) r = (r << 8) | (v[off + i] & 0xff);
        return r;
    }

    static void put64(byte[] v, long x) {
        for (int i = 7; i >= 0; i--) { v[i] = (byte) x; x >>>= 8; }
    }

    static long recordSum(byte[] v) {
        long idx = be64(v, 0);
        return (idx * 0x9E3779B97F4A7C15L) ^ be64(v, v.length - 8);
    }

    static long checksum, records, bytes, errors;
    static double elapsed;
    static long[] lat = new long[0], commit = new long[0];
    static int latN = 0, commitN = 0;
    /** Latency workload: nanoseconds from the first send to the first ack (-1: none). */
    static long firstAckNs = -1;
    static long[] seen;
    static long rRecords, rDups, rAborted, rBad;
    static boolean read = false;

    static void check(byte[] v) {
        rRecords++;
        if (v == null || v.length < 16) { rBad++; return; }
        bytes += v.length;
        long idx = be64(v, 0);
        if ((idx & ABORTED_BIT) != 0) { rAborted++; return; }
        if (idx < 0 || idx / 64 >= seen.length) { rBad++; return; }
        long bit = 1L << (idx % 64);
        int w = (int) (idx / 64);
        if ((seen[w] & bit) != 0) { rDups++; return; }
        seen[w] |= bit;
        checksum += recordSum(v);
    }

    static long unique() { return rRecords - rDups - rAborted - rBad; }

    static double pct(long[] s, int n, double p) {
        if (n == 0) return -1;
        int rank = (int) Math.ceil(p / 100 * n);
        rank = Math.max(1, Math.min(n, rank));
        return s[rank - 1] / 1000.0;
    }

    static Properties producerProps(boolean txn) {
        Properties p = new Properties();
        p.put("bootstrap.servers", arg("bootstrap", "127.0.0.1:9092"));
        p.put("acks", "all");
        p.put("enable.idempotence", "true");
        p.put("max.in.flight.requests.per.connection", "5");
        p.put("linger.ms", "5");
        p.put("batch.size", String.valueOf(64 * 1024));
        p.put("buffer.memory", String.valueOf(64L * 1024 * 1024));
        p.put("compression.type", arg("compression", "none"));
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        if (txn) p.put("transactional.id", arg("transactional-id", "bench-txn"));
        return p;
    }

    static int fill(byte[][] pool, long i) {
        int slot = (int) Long.remainderUnsigned(i, POOL);
        put64(pool[slot], i);
        return slot;
    }

    static void produce(boolean latency) throws Exception {
        String topic = arg("topic", "");
        long count = num("count", "0"), rate = num("rate", "0");
        // The first latSkip records' latencies are not recorded (start-up).
        long latSkip = num("lat-skip", "0");
        byte[][] pool = payloadPool((int) num("size", "100"));
        AtomicLong errs = new AtomicLong();
        if (latency) lat = new long[(int) count];
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(producerProps(false))) {
            long t0 = System.nanoTime();
            for (long i = 0; i < count; i++) {
                if (latency) {
                    long due = t0 + (long) (i * 1e9 / rate);
                    long d = due - System.nanoTime();
                    // Sleep only when the next record is 100 us or more ahead,
                    // as every client (PACE_SLEEP_MIN_US in bench_common.rs).
                    if (d > 100_000) Thread.sleep(d / 1_000_000, (int) (d % 1_000_000));
                }
                int slot = fill(pool, i);
                checksum += recordSum(pool[slot]);
                final long sent = System.nanoTime(), index = i;
                // send() serializes the value into the batch before returning,
                // so the pooled buffer may be reused at once.
                p.send(new ProducerRecord<>(topic, pool[slot]), (md, e) -> {
                    if (e != null) { if (errs.incrementAndGet() <= 5) System.err.println("java-client: " + e); return; }
                    if (!latency) return;
                    long now = System.nanoTime();
                    if (firstAckNs < 0) firstAckNs = now - t0;
                    if (index >= latSkip) lat[latN++] = (now - sent) / 1000;
                });
            }
            p.flush();
            elapsed = (System.nanoTime() - t0) / 1e9;
        }
        errors = errs.get();
        records = count;
        bytes = count * num("size", "100");
    }

    static void txn() throws Exception {
        String topic = arg("topic", "");
        long count = num("count", "0"), every = Math.max(1, num("txn-every", "1000")), abortEvery = num("abort-every", "0");
        byte[][] pool = payloadPool((int) num("size", "100"));
        AtomicLong errs = new AtomicLong();
        commit = new long[(int) (count / every + 2)];
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(producerProps(true))) {
            p.initTransactions();
            long t0 = System.nanoTime();
            long i = 0, abortedIdx = 0, nTxn = 0;
            while (i < count) {
                nTxn++;
                boolean abort = abortEvery > 0 && nTxn % abortEvery == 0;
                p.beginTransaction();
                long end = Math.min(i + every, count);
                for (long k = i; k < end; k++) {
                    long idx;
                    if (abort) { abortedIdx++; idx = ABORTED_BIT | abortedIdx; } else { idx = i; i++; }
                    int slot = fill(pool, idx);
                    if (!abort) checksum += recordSum(pool[slot]);
                    // Records of an aborted transaction fail by design.
                    p.send(new ProducerRecord<>(topic, pool[slot]), abort ? null : (md, e) -> {
                        if (e != null && errs.incrementAndGet() <= 5) System.err.println("java-client: " + e);
                    });
                }
                long c0 = System.nanoTime();
                if (abort) p.abortTransaction();
                else { p.commitTransaction(); commit[commitN++] = (System.nanoTime() - c0) / 1000; }
            }
            elapsed = (System.nanoTime() - t0) / 1e9;
        }
        errors = errs.get();
        records = count;
        bytes = count * num("size", "100");
    }

    static void consume() {
        String topic = arg("topic", "");
        long count = num("count", "0"), idleMs = num("idle-ms", "15000");
        Properties p = new Properties();
        p.put("bootstrap.servers", arg("bootstrap", "127.0.0.1:9092"));
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("isolation.level", arg("isolation", "read_uncommitted"));
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        seen = new long[(int) ((count + 63) / 64)];
        read = true;
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < num("partitions", "1"); i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            c.seekToBeginning(tps);
            long t0 = System.nanoTime(), last = System.nanoTime();
            while (unique() < count && (System.nanoTime() - last) / 1_000_000 < idleMs) {
                ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(500));
                if (!rs.isEmpty()) last = System.nanoTime();
                for (ConsumerRecord<byte[], byte[]> r : rs) check(r.value());
            }
            elapsed = (System.nanoTime() - t0) / 1e9;
        }
        records = rRecords;
    }

    public static void main(String[] argv) throws Exception {
        for (int i = 0; i + 1 < argv.length; i += 2) a.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
        String w = arg("workload", "");
        switch (w) {
            case "produce": produce(false); break;
            case "latency": produce(true); break;
            case "txn": txn(); break;
            case "consume": consume(); break;
            default: System.err.println("--workload " + w + ": expected produce, txn, latency or consume"); System.exit(2);
        }
        StringBuilder s = new StringBuilder();
        s.append(String.format(Locale.ROOT, "{\"client\":\"java\",\"workload\":\"%s\",\"records\":%d,\"bytes\":%d,\"elapsed_s\":%.6f,\"checksum\":\"%s\",\"errors\":%d",
            w, records, bytes, elapsed, Long.toUnsignedString(checksum), errors));
        for (Object[] l : new Object[][] {{"lat", lat, latN}, {"commit", commit, commitN}}) {
            long[] v = (long[]) l[1];
            int n = (Integer) l[2];
            if (n > 0) {
                Arrays.sort(v, 0, n);
                double sum = 0;
                int over10 = 0;
                for (int i = 0; i < n; i++) { sum += v[i]; if (v[i] > 10_000) over10++; }
                s.append(String.format(Locale.ROOT, ",\"%s_n\":%d,\"%s_p50_ms\":%.3f,\"%s_p99_ms\":%.3f,\"%s_p999_ms\":%.3f,\"%s_mean_ms\":%.3f,\"%s_over10ms_n\":%d",
                    l[0], n, l[0], pct(v, n, 50), l[0], pct(v, n, 99), l[0], pct(v, n, 99.9), l[0], sum / n / 1000, l[0], over10));
            }
        }
        if (firstAckNs >= 0) s.append(String.format(Locale.ROOT, ",\"first_ack_ms\":%.3f", firstAckNs / 1e6));
        if (read) s.append(String.format(Locale.ROOT, ",\"unique\":%d,\"dups\":%d,\"aborted_seen\":%d,\"bad\":%d", unique(), rDups, rAborted, rBad));
        s.append("}");
        System.out.println(s);
    }
}
