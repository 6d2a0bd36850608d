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
import io.shmvar.cli.Spec.Parsed;
import io.shmvar.cli.Spec.UsageException;
import io.shmvar.cli.spec.Command;
import io.shmvar.examples.AllTypes;
import io.shmvar.examples.Counter;
import io.shmvar.examples.Point;
import io.shmvar.proto.SegmentDescriptor;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The java-peer command: one command with go-peer ({@code go-peer/cmd/go-peer}). Both follow
 * {@code proto/cli/commands.json} (flags, help, grammar, exit statuses; {@link Spec}) and print the same bytes
 * ({@link Canonical}); the golden parity test runs both over one table. Expected failures print one line on stderr
 * and exit 1; usage errors exit 2; SIGINT and SIGTERM 130 and 143.
 */
public final class JavaPeer {
    private JavaPeer() {
    }

    /** The command's name in its messages and help. */
    static final String PROGRAM = "java-peer";

    /** The payload types compiled into this program, by full name. */
    static final Map<String, Message> TYPES = Map.of(
        Counter.getDescriptor().getFullName(), Counter.getDefaultInstance(),
        AllTypes.getDescriptor().getFullName(), AllTypes.getDefaultInstance(),
        Point.getDescriptor().getFullName(), Point.getDefaultInstance());

    /** A command: its parsed arguments and where it prints. */
    @FunctionalInterface
    interface Body {
        int run(Parsed p, PrintStream out) throws Exception;
    }

    /** Each command of commands.json that java-peer runs. */
    static final Map<String, Body> COMMANDS = Map.ofEntries(
        Map.entry("create", JavaPeer::create), Map.entry("get", JavaPeer::get), Map.entry("set", JavaPeer::set),
        Map.entry("incr", JavaPeer::incr), Map.entry("watch", JavaPeer::watch), Map.entry("pong", JavaPeer::pong),
        Map.entry("inspect", JavaPeer::inspect), Map.entry("check", JavaPeer::check), Map.entry("rm", JavaPeer::rm),
        Map.entry("ls", JavaPeer::ls), Map.entry("conformance", (p, out) -> Conformance.run(p)));

    public static void main(String[] args) {
        PrintStream out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), false, StandardCharsets.UTF_8);
        PrintStream err = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.err), true, StandardCharsets.UTF_8);
        int code = run(args, out, err);
        out.flush();
        System.exit(code);
    }

    /** The command line as proto/cli/commands.json specifies it; go-peer's run does the same. */
    static int run(String[] args, PrintStream out, PrintStream err) {
        try {
            return dispatch(args, out, err);
        } finally {
            out.flush();
        }
    }

    private static int fail(PrintStream err, String where, int code, String message) {
        print(err, where + ": " + oneLine(message) + "\n");
        return code;
    }

    /** Writes s as UTF-8, whatever the platform's encoding. */
    static void print(PrintStream out, String s) {
        out.writeBytes(s.getBytes(StandardCharsets.UTF_8));
    }

    /** Keeps a message on one line: a parser's multi-line error, for one. */
    static String oneLine(String s) {
        return String.join(" ", Arrays.stream(s.replace('\n', ' ').split("[ \t\r\n]+")).filter(x -> !x.isEmpty()).toList());
    }

    private static String unknownCommand(String name) {
        List<String> names = new ArrayList<>();
        for (Command c : Spec.SPEC.getCommandsList()) {
            if (!c.getHidden()) {
                names.add(c.getName());
            }
        }
        return "unknown command " + Spec.quote(name) + " (want " + Spec.orList(names) + ")";
    }

    private static int dispatch(String[] args, PrintStream out, PrintStream err) {
        if (EtcdPeer.usesAddress(args)) { // --etcd URI: EtcdPeer.java (its own options, outside commands.json for now)
            return EtcdPeer.run(args, out, err);
        }
        if (args.length == 0) {
            print(err, Spec.commandList(PROGRAM));
            return 2;
        }
        switch (args[0]) {
            case "-h", "--help" -> {
                print(out, Spec.commandList(PROGRAM));
                return 0;
            }
            case "--version" -> {
                if (args.length > 1) {
                    return fail(err, PROGRAM, 2, "unexpected argument " + Spec.quote(args[1]));
                }
                print(out, Spec.versionLine(PROGRAM));
                return 0;
            }
            case "help" -> {
                if (args.length == 1) {
                    print(out, Spec.commandList(PROGRAM));
                    return 0;
                }
                if (args.length > 2) {
                    return fail(err, PROGRAM + " help", 2, "unexpected argument " + Spec.quote(args[2]));
                }
                Command c = Spec.find(args[1]);
                if (c == null) {
                    return fail(err, PROGRAM + " help", 2, unknownCommand(args[1]));
                }
                print(out, Spec.commandHelp(PROGRAM, c));
                return 0;
            }
            default -> {
            }
        }
        Command c = Spec.find(args[0]);
        if (c == null) {
            if (args[0].startsWith("-")) {
                return fail(err, PROGRAM, 2, "unknown option " + Spec.quote(args[0]) + ": give a COMMAND first ("
                    + PROGRAM + " help)");
            }
            return fail(err, PROGRAM, 2, unknownCommand(args[0]));
        }
        String where = PROGRAM + " " + c.getName();
        Parsed p;
        try {
            p = Spec.parse(c, List.of(args).subList(1, args.length));
        } catch (Spec.HelpRequested e) {
            print(out, Spec.commandHelp(PROGRAM, c));
            return 0;
        } catch (UsageException e) {
            return fail(err, where, 2, e.getMessage());
        }
        if (c.getOnlyCount() > 0 && !c.getOnlyList().contains(PROGRAM)) {
            return fail(err, where, 2, "only " + String.join(", ", c.getOnlyList()) + " has this command");
        }
        try {
            return COMMANDS.get(c.getName()).run(p, out);
        } catch (UsageException e) {
            return fail(err, where, 2, e.getMessage());
        } catch (ShmException | CommandFailed e) {
            return fail(err, where, 1, e.getMessage());
        } catch (Exception e) {
            return fail(err, where, 1, e.toString());
        }
    }

    /** An expected failure that is not a usage error: one line, exit 1. */
    static class CommandFailed extends RuntimeException {
        CommandFailed(String message) {
            super(message);
        }
    }

    /** What a command works on: a System V segment (--key K) or a mapped file (--file PATH). */
    record Target(Integer key, Path file) {
        static Target of(Parsed p) {
            return p.has("file") ? new Target(null, Path.of(p.str("file"))) : new Target(p.key("key"), null);
        }

        /** How messages name the target: key=0x... or file=PATH. */
        String name() {
            return file != null ? "file=" + file : "key=" + ShmException.formatKey(key);
        }

        <T extends Message> SharedMemoryVariable<T> create(T prototype, Options options) {
            return file != null ? SharedVariable.createFile(file, prototype, options)
                : SharedVariable.create(key, prototype, options);
        }

        <T extends Message> SharedMemoryVariable<T> open(T prototype, Options options) {
            return file != null ? SharedVariable.openFile(file, prototype, options)
                : SharedVariable.open(key, prototype, options);
        }

        SharedMemoryVariable<DynamicMessage> openAny(String type, Options options) {
            return file != null ? SharedVariable.openDynamicFile(file, options.withType(type))
                : SharedVariable.openDynamic(key, options.withType(type));
        }

        void removeForce() {
            if (file != null) {
                try {
                    Files.delete(file);
                } catch (IOException e) {
                    throw new CommandFailed("rm " + name() + ": " + e);
                }
            } else {
                SharedVariable.removeKey(key);
            }
        }
    }

    /**
     * The Options of a command that writes (--any-owner, --any-mode, --wait): the owner and mode checks apply unless
     * the user accepts them. Commands that only read attach read-only and accept any owner and mode.
     */
    static Options writer(Parsed p) {
        return Options.defaults().withAnyOwner(p.on("any-owner")).withAnyMode(p.on("any-mode"))
            .withWait(p.str("wait").equals("spin") ? WaitStrategy.SPIN : WaitStrategy.SPIN_THEN_PARK);
    }

    static final Options READER =
        Options.defaults().withReadOnly(true).withAnyOwner(true).withAnyMode(true);

    static int create(Parsed p, PrintStream out) {
        Target t = Target.of(p);
        int capacity = (int) p.integer("capacity");
        String type = p.str("type");
        Message prototype = TYPES.get(type);
        if (prototype == null) {
            throw new UsageException("--type " + type + ": unknown message type (known: "
                + String.join(", ", new java.util.TreeSet<>(TYPES.keySet())) + ")");
        }
        if (t.file() == null && "1".equals(SharedMemoryVariable.kernelLimit("shm_rmid_forced"))) {
            throw new CommandFailed("create key=" + ShmException.formatKey(t.key()) + ": "
                + ShmException.Reason.INVALID_ARGUMENT.text() + ": " + RMID_FORCED);
        }
        try (SharedMemoryVariable<Message> v = t.create(prototype,
            Options.defaults().withCapacity(capacity).withMode((int) p.integer("mode")))) {
            print(out, "created " + t.name() + " type=" + type + " capacity=" + capacity + "\n");
        }
        return 0;
    }

    /** Why create refuses to make a System V segment that the kernel would destroy as soon as the command exits. */
    static final String RMID_FORCED = "kernel.shm_rmid_forced=1 destroys a segment as soon as no process has it "
        + "attached, so it would be gone when this command exits; create it from the program that uses it, "
        + "use --file, or set kernel.shm_rmid_forced=0";

    static int get(Parsed p, PrintStream out) {
        Target t = Target.of(p);
        String format = p.str("format");
        try (SharedMemoryVariable<DynamicMessage> v = t.openAny(p.has("type") ? p.str("type") : null, READER)) {
            if (format.equals("binary")) { // the payload as stored, not re-encoded
                out.writeBytes(v.getEncoded());
            } else {
                print(out, render(v.get(), format) + "\n");
            }
        }
        return 0;
    }

    /** The canonical one-line rendering of m ({@link Canonical}). */
    static String render(Message m, String format) {
        return format.equals("json") ? Canonical.json(m) : Canonical.text(m);
    }

    static int set(Parsed p, PrintStream out) throws Exception {
        Target t = Target.of(p);
        if (p.args.size() == 1 && p.has("value-file")) {
            throw new UsageException("give VALUE or --value-file, not both");
        }
        if (p.args.isEmpty() && !p.has("value-file")) {
            throw new UsageException("VALUE (or - to read stdin, or --value-file PATH) is required");
        }
        try (SharedMemoryVariable<DynamicMessage> v = t.openAny(null, writer(p))) {
            byte[] input;
            if (p.has("value-file")) {
                try {
                    input = Files.readAllBytes(Path.of(p.str("value-file")));
                } catch (IOException e) {
                    throw new CommandFailed("cannot read --value-file " + Spec.quote(p.str("value-file")) + ": " + ioReason(e));
                }
            } else if (p.args.get(0).equals("-")) {
                try {
                    input = System.in.readAllBytes();
                } catch (IOException e) {
                    throw new CommandFailed("cannot read stdin: " + ioReason(e));
                }
            } else {
                input = p.args.get(0).getBytes(StandardCharsets.UTF_8);
            }
            DynamicMessage parsed = parseValue(v, input, p.has("format") ? p.str("format") : null);
            v.tryUpdate(current -> parsed, Duration.ofNanos(p.nanos("timeout")));
            if (p.on("sync")) {
                v.sync();
            }
            print(out, "set " + t.name() + " generation=" + Long.toUnsignedString(v.generation()) + "\n");
        }
        return 0;
    }

    /** Why a file could not be read, in the words go-peer uses. */
    static String ioReason(IOException e) {
        if (e instanceof java.nio.file.NoSuchFileException) {
            return "no such file";
        }
        if (e instanceof java.nio.file.AccessDeniedException) {
            return "permission denied";
        }
        if (e.getMessage() != null && e.getMessage().contains("Is a directory")) {
            return "is a directory";
        }
        return e.getMessage();
    }

    /** Reads the value as text format, JSON or the encoded payload; without --format, JSON if it starts with '{'. */
    static DynamicMessage parseValue(SharedMemoryVariable<DynamicMessage> v, byte[] input, String format) {
        String text = new String(input, StandardCharsets.UTF_8);
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
                default -> {
                    com.google.protobuf.CodedInputStream in = com.google.protobuf.CodedInputStream.newInstance(input);
                    in.setRecursionLimit(SharedMemoryVariable.MAX_NESTING_DEPTH);
                    builder.mergeFrom(in);
                    in.checkLastTagWas(0);
                }
            }
        } catch (IOException | RuntimeException e) { // TextFormat.ParseException, InvalidProtocolBufferException
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


    static int incr(Parsed p, PrintStream out) throws InterruptedException {
        Target t = Target.of(p);
        long count = p.integer("count");
        Duration timeout = Duration.ofNanos(p.nanos("timeout"));
        long holdNanos = p.nanos("hold");
        boolean printEach = p.on("print-each"), sync = p.on("sync");
        String me = "java:" + ProcessHandle.current().pid();
        boolean progress = !p.on("quiet") && System.console() != null;
        AtomicBoolean stop = new AtomicBoolean();
        CountDownLatch left = new CountDownLatch(1);
        Thread main = Thread.currentThread();
        // SIGINT or SIGTERM: abandon the increment in flight (its hold, or its wait for the lock), which releases
        // the lock without committing, and exit only then (the JVM exits 130 or 143).
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
        try (SharedMemoryVariable<Counter> v = t.open(Counter.getDefaultInstance(), writer(p))) {
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
                    throw new CommandFailed("after " + (i - 1) + " of " + count + " increments: " + e.getMessage());
                }
                if (sync) {
                    v.sync();
                }
                if (printEach) {
                    print(out, "committed " + last.getValue() + "\n");
                    out.flush();
                }
                if (progress && i % 10000 == 0) {
                    System.err.printf("\r%d/%d increments", i, count);
                }
            }
            long elapsed = System.nanoTime() - start;
            if (progress) {
                System.err.print("\r\033[K");
            }
            print(out, String.format("incr: count=%d elapsed=%s rate=%.0f/s value=%d%n", count, formatDuration(elapsed),
                count / (elapsed / 1e9), last.getValue()));
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

    /** Thrown inside an increment stopped by a signal: nothing is committed and the lock is released. */
    static final class Abandoned extends RuntimeException {
        Abandoned() {
            super("abandoned", null, false, false);
        }
    }

    /** The lines of a /proc file, read with FileInputStream: NIO trusts the size /proc reports, which is 0. */
    static List<String> procLines(String path) throws IOException {
        try (var in = new java.io.FileInputStream(path)) {
            return List.of(new String(in.readAllBytes(), StandardCharsets.US_ASCII).split("\n"));
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

    /**
     * Prints each new value as it is committed, until --count values or SIGINT (exit 130) or SIGTERM (143); parks on
     * the generation futex between commits. --format json writes JSON Lines.
     */
    static int watch(Parsed p, PrintStream out) {
        Target t = Target.of(p);
        long count = p.integer("count");
        boolean json = p.str("format").equals("json");
        // A watcher announces itself in the segment so that commits wake it: it writes, so the writers' owner and
        // mode checks apply.
        try (SharedMemoryVariable<DynamicMessage> v = t.openAny(null, writer(p))) {
            long g = v.generation();
            for (long seen = 0; count == 0 || seen < count; ) {
                try {
                    g = v.awaitChange(g, Duration.ofMillis(200));
                } catch (ShmException e) {
                    if (e.reason() != ShmException.Reason.TIMEOUT) {
                        throw e;
                    }
                    if (v.stat().removed()) {
                        throw new CommandFailed("watch " + t.name() + ": the segment was removed");
                    }
                    continue;
                }
                DynamicMessage value = v.get();
                print(out, json ? "{\"generation\":" + Long.toUnsignedString(g) + ",\"value\":" + Canonical.json(value) + "}\n"
                    : "generation=" + Long.toUnsignedString(g) + " " + Canonical.text(value) + "\n");
                out.flush();
                seen++;
            }
        }
        return 0;
    }

    /** Answers each commit of another process with one increment, --rounds times (make bench, tests). */
    static int pong(Parsed p, PrintStream out) {
        Target t = Target.of(p);
        long rounds = p.integer("rounds");
        Duration timeout = Duration.ofNanos(p.nanos("timeout"));
        try (SharedMemoryVariable<Counter> v = t.open(Counter.getDefaultInstance(), writer(p))) {
            long g = p.has("after") ? p.integer("after") : v.generation(); // after: answer a commit made before we started
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
            print(out, String.format("pong: rounds=%d elapsed=%s wait=%s%n", rounds, formatDuration(System.nanoTime() - start),
                p.str("wait")));
        }
        return 0;
    }

    /** One JSON object, its members in the order given. */
    static final class JsonObject {
        private final StringBuilder b = new StringBuilder();

        private JsonObject member(String name) {
            b.append(b.length() == 0 ? '{' : ',');
            Canonical.jsonString(b, name);
            b.append(':');
            return this;
        }

        JsonObject str(String name, String v) {
            member(name);
            Canonical.jsonString(b, v);
            return this;
        }

        JsonObject num(String name, long v) {
            member(name).b.append(v);
            return this;
        }

        JsonObject unum(String name, long v) {
            member(name).b.append(Long.toUnsignedString(v));
            return this;
        }

        JsonObject bool(String name, boolean v) {
            member(name).b.append(v);
            return this;
        }

        /** A member whose value is already JSON. */
        JsonObject raw(String name, String json) {
            member(name).b.append(json);
            return this;
        }

        String end() {
            return b.length() == 0 ? "{}" : b + "}";
        }
    }

    static String lockJson(io.shmvar.LockState lock) {
        JsonObject o = new JsonObject().bool("held", lock.word() != 0);
        if (lock.word() != 0) {
            o.str("word", String.format("0x%016x", lock.word())).str("holder", lock.holder()).str("liveness", lock.holderLiveness());
        }
        return o.end();
    }

    /** The kernel's System V limits and how much of them is in use. */
    record Limits(String shmmax, String shmall, String shmmni, long pages, long segments) {
        static Limits read() {
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
            } catch (IOException | RuntimeException ignored) {
                // leave the counts at zero
            }
            return new Limits(kernel("shmmax"), kernel("shmall"), kernel("shmmni"), (bytes + 4095) / 4096, segments);
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
    }

    /**
     * Prints what the segment's header, lock and attachment table say, one "name: value" line each, or one JSON
     * object (README, "JSON output"); go-peer prints the same bytes.
     */
    static int inspect(Parsed p, PrintStream out) {
        Target t = Target.of(p);
        try (SharedMemoryVariable<DynamicMessage> v = t.openAny(null, READER)) {
            io.shmvar.SegmentInfo info = v.stat();
            SegmentDescriptor d = v.descriptor();
            io.shmvar.LockState lock = v.lockState();
            long gen = v.generation();
            List<SharedMemoryVariable.Attachment> attachments = lock.livenessKnown() ? v.attachments() : List.of();
            DynamicMessage value = null;
            String valueError = null;
            try {
                value = v.get();
            } catch (ShmException e) {
                valueError = e.getMessage();
            }
            String created = Instant.ofEpochSecond(0, d.getCreatedUnixNanos()).truncatedTo(ChronoUnit.SECONDS).toString();
            String mode = String.format("%04o", info.mode());
            Limits lim = Limits.read();
            if (p.str("format").equals("json")) {
                JsonObject o = new JsonObject();
                if (t.file() != null) {
                    o.str("file", t.file().toString());
                } else {
                    o.str("key", ShmException.formatKey(t.key())).num("shmid", info.id());
                }
                o.num("size", info.size()).raw("owner", new JsonObject().num("uid", info.uid()).num("gid", info.gid()).str("mode", mode).end());
                if (t.file() == null) {
                    o.num("attached", info.attached());
                }
                o.str("layoutVersion", SharedMemoryVariable.formatVersion(d.getLayoutVersion())).str("type", d.getMessageType())
                    .num("capacity", v.capacity())
                    .raw("created", new JsonObject().str("time", created).str("creator", d.getCreator()).num("pid", d.getCreatorPid()).end())
                    .unum("generation", gen).raw("lock", lockJson(lock)).unum("contended", lock.contended())
                    .unum("takeovers", lock.takeovers());
                if (lock.livenessKnown()) {
                    List<String> list = new ArrayList<>();
                    for (SharedMemoryVariable.Attachment a : attachments) {
                        list.add(new JsonObject().num("index", a.index()).num("pid", a.pid()).bool("otherNamespace", a.inOtherNamespace()).end());
                    }
                    o.raw("attachments", "[" + String.join(",", list) + "]");
                } else {
                    o.raw("attachments", "null");
                }
                if (valueError != null) {
                    o.str("valueError", valueError);
                } else {
                    o.raw("value", Canonical.json(value));
                }
                o.raw("kernelLimits", new JsonObject().str("shmmax", lim.shmmax()).str("shmall", lim.shmall())
                    .num("shmallInUse", lim.pages()).str("shmmni", lim.shmmni()).num("shmmniInUse", lim.segments()).end());
                print(out, o.end() + "\n");
                return 0;
            }
            StringBuilder o = new StringBuilder();
            if (t.file() != null) {
                line(o, "file", t.file().toString());
            } else {
                line(o, "key", ShmException.formatKey(t.key()));
                line(o, "shmid", Integer.toString(info.id()));
            }
            line(o, "size", info.size() + " bytes");
            line(o, "owner", "uid=" + info.uid() + " gid=" + info.gid() + " mode=" + mode);
            if (t.file() == null) {
                line(o, "attached", info.attached() + " process(es)");
            }
            line(o, "layout version", SharedMemoryVariable.formatVersion(d.getLayoutVersion()));
            line(o, "type", d.getMessageType());
            line(o, "capacity", v.capacity() + " bytes");
            line(o, "created", created + " by " + d.getCreator() + " pid " + d.getCreatorPid());
            line(o, "generation", Long.toUnsignedString(gen));
            line(o, "lock", lock.word() == 0 ? "free" : String.format("held by %s (%s), word=0x%016x",
                lock.holder(), lock.holderLiveness(), lock.word()));
            line(o, "contended", Long.toUnsignedString(lock.contended()));
            line(o, "takeovers", Long.toUnsignedString(lock.takeovers()));
            if (lock.livenessKnown()) {
                line(o, "attachments", attachments.size() + " of " + SharedMemoryVariable.ATTACHMENT_COUNT + " in use");
                for (SharedMemoryVariable.Attachment a : attachments) {
                    line(o, "attachment " + a.index(), a.describe());
                }
            } else {
                line(o, "attachments", "unknown (no semaphore set under this key)");
            }
            line(o, "value", valueError != null ? "unreadable: " + valueError : Canonical.text(value));
            line(o, "kernel limits", "shmmax=" + lim.shmmax() + " bytes per segment, shmall=" + lim.shmall()
                + " pages in all (" + lim.pages() + " in use), shmmni=" + lim.shmmni() + " segments (" + lim.segments()
                + " in use)");
            print(out, o.toString());
        }
        return 0;
    }

    private static void line(StringBuilder o, String name, String value) {
        o.append(String.format("%-16s ", name + ":")).append(value).append('\n');
    }

    /** The failure kinds check counts, in the order it prints them. */
    static final List<String> CHECK_KINDS = List.of("busy", "corrupt", "layout-version", "not-initialised", "not-shmvar", "other");

    /**
     * Reads and validates the value --reads times, --interval apart (or for --duration), opening the segment afresh
     * every 100 reads, and reports how many reads validated: a health check. The default, 3 reads 100 ms apart, costs
     * a probe next to nothing (the JVM's start aside).
     */
    static int check(Parsed p, PrintStream out) throws InterruptedException {
        Target t = Target.of(p);
        long reads = p.integer("reads"), interval = p.nanos("interval");
        boolean forDuration = p.has("duration");
        if (forDuration && !p.has("interval")) {
            interval = 0; // a stress check reads back to back
        }
        long done = 0, ok = 0, opens = 0, refused = 0;
        Map<String, Long> kinds = new TreeMap<>();
        ShmException first = null;
        SharedMemoryVariable<DynamicMessage> v = null;
        long deadline = System.nanoTime() + p.nanos("duration");
        try {
            while (forDuration ? System.nanoTime() - deadline < 0 : done < reads) {
                if (done > 0 && interval > 0) {
                    TimeUnit.NANOSECONDS.sleep(interval);
                }
                if (v == null || done % 100 == 0) {
                    if (v != null) {
                        v.close();
                        v = null;
                    }
                    opens++;
                    try {
                        v = t.openAny(null, READER);
                    } catch (ShmException e) {
                        if (e.reason() == ShmException.Reason.NATIVE) {
                            throw e; // the segment is gone or unusable: nothing left to check
                        }
                        refused++;
                        done++;
                        kinds.merge(kindOf(e), 1L, Long::sum);
                        first = first == null ? e : first;
                        continue;
                    }
                }
                done++;
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
        if (p.str("format").equals("json")) {
            JsonObject failed = new JsonObject();
            for (String k : CHECK_KINDS) {
                if (kinds.containsKey(k)) {
                    failed.num(k, kinds.get(k));
                }
            }
            JsonObject o = new JsonObject().num("reads", done).num("ok", ok).num("opens", opens).num("refusedOpens", refused)
                .raw("failed", failed.end());
            if (first != null) {
                o.str("firstError", first.getMessage());
            }
            print(out, o.end() + "\n");
        } else {
            StringBuilder line = new StringBuilder("check: reads=" + done + " ok=" + ok + " opens=" + opens + " refused-opens=" + refused);
            for (String k : CHECK_KINDS) {
                if (kinds.containsKey(k)) {
                    line.append(' ').append(k).append('=').append(kinds.get(k));
                }
            }
            print(out, line + "\n");
        }
        if (first != null) {
            throw new CommandFailed((done - ok) + " of " + done + " reads failed validation; first: " + first.getMessage());
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

    /**
     * Lists the System V segments and the files under /dev/shm and each --dir that are shmvar segments this user can
     * read; with --format json, JSON Lines, one object per segment or file.
     */
    static int ls(Parsed p, PrintStream out) throws IOException {
        List<Path> dirs = new ArrayList<>();
        for (String d : p.list("dir")) {
            if (!Files.isDirectory(Path.of(d)) || !Files.isReadable(Path.of(d))) {
                throw new CommandFailed("--dir " + d + " is not a directory this user can read");
            }
            dirs.add(Path.of(d));
        }
        boolean json = p.str("format").equals("json");
        Options options = READER.withInitWait(Duration.ofNanos(1));
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"SEGMENT", "TYPE", "CAPACITY", "GENERATION", "LOCK", "ATTACHED", "OWNER"});
        List<String> lines = procLines("/proc/sysvipc/shm");
        for (String l : lines.subList(1, lines.size())) {
            String[] f = l.trim().split("\\s+");
            if (f.length < 7 || f[0].equals("0") || Long.parseLong(f[3]) < io.shmvar.proto.SegmentLayout.HEADER_LENGTH_VALUE) {
                continue;
            }
            try (SharedMemoryVariable<DynamicMessage> v = SharedVariable.openDynamic((int) Long.parseLong(f[0]), options)) {
                row(out, json, rows, "key", ShmException.formatKey(v.key()), v, f[6]);
            } catch (ShmException notOurs) {
                // another format, or gone meanwhile
            }
        }
        List<Path> all = new ArrayList<>(List.of(Path.of("/dev/shm")));
        all.addAll(dirs);
        for (Path dir : all) {
            if (!Files.isDirectory(dir)) {
                continue;
            }
            List<Path> files;
            try (var list = Files.list(dir)) {
                // by name's bytes, as Go's os.ReadDir
                files = list.sorted((a, b) -> Arrays.compareUnsigned(a.getFileName().toString().getBytes(StandardCharsets.UTF_8),
                    b.getFileName().toString().getBytes(StandardCharsets.UTF_8))).toList();
            }
            for (Path f : files) {
                if (!Files.isRegularFile(f, java.nio.file.LinkOption.NOFOLLOW_LINKS) || !hasMagic(f)) {
                    continue;
                }
                try (SharedMemoryVariable<DynamicMessage> v = SharedVariable.openDynamicFile(f, options)) {
                    row(out, json, rows, "file", f.toString(), v, "-");
                } catch (ShmException notOurs) {
                    // another format that happens to start with our magic, or unreadable
                }
            }
        }
        if (json) {
            return 0;
        }
        int[] widths = new int[rows.get(0).length];
        for (String[] r : rows) {
            for (int i = 0; i < r.length; i++) {
                widths[i] = Math.max(widths[i], r[i].codePointCount(0, r[i].length()));
            }
        }
        StringBuilder sb = new StringBuilder();
        for (String[] r : rows) {
            for (int i = 0; i < r.length; i++) {
                sb.append(r[i]);
                if (i < r.length - 1) {
                    sb.append(" ".repeat(widths[i] + 2 - r[i].codePointCount(0, r[i].length())));
                }
            }
            sb.append('\n');
        }
        print(out, sb.toString());
        return 0;
    }

    private static void row(PrintStream out, boolean json, List<String[]> rows, String kind, String id,
                            SharedMemoryVariable<DynamicMessage> v, String attached) {
        io.shmvar.SegmentInfo info = v.stat();
        io.shmvar.LockState lock = v.lockState();
        String mode = String.format("%04o", info.mode());
        if (json) {
            JsonObject o = new JsonObject().str(kind, id).str("type", v.descriptor().getMessageType()).num("capacity", v.capacity())
                .unum("generation", v.generation()).raw("lock", lockJson(lock));
            o.raw("attached", attached.equals("-") ? "null" : attached);
            o.raw("owner", new JsonObject().num("uid", info.uid()).str("mode", mode).end());
            print(out, o.end() + "\n");
            return;
        }
        String holder = lock.word() == 0 ? "free" : lock.holder() + " (" + lock.holderLiveness() + ")";
        rows.add(new String[] {kind + "=" + id, v.descriptor().getMessageType(), Integer.toString(v.capacity()),
            Long.toUnsignedString(v.generation()), holder, attached, "uid=" + info.uid() + " " + mode});
    }

    private static boolean hasMagic(Path p) {
        try (var in = Files.newInputStream(p)) {
            byte[] b = in.readNBytes(4);
            return b.length == 4 && java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).getInt()
                == io.shmvar.proto.SegmentLayout.MAGIC_VALUE;
        } catch (IOException e) {
            return false;
        }
    }

    static int rm(Parsed p, PrintStream out) {
        Target t = Target.of(p);
        if (p.on("force")) {
            t.removeForce();
        } else {
            SharedMemoryVariable<DynamicMessage> v;
            try {
                v = t.openAny(null, writer(p).withReadOnly(true));
            } catch (ShmException e) {
                if (e.reason() != ShmException.Reason.NATIVE) {
                    throw new CommandFailed(e.getMessage() + " (refusing to remove it; add --force to remove it anyway)");
                }
                throw e;
            }
            v.remove();
        }
        print(out, "removed " + t.name() + "\n");
        return 0;
    }
}
