// Interop peer: the Apache Kafka Java client driven from the command line, so
// kafkawire's tests can cross it with a reference implementation. Output is
// one JSON object per line on stdout; diagnostics go to stderr.
//
// Modes (all take --bootstrap except partition):
//   partition --partitions N KEY...        default partitioner's choice per key
//   produce --topic T --count N [--partition P] [--compression C]
//           [--key-prefix S] [--value-prefix S] [--headers] [--timestamp MS]
//   txn-produce --topic T --transactional-id X --transactions N
//           --per-transaction M [--abort-every K] [--partition P]
//           [--value-prefix S] [--hold-open-ms MS] [--compression C]
//           [--timestamp MS]
// --timestamp MS gives the records explicit create times MS, MS+1, ... in
// send order (otherwise the client's clock is used).
//   consume --topic T [--isolation read_committed|read_uncommitted]
//           [--expect N] [--idle-ms MS] [--group G]
//   group-consume --topic T --group G [--assignor A] [--run-ms MS]
import java.time.Duration;
import java.util.*;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.*;
import org.apache.kafka.common.utils.Utils;

public class JavaPeer {
    static Map<String, String> opts = new HashMap<>();
    static List<String> rest = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        if (args.length == 0) die("usage: JavaPeer MODE [--opt value]...");
        String mode = args[0];
        for (int i = 1; i < args.length; i++) {
            if (args[i].startsWith("--")) {
                String k = args[i].substring(2);
                boolean flag = i + 1 >= args.length || args[i + 1].startsWith("--");
                opts.put(k, flag ? "true" : args[++i]);
            } else rest.add(args[i]);
        }
        switch (mode) {
            case "partition" -> partition();
            case "produce" -> produce();
            case "txn-produce" -> txnProduce();
            case "consume" -> consume(false);
            case "group-consume" -> consume(true);
            default -> die("unknown mode " + mode);
        }
    }

    static void die(String m) { System.err.println("java-peer: " + m); System.exit(2); }
    static String opt(String k) { String v = opts.get(k); if (v == null) die("missing --" + k); return v; }
    static String opt(String k, String d) { return opts.getOrDefault(k, d); }

    static void partition() {
        int n = Integer.parseInt(opt("partitions"));
        for (String key : rest) {
            byte[] b = key.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            System.out.println(key + "\t" + Utils.toPositive(Utils.murmur2(b)) % n);
        }
    }

    static Properties producerProps() {
        Properties p = new Properties();
        p.put("bootstrap.servers", opt("bootstrap"));
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("compression.type", opt("compression", "none"));
        p.put("linger.ms", "5");
        return p;
    }

    static void produce() throws Exception {
        String topic = opt("topic");
        int count = Integer.parseInt(opt("count"));
        Integer partition = opts.containsKey("partition") ? Integer.valueOf(opt("partition")) : null;
        String kp = opts.get("key-prefix");
        String vp = opt("value-prefix", "java-");
        boolean headers = opts.containsKey("headers");
        Long ts = timestamp();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps())) {
            List<Future<RecordMetadata>> fs = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                ProducerRecord<String, String> r = new ProducerRecord<>(topic, partition, ts == null ? null : ts + i,
                    kp == null ? null : kp + i, vp + i);
                if (headers) r.headers().add("h" + i, ("hv" + i).getBytes());
                fs.add(p.send(r));
            }
            p.flush();
            for (int i = 0; i < count; i++) {
                RecordMetadata m = fs.get(i).get();
                System.out.println("{\"partition\":" + m.partition() + ",\"offset\":" + m.offset()
                    + ",\"value\":" + json(vp + i) + "}");
            }
        }
    }

    /** The --timestamp base, or null for the client's clock. */
    static Long timestamp() { return opts.containsKey("timestamp") ? Long.valueOf(opt("timestamp")) : null; }

    static void txnProduce() throws Exception {
        String topic = opt("topic");
        int txns = Integer.parseInt(opt("transactions"));
        int per = Integer.parseInt(opt("per-transaction"));
        int abortEvery = Integer.parseInt(opt("abort-every", "0"));
        long holdOpen = Long.parseLong(opt("hold-open-ms", "0"));
        Integer partition = opts.containsKey("partition") ? Integer.valueOf(opt("partition")) : null;
        String vp = opt("value-prefix", "java-txn-");
        Long ts = timestamp();
        long sent = 0;
        Properties props = producerProps();
        props.put("transactional.id", opt("transactional-id"));
        List<String> committed = new ArrayList<>(), aborted = new ArrayList<>();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(props)) {
            p.initTransactions();
            for (int t = 0; t < txns; t++) {
                p.beginTransaction();
                List<String> vals = new ArrayList<>();
                for (int i = 0; i < per; i++) {
                    String v = vp + t + "-" + i;
                    vals.add(v);
                    p.send(new ProducerRecord<>(topic, partition, ts == null ? null : ts + sent, null, v));
                    sent++;
                }
                p.flush();
                boolean abort = abortEvery > 0 && (t + 1) % abortEvery == 0;
                if (holdOpen > 0) {
                    System.out.println("{\"open\":" + t + "}");
                    System.out.flush();
                    Thread.sleep(holdOpen);
                }
                if (abort) { p.abortTransaction(); aborted.addAll(vals); }
                else { p.commitTransaction(); committed.addAll(vals); }
            }
        }
        System.out.println("{\"committed\":" + jsonList(committed) + ",\"aborted\":" + jsonList(aborted) + "}");
    }

    static void consume(boolean group) {
        String topic = opt("topic");
        Properties p = new Properties();
        p.put("bootstrap.servers", opt("bootstrap"));
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        p.put("isolation.level", opt("isolation", "read_uncommitted"));
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        if (opts.containsKey("group")) p.put("group.id", opt("group"));
        if (opts.containsKey("assignor")) {
            String a = opt("assignor");
            String cls = switch (a) {
                case "range" -> RangeAssignor.class.getName();
                case "roundrobin" -> RoundRobinAssignor.class.getName();
                case "cooperative-sticky" -> CooperativeStickyAssignor.class.getName();
                default -> a;
            };
            p.put("partition.assignment.strategy", cls);
        }
        long expect = Long.parseLong(opt("expect", "-1"));
        long idleMs = Long.parseLong(opt("idle-ms", "5000"));
        long runMs = Long.parseLong(opt("run-ms", "0"));
        long seen = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            if (group) {
                c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    public void onPartitionsRevoked(Collection<TopicPartition> ps) { event("revoked", ps); }
                    public void onPartitionsAssigned(Collection<TopicPartition> ps) { event("assigned", ps); }
                    public void onPartitionsLost(Collection<TopicPartition> ps) { event("lost", ps); }
                });
            } else {
                List<TopicPartition> tps = new ArrayList<>();
                c.partitionsFor(topic, Duration.ofSeconds(30)).forEach(i -> tps.add(new TopicPartition(topic, i.partition())));
                c.assign(tps);
                c.seekToBeginning(tps);
            }
            long start = System.currentTimeMillis(), lastRecord = start;
            while (true) {
                long now = System.currentTimeMillis();
                if (runMs > 0 && now - start >= runMs) break;
                if (runMs == 0 && expect >= 0 && seen >= expect) break;
                if (runMs == 0 && now - lastRecord >= idleMs) break;
                ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : rs) {
                    seen++;
                    lastRecord = System.currentTimeMillis();
                    StringBuilder h = new StringBuilder("[");
                    for (Header hd : r.headers()) {
                        if (h.length() > 1) h.append(',');
                        h.append('[').append(json(hd.key())).append(',')
                            .append(hd.value() == null ? "null" : json(new String(hd.value()))).append(']');
                    }
                    h.append(']');
                    System.out.println("{\"partition\":" + r.partition() + ",\"offset\":" + r.offset()
                        + ",\"key\":" + json(r.key()) + ",\"value\":" + json(r.value()) + ",\"headers\":" + h + "}");
                }
                if (group && !rs.isEmpty()) c.commitSync();
            }
        }
    }

    static void event(String kind, Collection<TopicPartition> ps) {
        StringBuilder b = new StringBuilder("{\"event\":\"" + kind + "\",\"partitions\":[");
        boolean first = true;
        for (TopicPartition tp : ps) {
            if (!first) b.append(',');
            first = false;
            b.append('[').append(json(tp.topic())).append(',').append(tp.partition()).append(']');
        }
        System.out.println(b.append("]}"));
        System.out.flush();
    }

    static String jsonList(List<String> xs) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < xs.size(); i++) { if (i > 0) b.append(','); b.append(json(xs.get(i))); }
        return b.append(']').toString();
    }

    static String json(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> { if (ch < 0x20) b.append(String.format("\\u%04x", (int) ch)); else b.append(ch); }
            }
        }
        return b.append('"').toString();
    }
}
