// Smoke test for a kafka-local cluster, run by `compose/kafka-local smoke`:
//
//   java -cp "$(compose/kafka-local classpath)" compose/tools/KafkaSmoke.java \
//        BOOTSTRAP BROKERS KAFKA_MAJOR
//
// Checks that the cluster has working transaction and group coordinators:
// creates a topic with RF = BROKERS, produces three transactions (commit,
// abort, commit), reads them back with read_committed in a classic group and,
// on Kafka 4.x, in a KIP-848 consumer group too, commits offsets and reads
// them back, and on 4.x checks that transaction.version 2 is finalized.
// Exits 0 on success, 1 on any failure; every step is bounded in time.

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class KafkaSmoke {
    static final int PARTITIONS = 3;

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: KafkaSmoke BOOTSTRAP BROKERS KAFKA_MAJOR");
            System.exit(2);
        }
        try {
            run(args[0], Integer.parseInt(args[1]), Integer.parseInt(args[2]));
        } catch (Throwable t) {
            System.err.println("smoke: FAILED: " + t);
            t.printStackTrace();
            System.exit(1);
        }
        System.exit(0);
    }

    static void step(String s) {
        System.out.println("smoke: " + s);
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new IllegalStateException(what);
    }

    static void run(String bootstrap, int brokers, int major) throws Exception {
        String run = UUID.randomUUID().toString().substring(0, 8);
        String topic = "kafkawire-smoke-" + run;

        Properties common = new Properties();
        common.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        common.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        common.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");

        try (Admin admin = Admin.create(common)) {
            int seen = admin.describeCluster().nodes().get(30, TimeUnit.SECONDS).size();
            check(seen == brokers, "cluster shows " + seen + " brokers, expected " + brokers);
            step("cluster has " + seen + " broker(s)");

            if (major >= 4) {
                FeatureMetadata fm = admin.describeFeatures().featureMetadata().get(30, TimeUnit.SECONDS);
                FinalizedVersionRange tv = fm.finalizedFeatures().get("transaction.version");
                FinalizedVersionRange gv = fm.finalizedFeatures().get("group.version");
                check(tv != null && tv.maxVersionLevel() >= 2, "transaction.version is " + tv + ", expected 2");
                check(gv != null && gv.maxVersionLevel() >= 1, "group.version is " + gv + ", expected 1");
                step("features: transaction.version=" + tv.maxVersionLevel()
                        + " group.version=" + gv.maxVersionLevel());
            }

            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) brokers)))
                    .all().get(30, TimeUnit.SECONDS);
            waitForLeaders(admin, topic, brokers);
            step("created " + topic + " (" + PARTITIONS + " partitions, RF " + brokers + ")");

            produce(common, topic, run);

            consume(common, topic, "classic", "smoke-classic-" + run, admin);
            if (major >= 4) {
                consume(common, topic, "consumer", "smoke-consumer-" + run, admin);
            }

            admin.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
            step("deleted " + topic);
        }
        step("OK");
    }

    static void waitForLeaders(Admin admin, String topic, int rf) throws Exception {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (true) {
            try {
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                        .get(10, TimeUnit.SECONDS).get(topic);
                boolean ok = d.partitions().size() == PARTITIONS && d.partitions().stream()
                        .allMatch(p -> p.leader() != null && p.isr().size() == rf);
                if (ok) return;
            } catch (Exception e) {
                // not visible yet
            }
            check(System.nanoTime() < end, "partitions of " + topic + " got no leader/full ISR in 30 s");
            Thread.sleep(200);
        }
    }

    // Three transactions: 10 records committed, 5 aborted, 3 committed.
    static void produce(Properties common, String topic, String run) throws Exception {
        Properties p = new Properties();
        p.putAll(common);
        p.remove(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "smoke-tx-" + run);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "20000");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            sendTx(producer, topic, "committed-a-", 10, true);
            sendTx(producer, topic, "aborted-", 5, false);
            sendTx(producer, topic, "committed-b-", 3, true);
        }
        step("produced 3 transactions (10 committed, 5 aborted, 3 committed)");
    }

    static void sendTx(KafkaProducer<String, String> producer, String topic, String prefix, int n,
            boolean commit) throws Exception {
        producer.beginTransaction();
        for (int i = 0; i < n; i++) {
            producer.send(new ProducerRecord<>(topic, "k" + i, prefix + i)).get(30, TimeUnit.SECONDS);
        }
        if (commit) {
            producer.commitTransaction();
        } else {
            producer.abortTransaction();
        }
    }

    static void consume(Properties common, String topic, String protocol, String group, Admin admin)
            throws Exception {
        Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, common.get(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG));
        c.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        c.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(topic));
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (values.size() < 13 && System.nanoTime() < end) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    values.add(r.value());
                }
            }
            // A little longer, to catch aborted records leaking through.
            long extra = System.nanoTime() + TimeUnit.SECONDS.toNanos(1);
            while (System.nanoTime() < extra) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    values.add(r.value());
                }
            }
            check(values.size() == 13, protocol + " group read " + values.size()
                    + " committed records, expected 13: " + values);
            check(values.stream().noneMatch(v -> v.startsWith("aborted-")),
                    protocol + " group read aborted records: " + values);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions(topic), Duration.ofSeconds(30));
            Map<TopicPartition, Long> positions = new java.util.HashMap<>();
            for (TopicPartition tp : partitions(topic)) positions.put(tp, consumer.position(tp, Duration.ofSeconds(30)));
            check(positions.equals(ends), protocol + " group stopped at " + positions
                    + ", but the last stable offsets are " + ends);
            consumer.commitSync(Duration.ofSeconds(30));
            Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            Map<TopicPartition, Long> got = new java.util.HashMap<>();
            committed.forEach((tp, o) -> got.put(tp, o.offset()));
            check(got.equals(positions), protocol + " group committed " + got + ", expected " + positions);
        }
        step(protocol + " group " + group + ": read 13 committed records (read_committed), offsets committed");
    }

    static Set<TopicPartition> partitions(String topic) {
        Set<TopicPartition> s = new java.util.HashSet<>();
        for (int i = 0; i < PARTITIONS; i++) s.add(new TopicPartition(topic, i));
        return s;
    }
}
