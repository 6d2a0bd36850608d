package io.shmvar;

import com.google.protobuf.TextFormat;
import io.shmvar.examples.AllTypes;
import io.shmvar.examples.Counter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** Tests that start the real Go process, bin/go-peer, which make build (or make test) builds first. */
class CrossLanguageTest {
    private final TestSegments segments = new TestSegments();

    @AfterEach
    void removeSegments() {
        segments.close();
    }

    @Test
    void goShouldReadAllTypesWrittenByJava() throws Exception {
        int key = segments.newKey();
        String k = ShmException.formatKey(key);
        AllTypes sample = TestSegments.allTypesSample();
        try (var v = SharedVariable.create(key, AllTypes.getDefaultInstance())) {
            v.set(sample);
            assertEquals(sample, AllTypes.parseFrom(TestSegments.mustRunGo("get", "--key", k, "--format", "binary").stdout()));
            AllTypes.Builder text = AllTypes.newBuilder();
            TextFormat.merge(TestSegments.mustRunGo("get", "--key", k, "--format", "text").out(), text);
            assertEquals(sample, text.build());
        }
    }

    @Test
    void javaShouldReadAllTypesWrittenByGoInASegmentGoCreated() throws Exception {
        int key = segments.newKey();
        String k = ShmException.formatKey(key);
        TestSegments.mustRunGo("create", "--key", k, "--type", "shmvar.examples.v1.AllTypes");
        TestSegments.mustRunGo("set", "--key", k, TestSegments.allTypesText());
        try (var v = SharedVariable.open(key, AllTypes.getDefaultInstance())) {
            assertEquals("go", v.descriptor().getCreator());
            assertEquals(TestSegments.allTypesSample(), v.get());
        }
    }

    @Test
    void javaAndGoIncrementsShouldSumExactlyWithJavaAsCreator() throws Exception {
        int each = 100_000;
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            Process go = new ProcessBuilder(TestSegments.goPeer().toString(), "incr", "--key", ShmException.formatKey(key),
                "--count", Integer.toString(each), "--quiet").redirectErrorStream(true).start();
            try {
                // Wait for Go's first increment, so that both really run at once.
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                while (v.generation() == 0) {
                    assertTrue(System.nanoTime() < deadline, "go-peer made no increment in 20s");
                    Thread.onSpinWait();
                }
                for (int i = 0; i < each; i++) {
                    v.tryUpdate(c -> c.toBuilder().setValue(c.getValue() + 1).build(), Duration.ofSeconds(10));
                }
                assertTrue(go.waitFor(60, TimeUnit.SECONDS), "go-peer incr did not finish");
                String out = new String(go.getInputStream().readAllBytes());
                assertEquals(0, go.exitValue(), out);
            } finally {
                go.destroyForcibly();
            }
            assertEquals(2L * each, v.get().getValue());
            assertEquals(2L * each, v.generation());
        }
    }

    @Test
    void handOffWithGoLosesNoWakeUp() throws Exception {
        for (WaitStrategy wait : WaitStrategy.values()) {
            int rounds = wait == WaitStrategy.SPIN ? 5_000 : 20_000;
            int key = segments.newKey();
            try (var v = SharedVariable.create(key, Counter.getDefaultInstance(),
                Options.defaults().withWait(wait))) {
                Process go = new ProcessBuilder(TestSegments.goPeer().toString(), "pong", "--key",
                    ShmException.formatKey(key), "--rounds", Integer.toString(rounds), "--after", "0", "--wait",
                    wait == WaitStrategy.SPIN ? "spin" : "park").redirectErrorStream(true).start();
                try {
                    long g = 0;
                    for (int i = 0; i < rounds; i++) {
                        v.update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
                        g = v.awaitChange(g + 1, Duration.ofSeconds(10)); // a lost wake-up times out here
                    }
                    assertTrue(go.waitFor(30, TimeUnit.SECONDS));
                    String out = new String(go.getInputStream().readAllBytes());
                    assertEquals(0, go.exitValue(), out);
                    System.out.println("go " + out.strip());
                } finally {
                    go.destroyForcibly();
                }
                assertEquals(2L * rounds, v.get().getValue());
            }
        }
    }

    @Test
    void awaitChangeTimesOutThenWakesOnACommitFromGo() throws Exception {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            long start = System.nanoTime();
            ShmException e = assertThrows(ShmException.class, () -> v.awaitChange(0, Duration.ofMillis(30)));
            assertEquals(ShmException.Reason.TIMEOUT, e.reason());
            assertTrue(System.nanoTime() - start >= 30_000_000L);
            Process go = new ProcessBuilder(TestSegments.goPeer().toString(), "set", "--key", ShmException.formatKey(key),
                "value: 9").start();
            assertEquals(1, v.awaitChange(0, Duration.ofSeconds(10)));
            assertEquals(9, v.get().getValue());
            go.waitFor();
        }
    }

    @Test
    void fileBackingWorksAcrossLanguages(@org.junit.jupiter.api.io.TempDir java.nio.file.Path regular) throws Exception {
        java.nio.file.Path shm = java.nio.file.Files.createTempDirectory(java.nio.file.Path.of("/dev/shm"), "shmvar-test-");
        try {
            for (java.nio.file.Path dir : java.util.List.of(shm, regular)) {
                java.nio.file.Path file = dir.resolve("counter.svar");
                int each = 100_000;
                try (var v = SharedVariable.createFile(file, Counter.getDefaultInstance(), Options.defaults())) {
                    Process go = new ProcessBuilder(TestSegments.goPeer().toString(), "incr", "--file", file.toString(),
                        "--count", Integer.toString(each), "--quiet").redirectErrorStream(true).start();
                    while (v.generation() == 0) {
                        Thread.onSpinWait();
                    }
                    for (int i = 0; i < each; i++) {
                        v.tryUpdate(c -> c.toBuilder().setValue(c.getValue() + 1).build(), Duration.ofSeconds(10));
                    }
                    assertTrue(go.waitFor(60, TimeUnit.SECONDS));
                    assertEquals(0, go.exitValue(), new String(go.getInputStream().readAllBytes()));
                    assertEquals(2L * each, v.get().getValue());
                    v.sync();
                    v.remove();
                }
                assertFalse(java.nio.file.Files.exists(file), "remove() unlinks the file");

                java.nio.file.Path all = dir.resolve("all.svar");
                TestSegments.mustRunGo("create", "--file", all.toString(), "--type", "shmvar.examples.v1.AllTypes");
                TestSegments.mustRunGo("set", "--file", all.toString(), "--sync", TestSegments.allTypesText());
                try (var v = SharedVariable.openFile(all, AllTypes.getDefaultInstance(), Options.defaults())) {
                    assertEquals(TestSegments.allTypesSample(), v.get());
                    v.remove();
                }

                java.nio.file.Path garbage = dir.resolve("garbage");
                java.nio.file.Files.write(garbage, "not shmvar ".repeat(100).getBytes());
                assertGoRefuses("not a shmvar segment", "get", "--file", garbage.toString());
                ShmException e = assertThrows(ShmException.class,
                    () -> SharedVariable.openDynamicFile(garbage, Options.defaults()));
                assertEquals(ShmException.Reason.NOT_SHMVAR, e.reason());
                assertEquals(garbage.toString(), e.path());
                assertTrue(e.getMessage().contains("file=" + garbage), e.getMessage());
                java.nio.file.Files.delete(garbage);
            }
        } finally {
            try (var files = java.nio.file.Files.list(shm)) {
                for (java.nio.file.Path p : (Iterable<java.nio.file.Path>) files::iterator) {
                    java.nio.file.Files.delete(p);
                }
            }
            java.nio.file.Files.delete(shm);
        }
    }

    @Test
    void goShouldRefuseBadSegmentsWithOneLine() throws Exception {
        int key = segments.newKey();
        String k = ShmException.formatKey(key);
        SharedVariable.create(key, Counter.getDefaultInstance()).close();
        assertGoRefuses("payload type mismatch: segment holds shmvar.examples.v1.Counter, asked for shmvar.examples.v1.AllTypes",
            "get", "--key", k, "--type", "shmvar.examples.v1.AllTypes");
        TestSegments.poke(key, m -> m.putInt(LayoutDescriptor.FLAGS_OFFSET, 4));
        assertGoRefuses("layout version mismatch: segment uses feature flags 0x00000004 that this peer does not know "
            + "(app=2.0 knows 0x00000000)", "get", "--key", k);
        TestSegments.poke(key, m -> m.putInt(LayoutDescriptor.LAYOUT_VERSION_OFFSET, 3 << 16 | 3));
        assertGoRefuses("layout version mismatch: app=2.0 segment=3.3", "get", "--key", k);
        int garbage = segments.rawSegment(4096, m -> m.put(0, "definitely not a shmvar segment".getBytes()));
        assertGoRefuses("not a shmvar segment", "inspect", "--key", ShmException.formatKey(garbage));
        assertGoRefuses("refusing to remove it", "rm", "--key", ShmException.formatKey(garbage));
    }

    private static void assertGoRefuses(String message, String... args) throws Exception {
        TestSegments.Run r = TestSegments.runGo(args);
        assertEquals(1, r.exit(), r.stderr());
        assertEquals(0, r.stdout().length);
        assertTrue(r.stderr().endsWith("\n") && r.stderr().indexOf('\n') == r.stderr().length() - 1,
            "one line: " + r.stderr());
        assertTrue(r.stderr().contains(message), r.stderr() + " lacks " + message);
    }
}
