// Prints KEY<TAB>PARTITION for each key argument, as chosen by the Java
// client's default partitioner for keyed records. Usage:
//   java -cp "$(compose/kafka-local classpath)" JavaPartitions.java N KEY...
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import java.nio.charset.StandardCharsets;

public class JavaPartitions {
    public static void main(String[] args) {
        int n = Integer.parseInt(args[0]);
        StringBuilder out = new StringBuilder();
        for (int i = 1; i < args.length; i++) {
            byte[] key = args[i].getBytes(StandardCharsets.UTF_8);
            out.append(args[i]).append('\t').append(BuiltInPartitioner.partitionForKey(key, n)).append('\n');
        }
        System.out.print(out);
    }
}
