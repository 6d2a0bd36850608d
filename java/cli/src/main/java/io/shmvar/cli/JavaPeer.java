package io.shmvar.cli;

import com.google.protobuf.DescriptorProtos.DescriptorProto;
import com.google.protobuf.DescriptorProtos.FieldDescriptorProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorSet;
import com.google.protobuf.Descriptors;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.TextFormat;
import com.google.protobuf.util.JsonFormat;
import io.shmvar.Options;
import io.shmvar.SharedMemoryVariable;
import io.shmvar.ShmException;
import io.shmvar.SharedVariable;
import io.shmvar.WaitStrategy;
import io.shmvar.examples.AllTypes;
import io.shmvar.examples.Counter;
import io.shmvar.examples.Point;
import io.shmvar.proto.SegmentDescriptor;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintStream;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The java-peer command: the same subcommands, options and output as go-peer ({@code go-peer/cmd/go-peer}).
 * Expected failures print one line on stderr and exit 1; usage errors exit 2.
 */
@Command(name = "java-peer", mixinStandardHelpOptions = true,
    description = "Create, read, update, inspect and remove shmvar segments.",
    subcommands = {JavaPeer.Create.class, JavaPeer.Get.class, JavaPeer.Set.class, JavaPeer.Incr.class,
        JavaPeer.Watch.class, JavaPeer.Pong.class, JavaPeer.Inspect.class, JavaPeer.Check.class, JavaPeer.Rm.class,
        JavaPeer.Ls.class, Conformance.class})
public final class JavaPeer implements Callable<Integer> {
    /** The payload types compiled into this program, by full name. */
    static final Map<String, Message> TYPES = Map.of(
        Counter.getDescriptor().getFullName(), Counter.getDefaultInstance(),
        AllTypes.getDescriptor().getFullName(), AllTypes.getDefaultInstance(),
        Point.getDescriptor().getFullName(), Point.getDefaultInstance());

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (EtcdPeer.usesAddress(args)) { // --etcd URI: EtcdPeer.java
            return EtcdPeer.run(args, out, err);
        }
        CommandLine cmd = new CommandLine(new JavaPeer());
        cmd.setOut(new java.io.PrintWriter(out, true));
        cmd.setErr(new java.io.PrintWriter(err, true));
        cmd.setParameterExceptionHandler((e, a) -> {
            err.println(name(e.getCommandLine()) + ": " + e.getMessage());
            return 2;
        });
        cmd.setExecutionExceptionHandler((e, c, parsed) -> {
            if (e instanceof UsageException) {
                err.println(name(c) + ": " + e.getMessage());
                return 2;
            }
            if (e instanceof ShmException || e instanceof CommandFailed) {
                err.println(name(c) + ": " + e.getMessage());
                return 1;
            }
            err.println(name(c) + ": " + e);
            return 1;
        });
        return cmd.execute(args);
    }

    private static String name(CommandLine c) {
        return c.getCommandSpec().qualifiedName();
    }

    @Override
    public Integer call() {
        throw new UsageException("missing command (want create, get, set, incr, inspect or rm)");
    }

    /** A mistake on the command line found after parsing: exit status 2. */
    static final class UsageException extends RuntimeException {
        UsageException(String message) {
            super(message);
        }
    }

    /**
     * Parses K by the grammar both commands share (README, "Commands"): decimal without a leading zero, or 0x/0X and
     * hex digits, in 1..0xffffffff. Anything else (010, 0o12, 0b1010, 1_0, +1, spaces) is refused: 010 would be octal
     * to some readers and decimal to others.
     */
    static final class KeyConverter implements CommandLine.ITypeConverter<Integer> {
        @Override
        public Integer convert(String s) {
            String digits = s;
            int radix = 10;
            if (s.length() > 2 && s.charAt(0) == '0' && (s.charAt(1) == 'x' || s.charAt(1) == 'X')) {
                digits = s.substring(2);
                radix = 16;
            } else if (s.length() > 1 && s.charAt(0) == '0') {
                digits = ""; // a leading zero: refused as ambiguous
            }
            boolean valid = !digits.isEmpty();
            for (int i = 0; valid && i < digits.length(); i++) {
                char c = digits.charAt(i);
                valid = c >= '0' && c <= '9' || radix == 16 && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F');
            }
            long n = -1;
            if (valid) {
                try {
                    n = Long.parseLong(digits, radix);
                } catch (NumberFormatException e) {
                    n = -1;
                }
            }
            if (n < 1 || n > 0xffffffffL) {
                throw new CommandLine.TypeConversionException("key \"" + s + "\" is not a number in 1..0xffffffff: write it"
                    + " in decimal without a leading zero (1..4294967295) or as 0x-hex (0x1..0xffffffff)");
            }
            return (int) n;
        }
    }

    /** Parses a Go-style duration such as 500ms, 2s, 1m30s. */
    static final class DurationConverter implements CommandLine.ITypeConverter<Duration> {
        private static final Pattern PART = Pattern.compile("(\\d+(?:\\.\\d*)?)(ns|us|µs|ms|s|m|h)");

        @Override
        public Duration convert(String s) {
            Matcher m = PART.matcher(s);
            double nanos = 0;
            int end = 0;
            while (m.find() && m.start() == end) {
                double unit = switch (m.group(2)) {
                    case "ns" -> 1;
                    case "us", "µs" -> 1e3;
                    case "ms" -> 1e6;
                    case "s" -> 1e9;
                    case "m" -> 60e9;
                    default -> 3600e9;
                };
                nanos += Double.parseDouble(m.group(1)) * unit;
                end = m.end();
            }
            if (end == 0 || end != s.length() || nanos <= 0) {
                throw new CommandLine.TypeConversionException(
                    "duration \"" + s + "\" is not like 500ms, 2s or 1m (a positive number and a unit)");
            }
            return Duration.ofNanos((long) nanos);
        }
    }

    abstract static class KeyCommand implements Callable<Integer> {
        /** Exactly one of --key K and --file PATH. */
        @CommandLine.ArgGroup(exclusive = true, multiplicity = "1")
        Target target;

        static final class Target {
            @Option(names = "--key", required = true, paramLabel = "K", converter = KeyConverter.class,
                description = "System V segment key: decimal without a leading zero, or 0x-hex")
            Integer key;

            @Option(names = "--file", required = true, paramLabel = "PATH",
                description = "mapped file: under /dev/shm, or a regular file that outlives a reboot")
            java.nio.file.Path file;
        }

        /** How messages name the target: key=0x... or file=PATH. */
        String name() {
            return target.file != null ? "file=" + target.file : "key=" + ShmException.formatKey(target.key);
        }

        <T extends Message> SharedMemoryVariable<T> create(T prototype, Options options) {
            return target.file != null ? SharedVariable.createFile(target.file, prototype, options)
                : SharedVariable.create(target.key, prototype, options);
        }

        <T extends Message> SharedMemoryVariable<T> open(T prototype, Options options) {
            return target.file != null ? SharedVariable.openFile(target.file, prototype, options)
                : SharedVariable.open(target.key, prototype, options);
        }

        SharedMemoryVariable<DynamicMessage> openAny(String type, Options options) {
            return target.file != null ? SharedVariable.openDynamicFile(target.file, options.withType(type))
                : SharedVariable.openDynamic(target.key, options.withType(type));
        }

        void removeForce() {
            if (target.file != null) {
                try {
                    java.nio.file.Files.delete(target.file);
                } catch (java.io.IOException e) {
                    throw new CommandFailed("rm " + name() + ": " + e);
                }
            } else {
                SharedVariable.removeKey(target.key);
            }
        }

        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        PrintStream out() {
            return System.out;
        }
    }

    /**
     * A command that writes: the owner and mode checks apply unless the user accepts them. Commands that only read
     * attach read-only, cannot change the segment, and accept any owner and mode.
     */
    abstract static class WriterCommand extends KeyCommand {
        @Option(names = "--any-owner", description = "accept a segment owned by another user")
        boolean anyOwner;

        @Option(names = "--any-mode", description = "accept a segment any user may write")
        boolean anyMode;

        @Option(names = "--wait", paramLabel = "spin|park", defaultValue = "park", converter = WaitConverter.class,
            description = "how to wait for the lock or a change: spin, or spin then park (default)")
        WaitStrategy wait;

        Options writer() {
            return Options.defaults().withAnyOwner(anyOwner).withAnyMode(anyMode).withWait(wait);
        }
    }

    static final class WaitConverter implements CommandLine.ITypeConverter<WaitStrategy> {
        @Override
        public WaitStrategy convert(String s) {
            return switch (s) {
                case "spin" -> WaitStrategy.SPIN;
                case "park" -> WaitStrategy.SPIN_THEN_PARK;
                default -> throw new CommandLine.TypeConversionException("want spin or park, not \"" + s + "\"");
            };
        }
    }

    static final Options READER =
        Options.defaults().withReadOnly(true).withAnyOwner(true).withAnyMode(true);

    @Command(name = "create", description = "Create a segment holding the empty value of a type.")
    static final class Create extends KeyCommand {
        @Option(names = "--capacity", paramLabel = "BYTES", defaultValue = "4096")
        int capacity;

        @Option(names = "--type", paramLabel = "FULL.NAME", defaultValue = "shmvar.examples.v1.Counter")
        String type;

        @Option(names = "--mode", paramLabel = "OCTAL", defaultValue = "0600")
        String mode;

        @Override
        public Integer call() {
            if (capacity < 1 || capacity > SharedMemoryVariable.MAX_CAPACITY) {
                throw new UsageException("--capacity " + capacity + " outside 1.." + SharedMemoryVariable.MAX_CAPACITY);
            }
            int perm;
            try {
                perm = Integer.parseInt(mode, 8);
            } catch (NumberFormatException e) {
                perm = -1;
            }
            if (perm < 1 || perm > 0777) {
                throw new UsageException("--mode \"" + mode + "\" is not octal permission bits such as 0600");
            }
            Message prototype = TYPES.get(type);
            if (prototype == null) {
                throw new UsageException("--type " + type + ": unknown message type (known: "
                    + String.join(", ", new java.util.TreeSet<>(TYPES.keySet())) + ")");
            }
            if (target.file == null && "1".equals(SharedMemoryVariable.kernelLimit("shm_rmid_forced"))) {
                throw new CommandFailed("create key=" + ShmException.formatKey(target.key) + ": "
                    + ShmException.Reason.INVALID_ARGUMENT.text() + ": " + RMID_FORCED);
            }
            try (SharedMemoryVariable<Message> v = create(prototype,
                Options.defaults().withCapacity(capacity).withMode(perm))) {
                out().printf("created %s type=%s capacity=%d%n", name(), type, capacity);
            }
            return 0;
        }
    }

    /** Why create refuses to make a System V segment that the kernel would destroy as soon as the command exits. */
    static final String RMID_FORCED = "kernel.shm_rmid_forced=1 destroys a segment as soon as no process has it "
        + "attached, so it would be gone when this command exits; create it from the program that uses it, "
        + "use --file, or set kernel.shm_rmid_forced=0";

    static SharedMemoryVariable<DynamicMessage> openAny(int key, String type, Options options) {
        return SharedVariable.openDynamic(key, options.withType(type));
    }

    @Command(name = "get", description = "Print the current value.")
    static final class Get extends KeyCommand {
        @Option(names = "--format", defaultValue = "text", description = "text, json or binary")
        String format;

        @Option(names = "--type", paramLabel = "FULL.NAME", description = "fail unless the segment holds this type")
        String type;

        @Override
        public Integer call() throws IOException {
            if (!format.equals("text") && !format.equals("json") && !format.equals("binary")) {
                throw new UsageException("--format \"" + format + "\": want text, json or binary");
            }
            try (SharedMemoryVariable<DynamicMessage> v = openAny(type, READER)) {
                switch (format) {
                    case "json" -> out().println(JsonFormat.printer().print(v.get()));
                    case "binary" -> { // the payload as stored, not re-encoded
                        out().write(v.getEncoded());
                        out().flush();
                    }
                    default -> out().print(TextFormat.printer().escapingNonAscii(false).printToString(v.get()));
                }
            }
            return 0;
        }
    }

    @Command(name = "set", description = "Commit VALUE, in protobuf text format or JSON.")
    static final class Set extends WriterCommand {
        @Option(names = "--format", description = "text or json (default: json if VALUE starts with '{')")
        String format;

        @Parameters(paramLabel = "VALUE", arity = "1")
        String value;

        @Option(names = "--sync", description = "flush a file-backed value to disk after the commit")
        boolean sync;

        @Override
        public Integer call() {
            try (SharedMemoryVariable<DynamicMessage> v = openAny(null, writer())) {
                DynamicMessage parsed = parseValue(v, value, format);
                v.set(parsed);
                if (sync) {
                    v.sync();
                }
                out().printf("set %s generation=%d%n", name(), v.generation());
            }
            return 0;
        }
    }

    static DynamicMessage parseValue(SharedMemoryVariable<DynamicMessage> v, String text, String format) {
        if (format == null) {
            format = text.strip().startsWith("{") ? "json" : "text";
        }
        DynamicMessage.Builder builder = DynamicMessage.newBuilder(v.messageDescriptor());
        try {
            switch (format) {
                case "text" -> TextFormat.Parser.newBuilder().setRecursionLimit(SharedMemoryVariable.MAX_NESTING_DEPTH).build()
                    .merge(text, builder);
                // JsonFormat's limit, 100, cannot be set from here: it counts as MAX_NESTING_DEPTH does (a test pins it)
                case "json" -> JsonFormat.parser().merge(text, builder);
                default -> throw new UsageException("--format \"" + format + "\": want text or json");
            }
        } catch (TextFormat.ParseException | InvalidProtocolBufferException e) {
            throw new UsageException("VALUE is not a valid " + v.messageDescriptor().getFullName() + " in " + format
                + " format: " + e.getMessage());
        }
        // Go's parsers refuse invalid UTF-8 (text: \xff escapes; JSON: unpaired \\u surrogates): so do these.
        String field = SharedVariable.invalidUtf8Field(builder.build());
        String invalid = field != null ? "field " + field + " contains invalid UTF-8"
            : format.equals("text") ? invalidUtf8InText(v, text) : null;
        if (invalid != null) {
            throw new UsageException("VALUE is not a valid " + v.messageDescriptor().getFullName() + " in " + format
                + " format: " + invalid);
        }
        return builder.build();
    }

    /**
     * Why {@code text} holds a string literal that is not valid UTF-8 in a field readers check (proto3 strings),
     * or null. TextFormat turns such bytes (written as escapes such as \xff) into U+FFFD without a word; so the text
     * is parsed again into a copy of the schema whose strings are bytes, and those bytes are re-read strictly.
     */
    static String invalidUtf8InText(SharedMemoryVariable<DynamicMessage> v, String text) {
        Descriptors.Descriptor mirror;
        try {
            Map<String, Descriptors.FileDescriptor> built = new java.util.HashMap<>();
            mirror = null;
            for (FileDescriptorProto file : FileDescriptorSet.parseFrom(v.descriptor().getSchema()).getFileList()) {
                FileDescriptorProto.Builder b = file.toBuilder();
                b.getMessageTypeBuilderList().forEach(JavaPeer::stringsAsBytes);
                Descriptors.FileDescriptor[] dependencies = file.getDependencyList().stream().map(built::get)
                    .toArray(Descriptors.FileDescriptor[]::new);
                Descriptors.FileDescriptor f = Descriptors.FileDescriptor.buildFrom(b.build(), dependencies);
                built.put(file.getName(), f);
                Descriptors.GenericDescriptor found = f.findMessageTypeByName(v.messageDescriptor().getName());
                if (v.messageDescriptor().getContainingType() == null && found != null
                    && found.getFullName().equals(v.messageDescriptor().getFullName())) {
                    mirror = (Descriptors.Descriptor) found;
                }
            }
        } catch (InvalidProtocolBufferException | Descriptors.DescriptorValidationException | RuntimeException e) {
            return null; // no copy to compare with: the parse above decides alone
        }
        if (mirror == null) {
            return null;
        }
        DynamicMessage.Builder raw = DynamicMessage.newBuilder(mirror);
        try {
            TextFormat.Parser.newBuilder().setRecursionLimit(SharedMemoryVariable.MAX_NESTING_DEPTH).build().merge(text, raw);
        } catch (TextFormat.ParseException | RuntimeException e) {
            return null;
        }
        try {
            DynamicMessage.parseFrom(v.messageDescriptor(), raw.build().toByteString());
            return null;
        } catch (InvalidProtocolBufferException e) {
            return e.getMessage();
        }
    }

    /** Makes every string field of {@code m} and its nested types bytes, and its map entries plain messages. */
    private static void stringsAsBytes(DescriptorProto.Builder m) {
        for (FieldDescriptorProto.Builder f : m.getFieldBuilderList()) {
            if (f.getType() == FieldDescriptorProto.Type.TYPE_STRING) {
                f.setType(FieldDescriptorProto.Type.TYPE_BYTES).clearDefaultValue();
            }
        }
        if (m.hasOptions()) {
            m.getOptionsBuilder().clearMapEntry(); // bytes map keys are not allowed
        }
        m.getNestedTypeBuilderList().forEach(JavaPeer::stringsAsBytes);
    }

    @Command(name = "incr", description = "Increment Counter.value COUNT times, each under the lock.")
    static final class Incr extends WriterCommand {
        @Option(names = "--count", required = true, paramLabel = "N")
        long count;

        @Option(names = "--timeout", paramLabel = "DURATION", defaultValue = "10s", converter = DurationConverter.class)
        Duration timeout;

        @Option(names = "--quiet", description = "no progress line")
        boolean quiet;

        @Option(names = "--hold", paramLabel = "DURATION", converter = DurationConverter.class,
            description = "keep the lock this long in each increment, to try out contention and crashes")
        Duration hold;

        @Option(names = "--print-each", description = "print a line after each commit, for tests that kill us")
        boolean printEach;

        @Option(names = "--sync", description = "flush a file-backed value to disk after each commit")
        boolean sync;

        @Override
        public Integer call() throws InterruptedException {
            if (count < 1) {
                throw new UsageException("--count must be at least 1");
            }
            String me = "java:" + ProcessHandle.current().pid();
            boolean progress = !quiet && System.console() != null;
            AtomicBoolean stop = new AtomicBoolean();
            CountDownLatch left = new CountDownLatch(1);
            Thread main = Thread.currentThread();
            // SIGINT or SIGTERM: abandon the increment in flight (its hold, or its wait for the lock), which releases
            // the lock without committing, and exit only then.
            Thread hook = new Thread(() -> {
                stop.set(true);
                main.interrupt();
                try {
                    left.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException ignored) {
                    Thread.currentThread().interrupt();
                }
            });
            Runtime.getRuntime().addShutdownHook(hook);
            long holdNanos = hold == null ? 0 : hold.toNanos();
            try (SharedMemoryVariable<Counter> v = open(Counter.getDefaultInstance(), writer())) {
                long start = System.nanoTime();
                Counter last = null;
                for (long i = 1; i <= count; i++) {
                    if (stop.get()) {
                        System.err.printf("java-peer incr: interrupted after %d of %d increments%n", i - 1, count);
                        return 130;
                    }
                    try {
                        last = v.tryUpdate(c -> {
                            long until = System.nanoTime() + holdNanos;
                            for (long wait; (wait = until - System.nanoTime()) > 0 && !stop.get(); ) {
                                java.util.concurrent.locks.LockSupport.parkNanos(wait);
                            }
                            if (stop.get()) {
                                throw new Abandoned();
                            }
                            return c.toBuilder().setValue(c.getValue() + 1).setLastWriter(me).build();
                        }, timeout);
                    } catch (Abandoned | ShmException e) {
                        if (stop.get()) {
                            System.err.printf("java-peer incr: interrupted after %d of %d increments%n", i - 1, count);
                            return 130;
                        }
                        throw new IncrFailed(i - 1, count, (ShmException) e);
                    }
                    if (sync) {
                        v.sync();
                    }
                    if (printEach) {
                        out().println("committed " + last.getValue());
                        out().flush();
                    }
                    if (progress && i % 10000 == 0) {
                        System.err.printf("\r%d/%d increments", i, count);
                    }
                }
                long elapsed = System.nanoTime() - start;
                if (progress) {
                    System.err.print("\r\033[K");
                }
                out().printf("incr: count=%d elapsed=%s rate=%.0f/s value=%d%n", count, formatDuration(elapsed),
                    count / (elapsed / 1e9), last.getValue());
            } finally {
                left.countDown();
                try {
                    Runtime.getRuntime().removeShutdownHook(hook);
                } catch (IllegalStateException shuttingDown) {
                    // the hook is running and waits for us
                }
            }
            return 0;
        }
    }

    /** An incr that stopped part way: says how far it got, keeps the library's message. */
    /** Thrown inside an increment stopped by a signal: nothing is committed and the lock is released. */
    static final class Abandoned extends RuntimeException {
        Abandoned() {
            super("abandoned", null, false, false);
        }
    }

    static final class IncrFailed extends CommandFailed {
        IncrFailed(long done, long count, ShmException cause) {
            super("after " + done + " of " + count + " increments: " + cause.getMessage());
        }
    }

    /** An expected failure that is not a usage error: one line, exit 1. */
    static class CommandFailed extends RuntimeException {
        CommandFailed(String message) {
            super(message);
        }
    }

    /** The lines of a /proc file, read with FileInputStream: NIO trusts the size /proc reports, which is 0. */
    static List<String> procLines(String path) throws java.io.IOException {
        try (var in = new java.io.FileInputStream(path)) {
            return List.of(new String(in.readAllBytes(), java.nio.charset.StandardCharsets.US_ASCII).split("\n"));
        }
    }

    /** Formats nanoseconds like Go's time.Duration rounded to milliseconds: 1.234s, 56ms. */
    static String formatDuration(long nanos) {
        long ms = Math.round(nanos / 1e6);
        if (ms < 1000) {
            return ms + "ms";
        }
        return java.math.BigDecimal.valueOf(ms, 3).stripTrailingZeros().toPlainString() + "s";
    }

    @Command(name = "watch", description = "Print each new value as it is committed, until COUNT values or Ctrl-C.")
    static final class Watch extends WriterCommand {
        @Option(names = "--count", paramLabel = "N", defaultValue = "0")
        long count;

        @Option(names = "--format", defaultValue = "text", description = "text or json")
        String format;

        @Override
        public Integer call() throws Exception {
            if (!format.equals("text") && !format.equals("json")) {
                throw new UsageException("--format \"" + format + "\": want text or json");
            }
            // A watcher announces itself in the segment so that commits wake it: it writes, so the writers' owner and
            // mode checks apply.
            try (SharedMemoryVariable<DynamicMessage> v = openAny(null, writer())) {
                long g = v.generation();
                for (long seen = 0; count == 0 || seen < count; ) {
                    try {
                        g = v.awaitChange(g, Duration.ofMillis(200));
                    } catch (ShmException e) {
                        if (e.reason() != ShmException.Reason.TIMEOUT) {
                            throw e;
                        }
                        if (v.stat().removed()) {
                            throw new CommandFailed("watch " + name() + ": the segment was removed");
                        }
                        continue;
                    }
                    DynamicMessage value = v.get();
                    String text = format.equals("json")
                        ? JsonFormat.printer().omittingInsignificantWhitespace().print(value)
                        : TextFormat.printer().escapingNonAscii(false).emittingSingleLine(true).printToString(value).strip();
                    out().println("generation=" + g + " " + text);
                    seen++;
                }
            }
            return 0;
        }
    }

    @Command(name = "pong", description = "Answer each commit of another process with one increment, ROUNDS times.")
    static final class Pong extends WriterCommand {
        @Option(names = "--rounds", required = true, paramLabel = "N")
        long rounds;

        @Option(names = "--after", paramLabel = "G", defaultValue = "-1",
            description = "the generation to wait past first (default: the current one)")
        long after;

        @Option(names = "--timeout", paramLabel = "DURATION", defaultValue = "10s", converter = DurationConverter.class)
        Duration timeout;

        @Override
        public Integer call() {
            if (rounds < 1) {
                throw new UsageException("--rounds must be at least 1");
            }
            try (SharedMemoryVariable<Counter> v = open(Counter.getDefaultInstance(), writer())) {
                long g = after >= 0 ? after : v.generation(); // after: answer a commit made before we started
                long start = System.nanoTime();
                for (long i = 0; i < rounds; i++) {
                    try {
                        g = v.awaitChange(g, timeout);
                    } catch (ShmException e) {
                        throw new CommandFailed("round " + i + ": " + e.getMessage());
                    }
                    v.update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
                    g++; // our own commit: wait past it next
                }
                out().printf("pong: rounds=%d elapsed=%s wait=%s%n", rounds, formatDuration(System.nanoTime() - start),
                    wait == WaitStrategy.SPIN ? "spin" : "park");
            }
            return 0;
        }
    }

    @Command(name = "inspect", description = "Print the header, lock, generation, type, capacity and value.")
    static final class Inspect extends KeyCommand {
        @Override
        public Integer call() {
            try (SharedMemoryVariable<DynamicMessage> v = openAny(null, READER)) {
                io.shmvar.SegmentInfo info = v.stat();
                SegmentDescriptor d = v.descriptor();
                io.shmvar.LockState lock = v.lockState();
                PrintStream o = out();
                if (target.file != null) {
                    line(o, "file", target.file.toString());
                } else {
                    line(o, "key", ShmException.formatKey(target.key));
                    line(o, "shmid", Integer.toString(info.id()));
                }
                line(o, "size", info.size() + " bytes");
                line(o, "owner", String.format("uid=%d gid=%d mode=%04o", info.uid(), info.gid(), info.mode()));
                if (target.file == null) {
                    line(o, "attached", info.attached() + " process(es)");
                }
                line(o, "layout version", SharedMemoryVariable.formatVersion(d.getLayoutVersion()));
                line(o, "type", d.getMessageType());
                line(o, "capacity", v.capacity() + " bytes");
                Instant created = Instant.ofEpochSecond(0, d.getCreatedUnixNanos());
                line(o, "created", created.truncatedTo(java.time.temporal.ChronoUnit.SECONDS) + " by "
                    + d.getCreator() + " pid " + d.getCreatorPid());
                line(o, "generation", Long.toUnsignedString(v.generation()));
                line(o, "lock", lock.word() == 0 ? "free" : String.format("held by %s (%s), word=0x%016x",
                    lock.holder(), lock.holderLiveness(), lock.word()));
                line(o, "contended", Long.toUnsignedString(lock.contended()));
                line(o, "takeovers", Long.toUnsignedString(lock.takeovers()));
                if (lock.livenessKnown()) {
                    List<SharedMemoryVariable.Attachment> attachments = v.attachments();
                    line(o, "attachments", attachments.size() + " of " + SharedMemoryVariable.ATTACHMENT_COUNT + " in use");
                    for (SharedMemoryVariable.Attachment a : attachments) {
                        line(o, "attachment " + a.index(), a.describe());
                    }
                } else {
                    line(o, "attachments", "unknown (no semaphore set under this key)");
                }
                String value;
                try {
                    value = TextFormat.printer().escapingNonAscii(false).emittingSingleLine(true).printToString(v.get());
                } catch (ShmException e) {
                    value = "unreadable: " + e.getMessage();
                }
                line(o, "value", value);
                line(o, "kernel limits", limits());
            }
            return 0;
        }

        /** The kernel's System V limits and how much of them is in use. */
        static String limits() {
            long segments = 0, bytes = 0;
            try {
                List<String> lines = procLines("/proc/sysvipc/shm");
                for (String l : lines.subList(1, lines.size())) {
                    String[] f = l.trim().split("\\s+");
                    if (f.length > 3) {
                        segments++;
                        bytes += Long.parseUnsignedLong(f[3]);
                    }
                }
            } catch (java.io.IOException | RuntimeException ignored) {
                // leave the counts at zero
            }
            long page = 4096;
            return String.format("shmmax=%s bytes per segment, shmall=%s pages in all (%d in use), shmmni=%s "
                + "segments (%d in use)", kernel("shmmax"), kernel("shmall"), (bytes + page - 1) / page,
                kernel("shmmni"), segments);
        }

        private static String kernel(String name) {
            try {
                // FileInputStream: NIO's readString trusts the size /proc reports, which is 0
                try (var in = new java.io.FileInputStream("/proc/sys/kernel/" + name)) {
                    return new String(in.readAllBytes(), java.nio.charset.StandardCharsets.US_ASCII).strip();
                }
            } catch (java.io.IOException e) {
                return "unknown";
            }
        }

        private static void line(PrintStream o, String name, String value) {
            o.printf("%-16s %s%n", name + ":", value);
        }
    }

    @Command(name = "check", description = "Read the value over and over for a while and report how many reads "
        + "validated; the segment is opened afresh every 100 reads.")
    static final class Check extends KeyCommand {
        @Option(names = "--duration", paramLabel = "DURATION", defaultValue = "1s", converter = DurationConverter.class)
        Duration duration;

        @Override
        public Integer call() {
            long reads = 0, ok = 0, opens = 0, refused = 0;
            Map<String, Long> kinds = new java.util.TreeMap<>();
            ShmException first = null;
            SharedMemoryVariable<DynamicMessage> v = null;
            long deadline = System.nanoTime() + duration.toNanos();
            try {
                while (System.nanoTime() - deadline < 0) {
                    if (v == null || reads % 100 == 0) {
                        if (v != null) {
                            v.close();
                            v = null;
                        }
                        opens++;
                        try {
                            v = openAny(null, READER);
                        } catch (ShmException e) {
                            if (e.reason() == ShmException.Reason.NATIVE) {
                                throw e; // the segment is gone or unusable: nothing left to check
                            }
                            refused++;
                            reads++;
                            kinds.merge(kindOf(e), 1L, Long::sum);
                            first = first == null ? e : first;
                            continue;
                        }
                    }
                    reads++;
                    try {
                        v.getEncoded(); // re-reads and re-checks the slot every time, unlike get
                        ok++;
                    } catch (ShmException e) {
                        kinds.merge(kindOf(e), 1L, Long::sum);
                        first = first == null ? e : first;
                    }
                }
            } finally {
                if (v != null) {
                    v.close();
                }
            }
            StringBuilder line = new StringBuilder(String.format("check: reads=%d ok=%d opens=%d refused-opens=%d",
                reads, ok, opens, refused));
            kinds.forEach((k, n) -> line.append(' ').append(k).append('=').append(n));
            out().println(line);
            if (first != null) {
                throw new CommandFailed((reads - ok) + " of " + reads + " reads failed validation; first: "
                    + first.getMessage());
            }
            return 0;
        }

        private static String kindOf(ShmException e) {
            return switch (e.reason()) {
                case CORRUPT -> "corrupt";
                case NOT_SHMVAR -> "not-shmvar";
                case NOT_INITIALISED -> "not-initialised";
                case LAYOUT_VERSION -> "layout-version";
                case BUSY -> "busy";
                default -> "other";
            };
        }
    }

    @Command(name = "ls", description = "List the System V segments and the files under /dev/shm (and each --dir) "
        + "that are shmvar segments this user can read.")
    static final class Ls implements Callable<Integer> {
        @Option(names = "--dir", paramLabel = "DIR", description = "also look for files here")
        List<java.nio.file.Path> dirs = new ArrayList<>();

        @Override
        public Integer call() throws java.io.IOException {
            Options options = READER.withInitWait(Duration.ofMillis(1));
            List<String[]> rows = new ArrayList<>();
            rows.add(new String[] {"SEGMENT", "TYPE", "CAPACITY", "GENERATION", "LOCK", "ATTACHED", "OWNER"});
            List<String> lines = procLines("/proc/sysvipc/shm");
            for (String l : lines.subList(1, lines.size())) {
                String[] f = l.trim().split("\\s+");
                if (f.length < 7 || f[0].equals("0") || Long.parseLong(f[3]) < io.shmvar.proto.SegmentLayout.HEADER_LENGTH_VALUE) {
                    continue;
                }
                try (SharedMemoryVariable<DynamicMessage> v = SharedVariable.openDynamic((int) Long.parseLong(f[0]), options)) {
                    rows.add(row("key=" + ShmException.formatKey(v.key()), v, f[6]));
                } catch (ShmException notOurs) {
                    // another format, or gone meanwhile
                }
            }
            List<java.nio.file.Path> all = new ArrayList<>(List.of(java.nio.file.Path.of("/dev/shm")));
            all.addAll(dirs);
            for (java.nio.file.Path dir : all) {
                if (!java.nio.file.Files.isDirectory(dir)) {
                    if (dirs.contains(dir)) {
                        throw new CommandFailed("ls: --dir " + dir + " is not a directory");
                    }
                    continue;
                }
                try (var files = java.nio.file.Files.list(dir)) {
                    for (java.nio.file.Path p : (Iterable<java.nio.file.Path>) files.sorted()::iterator) {
                        if (!java.nio.file.Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS) || !hasMagic(p)) {
                            continue;
                        }
                        try (SharedMemoryVariable<DynamicMessage> v = SharedVariable.openDynamicFile(p, options)) {
                            rows.add(row("file=" + p, v, "-"));
                        } catch (ShmException notOurs) {
                            // another format that happens to start with our magic, or unreadable
                        }
                    }
                }
            }
            int[] widths = new int[rows.get(0).length];
            for (String[] r : rows) {
                for (int i = 0; i < r.length; i++) {
                    widths[i] = Math.max(widths[i], r[i].length());
                }
            }
            for (String[] r : rows) {
                StringBuilder sb = new StringBuilder();
                for (int i = 0; i < r.length; i++) {
                    sb.append(i < r.length - 1 ? String.format("%-" + (widths[i] + 2) + "s", r[i]) : r[i]);
                }
                System.out.println(sb);
            }
            return 0;
        }

        private static String[] row(String name, SharedMemoryVariable<DynamicMessage> v, String attached) {
            io.shmvar.SegmentInfo info = v.stat();
            io.shmvar.LockState lock = v.lockState();
            String holder = lock.word() == 0 ? "free"
                : lock.holder() + " (" + lock.holderLiveness() + ")";
            return new String[] {name, v.descriptor().getMessageType(), Integer.toString(v.capacity()),
                Long.toUnsignedString(v.generation()), holder, attached,
                String.format("uid=%d %04o", info.uid(), info.mode())};
        }

        private static boolean hasMagic(java.nio.file.Path p) {
            try (var in = java.nio.file.Files.newInputStream(p)) {
                byte[] b = in.readNBytes(4);
                return b.length == 4 && java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).getInt()
                    == io.shmvar.proto.SegmentLayout.MAGIC_VALUE;
            } catch (java.io.IOException e) {
                return false;
            }
        }
    }

    @Command(name = "rm", description = "Remove the segment.")
    static final class Rm extends WriterCommand {
        @Option(names = "--force", description = "remove it even if it is not a valid shmvar segment")
        boolean force;

        @Override
        public Integer call() {
            if (force) {
                removeForce();
            } else {
                SharedMemoryVariable<DynamicMessage> v;
                try {
                    v = openAny(null, writer().withReadOnly(true));
                } catch (ShmException e) {
                    if (e.reason() != ShmException.Reason.NATIVE) {
                        throw new CommandFailed(e.getMessage()
                            + " (refusing to remove it; add --force to remove it anyway)");
                    }
                    throw e;
                }
                v.remove();
            }
            out().printf("removed %s%n", name());
            return 0;
        }
    }
}
