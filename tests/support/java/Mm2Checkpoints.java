// MirrorMaker 2's checkpoint records through Apache Kafka's own classes
// (connect-mirror-client's Checkpoint and RemoteClusterUtils), for kmirror's
// tests to compare against. A single-file program: Java 17 runs it from
// source with the MirrorMaker 2 jars on the class path,
//
//   java -cp "$KMIRROR_TOOLS/mm2-4.3.1/lib/*" \
//       -Dlog4j2.configurationFile=$KMIRROR_TOOLS/mm2-4.3.1/config/log4j2.properties \
//       Mm2Checkpoints.java MODE ARGS...
//
// (tests/support/src/mm2.rs does this). Modes:
//
//   decode KEYHEX VALUEHEX [KEYHEX VALUEHEX ...]
//       Checkpoint.deserializeRecord on each pair; one line per pair:
//       group TAB topic TAB partition TAB upstream TAB downstream TAB metadata,
//       or, when Java refuses the bytes, ERROR TAB the exception.
//   encode GROUP TOPIC PARTITION UPSTREAM DOWNSTREAM METADATA [6 more ...]
//       Checkpoint.recordKey() and recordValue() (package-private, called
//       through reflection) of each checkpoint; one line each:
//       KEYHEX TAB VALUEHEX.
//   translate BOOTSTRAP SOURCE_ALIAS GROUP
//       RemoteClusterUtils.translateOffsets with a 30 s timeout; one line per
//       partition, sorted: topic TAB partition TAB offset.
//
// Strings in the output have backslash, tab, newline and carriage return
// escaped as \\ \t \n \r, so every line splits on tabs; stdout is UTF-8
// whatever the locale. Logging goes to stderr (the log4j2 file above), so
// stdout holds only these lines. Exits 2 on bad usage, 1 on a failure.

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.connect.mirror.Checkpoint;
import org.apache.kafka.connect.mirror.RemoteClusterUtils;

public class Mm2Checkpoints {
    private static final HexFormat HEX = HexFormat.of();

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable e) {
            // Printed here: the source launcher of Java 17 fails on
            // exceptions without a stack trace (Kafka's ApiExceptions have
            // none) and would hide this one behind its own.
            System.err.println("Mm2Checkpoints failed: " + e);
            e.printStackTrace();
            System.exit(1);
        }
    }

    private static void run(String[] args) throws Exception {
        PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
        if (args.length < 1) {
            usage();
        }
        switch (args[0]) {
            case "decode" -> decode(out, args);
            case "encode" -> encode(out, args);
            case "translate" -> translate(out, args);
            default -> usage();
        }
        out.flush();
    }

    private static void usage() {
        System.err.println("usage: Mm2Checkpoints decode KEYHEX VALUEHEX [...]");
        System.err.println("       Mm2Checkpoints encode GROUP TOPIC PARTITION UPSTREAM DOWNSTREAM METADATA [...]");
        System.err.println("       Mm2Checkpoints translate BOOTSTRAP SOURCE_ALIAS GROUP");
        System.exit(2);
    }

    private static String escape(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '\\' -> b.append("\\\\");
                case '\t' -> b.append("\\t");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                default -> b.append(c);
            }
        }
        return b.toString();
    }

    private static void decode(PrintStream out, String[] args) {
        if (args.length < 3 || args.length % 2 != 1) {
            usage();
        }
        for (int i = 1; i < args.length; i += 2) {
            byte[] key = HEX.parseHex(args[i]);
            byte[] value = HEX.parseHex(args[i + 1]);
            ConsumerRecord<byte[], byte[]> record = new ConsumerRecord<>("checkpoints", 0, 0L, key, value);
            try {
                Checkpoint c = Checkpoint.deserializeRecord(record);
                out.println(escape(c.consumerGroupId()) + "\t" + escape(c.topicPartition().topic()) + "\t"
                        + c.topicPartition().partition() + "\t" + c.upstreamOffset() + "\t"
                        + c.downstreamOffset() + "\t" + escape(c.metadata()));
            } catch (RuntimeException e) {
                out.println("ERROR\t" + escape(e.toString()));
            }
        }
    }

    private static void encode(PrintStream out, String[] args) throws Exception {
        if (args.length < 7 || (args.length - 1) % 6 != 0) {
            usage();
        }
        Method recordKey = Checkpoint.class.getDeclaredMethod("recordKey");
        Method recordValue = Checkpoint.class.getDeclaredMethod("recordValue");
        recordKey.setAccessible(true);
        recordValue.setAccessible(true);
        for (int i = 1; i < args.length; i += 6) {
            Checkpoint c = new Checkpoint(args[i], new TopicPartition(args[i + 1], Integer.parseInt(args[i + 2])),
                    Long.parseLong(args[i + 3]), Long.parseLong(args[i + 4]), args[i + 5]);
            byte[] key = (byte[]) recordKey.invoke(c);
            byte[] value = (byte[]) recordValue.invoke(c);
            out.println(HEX.formatHex(key) + "\t" + HEX.formatHex(value));
        }
    }

    private static void translate(PrintStream out, String[] args) throws Exception {
        if (args.length != 4) {
            usage();
        }
        Map<String, Object> properties = Map.of("bootstrap.servers", args[1]);
        Map<TopicPartition, OffsetAndMetadata> offsets =
                RemoteClusterUtils.translateOffsets(properties, args[2], args[3], Duration.ofSeconds(30));
        List<String> lines = new ArrayList<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
            lines.add(escape(e.getKey().topic()) + "\t" + e.getKey().partition() + "\t" + e.getValue().offset());
        }
        // Topic names cannot hold a tab, so sorting the lines sorts by topic
        // then partition text; the Rust side re-sorts numerically.
        lines.sort(null);
        for (String line : lines) {
            out.println(line);
        }
    }
}
