package io.shmvar;

import com.google.protobuf.Descriptors;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.MultiThreadIoEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollIoHandler;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ClientCalls;
import io.shmvar.bench.proto.BenchProto;
import io.shmvar.examples.Counter;
import org.HdrHistogram.Histogram;
import org.openjdk.jmh.profile.GCProfiler;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * make bench: Java against the Go processes it starts (bench-peer, go-peer), side by side, on one machine: the
 * shared variable against a raw Unix-socket echo and against gRPC over a Unix socket, its cost against the value's
 * size, and readers beside a writer. Prints a table, writes target/bench.json and draws target/bench-latency.svg and
 * target/bench-size.svg. {@code --quick} gives the same keys sooner. Each figure is the median of several rounds;
 * the output says how many.
 */
public final class Bench {
    private final boolean quick;
    private final int rounds;
    private final Path root = Path.of("").toAbsolutePath();
    private final Map<String, Object> figures = new LinkedHashMap<>();
    /** Round-trip or acquire latency of each transport, for the chart. */
    private final Map<String, Histogram> latencies = new LinkedHashMap<>();
    /** size_scaling: one row per shape and size, Java's and Go's figures side by side. */
    private final List<Map<String, Object>> sizes = new ArrayList<>();
    /** readers_scaling: one row per number of reader processes. */
    private final List<Map<String, Object>> readers = new ArrayList<>();

    /** How long each part took, to keep QUICK within its budget. */
    private final Map<String, Object> partSeconds = new LinkedHashMap<>();

    private interface Part {
        void run() throws Exception;
    }

    private void part(String name, Part part) throws Exception {
        long start = System.nanoTime();
        part.run();
        partSeconds.put(name, Math.round((System.nanoTime() - start) / 1e8) / 10.0);
    }

    private Bench(boolean quick) {
        this.quick = quick;
        this.rounds = quick ? 3 : 5;
    }

    public static void main(String[] args) throws Exception {
        Bench b = new Bench(Arrays.asList(args).contains("--quick"));
        long start = System.nanoTime();
        b.part("warm_up", b::warmUp);
        b.part("pingpong_shm_spin", () -> b.pingPongShm(WaitStrategy.SPIN, "pingpong_shm_spin_rtt_ns", "shm spin"));
        b.part("pingpong_shm_park", () -> b.pingPongShm(WaitStrategy.SPIN_THEN_PARK, "pingpong_shm_park_rtt_ns",
            "shm park"));
        b.part("pingpong_uds", b::pingPongUds);
        b.part("pingpong_floor", b::pingPongFloor);
        b.part("contended", b::contended);
        b.part("uds_increments", b::udsIncrements);
        b.part("grpc_uds", b::grpcUds);
        b.part("jmh", b::jmh);
        b.part("go_bench", b::goBench);
        b.part("size_scaling", b::sizeScaling);
        b.part("readers_scaling", b::readersScaling);
        b.part("idle_waiter", b::idleWaiter);
        b.figures.put("seconds_by_part", b.partSeconds);
        b.figures.put("rounds", b.rounds);
        b.figures.put("quick", b.quick);
        b.figures.put("machine", machine());
        b.figures.put("seconds", Math.round((System.nanoTime() - start) / 1e9));
        b.report();
    }

    // ---- 1, 2: ping-pong through the shared variable -------------------------------------------------------------

    private void pingPongShm(WaitStrategy wait, String key, String label) throws Exception {
        int n = wait == WaitStrategy.SPIN ? (quick ? 20_000 : 100_000) : (quick ? 5_000 : 20_000);
        Histogram all = histogram();
        Histogram updates = histogram();
        double[] medians = new double[rounds];
        for (int r = 0; r < rounds; r++) {
            Histogram h = histogram();
            pingPongRound(wait, n, h, updates);
            medians[r] = h.getValueAtPercentile(50);
            all.add(h);
        }
        figures.put(key, median(medians));
        // The Java side's share of the round trip: one update after Go's commit.
        figures.put(key.replace("_rtt_ns", "_java_update_ns"), (double) updates.getValueAtPercentile(50));
        latencies.put(label, all);
    }

    /** Java updates, Go's pong answers with its own update, n times; records the round trips and Java's updates. */
    private void pingPongRound(WaitStrategy wait, int n, Histogram rtt, Histogram updates) throws Exception {
        try (Segment s = new Segment(wait)) {
            Process go = start(goPeer(), "pong", "--key", s.k(), "--rounds", Integer.toString(n), "--after", "0",
                "--wait", wait == WaitStrategy.SPIN ? "spin" : "park", "--timeout", "30s");
            long g = 0;
            for (int i = 0; i < n; i++) {
                long t0 = System.nanoTime();
                s.v.update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
                long t1 = System.nanoTime();
                g = s.v.awaitChange(g + 1, Duration.ofSeconds(30));
                if (i >= n / 10) { // the first tenth warms both sides up
                    rtt.recordValue(System.nanoTime() - t0);
                    updates.recordValue(t1 - t0);
                }
            }
            finish(go);
        }
    }

    /**
     * Compiles the hot paths before the first measurement, which otherwise pays for it: a second attachment's
     * updates keep the first one's cache stale as in a ping-pong, on one thread so that the JIT has the other core;
     * then a short unmeasured ping-pong.
     */
    private void warmUp() throws Exception {
        try (Segment s = new Segment(WaitStrategy.SPIN);
             SharedMemoryVariable<Counter> other = SharedVariable.open(s.v.key(), Counter.getDefaultInstance())) {
            for (int i = 0; i < 300_000; i++) {
                (i % 2 == 0 ? s.v : other).update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
                s.v.awaitChange(i, Duration.ofSeconds(1));
            }
        }
        Thread.sleep(300);
        pingPongRound(WaitStrategy.SPIN, 50_000, histogram(), histogram());
    }

    // ---- 3: ping-pong of the same message over a Unix domain socket ---------------------------------------------

    private void pingPongUds() throws Exception {
        int n = quick ? 10_000 : 50_000;
        Histogram all = histogram();
        double[] medians = new double[rounds];
        byte[] request = Counter.newBuilder().setValue(12345).setLastWriter("java").build().toByteArray();
        for (int r = 0; r < rounds; r++) {
            Histogram h = histogram();
            try (Uds uds = new Uds()) {
                for (int i = 0; i < n; i++) {
                    long t0 = System.nanoTime();
                    uds.call(request);
                    if (i >= n / 10) {
                        h.recordValue(System.nanoTime() - t0);
                    }
                }
            }
            medians[r] = h.getValueAtPercentile(50);
            all.add(h);
        }
        figures.put("pingpong_uds_rtt_ns", median(medians));
        figures.put("pingpong_uds_rtt_rounds_ns", medians); // it drifts on a VM; see README
        latencies.put("unix socket", all);
    }

    // ---- 4: the floor, one raw atomic word in a plain segment ----------------------------------------------------

    private void pingPongFloor() throws Exception {
        int n = quick ? 100_000 : 500_000;
        Histogram all = histogram();
        double[] medians = new double[rounds];
        for (int r = 0; r < rounds; r++) {
            int key = freeKey();
            int id = Native.shmget(key, 4096, Native.IPC_CREAT | Native.IPC_EXCL | 0600);
            long address = Native.shmat(key, id, false);
            Histogram h = histogram();
            try {
                ByteBuffer m = Native.wrap(address, 4096);
                Process go = start(bench(), "floor", "--key", ShmException.formatKey(key), "--rounds", Integer.toString(n));
                for (int i = 0; i < n; i++) {
                    long t0 = System.nanoTime();
                    long ping = 2L * i + 1;
                    Native.LONG.setVolatile(m, 0, ping);
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                    while ((long) Native.LONG.getVolatile(m, 0) != ping + 1) {
                        Thread.onSpinWait();
                        if (i == 0 && System.nanoTime() > deadline) {
                            throw new IllegalStateException("bench-peer floor did not answer");
                        }
                    }
                    if (i >= n / 10) {
                        h.recordValue(System.nanoTime() - t0);
                    }
                }
                finish(go);
            } finally {
                Native.shmRemove(key, id);
                Native.shmdt(key, address);
            }
            medians[r] = h.getValueAtPercentile(50);
            all.add(h);
        }
        figures.put("pingpong_floor_rtt_ns", median(medians));
        latencies.put("raw word", all);
    }

    // ---- 5: contended throughput, and the same increments over a Unix socket ----------------------------------

    private void contended() throws Exception {
        double seconds = quick ? 1 : 3;
        double[] rates = new double[rounds], javaShares = new double[rounds], p99s = new double[rounds];
        Histogram all = histogram();
        for (int r = 0; r < rounds; r++) {
            Histogram h = histogram();
            long javaCount = 0;
            Map<String, String> go;
            try (Segment s = new Segment(WaitStrategy.SPIN_THEN_PARK)) {
                Process p = start(bench(), "contend", "--key", s.k(), "--duration", (long) (seconds * 1000) + "ms");
                Thread.sleep(300); // let Go attach and park on the generation
                s.v.set(Counter.getDefaultInstance()); // generation 1: both start
                long end = System.nanoTime() + (long) (seconds * 1e9);
                long[] started = new long[1];
                while (System.nanoTime() < end) {
                    started[0] = System.nanoTime();
                    s.v.update(c -> {
                        h.recordValue(System.nanoTime() - started[0]);
                        return c.toBuilder().setValue(c.getValue() + 1).build();
                    });
                    javaCount++;
                }
                go = json(finish(p));
                long goCount = Long.parseLong(go.get("count"));
                if (s.v.get().getValue() != javaCount + goCount) {
                    throw new IllegalStateException("lost increments: " + s.v.get().getValue() + " != "
                        + (javaCount + goCount));
                }
                h.add(Histogram.decodeFromCompressedByteBuffer(
                    ByteBuffer.wrap(Base64.getDecoder().decode(go.get("histogram"))), 0));
                rates[r] = (javaCount + goCount) / seconds;
                javaShares[r] = (double) javaCount / (javaCount + goCount);
                p99s[r] = h.getValueAtPercentile(99);
            }
            all.add(h);
        }
        figures.put("contended_updates_per_s", median(rates));
        figures.put("contended_java_share", round3(median(javaShares)));
        figures.put("contended_go_share", round3(1 - median(javaShares)));
        figures.put("contended_acquire_p50_ns", all.getValueAtPercentile(50));
        figures.put("contended_acquire_p99_ns", median(p99s));
        figures.put("contended_acquire_p999_ns", all.getValueAtPercentile(99.9));
        figures.put("contended_acquire_max_ns", all.getMaxValue());
        latencies.put("shm contended acquire", all);
    }

    private void udsIncrements() throws Exception {
        double seconds = quick ? 1 : 3;
        double[] rates = new double[rounds];
        byte[] request = Counter.newBuilder().setLastWriter("java").build().toByteArray();
        for (int r = 0; r < rounds; r++) {
            try (Uds uds = new Uds()) {
                long count = 0;
                long end = System.nanoTime() + (long) (seconds * 1e9);
                while (System.nanoTime() < end) {
                    uds.call(request);
                    count++;
                }
                rates[r] = count / seconds;
            }
        }
        figures.put("uds_updates_per_s", median(rates));
    }

    // ---- 5b: what users would pick instead: gRPC over a Unix socket to the Go owner ----------------------------

    /**
     * The same increment as a unary gRPC call from grpc-java to a grpc-go server that owns the Counter, over a Unix
     * domain socket, both with their defaults: the round trip one call at a time, then the request rate of as many
     * client threads as the shared-memory contention has contenders (two) for the same duration.
     */
    private void grpcUds() throws Exception {
        int n = quick ? 3_000 : 20_000;
        double seconds = quick ? 0.5 : 3;
        Histogram all = histogram();
        double[] medians = new double[rounds], p99s = new double[rounds], rates = new double[rounds];
        Counter request = Counter.newBuilder().setLastWriter("java").build();
        for (int r = 0; r < rounds; r++) {
            try (Grpc grpc = new Grpc()) {
                for (int i = 0; i < (r > 0 ? 2_000 : quick ? 5_000 : 20_000); i++) { // the first round compiles the client
                    grpc.update(request);
                }
                Histogram h = histogram();
                long before = grpc.update(request).getValue();
                for (int i = 0; i < n; i++) {
                    long t0 = System.nanoTime();
                    grpc.update(request);
                    h.recordValue(System.nanoTime() - t0);
                }
                medians[r] = h.getValueAtPercentile(50);
                p99s[r] = h.getValueAtPercentile(99);
                all.add(h);
                AtomicLong count = new AtomicLong();
                long end = System.nanoTime() + (long) (seconds * 1e9);
                List<Thread> clients = new ArrayList<>();
                for (int t = 0; t < 2; t++) {
                    Thread client = new Thread(() -> {
                        long mine = 0;
                        while (System.nanoTime() - end < 0) {
                            grpc.update(request);
                            mine++;
                        }
                        count.addAndGet(mine);
                    });
                    client.start();
                    clients.add(client);
                }
                for (Thread t : clients) {
                    t.join();
                }
                long after = grpc.update(request).getValue();
                if (after - before != n + count.get() + 1) {
                    throw new IllegalStateException("gRPC owner counted " + (after - before) + " increments, not "
                        + (n + count.get() + 1));
                }
                rates[r] = count.get() / seconds;
            }
        }
        figures.put("grpc_uds_rtt_ns", median(medians));
        figures.put("grpc_uds_rtt_p99_ns", median(p99s));
        figures.put("grpc_uds_rtt_rounds_ns", medians);
        figures.put("grpc_uds_updates_per_s", median(rates));
        latencies.put("gRPC unix socket", all);
    }

    // ---- 6, 7: uncontended cost in each language ----------------------------------------------------------------

    private void jmh() throws Exception {
        Collection<RunResult> results = new Runner(new OptionsBuilder()
            .include(UncontendedBenchmark.class.getName())
            .forks(1)
            .warmupIterations(quick ? 2 : 3).warmupTime(TimeValue.milliseconds(quick ? 400 : 1000))
            .measurementIterations(quick ? 3 : 5).measurementTime(TimeValue.milliseconds(quick ? 400 : 1000))
            .addProfiler(GCProfiler.class)
            .jvmArgs("-XX:+UseSerialGC")
            .build()).run();
        for (RunResult result : results) {
            String name = result.getParams().getBenchmark().replaceAll(".*\\.", "")
                .replaceAll("([A-Z])", "_$1").toLowerCase(Locale.ROOT); // updateUncached: update_uncached
            figures.put("java_" + name + "_ns", round3(result.getPrimaryResult().getScore()));
            var alloc = result.getSecondaryResults().get("·gc.alloc.rate.norm");
            if (alloc == null) {
                alloc = result.getSecondaryResults().get("gc.alloc.rate.norm");
            }
            if (alloc != null) {
                figures.put("java_" + name + "_alloc_bytes", round3(alloc.getScore()));
            }
        }
    }

    /** Reads the `go test -bench` output that make bench wrote before starting us. */
    private void goBench() throws IOException {
        Path file = root.resolve("target/go-bench.txt");
        Map<String, List<Double>> ns = new LinkedHashMap<>(), allocs = new LinkedHashMap<>();
        Pattern line = Pattern.compile("^Benchmark(\\w+)-\\d+\\s+\\d+\\s+([\\d.]+) ns/op\\s+([\\d.]+) B/op");
        for (String l : Files.readAllLines(file)) {
            Matcher m = line.matcher(l);
            if (m.find()) {
                ns.computeIfAbsent(m.group(1), k -> new ArrayList<>()).add(Double.parseDouble(m.group(2)));
                allocs.computeIfAbsent(m.group(1), k -> new ArrayList<>()).add(Double.parseDouble(m.group(3)));
            }
        }
        for (String name : List.of("Update", "UpdateUncached", "Mutate", "MutateUncached", "Get")) {
            List<Double> values = ns.get(name);
            if (values == null) {
                throw new IllegalStateException(file + " has no Benchmark" + name);
            }
            String k = name.replaceAll("(?<=.)([A-Z])", "_$1").toLowerCase(Locale.ROOT);
            figures.put("go_" + k + "_ns", round3(median(values.stream().mapToDouble(d -> d).toArray())));
            figures.put("go_" + k + "_alloc_bytes", median(allocs.get(name).stream().mapToDouble(d -> d).toArray()));
        }
    }

    // ---- 7b: cost against the value's size ------------------------------------------------------------------

    /**
     * Java's half (SizeBench, in a fresh JVM per shape, so that neither this JVM's heap nor the other shape's sizes
     * its young generation), then Go's (bench-peer sizes), one after the other so that neither disturbs the other.
     */
    private void sizeScaling() throws Exception {
        for (String shape : List.of("bytes", "fields")) {
            List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString(), "-XX:+UseSerialGC", "-cp", System.getProperty("java.class.path"),
                SizeBench.class.getName(), shape));
            if (quick) {
                command.add("--quick");
            }
            Process java = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
            try (BufferedReader r = new BufferedReader(new InputStreamReader(java.getInputStream(),
                StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    Map<String, Object> row = new LinkedHashMap<>();
                    json(line).forEach((k, v) -> row.put(k, v.matches("-?\\d+") ? (Object) Integer.parseInt(v)
                        : v.matches("[-\\d.eE+]+") ? (Object) Double.parseDouble(v) : v));
                    sizes.add(row);
                }
            }
            if (java.waitFor() != 0) {
                throw new IllegalStateException("SizeBench " + shape + " failed");
            }
        }
        // Java and Go both go through the sizes for one shape, then the other: Go's rows in Java's order
        sizes.sort(java.util.Comparator.comparing((Map<String, Object> r) -> (int) r.get("bytes"))
            .thenComparing(r -> (String) r.get("shape")));
        List<String> command = new ArrayList<>(List.of("sizes"));
        if (quick) {
            command.add("--quick");
        }
        String out = finish(start(bench(), command.toArray(String[]::new)));
        Matcher m = Pattern.compile("\\{[^{}]*}").matcher(out);
        for (int i = 0; m.find(); i++) {
            Map<String, String> go = json(m.group());
            Map<String, Object> row = sizes.get(i);
            if (!go.get("bytes").equals(row.get("bytes").toString()) || !go.get("shape").equals(row.get("shape"))) {
                throw new IllegalStateException("bench-peer sizes: row " + i + " is " + go + ", Java's is " + row);
            }
            for (String k : List.of("update", "get_uncached", "floor", "mutate", "encode", "parse", "clone")) {
                row.put("go_" + k + "_ns", round3(Double.parseDouble(go.get(k + "_ns"))));
            }
            if (!go.get("encoded_bytes").equals(row.get("encoded_bytes").toString())) {
                throw new IllegalStateException("bench-peer sizes: " + go + " is not the size of Java's " + row);
            }
        }
        if (sizes.stream().anyMatch(r -> !r.containsKey("go_update_ns"))) {
            throw new IllegalStateException("bench-peer sizes gave fewer rows than Java: " + out);
        }
        figures.put("size_scaling", sizes);
    }

    // ---- 7c: lock-free readers in other processes beside one writer ------------------------------------------

    /**
     * One writer (this thread) commits 1,000 times a second while N bench-peer read processes, N from 0 to the core
     * count, get the value as fast as they can over the same window: their total gets per second, and the writer's
     * update latency. Each round takes every N in turn, so that a machine whose load drifts weighs on each N alike;
     * the figures are medians of the rounds.
     */
    private void readersScaling() throws Exception {
        double seconds = quick ? 0.3 : 1;
        int cores = Runtime.getRuntime().availableProcessors();
        List<List<double[]>> byN = new ArrayList<>(); // per N, per round: gets/s, writer p50, writer p99, commits/s
        for (int n = 0; n <= cores; n++) {
            byN.add(new ArrayList<>());
        }
        for (int r = 0; r < rounds; r++) {
            for (int n = 0; n <= cores; n++) {
                byN.get(n).add(readersRound(n, seconds));
            }
        }
        for (int n = 0; n <= cores; n++) {
            List<double[]> results = byN.get(n);
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("readers", n);
            row.put("gets_per_s", Math.rint(median(results.stream().mapToDouble(x -> x[0]).toArray())));
            row.put("gets_per_s_rounds", results.stream().map(x -> Math.rint(x[0])).toList());
            row.put("writer_update_p50_ns", median(results.stream().mapToDouble(x -> x[1]).toArray()));
            row.put("writer_update_p99_ns", median(results.stream().mapToDouble(x -> x[2]).toArray()));
            row.put("writer_commits_per_s", Math.rint(median(results.stream().mapToDouble(x -> x[3]).toArray())));
            readers.add(row);
        }
        figures.put("readers_scaling", readers);
    }

    /** One window of {@code n} readers beside the writer: total gets/s, the writer's p50 and p99, its commits/s. */
    private double[] readersRound(int n, double seconds) throws Exception {
        try (Segment s = new Segment(WaitStrategy.SPIN_THEN_PARK)) {
            long startWall = System.currentTimeMillis() + 200; // the readers attach meanwhile
            List<Process> procs = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                // One reader is one core: with GOMAXPROCS at the core count, a lone reader's garbage collection
                // runs on the idle core beside it, and one reader looks like more than one.
                List<String> command = List.of(bench().toString(), "read", "--key", s.k(), "--start",
                    Long.toString(startWall * 1_000_000L), "--duration", (long) (seconds * 1000) + "ms");
                ProcessBuilder pb = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT);
                pb.environment().put("GOMAXPROCS", "1");
                procs.add(pb.start());
            }
            long start = System.nanoTime() + (startWall - System.currentTimeMillis()) * 1_000_000L;
            Histogram h = histogram();
            int commits = (int) (seconds * 1000);
            for (int i = 0; i < commits; i++) {
                long due = start + i * 1_000_000L;
                while (due - System.nanoTime() > 100_000) {
                    LockSupport.parkNanos(due - System.nanoTime() - 50_000);
                }
                while (System.nanoTime() - due < 0) {
                    Thread.onSpinWait();
                }
                long t0 = System.nanoTime();
                s.v.update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
                h.recordValue(System.nanoTime() - t0);
            }
            double elapsed = (System.nanoTime() - start) / 1e9;
            double gets = 0;
            for (Process p : procs) {
                gets += Double.parseDouble(json(finish(p)).get("gets_per_s"));
            }
            return new double[] {gets, h.getValueAtPercentile(50), h.getValueAtPercentile(99), commits / elapsed};
        }
    }

    // ---- 8: CPU of a parked waiter ----------------------------------------------------------------------------

    private void idleWaiter() throws Exception {
        Duration idle = Duration.ofSeconds(5);
        try (Segment s = new Segment(WaitStrategy.SPIN_THEN_PARK)) {
            Process go = start(bench(), "idle", "--key", s.k(), "--duration", idle.toMillis() + "ms");
            long[] cpu = new long[1];
            Thread waiter = new Thread(() -> {
                var mx = ManagementFactory.getThreadMXBean();
                long before = mx.getCurrentThreadCpuTime();
                long start = System.nanoTime();
                while (System.nanoTime() - start < idle.toNanos()) {
                    try {
                        s.v.awaitChange(0, Duration.ofNanos(idle.toNanos() - (System.nanoTime() - start)));
                    } catch (ShmException e) {
                        if (e.reason() != ShmException.Reason.TIMEOUT) {
                            throw e;
                        }
                    }
                }
                cpu[0] = mx.getCurrentThreadCpuTime() - before;
            });
            waiter.start();
            waiter.join();
            Map<String, String> result = json(finish(go));
            figures.put("idle_waiter_cpu_percent", round3(Double.parseDouble(result.get("cpu_percent"))));
            figures.put("idle_waiter_java_thread_cpu_percent", round3(100.0 * cpu[0] / idle.toNanos()));
        }
    }

    // ---- output ----------------------------------------------------------------------------------------------

    private void report() throws IOException {
        double spin = num("pingpong_shm_spin_rtt_ns"), park = num("pingpong_shm_park_rtt_ns");
        double uds = num("pingpong_uds_rtt_ns"), floor = num("pingpong_floor_rtt_ns");
        double contended = num("contended_updates_per_s"), udsRate = num("uds_updates_per_s");
        double grpc = num("grpc_uds_rtt_ns"), grpcRate = num("grpc_uds_updates_per_s");
        StringBuilder t = new StringBuilder();
        t.append(String.format("shmvar bench on %s (median of %d rounds%s)%n%n", figures.get("machine"), rounds,
            quick ? ", QUICK" : ""));
        t.append(String.format("%-34s %14s   %s%n", "figure", "value", "target"));
        double udsBest = Arrays.stream((double[]) figures.get("pingpong_uds_rtt_rounds_ns")).min().orElse(uds);
        row(t, "ping-pong shm, spin (RTT)", ns(spin), check(spin * 20 <= uds, "<= 1/20 of UDS")
            + (spin * 20 <= udsBest ? "" : " (MISSED against its fastest round, " + ns(udsBest) + ")")
            + ", " + check(spin <= 4 * floor, "<= 4x floor") + String.format(" (%.1fx)", spin / floor)
            + ", " + check(spin * 50 <= grpc, ">= 50x faster than gRPC") + String.format(" (%.0fx)", grpc / spin));
        row(t, "ping-pong shm, park (RTT)", ns(park), check(park <= uds, "<= UDS"));
        row(t, "ping-pong unix socket (RTT)", ns(uds), "baseline; rounds " + Arrays.stream((double[]) figures.get("pingpong_uds_rtt_rounds_ns"))
            .mapToObj(Bench::ns).collect(java.util.stream.Collectors.joining(", ")));
        row(t, "ping-pong raw word floor (RTT)", ns(floor), "floor");
        row(t, "contended updates/s (Java+Go)", String.format("%,.0f", contended),
            check(contended >= 20 * udsRate, ">= 20x UDS requests") + ", "
            + check(contended >= 50 * grpcRate, ">= 50x gRPC requests") + String.format(" (%.0fx)", contended / grpcRate));
        row(t, "  Java share / Go share", String.format("%.1f%% / %.1f%%", 100 * num("contended_java_share"),
            100 * num("contended_go_share")), check(Math.min(num("contended_java_share"),
            num("contended_go_share")) >= 0.25, "each >= 25%"));
        row(t, "  acquire p50/p99/p99.9/max", String.format("%s/%s/%s/%s", ns(num("contended_acquire_p50_ns")),
            ns(num("contended_acquire_p99_ns")), ns(num("contended_acquire_p999_ns")),
            ns(num("contended_acquire_max_ns"))), "");
        row(t, "UDS increments/s (to Go owner)", String.format("%,.0f", udsRate), "baseline");
        row(t, "gRPC unix socket (RTT)", ns(grpc), "baseline: grpc-java to grpc-go; p99 "
            + ns(num("grpc_uds_rtt_p99_ns")) + "; rounds " + Arrays.stream((double[]) figures.get("grpc_uds_rtt_rounds_ns"))
            .mapToObj(Bench::ns).collect(java.util.stream.Collectors.joining(", ")));
        row(t, "gRPC increments/s (to Go owner)", String.format("%,.0f", grpcRate), "baseline; 2 client threads");
        row(t, "Java update (JMH)", ns(num("java_update_ns")), check(num("java_update_ns") < 150, "< 150 ns")
            + allocNote("java_update"));
        row(t, "Java get (JMH)", ns(num("java_get_ns")), check(num("java_get_ns") < 100, "< 100 ns")
            + allocNote("java_get"));
        row(t, "Go update (go test -bench)", ns(num("go_update_ns")), check(num("go_update_ns") < 300, "< 300 ns")
            + allocNote("go_update"));
        row(t, "Go mutate (go test -bench)", ns(num("go_mutate_ns")), check(num("go_mutate_ns") < 300, "< 300 ns")
            + allocNote("go_mutate") + "; Mutate: update in place, no copy for the caller");
        row(t, "Go get (go test -bench)", ns(num("go_get_ns")), allocNote("go_get").replaceFirst("^, ", ""));
        row(t, "Java update, cache stale (JMH)", ns(num("java_update_uncached_ns")),
            "after another writer; " + allocNote("java_update_uncached").replaceFirst("^, ", ""));
        row(t, "Go update, cache stale", ns(num("go_update_uncached_ns")),
            "after another writer; " + allocNote("go_update_uncached").replaceFirst("^, ", ""));
        row(t, "Go mutate, cache stale", ns(num("go_mutate_uncached_ns")),
            "after another writer; " + allocNote("go_mutate_uncached").replaceFirst("^, ", ""));
        row(t, "Java update inside spin ping-pong", ns(num("pingpong_shm_spin_java_update_ns")),
            "p50; the rest of the gap to the isolated cost is cache lines moving between cores");
        row(t, "parked waiter CPU, 5 s (Go)", String.format("%.3f%%", num("idle_waiter_cpu_percent")),
            check(num("idle_waiter_cpu_percent") < 1, "< 1% of a core"));
        row(t, "parked waiter CPU, 5 s (Java)", String.format("%.3f%%",
            num("idle_waiter_java_thread_cpu_percent")), check(num("idle_waiter_java_thread_cpu_percent") < 1,
            "< 1% of a core"));
        sizeTable(t);
        readersTable(t);
        System.out.print(t);
        Files.createDirectories(root.resolve("target"));
        Files.writeString(root.resolve("target/bench.json"), toJson(figures) + "\n");
        Files.writeString(root.resolve("target/bench.txt"), t.toString());
        Files.writeString(root.resolve("target/bench-latency.svg"), Chart.svg(latencies,
            "latency percentiles, " + figures.get("machine")));
        Files.writeString(root.resolve("target/bench-size.svg"), Chart.sizeSvg(sizes,
            "cost against value size, " + figures.get("machine")));
        System.out.printf("%nwrote target/bench.json, target/bench.txt, target/bench-latency.svg and "
            + "target/bench-size.svg in %ss%n", figures.get("seconds"));
    }

    /** size_scaling as a table, the 4 MiB targets, and where the time of the many-fields shape goes. */
    private void sizeTable(StringBuilder t) {
        t.append(String.format("%nvalue size (median per op)    %11s %11s %11s   %11s %11s %11s%n", "Java update",
            "get uncach.", "copy+CRC", "Go update", "get uncach.", "copy+CRC"));
        for (Map<String, Object> r : sizes) {
            t.append(String.format("%-8s %-20s %11s %11s %11s   %11s %11s %11s%n", size((int) r.get("bytes")),
                r.get("shape").equals("bytes") ? "one bytes field" : "many small fields",
                ns(d(r, "java_update_ns")), ns(d(r, "java_get_uncached_ns")), ns(d(r, "java_floor_ns")),
                ns(d(r, "go_update_ns")), ns(d(r, "go_get_uncached_ns")), ns(d(r, "go_floor_ns"))));
        }
        Map<String, Object> big = sizeRow("bytes", 4 << 20), fields = sizeRow("fields", 4 << 20);
        if (big != null) {
            for (String lang : List.of("java", "go")) {
                double fl = d(big, lang + "_floor_ns"), up = d(big, lang + "_update_ns"),
                    get = d(big, lang + "_get_uncached_ns");
                row(t, String.format("4 MiB bytes, %s update / get", lang.equals("go") ? "Go" : "Java"),
                    String.format("%.2fx / %.2fx", up / fl, get / fl), check(up <= 2 * fl, "update <= 2x floor")
                    + ", " + check(get <= 2 * fl, "get <= 2x floor"));
            }
        }
        if (fields != null) {
            for (String lang : List.of("java", "go")) {
                String name = lang.equals("go") ? "Go" : "Java";
                double up = d(fields, lang + "_update_ns"), get = d(fields, lang + "_get_uncached_ns");
                double enc = d(fields, lang + "_encode_ns"), parse = d(fields, lang + "_parse_ns");
                row(t, String.format("4 MiB fields, %s update", name), ns(up), String.format(
                    "protobuf encode in memory %s (%.0f%%)", ns(enc), 100 * enc / up) + (lang.equals("go")
                    ? String.format(", copy kept for the cache (proto.Clone) %s (%.0f%%); Mutate, which keeps no "
                    + "copy: %s", ns(d(fields, "go_clone_ns")), 100 * d(fields, "go_clone_ns") / up,
                    ns(d(fields, "go_mutate_ns")))
                    : String.format(", unpaired-surrogate check of its strings %s (%.0f%%)",
                    ns(d(fields, "java_string_check_ns")), 100 * d(fields, "java_string_check_ns") / up)));
                row(t, String.format("4 MiB fields, %s get uncached", name), ns(get), String.format(
                    "protobuf parse in memory %s (%.0f%%)", ns(parse), 100 * parse / get));
            }
        }
    }

    private Map<String, Object> sizeRow(String shape, int bytes) {
        return sizes.stream().filter(r -> r.get("shape").equals(shape) && (int) r.get("bytes") == bytes).findFirst()
            .orElse(null);
    }

    /** readers_scaling as a table, and its two targets. */
    private void readersTable(StringBuilder t) {
        t.append(String.format("%nreaders (other processes) beside one writer at 1,000 commits/s%n"));
        t.append(String.format("%-10s %16s %22s %18s%n", "readers", "total gets/s", "writer update p50", "p99"));
        for (Map<String, Object> r : readers) {
            t.append(String.format("%-10s %,16.0f %22s %18s%n", r.get("readers"), d(r, "gets_per_s"),
                ns(d(r, "writer_update_p50_ns")), ns(d(r, "writer_update_p99_ns"))));
        }
        if (readers.size() >= 3) {
            double one = d(readers.get(1), "gets_per_s"), two = d(readers.get(2), "gets_per_s");
            row(t, "gets, 2 readers / 1 reader", String.format("%.2fx", two / one), check(two >= 1.8 * one, ">= 1.8x"));
        }
        double without = d(readers.get(0), "writer_update_p50_ns");
        double with = d(readers.get(readers.size() - 1), "writer_update_p50_ns");
        row(t, "writer p50, " + (readers.size() - 1) + " readers / none", String.format("%.2fx", with / without),
            check(with <= 2 * without, "<= 2x"));
    }

    private static double d(Map<String, Object> row, String key) {
        return ((Number) row.get(key)).doubleValue();
    }

    private static String size(int bytes) {
        return bytes >= 1 << 20 ? (bytes >> 20) + " MiB" : bytes >= 1 << 10 ? (bytes >> 10) + " KiB" : bytes + " B";
    }

    private String allocNote(String key) {
        Object alloc = figures.get(key + "_alloc_bytes");
        return alloc == null ? "" : String.format(", %s B/op", alloc);
    }

    private static void row(StringBuilder t, String name, String value, String target) {
        t.append(String.format("%-34s %14s   %s%n", name, value, target));
    }

    private static String check(boolean ok, String target) {
        return (ok ? "met " : "MISSED ") + target;
    }

    private double num(String key) {
        return ((Number) figures.get(key)).doubleValue();
    }

    private static String ns(double ns) {
        return ns >= 10_000_000 ? String.format("%.1f ms", ns / 1e6)
            : ns >= 10_000 ? String.format("%.1f µs", ns / 1000) : String.format("%.0f ns", ns);
    }

    // ---- helpers -----------------------------------------------------------------------------------------------

    /** A Counter segment under a free key, removed at close. */
    private static final class Segment implements AutoCloseable {
        final SharedMemoryVariable<Counter> v;

        Segment(WaitStrategy wait) {
            SharedMemoryVariable<Counter> created = null;
            while (created == null) {
                try {
                    created = SharedVariable.create(0x5d000000 | ThreadLocalRandom.current().nextInt(0x1000000),
                        Counter.getDefaultInstance(), Options.defaults().withWait(wait));
                } catch (ShmException e) {
                    if (e.errno() != Native.EEXIST) {
                        throw e;
                    }
                }
            }
            v = created;
        }

        String k() {
            return ShmException.formatKey(v.key());
        }

        @Override
        public void close() {
            v.remove();
        }
    }

    /** A bench-peer uds server and a connected client. */
    private final class Uds implements AutoCloseable {
        private final Path socket = Files.createTempDirectory("shmvar-bench").resolve("uds");
        private final Process server;
        private final SocketChannel channel;
        private final ByteBuffer out = ByteBuffer.allocateDirect(1024).order(ByteOrder.LITTLE_ENDIAN);
        private final ByteBuffer in = ByteBuffer.allocateDirect(1024).order(ByteOrder.LITTLE_ENDIAN);
        private final byte[] reply = new byte[1024];

        Uds() throws IOException {
            server = start(bench(), "uds", "--socket", socket.toString());
            String first = new BufferedReader(new InputStreamReader(server.getInputStream())).readLine();
            if (first == null || !first.contains("listening")) {
                throw new IllegalStateException("bench-peer uds did not start: " + first);
            }
            channel = SocketChannel.open(StandardProtocolFamily.UNIX);
            channel.connect(UnixDomainSocketAddress.of(socket));
        }

        /** Sends one length-prefixed Counter and parses the reply, as a client of a Go service would. */
        Counter call(byte[] request) throws IOException {
            out.clear();
            out.putInt(request.length).put(request).flip();
            while (out.hasRemaining()) {
                channel.write(out);
            }
            in.clear().limit(4);
            readFully(in);
            int n = in.getInt(0);
            in.clear().limit(n);
            readFully(in);
            in.flip().get(reply, 0, n);
            return Counter.parseFrom(ByteBuffer.wrap(reply, 0, n));
        }

        private void readFully(ByteBuffer b) throws IOException {
            while (b.hasRemaining()) {
                if (channel.read(b) < 0) {
                    throw new IOException("bench-peer uds hung up");
                }
            }
        }

        @Override
        public void close() throws IOException {
            channel.close();
            try {
                finish(server);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            Files.deleteIfExists(socket);
            Files.deleteIfExists(socket.getParent());
        }
    }

    /** The gRPC method of proto/bench/v1/bench.proto's Owner service, built from its descriptor. */
    private static final MethodDescriptor<Counter, Counter> UPDATE;

    static {
        Descriptors.MethodDescriptor update = BenchProto.getDescriptor().findServiceByName("Owner")
            .findMethodByName("Update");
        UPDATE = MethodDescriptor.<Counter, Counter>newBuilder()
            .setType(MethodDescriptor.MethodType.UNARY)
            .setFullMethodName(MethodDescriptor.generateFullMethodName(update.getService().getFullName(),
                update.getName()))
            .setRequestMarshaller(ProtoUtils.marshaller(Counter.getDefaultInstance()))
            .setResponseMarshaller(ProtoUtils.marshaller(Counter.getDefaultInstance()))
            .build();
    }

    /**
     * A bench-peer grpc server, which owns the Counter, and a grpc-java channel to it over its Unix socket (Netty's
     * epoll transport, as grpc-java needs for a Unix socket), both with their default settings.
     */
    private final class Grpc implements AutoCloseable {
        private final Path socket = Files.createTempDirectory("shmvar-bench").resolve("grpc");
        private final Process server;
        private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        private final ManagedChannel channel;

        Grpc() throws IOException {
            server = start(bench(), "grpc", "--socket", socket.toString());
            String first = new BufferedReader(new InputStreamReader(server.getInputStream())).readLine();
            if (first == null || !first.contains("listening")) {
                throw new IllegalStateException("bench-peer grpc did not start: " + first);
            }
            channel = NettyChannelBuilder.forAddress(new DomainSocketAddress(socket.toString()))
                .eventLoopGroup(group)
                .channelType(EpollDomainSocketChannel.class)
                .usePlaintext()
                .build();
        }

        /** One unary call, as a generated blocking stub makes it. */
        Counter update(Counter request) {
            return ClientCalls.blockingUnaryCall(channel, UPDATE, CallOptions.DEFAULT, request);
        }

        @Override
        public void close() throws IOException {
            channel.shutdownNow();
            try {
                channel.awaitTermination(5, TimeUnit.SECONDS);
                group.shutdownGracefully(0, 1, TimeUnit.SECONDS).await(5, TimeUnit.SECONDS);
                server.getOutputStream().close(); // bench-peer grpc stops at the end of its input
                finish(server);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            Files.deleteIfExists(socket);
            Files.deleteIfExists(socket.getParent());
        }
    }

    private Path goPeer() {
        return root.resolve("bin/go-peer");
    }

    private Path bench() {
        return root.resolve("bin/bench-peer");
    }

    private static Process start(Path program, String... args) throws IOException {
        List<String> command = new ArrayList<>(List.of(program.toString()));
        command.addAll(List.of(args));
        return new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    }

    /** Waits for a peer and returns its last line of output. */
    private static String finish(Process p) throws IOException, InterruptedException {
        String last = "";
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                last = line;
            }
        }
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
            p.destroyForcibly();
            throw new IllegalStateException(p.info().command().orElse("peer") + " failed: " + last);
        }
        return last;
    }

    /** The flat string values of a one-line JSON object, enough for bench-peer's output. */
    private static Map<String, String> json(String line) {
        Map<String, String> out = new LinkedHashMap<>();
        Matcher m = Pattern.compile("\"(\\w+)\":(\"([^\"]*)\"|[-\\d.eE+]+|true|false)").matcher(line);
        while (m.find()) {
            out.put(m.group(1), m.group(3) != null ? m.group(3) : m.group(2));
        }
        return out;
    }

    /** The figures as JSON: one key a line; a list of rows (size_scaling, readers_scaling) one row a line. */
    private static String toJson(Map<String, Object> map) {
        StringBuilder sb = new StringBuilder("{\n");
        int i = 0;
        for (var e : map.entrySet()) {
            Object v = e.getValue();
            String value = v instanceof List<?> list && !list.isEmpty() && list.get(0) instanceof Map
                ? list.stream().map(Bench::jsonValue).collect(java.util.stream.Collectors.joining(",\n    ", "[\n    ",
                "\n  ]"))
                : jsonValue(v);
            sb.append("  \"").append(e.getKey()).append("\": ").append(value)
                .append(++i < map.size() ? ",\n" : "\n");
        }
        return sb.append('}').toString();
    }

    private static String jsonValue(Object v) {
        if (v instanceof String s) {
            return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
        }
        if (v instanceof double[] d) {
            return Arrays.toString(d);
        }
        if (v instanceof List<?> list) {
            return list.stream().map(Bench::jsonValue).collect(java.util.stream.Collectors.joining(", ", "[", "]"));
        }
        if (v instanceof Map<?, ?> m) {
            return m.entrySet().stream().map(e -> "\"" + e.getKey() + "\": " + jsonValue(e.getValue()))
                .collect(java.util.stream.Collectors.joining(", ", "{", "}"));
        }
        return String.valueOf(v);
    }

    private static int freeKey() {
        while (true) {
            int key = 0x5d000000 | ThreadLocalRandom.current().nextInt(0x1000000);
            try {
                Native.shmget(key, 0, 0);
            } catch (ShmException e) {
                if (e.errno() == Native.ENOENT) {
                    return key;
                }
            }
        }
    }

    private static Histogram histogram() {
        return new Histogram(TimeUnit.SECONDS.toNanos(30), 3);
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    private static double round3(double d) {
        return Math.round(d * 1000) / 1000.0;
    }

    private static String machine() {
        String cpu = "unknown CPU";
        try {
            for (String l : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (l.startsWith("model name")) {
                    cpu = l.substring(l.indexOf(':') + 1).strip();
                    break;
                }
            }
        } catch (IOException ignored) {
            // keep the default
        }
        return String.format("%s, %d cores, Linux %s, Java %s", cpu, Runtime.getRuntime().availableProcessors(),
            System.getProperty("os.version"), System.getProperty("java.version"));
    }
}
