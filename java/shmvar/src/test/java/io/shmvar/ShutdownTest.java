package io.shmvar;

import io.shmvar.examples.Counter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** Closing, interrupting and virtual threads while threads wait for the lock or for a change. */
class ShutdownTest {
    private final TestSegments segments = new TestSegments();

    @AfterEach
    void removeSegments() {
        segments.close();
    }

    /** A second attachment holds the lock until the returned latch is counted down. */
    private static CountDownLatch holdLock(int key) throws InterruptedException {
        CountDownLatch held = new CountDownLatch(1), release = new CountDownLatch(1);
        Thread holder = new Thread(() -> {
            try (var other = SharedVariable.open(key, Counter.getDefaultInstance())) {
                other.update(c -> {
                    held.countDown();
                    try {
                        release.await();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    return c;
                });
            }
        });
        holder.start();
        assertTrue(held.await(10, TimeUnit.SECONDS), "the holder never took the lock");
        return release;
    }

    @Test
    void shouldWakeWaitersAndReturnPromptlyOnClose() throws Exception {
        int key = segments.newKey();
        try (var creator = SharedVariable.create(key, Counter.getDefaultInstance())) {
            CountDownLatch release = holdLock(key);
            var v = SharedVariable.open(key, Counter.getDefaultInstance());
            long g = v.generation();
            BlockingQueue<Throwable> ends = new ArrayBlockingQueue<>(6);
            for (int i = 0; i < 3; i++) {
                new Thread(() -> ends.add(failure(() -> v.tryUpdate(c -> c, Duration.ofSeconds(20))))).start();
                new Thread(() -> ends.add(failure(() -> v.awaitChange(g, Duration.ofSeconds(20))))).start();
            }
            Thread.sleep(200); // all six are waiting
            long start = System.nanoTime();
            v.close();
            for (int i = 0; i < 6; i++) {
                Throwable e = ends.poll(5, TimeUnit.SECONDS);
                assertNotNull(e, "a waiter of a closed variable is still waiting");
                assertEquals(ShmException.Reason.CLOSED, ((ShmException) e).reason(), e.toString());
            }
            long took = System.nanoTime() - start;
            assertTrue(took < TimeUnit.SECONDS.toNanos(1), "close and its waiters took " + took / 1_000_000 + " ms");
            release.countDown();
        }
    }

    @Test
    void shouldStopAWaitWhenItsThreadIsInterrupted() throws Exception {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            CountDownLatch release = holdLock(key);
            long g = v.generation();
            List<Runnable> waits = List.of(
                () -> v.update(c -> c),
                () -> v.tryUpdate(c -> c, Duration.ofSeconds(20)),
                () -> v.awaitChange(g, Duration.ofSeconds(20)));
            for (Runnable wait : waits) {
                BlockingQueue<Object[]> end = new ArrayBlockingQueue<>(1);
                Thread t = new Thread(() -> {
                    Throwable e = failure(wait);
                    end.add(new Object[] {e, Thread.currentThread().isInterrupted()});
                });
                t.start();
                Thread.sleep(100);
                long start = System.nanoTime();
                t.interrupt();
                Object[] result = end.poll(5, TimeUnit.SECONDS);
                assertNotNull(result, "an interrupted wait is still waiting");
                assertTrue(System.nanoTime() - start < TimeUnit.MILLISECONDS.toNanos(500), "an interrupted wait took long");
                assertInstanceOf(ShmException.class, result[0]);
                assertEquals(ShmException.Reason.INTERRUPTED, ((ShmException) result[0]).reason());
                assertEquals(true, result[1], "the interrupt flag was lost");
            }
            assertEquals(g, v.generation(), "an interrupted update committed");
            release.countDown();
        }
    }

    private static Throwable failure(Runnable r) {
        try {
            r.run();
            return new AssertionError("returned normally");
        } catch (Throwable e) {
            return e;
        }
    }

    /** The JDK that has virtual threads: SHMVAR_JDK25, or the one installed beside the default JDK. */
    static Path jdk25() {
        String env = System.getenv("SHMVAR_JDK25");
        List<Path> candidates = new ArrayList<>();
        if (env != null) {
            candidates.add(Path.of(env));
        }
        candidates.add(Path.of("/usr/lib/jvm/temurin-25-jdk-amd64"));
        for (Path home : candidates) {
            if (Files.isExecutable(home.resolve("bin/java"))) {
                return home.resolve("bin/java");
            }
        }
        return fail("virtual threads need a JDK 21 or later: set SHMVAR_JDK25 to its home (looked in " + candidates + ")");
    }

    /**
     * Virtual threads that wait for the lock and for a change must not pin their carriers: with one carrier, an
     * unrelated virtual thread still runs at once. Runs {@link VirtualThreadProbe} on JDK 25.
     */
    @Test
    void shouldNotPinCarriersOfVirtualThreadsThatWait() throws IOException, InterruptedException {
        int key = segments.newKey();
        String classpath = System.getProperty("java.class.path");
        Process p = new ProcessBuilder(jdk25().toString(), "-Djdk.virtualThreadScheduler.parallelism=1",
            "-Djdk.virtualThreadScheduler.maxPoolSize=1", "--enable-native-access=ALL-UNNAMED",
            "-cp", classpath, VirtualThreadProbe.class.getName(), Integer.toString(key))
            .redirectErrorStream(true).start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the probe did not end in 60 s");
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("unrelated task ran after"), out);
        long ms = Long.parseLong(out.replaceAll("(?s).*unrelated task ran after (\\d+) ms.*", "$1"));
        assertTrue(ms < 500, "with 8 virtual threads waiting, an unrelated one waited " + ms + " ms for a carrier:\n" + out);
    }
}
