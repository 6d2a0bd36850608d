package io.shmvar.cli;

import com.google.protobuf.DynamicMessage;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.TextFormat;
import com.google.protobuf.util.JsonFormat;
import io.shmvar.SharedMemoryVariable;
import io.shmvar.Remote;
import io.shmvar.SharedVariable;
import io.shmvar.ShmException;
import io.shmvar.etcd.EtcdVariable;
import io.shmvar.examples.Counter;
import java.io.IOException;
import java.io.PrintStream;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * java-peer's commands on a variable kept in etcd: {@code --etcd etcd://host:port[,host:port...]/prefix/name} in
 * place of --key or --file (README, "Beyond one host"), with the same output as go-peer's (go-peer/cmd/go-peer/
 * remote.go). {@link JavaPeer#run} hands a command line that has --etcd to {@link #run}.
 */
@Command(name = "java-peer", description = "Create, read and update shmvar variables kept in etcd.",
    subcommands = {EtcdPeer.Create.class, EtcdPeer.Get.class, EtcdPeer.Set.class, EtcdPeer.Incr.class,
        EtcdPeer.Watch.class, EtcdPeer.Pong.class, EtcdPeer.Rm.class, EtcdPeer.Ls.class})
final class EtcdPeer implements Callable<Integer> {
    /** Whether a command line names its variable with --etcd. */
    static boolean usesAddress(String[] args) {
        for (String a : args) {
            if (a.equals("--etcd") || a.startsWith("--etcd=")) {
                return true;
            }
        }
        return false;
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length > 0 && !java.util.Set.of("create", "get", "set", "incr", "watch", "pong", "rm", "ls").contains(args[0])) {
            err.println("java-peer " + args[0] + ": --etcd is taken by create, get, set, incr, watch, pong, rm and ls");
            return 2;
        }
        CommandLine cmd = new CommandLine(new EtcdPeer());
        cmd.setOut(new java.io.PrintWriter(out, true));
        cmd.setErr(new java.io.PrintWriter(err, true));
        cmd.setParameterExceptionHandler((e, a) -> {
            err.println(e.getCommandLine().getCommandSpec().qualifiedName() + ": " + e.getMessage());
            return 2;
        });
        cmd.setExecutionExceptionHandler((e, c, parsed) -> {
            String name = c.getCommandSpec().qualifiedName();
            if (e instanceof Spec.UsageException) {
                err.println(name + ": " + e.getMessage());
                return 2;
            }
            err.println(name + ": " + (e instanceof ShmException || e instanceof JavaPeer.CommandFailed ? e.getMessage() : e));
            return 1;
        });
        return cmd.execute(args);
    }

    @Override
    public Integer call() {
        throw new Spec.UsageException("missing command");
    }

    abstract static class EtcdCommand implements Callable<Integer> {
        @Option(names = "--etcd", required = true, paramLabel = "URI",
            description = "etcd://host:port[,host:port...]/prefix/name")
        String address;

        @Option(names = "--etcd-user", paramLabel = "NAME", description = "etcd user; password from $SHMVAR_ETCD_PASSWORD")
        String user;

        @Option(names = "--etcd-ca", paramLabel = "FILE", description = "CA of the members' certificates (TLS)")
        String ca;

        @Option(names = "--etcd-cert", paramLabel = "FILE", description = "client certificate (TLS)")
        String cert;

        @Option(names = "--etcd-key", paramLabel = "FILE", description = "client key (TLS)")
        String key;

        @Option(names = "--request-timeout", paramLabel = "DURATION", defaultValue = "5s",
            converter = DurationConverter.class)
        Duration requestTimeout;

        EtcdVariable.Options options() {
            if (!address.startsWith("etcd://")) {
                throw new Spec.UsageException("--etcd \"" + address + "\": write etcd://host:port[,host:port...]/prefix/name");
            }
            EtcdVariable.Options o = EtcdVariable.Options.defaults().withRequestTimeout(requestTimeout);
            if (user != null) {
                o = o.withCredentials(user, System.getenv("SHMVAR_ETCD_PASSWORD"));
            }
            if (ca != null || cert != null || key != null) {
                o = o.withTls(ca, cert, key);
            }
            return o;
        }

        PrintStream out() {
            return System.out;
        }

        EtcdVariable<DynamicMessage> openAny(String type, EtcdVariable.Options options) {
            EtcdVariable<DynamicMessage> v = EtcdVariable.openDynamic(address, options);
            if (type != null && !v.descriptor().getMessageType().equals(type)) {
                v.close();
                throw Remote.error("open", address, ShmException.Reason.TYPE_MISMATCH,
                    "variable holds " + v.descriptor().getMessageType() + ", asked for " + type);
            }
            return v;
        }
    }

    @Command(name = "create")
    static final class Create extends EtcdCommand {
        @Option(names = "--capacity", paramLabel = "BYTES", defaultValue = "4096")
        int capacity;

        @Option(names = "--type", paramLabel = "FULL.NAME", defaultValue = "shmvar.examples.v1.Counter")
        String type;

        @Override
        public Integer call() {
            Message prototype = JavaPeer.TYPES.get(type);
            if (prototype == null) {
                throw new Spec.UsageException("--type " + type + ": unknown message type (known: "
                    + String.join(", ", new java.util.TreeSet<>(JavaPeer.TYPES.keySet())) + ")");
            }
            try (var v = EtcdVariable.create(address, prototype, options().withCapacity(capacity))) {
                out().printf("created %s type=%s capacity=%d%n", address, type, v.capacity());
            }
            return 0;
        }
    }

    @Command(name = "get")
    static final class Get extends EtcdCommand {
        @Option(names = "--format", defaultValue = "text")
        String format;

        @Option(names = "--type", paramLabel = "FULL.NAME")
        String type;

        @Option(names = "--serializable", description = "read from any member, possibly stale")
        boolean serializable;

        @Override
        public Integer call() throws IOException {
            if (!format.equals("text") && !format.equals("json") && !format.equals("binary")) {
                throw new Spec.UsageException("--format \"" + format + "\": want text, json or binary");
            }
            try (var v = openAny(type, options().withReadOnly(true).withSerializable(serializable))) {
                switch (format) {
                    case "json" -> out().println(Canonical.json(v.get()));
                    case "binary" -> {
                        out().write(v.getEncoded());
                        out().flush();
                    }
                    default -> out().println(Canonical.text(v.get()));
                }
            }
            return 0;
        }
    }

    @Command(name = "set")
    static final class Set extends EtcdCommand {
        @Option(names = "--format")
        String format;

        @Parameters(paramLabel = "VALUE", arity = "1")
        String value;

        @Override
        public Integer call() {
            try (var v = openAny(null, options())) {
                v.set(parse(v, value, format));
                out().printf("set %s generation=%d%n", address, v.generation());
            }
            return 0;
        }
    }

    /** VALUE in text format, or JSON when it starts with '{' or --format json says so. */
    static DynamicMessage parse(EtcdVariable<DynamicMessage> v, String text, String format) {
        if (format == null) {
            format = text.strip().startsWith("{") ? "json" : "text";
        }
        DynamicMessage.Builder builder = DynamicMessage.newBuilder(v.messageDescriptor());
        try {
            switch (format) {
                case "text" -> TextFormat.Parser.newBuilder().setRecursionLimit(SharedMemoryVariable.MAX_NESTING_DEPTH).build()
                    .merge(text, builder);
                case "json" -> JsonFormat.parser().merge(text, builder);
                default -> throw new Spec.UsageException("--format \"" + format + "\": want text or json");
            }
        } catch (TextFormat.ParseException | InvalidProtocolBufferException e) {
            throw new Spec.UsageException("VALUE is not a valid " + v.messageDescriptor().getFullName() + " in "
                + format + " format: " + e.getMessage());
        }
        String field = SharedVariable.invalidUtf8Field(builder.build());
        if (field != null) {
            throw new Spec.UsageException("VALUE is not a valid " + v.messageDescriptor().getFullName() + " in "
                + format + " format: field " + field + " contains invalid UTF-8");
        }
        return builder.build();
    }

    @Command(name = "incr")
    static final class Incr extends EtcdCommand {
        @Option(names = "--count", required = true, paramLabel = "N")
        long count;

        @Option(names = "--timeout", paramLabel = "DURATION", converter = DurationConverter.class,
            description = "give up an increment after this long; by default wait through outages")
        Duration timeout;

        @Option(names = "--quiet")
        boolean quiet;

        @Option(names = "--print-each")
        boolean printEach;

        @Override
        public Integer call() {
            if (count < 1) {
                throw new Spec.UsageException("--count must be at least 1");
            }
            String me = "java:" + ProcessHandle.current().pid();
            long start = System.nanoTime();
            long last = 0;
            long[] reported = {0};
            java.util.function.Consumer<ShmException> report = e -> {
                if (System.nanoTime() - reported[0] > 1_000_000_000L) { // once per outage
                    System.err.println("java-peer incr: " + e.getMessage() + "; retrying");
                }
                reported[0] = System.nanoTime();
            };
            EtcdVariable.Options options = options().withOnUnavailable(report);
            try (var v = openThroughOutages(address, options, report)) {
                for (long i = 1; i <= count; i++) {
                    Counter c;
                    try {
                        c = timeout != null
                            ? v.tryUpdate(x -> x.toBuilder().setValue(x.getValue() + 1).setLastWriter(me).build(), timeout)
                            : v.update(x -> x.toBuilder().setValue(x.getValue() + 1).setLastWriter(me).build());
                    } catch (ShmException e) {
                        throw new JavaPeer.CommandFailed("after " + (i - 1) + " of " + count + " increments: " + e.getMessage());
                    }
                    last = c.getValue();
                    if (printEach) {
                        out().println("committed " + last);
                    }
                }
                Duration elapsed = Duration.ofNanos(System.nanoTime() - start);
                out().printf("incr: count=%d elapsed=%s rate=%.0f/s value=%d conflicts=%d%n", count,
                    JavaPeer.formatDuration(elapsed.toNanos()), count / (elapsed.toNanos() / 1e9), last, v.conflicts());
            }
            return 0;
        }
    }

    /** Opens the Counter, waiting through an outage (reported as the updates report it). */
    private static EtcdVariable<Counter> openThroughOutages(String address, EtcdVariable.Options options,
                                                            java.util.function.Consumer<ShmException> report) {
        while (true) {
            try {
                return EtcdVariable.open(address, Counter.getDefaultInstance(), options);
            } catch (ShmException e) {
                if (!Remote.isUnavailable(e)) {
                    throw e;
                }
                report.accept(e);
                try {
                    Thread.sleep(100);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw e;
                }
            }
        }
    }

    @Command(name = "watch")
    static final class Watch extends EtcdCommand {
        @Option(names = "--count", paramLabel = "N", defaultValue = "0")
        long count;

        @Option(names = "--format", defaultValue = "text")
        String format;

        @Override
        public Integer call() throws IOException {
            if (!format.equals("text") && !format.equals("json")) {
                throw new Spec.UsageException("--format \"" + format + "\": want text or json");
            }
            try (var v = openAny(null, options().withReadOnly(true))) {
                long g = v.generation();
                for (long seen = 0; count == 0 || seen < count; seen++) {
                    g = v.awaitChange(g, Duration.ofDays(365));
                    DynamicMessage m = v.get();
                    out().print(format.equals("json") ? "{\"generation\":" + g + ",\"value\":" + Canonical.json(m) + "}\n"
                        : "generation=" + g + " " + Canonical.text(m) + "\n");
                }
            }
            return 0;
        }
    }

    @Command(name = "pong")
    static final class Pong extends EtcdCommand {
        @Option(names = "--rounds", required = true, paramLabel = "N")
        long rounds;

        @Option(names = "--after", paramLabel = "G", defaultValue = "-1")
        long after;

        @Option(names = "--timeout", paramLabel = "DURATION", defaultValue = "10s", converter = DurationConverter.class)
        Duration timeout;

        @Override
        public Integer call() {
            if (rounds < 1) {
                throw new Spec.UsageException("--rounds must be at least 1");
            }
            long start = System.nanoTime();
            try (var v = EtcdVariable.open(address, Counter.getDefaultInstance(), options())) {
                long g = after >= 0 ? after : v.generation();
                for (long i = 0; i < rounds; i++) {
                    g = v.awaitChange(g, timeout);
                    v.update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
                    g++;
                }
            }
            out().printf("pong: rounds=%d elapsed=%s%n", rounds, JavaPeer.formatDuration(System.nanoTime() - start));
            return 0;
        }
    }

    @Command(name = "rm")
    static final class Rm extends EtcdCommand {
        @Override
        public Integer call() {
            EtcdVariable.remove(address, options());
            out().printf("removed %s%n", address);
            return 0;
        }
    }

    @Command(name = "ls")
    static final class Ls extends EtcdCommand {
        @Override
        public Integer call() {
            options(); // checks the scheme
            List<EtcdVariable.Listed> entries = EtcdVariable.list(address, options());
            int width = "VARIABLE".length();
            int typeWidth = "TYPE".length();
            for (EtcdVariable.Listed e : entries) {
                width = Math.max(width, e.address().length());
                typeWidth = Math.max(typeWidth, e.type().length());
            }
            String row = "%-" + width + "s  %-" + typeWidth + "s  %-8s  %-10s  %s%n";
            out().printf(row, "VARIABLE", "TYPE", "CAPACITY", "GENERATION", "CREATOR");
            for (EtcdVariable.Listed e : entries) {
                out().printf(row, e.address(), e.type(), e.capacity(), e.generation(), e.creator());
            }
            return 0;
        }
    }

    /** Durations as every command reads them (Spec.parseDuration): 1m30s, 200ms, 1.5h. */
    static final class DurationConverter implements CommandLine.ITypeConverter<Duration> {
        @Override
        public Duration convert(String value) {
            java.math.BigInteger nanos = Spec.parseDuration(value);
            if (nanos == null || nanos.bitLength() > 63) {
                throw new CommandLine.TypeConversionException("\"" + value + "\" is not a duration (for example 1m30s, 200ms)");
            }
            return Duration.ofNanos(nanos.longValueExact());
        }
    }
}
