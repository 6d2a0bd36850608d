package io.shmvar;

import static org.junit.jupiter.api.Assertions.*;

import com.google.protobuf.DynamicMessage;
import io.shmvar.etcd.EtcdVariable;
import io.shmvar.examples.AllTypes;
import io.shmvar.examples.Counter;
import io.shmvar.examples.Point;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The etcd backing from both languages at once, on a real server: bin/etcd-dev (one embedded etcd), with Java's
 * io.shmvar.etcd.EtcdVariable and bin/go-peer --etcd. make build (or make test) builds both binaries first.
 */
class EtcdCrossLanguageTest {
    private static EtcdServer server;
    private static String endpoints;
    private static final AtomicInteger names = new AtomicInteger();
    private static final EtcdVariable.Options OPTIONS = EtcdVariable.Options.defaults();

    /** A running bin/etcd-dev: one member, or three; stopped, with its data removed, by {@link #close()}. */
    static final class EtcdServer implements AutoCloseable {
        final Process process;
        final String endpoints;
        private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
        private final java.io.PrintStream commands;

        EtcdServer(String... args) throws Exception {
            Path dev = TestSegments.root().resolve("bin/etcd-dev");
            assertTrue(Files.isExecutable(dev), dev + " is missing: run 'make build' (make test does) first");
            List<String> command = new ArrayList<>(List.of(dev.toString()));
            command.addAll(List.of(args));
            process = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
            commands = new java.io.PrintStream(process.getOutputStream(), true, StandardCharsets.UTF_8);
            Thread reader = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                    for (String line; (line = r.readLine()) != null; ) {
                        lines.add(line);
                    }
                } catch (IOException e) {
                    // the server ended
                }
            });
            reader.setDaemon(true);
            reader.start();
            String ready = expect("READY ");
            if (ready == null) {
                process.destroyForcibly();
                fail("bin/etcd-dev " + String.join(" ", args) + " did not print READY within 40s");
            }
            endpoints = ready.substring("READY ".length());
        }

        /** The next line starting with {@code prefix}, or null after 40 s. */
        String expect(String prefix) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
            for (String line; (line = lines.poll(deadline - System.nanoTime(), TimeUnit.NANOSECONDS)) != null; ) {
                if (line.startsWith(prefix)) {
                    return line;
                }
            }
            return null;
        }

        /** Sends stop N, kill N or start N and waits for its answer. */
        void command(String command, String answer) throws InterruptedException {
            commands.println(command);
            assertNotNull(expect(answer), "etcd-dev " + command + ": no " + answer + " within 40s");
        }

        @Override
        public void close() {
            commands.close(); // stdin closed: it stops and removes its data
            try {
                if (!process.waitFor(20, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    fail("bin/etcd-dev did not stop within 20s of its stdin closing");
                }
            } catch (InterruptedException e) {
                process.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }

    @BeforeAll
    static void startServer() throws Exception {
        server = new EtcdServer();
        endpoints = server.endpoints;
    }

    @AfterAll
    static void stopServer() throws Exception {
        if (server != null) {
            server.close();
        }
    }

    private static String address(String name) {
        return "etcd://" + endpoints + "/shmvar-java-test/" + name + "-" + names.incrementAndGet();
    }

    private static Counter plusOne(Counter c) {
        return c.toBuilder().setValue(c.getValue() + 1).setLastWriter("java").build();
    }

    @Test
    void shouldCreateOnceOpenWithTheTypeAndRefuseAnother() {
        String a = address("types");
        try (var v = EtcdVariable.create(a, Counter.getDefaultInstance(), OPTIONS)) {
            assertEquals(0, v.generation());
            assertEquals("java", v.descriptor().getCreator());
            ShmException e = assertThrows(ShmException.class, () -> EtcdVariable.create(a, Counter.getDefaultInstance(), OPTIONS));
            assertEquals(ShmException.Reason.NATIVE, e.reason());
            assertEquals(Remote.EEXIST, e.errno());
            assertEquals("create " + a + ": variable exists: remove it with 'rm --etcd " + a + "'", e.getMessage());
            e = assertThrows(ShmException.class, () -> EtcdVariable.open(a, Point.getDefaultInstance(), OPTIONS));
            assertEquals(ShmException.Reason.TYPE_MISMATCH, e.reason());
            assertTrue(e.getMessage().contains("variable holds shmvar.examples.v1.Counter, asked for shmvar.examples.v1.Point"), e.getMessage());
            assertEquals(1, v.update(EtcdCrossLanguageTest::plusOne).getValue());
            try (var any = EtcdVariable.openDynamic(a, OPTIONS)) {
                DynamicMessage m = any.get();
                assertEquals(1L, m.getField(m.getDescriptorForType().findFieldByName("value")));
            }
            assertEquals(1, v.generation());
            assertTrue(EtcdVariable.list(a.substring(0, a.lastIndexOf('/')), OPTIONS)
                .contains(new EtcdVariable.Listed(a, "shmvar.examples.v1.Counter", 4096, 1, "java")), "list");
            assertThrows(ShmException.class, () -> v.awaitChange(1, Duration.ofMillis(100)));
            assertEquals(1, v.awaitChange(0, Duration.ZERO), "a change already made is seen at once");
            v.remove();
        }
        ShmException e = assertThrows(ShmException.class, () -> EtcdVariable.open(a, Counter.getDefaultInstance(), OPTIONS));
        assertEquals(Remote.ENOENT, e.errno());
        e = assertThrows(ShmException.class, () -> EtcdVariable.open("etcd://" + endpoints + "/a/.b", Counter.getDefaultInstance(), OPTIONS));
        assertEquals(ShmException.Reason.INVALID_ARGUMENT, e.reason());
    }

    /** A program written against {@link SharedVariable}: it runs unchanged whatever the address names. */
    private static void countTo(URI address, int n) {
        try (SharedVariable<Counter> v = SharedVariable.openOrCreate(address, Counter.getDefaultInstance(), Options.defaults());
             SharedVariable<Counter> w = SharedVariable.open(address, Counter.getDefaultInstance(), Options.defaults())) {
            for (int i = 0; i < n; i++) {
                w.update(EtcdCrossLanguageTest::plusOne);
            }
            assertEquals(n, v.get().getValue(), address.toString());
            assertEquals(n, v.generation(), address.toString());
            assertEquals(n, v.awaitChange(0, Duration.ZERO), address.toString());
            try (SharedVariable<DynamicMessage> any = SharedVariable.openDynamic(address, Options.defaults())) {
                assertEquals("shmvar.examples.v1.Counter", any.descriptor().getMessageType());
            }
            ShmException e = assertThrows(ShmException.class, () -> SharedVariable.open(address, Point.getDefaultInstance(), Options.defaults()));
            assertEquals(ShmException.Reason.TYPE_MISMATCH, e.reason(), e.getMessage());
            v.remove();
        }
    }

    @Test
    void aProgramWrittenForSharedMemoryShouldRunOnEtcdByItsAddress() {
        try (TestSegments segments = new TestSegments()) {
            countTo(URI.create("shm:" + ShmException.formatKey(segments.newKey())), 20);
        }
        countTo(URI.create(address("seam")), 20);
    }

    @Test
    void javaAndGoIncrementsShouldSumExactlyWithJavaAsCreator() throws Exception {
        int each = 300;
        String a = address("sum");
        try (var v = EtcdVariable.create(a, Counter.getDefaultInstance(), OPTIONS)) {
            Process go = new ProcessBuilder(TestSegments.goPeer().toString(), "incr", "--etcd", a, "--count",
                Integer.toString(each), "--quiet").redirectErrorStream(true).start();
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                while (v.generation() == 0) {
                    assertTrue(System.nanoTime() < deadline, "go-peer made no increment in 20s");
                    Thread.sleep(1);
                }
                for (int i = 0; i < each; i++) {
                    v.tryUpdate(EtcdCrossLanguageTest::plusOne, Duration.ofSeconds(10));
                }
                assertTrue(go.waitFor(60, TimeUnit.SECONDS), "go-peer incr did not finish");
                String out = new String(go.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertEquals(0, go.exitValue(), out);
            } finally {
                go.destroyForcibly();
            }
            assertEquals(2L * each, v.get().getValue());
            assertEquals(2L * each, v.generation());
            assertTrue(v.conflicts() > 0, "Java and Go at once never conflicted: is the compare-and-swap exercised?");
        }
    }

    @Test
    void javaShouldReadAllTypesWrittenByGoAndGoWhatJavaWrites() throws Exception {
        String a = address("alltypes");
        TestSegments.mustRunGo("create", "--etcd", a, "--type", "shmvar.examples.v1.AllTypes", "--capacity", "65536");
        TestSegments.mustRunGo("set", "--etcd", a, TestSegments.allTypesText());
        AllTypes sample = TestSegments.allTypesSample();
        try (var v = EtcdVariable.open(a, AllTypes.getDefaultInstance(), OPTIONS)) {
            assertEquals("go", v.descriptor().getCreator());
            assertEquals(sample, v.get());
            AllTypes changed = sample.toBuilder().setFString("written by java").build();
            v.set(changed);
            assertEquals(changed, AllTypes.parseFrom(TestSegments.mustRunGo("get", "--etcd", a, "--format", "binary").stdout()));
            ShmException e = assertThrows(ShmException.class, () -> EtcdVariable.open(a, Counter.getDefaultInstance(), OPTIONS));
            assertEquals(ShmException.Reason.TYPE_MISMATCH, e.reason());
            TestSegments.Run r = TestSegments.runGo("get", "--etcd", a, "--type", "shmvar.examples.v1.Counter");
            assertEquals(1, r.exit());
            assertTrue(r.stderr().contains("payload type mismatch"), r.stderr());
            v.remove();
        }
    }

    @Test
    void handOffWithGoLosesNoChange() throws Exception {
        int rounds = 100;
        String a = address("handoff");
        try (var v = EtcdVariable.create(a, Counter.getDefaultInstance(), OPTIONS)) {
            Process go = new ProcessBuilder(TestSegments.goPeer().toString(), "pong", "--etcd", a, "--rounds",
                Integer.toString(rounds), "--after", "0").redirectErrorStream(true).start();
            try {
                long g = 0;
                for (int i = 0; i < rounds; i++) {
                    Counter mine = v.update(EtcdCrossLanguageTest::plusOne);
                    assertEquals(2L * i + 1, mine.getValue(), "round " + i + ": a change was lost");
                    g = v.awaitChange(g + 1, Duration.ofSeconds(10));
                    assertEquals(2L * i + 2, g, "round " + i);
                }
                assertTrue(go.waitFor(30, TimeUnit.SECONDS), "go-peer pong did not finish");
                String out = new String(go.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertEquals(0, go.exitValue(), out);
            } finally {
                go.destroyForcibly();
            }
            assertEquals(2L * rounds, v.get().getValue());
        }
    }

    /** Counts Java's and Go's increments on a fresh variable at {@code addr}, at once, and returns the Go process. */
    private static Process goIncr(String addr, int count) throws IOException {
        return new ProcessBuilder(TestSegments.goPeer().toString(), "incr", "--etcd", addr, "--count",
            Integer.toString(count), "--quiet").redirectErrorStream(true).start();
    }

    private static void assertFinished(Process p, String what) throws Exception {
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), what + " did not finish in 60s");
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), what + ": " + out);
    }

    @Test
    void bothLanguagesShouldKeepTheSumWhileAClusterMemberIsKilled() throws Exception {
        int each = 150;
        try (EtcdServer cluster = new EtcdServer("--members", "3")) {
            String path = "/shmvar-java-test/cluster";
            String[] eps = cluster.endpoints.split(",");
            String javaAddr = "etcd://" + cluster.endpoints + path;
            String goAddr = "etcd://" + eps[2] + "," + eps[1] + "," + eps[0] + path; // Go starts from another member
            EtcdVariable.Options options = OPTIONS.withRequestTimeout(Duration.ofSeconds(1));
            try (var v = EtcdVariable.create(javaAddr, Counter.getDefaultInstance(), options)) {
                Process go = goIncr(goAddr, each);
                try {
                    for (int i = 0; i < each; i++) {
                        if (i == each / 3) {
                            cluster.command("kill 1", "KILLED 1");
                        }
                        if (i == 2 * each / 3) {
                            cluster.command("start 1", "READY 1");
                        }
                        v.update(EtcdCrossLanguageTest::plusOne);
                    }
                    assertFinished(go, "go-peer incr");
                } finally {
                    go.destroyForcibly();
                }
                assertEquals(2L * each, v.get().getValue(), "a member was killed while Java and Go updated");
            }
        }
    }

    @Test
    void clientsShouldReportUnavailableThenCarryOnAfterARestart() throws Exception {
        try (EtcdServer own = new EtcdServer()) {
            String addr = "etcd://" + own.endpoints + "/shmvar-java-test/restart";
            AtomicInteger reported = new AtomicInteger();
            EtcdVariable.Options options = OPTIONS.withRequestTimeout(Duration.ofMillis(500))
                .withOnUnavailable(e -> reported.incrementAndGet());
            try (var v = EtcdVariable.create(addr, Counter.getDefaultInstance(), options)) {
                for (int i = 0; i < 10; i++) {
                    v.update(EtcdCrossLanguageTest::plusOne);
                }
                own.command("stop", "STOPPED");
                ShmException e = assertThrows(ShmException.class, v::get);
                assertTrue(Remote.isUnavailable(e), e.getMessage());
                assertEquals(ShmException.Reason.UNAVAILABLE, e.reason(), e.getMessage());
                assertEquals("get " + addr + ": etcd unavailable: no endpoint answered within 500 ms", e.getMessage());
                Process go = new ProcessBuilder(TestSegments.goPeer().toString(), "incr", "--etcd", addr, "--count", "10",
                    "--request-timeout", "500ms").start();
                Thread java = new Thread(() -> {
                    for (int i = 0; i < 10; i++) {
                        v.update(EtcdCrossLanguageTest::plusOne);
                    }
                });
                java.start();
                BufferedReader goErr = new BufferedReader(new InputStreamReader(go.getErrorStream(), StandardCharsets.UTF_8));
                String line = goErr.readLine();
                assertNotNull(line, "go-peer incr said nothing while the server was stopped");
                assertTrue(line.contains("etcd unavailable") && line.endsWith("; retrying"), line);
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                while (reported.get() == 0) {
                    assertTrue(System.nanoTime() < deadline, "Java reported no outage in 10s");
                    Thread.sleep(10);
                }
                own.command("start", "READY");
                java.join(TimeUnit.SECONDS.toMillis(30));
                assertFalse(java.isAlive(), "Java's updates did not carry on within 30s of the restart");
                assertTrue(go.waitFor(30, TimeUnit.SECONDS), "go-peer incr did not carry on within 30s of the restart");
                assertEquals(0, go.exitValue());
                assertEquals(30, v.get().getValue(), "committed updates lost or doubled across the restart");
            }
        }
    }

    @Test
    void aJavaWriterKilledMidUpdateLosesNoCommitAndBlocksNobody() throws Exception {
        String addr = address("killed");
        try (var v = EtcdVariable.create(addr, Counter.getDefaultInstance(), OPTIONS)) {
            Process victim = new ProcessBuilder(TestSegments.root().resolve("bin/java-peer").toString(), "incr", "--etcd",
                addr, "--count", "100000", "--print-each").redirectErrorStream(true).start();
            long reported = 0;
            BufferedReader out = new BufferedReader(new InputStreamReader(victim.getInputStream(), StandardCharsets.UTF_8));
            for (String line; reported < 30 && (line = out.readLine()) != null; ) {
                assertTrue(line.startsWith("committed "), line);
                reported = Long.parseLong(line.substring("committed ".length()));
            }
            victim.destroyForcibly(); // SIGKILL, in the middle of its updates
            victim.waitFor();
            try { // what it printed before it died
                for (String line; (line = out.readLine()) != null; ) {
                    if (line.startsWith("committed ")) {
                        reported = Long.parseLong(line.substring("committed ".length()));
                    }
                }
            } catch (IOException closed) {
                // the stream went with the process
            }
            long start = System.nanoTime();
            TestSegments.mustRunGo("incr", "--etcd", addr, "--count", "50", "--timeout", "5s");
            assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(10), "updates after the kill were blocked");
            long value = v.get().getValue();
            assertTrue(value >= reported + 50 && value <= reported + 51,
                "value " + value + " after a Java writer that reported " + reported + " commits was killed and Go made 50 more");
        }
    }

    @Test
    void etcdAuthShouldBeRefusedAsPermissionInBothLanguages() throws Exception {
        try (EtcdServer own = new EtcdServer()) {
            java.util.function.Function<String, io.etcd.jetcd.ByteSequence> b =
                x -> io.etcd.jetcd.ByteSequence.from(x, StandardCharsets.UTF_8);
            try (io.etcd.jetcd.Client admin = io.etcd.jetcd.Client.builder().endpoints("http://" + own.endpoints).build()) {
                io.etcd.jetcd.Auth auth = admin.getAuthClient();
                auth.userAdd(b.apply("root"), b.apply("rootpw")).get(20, TimeUnit.SECONDS);
                auth.userGrantRole(b.apply("root"), b.apply("root")).get(20, TimeUnit.SECONDS);
                auth.roleAdd(b.apply("app")).get(20, TimeUnit.SECONDS);
                auth.roleGrantPermission(b.apply("app"), b.apply("/allowed/"), b.apply("/allowed0"),
                    io.etcd.jetcd.auth.Permission.Type.READWRITE).get(20, TimeUnit.SECONDS);
                auth.userAdd(b.apply("app"), b.apply("apppw")).get(20, TimeUnit.SECONDS);
                auth.userGrantRole(b.apply("app"), b.apply("app")).get(20, TimeUnit.SECONDS);
                auth.authEnable().get(20, TimeUnit.SECONDS);
            }
            String allowed = "etcd://" + own.endpoints + "/allowed/counter";
            EtcdVariable.Options app = OPTIONS.withCredentials("app", "apppw");
            try (var v = EtcdVariable.create(allowed, Counter.getDefaultInstance(), app)) {
                assertEquals(1, v.update(EtcdCrossLanguageTest::plusOne).getValue());
            }
            ShmException e = assertThrows(ShmException.class, () -> EtcdVariable.create(
                "etcd://" + own.endpoints + "/elsewhere/counter", Counter.getDefaultInstance(), app));
            assertEquals(ShmException.Reason.PERMISSION, e.reason(), e.getMessage());
            e = assertThrows(ShmException.class, () -> EtcdVariable.open(allowed, Counter.getDefaultInstance(),
                OPTIONS.withCredentials("app", "wrong")));
            assertEquals(ShmException.Reason.PERMISSION, e.reason(), e.getMessage());
            e = assertThrows(ShmException.class, () -> EtcdVariable.open(allowed, Counter.getDefaultInstance(), OPTIONS));
            assertEquals(ShmException.Reason.PERMISSION, e.reason(), e.getMessage());
            // go-peer reads what Java wrote with the password from the environment, and says "permission" without it
            ProcessBuilder pb = new ProcessBuilder(TestSegments.goPeer().toString(), "get", "--etcd", allowed, "--etcd-user", "app");
            pb.environment().put("SHMVAR_ETCD_PASSWORD", "apppw");
            Process go = pb.start();
            String out = new String(go.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(go.waitFor(30, TimeUnit.SECONDS));
            assertEquals(0, go.exitValue(), new String(go.getErrorStream().readAllBytes(), StandardCharsets.UTF_8));
            assertTrue(out.matches("(?s)value:\\s*1\\s.*"), out);
            TestSegments.Run r = TestSegments.runGo("get", "--etcd", allowed);
            assertEquals(1, r.exit());
            assertTrue(r.stderr().contains("segment permission refused") || r.stderr().contains("permission"), r.stderr());
        }
    }
}
