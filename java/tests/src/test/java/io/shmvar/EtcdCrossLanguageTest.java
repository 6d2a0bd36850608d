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
import java.util.concurrent.ArrayBlockingQueue;
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
    private static Process server;
    private static String endpoints;
    private static final AtomicInteger names = new AtomicInteger();
    private static final EtcdVariable.Options OPTIONS = EtcdVariable.Options.defaults();

    @BeforeAll
    static void startServer() throws Exception {
        Path dev = TestSegments.root().resolve("bin/etcd-dev");
        assertTrue(Files.isExecutable(dev), dev + " is missing: run 'make build' (make test does) first");
        server = new ProcessBuilder(dev.toString()).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        BlockingQueue<String> lines = new ArrayBlockingQueue<>(1);
        Thread reader = new Thread(() -> {
            try {
                BufferedReader r = new BufferedReader(new InputStreamReader(server.getInputStream(), StandardCharsets.UTF_8));
                String line = r.readLine();
                lines.add(line == null ? "" : line);
            } catch (IOException e) {
                lines.add("");
            }
        });
        reader.setDaemon(true);
        reader.start();
        String line = lines.poll(40, TimeUnit.SECONDS);
        if (line == null || !line.startsWith("READY ")) {
            server.destroyForcibly();
            fail("bin/etcd-dev did not print READY within 40s (printed " + line + ")");
        }
        endpoints = line.substring("READY ".length());
    }

    @AfterAll
    static void stopServer() throws Exception {
        if (server != null) {
            server.getOutputStream().close(); // stdin closed: it stops and removes its data
            if (!server.waitFor(20, TimeUnit.SECONDS)) {
                server.destroyForcibly();
                fail("bin/etcd-dev did not stop within 20s of its stdin closing");
            }
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
        int rounds = 200;
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
}
