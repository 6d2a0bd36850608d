package io.shmvar;

import io.shmvar.examples.Counter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Crash tests with the real Go process as the victim: kill -9 of a Go holder while Java waits, and SIGSTOP of a Go
 * holder past Java's timeout. The Go tests (crash_test.go) do the reverse. SHMVAR_KILLS sets the number of kills.
 */
class CrashTest {
    private final TestSegments segments = new TestSegments();

    @AfterEach
    void removeSegments() {
        segments.close();
    }

    /** A go-peer incrementing the counter and printing "committed N" after each commit. */
    private static final class Victim {
        final Process process;
        final AtomicLong commits = new AtomicLong();
        final Thread drain;

        /** With {@code inPidNamespace}, pid 1 of a PID namespace of its own; killing unshare kills it. */
        Victim(int key, boolean inPidNamespace, String... extra) throws IOException {
            List<String> command = new ArrayList<>();
            if (inPidNamespace) {
                command.addAll(List.of("unshare", "--pid", "--fork", "--kill-child", "--mount-proc"));
            }
            command.addAll(List.of(TestSegments.goPeer().toString(), "incr", "--key",
                ShmException.formatKey(key), "--count", "1000000000", "--print-each", "--quiet", "--timeout", "30s"));
            command.addAll(List.of(extra));
            process = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
            drain = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream()))) {
                    for (String line; (line = r.readLine()) != null; ) {
                        if (line.startsWith("committed ")) {
                            commits.incrementAndGet();
                        }
                    }
                } catch (IOException ignored) {
                    // the process died
                }
            });
            drain.start();
        }
    }

    @Test
    void killGoHolderWhileJavaWaits() throws Exception {
        int key = segments.newKey();
        int rounds = Integer.parseInt(System.getenv().getOrDefault("SHMVAR_KILLS", "50"));
        int kills = 0, namespaceKills = 0, heldAtKill = 0, lost = 0, phantom = 0;
        AtomicLong torn = new AtomicLong();
        List<Long> takeoverNanos = new ArrayList<>();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            AtomicBoolean stopReader = new AtomicBoolean();
            AtomicReference<String> readerError = new AtomicReference<>();
            Thread reader = new Thread(() -> {
                long last = 0;
                while (!stopReader.get()) {
                    long g = v.generation();
                    try {
                        v.get();
                    } catch (ShmException e) {
                        torn.incrementAndGet();
                        readerError.set(e.getMessage());
                    }
                    if (g < last) {
                        readerError.set("generation went back from " + last + " to " + g);
                    }
                    last = g;
                    java.util.concurrent.locks.LockSupport.parkNanos(1_000); // leave the two cores to writers
                }
            });
            reader.start();
            try {
                for (int round = 0; round < rounds; round++) {
                    long before = v.get().getValue();
                    // Every fourth victim is pid 1 of a PID namespace of its own, as in a pod.
                    boolean inNamespace = round % 4 == 3;
                    Victim victim = round % 2 == 1 ? new Victim(key, inNamespace, "--hold", "200us")
                        : new Victim(key, inNamespace);
                    AtomicLong javaCommits = new AtomicLong();
                    AtomicBoolean stopWaiter = new AtomicBoolean();
                    AtomicReference<Throwable> waiterError = new AtomicReference<>();
                    Thread waiter = new Thread(() -> {
                        try {
                            while (!stopWaiter.get()) {
                                v.tryUpdate(c -> c.toBuilder().setValue(c.getValue() + 1).build(), Duration.ofSeconds(20));
                                javaCommits.incrementAndGet();
                            }
                        } catch (Throwable e) {
                            waiterError.set(e);
                        }
                    });
                    waiter.start();
                    long target = 1 + ThreadLocalRandom.current().nextInt(300);
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                    while (victim.commits.get() < target) {
                        assertTrue(System.nanoTime() < deadline, "victim made too few commits in 30s");
                        Thread.onSpinWait();
                    }
                    long pid = victim.process.pid();
                    new ProcessBuilder("kill", "-KILL", Long.toString(pid)).start().waitFor();
                    long killed = System.nanoTime();
                    kills++;
                    if (inNamespace) {
                        namespaceKills++;
                    }
                    LockState lock = v.lockState();
                    if (lock.word() != 0 && lock.word() != v.identity()) { // the victim is the only other attachment
                        heldAtKill++;
                        while (v.lockState().word() == lock.word()) {
                            assertTrue(System.nanoTime() - killed < TimeUnit.SECONDS.toNanos(10),
                                "lock of killed victim " + pid + " not taken over in 10s");
                            java.util.concurrent.locks.LockSupport.parkNanos(20_000);
                        }
                        takeoverNanos.add(System.nanoTime() - killed);
                    }
                    victim.process.waitFor();
                    victim.drain.join();
                    long after = javaCommits.get();
                    deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                    while (javaCommits.get() == after) {
                        assertTrue(System.nanoTime() < deadline, "waiter made no progress after the kill");
                        Thread.onSpinWait();
                    }
                    stopWaiter.set(true);
                    waiter.join();
                    assertNull(waiterError.get(), () -> "waiter: " + waiterError.get());
                    long now = v.get().getValue();
                    long victimCommits = now - before - javaCommits.get();
                    long seen = victim.commits.get();
                    lost += Math.max(0, seen - victimCommits);
                    phantom += Math.max(0, victimCommits - seen - 1);
                    assertEquals(now, v.generation(), "a commit was lost or doubled");
                }
            } finally {
                stopReader.set(true);
                reader.join();
            }
            assertNull(readerError.get());
        }
        Collections.sort(takeoverNanos);
        String figures = String.format("go holder killed while java waits: kills=%d (in another PID namespace: %d) "
                + "held-at-kill=%d torn-reads=%d lost-commits=%d phantom-commits=%d takeover p50=%s p99=%s max=%s", kills,
            namespaceKills, heldAtKill, torn.get(), lost,
            phantom, percentile(takeoverNanos, 0.5), percentile(takeoverNanos, 0.99), percentile(takeoverNanos, 1));
        System.out.println(figures);
        assertEquals(0, torn.get(), figures);
        assertEquals(0, lost, figures);
        assertEquals(0, phantom, figures);
    }

    private static String percentile(List<Long> sorted, double p) {
        if (sorted.isEmpty()) {
            return "n/a";
        }
        return String.format("%.3fms", sorted.get((int) (p * (sorted.size() - 1))) / 1e6);
    }

    @Test
    void stoppedGoHolderIsNeverRobbed() throws Exception {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            Process go = new ProcessBuilder(TestSegments.goPeer().toString(), "incr", "--key", ShmException.formatKey(key),
                "--count", "3", "--hold", "300ms", "--quiet").redirectErrorStream(true).start();
            try {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                long word;
                while (true) {
                    LockState s = v.lockState();
                    if (s.word() != 0 && s.holderPid() == go.pid()) {
                        word = s.word();
                        break;
                    }
                    assertTrue(System.nanoTime() < deadline, "go-peer never took the lock");
                    Thread.onSpinWait();
                }
                signal("STOP", go.pid());
                ShmException e = assertThrows(ShmException.class, () -> v.tryUpdate(c -> c, Duration.ofMillis(200)));
                assertEquals(ShmException.Reason.TIMEOUT, e.reason());
                assertEquals(go.pid(), e.holderPid());
                Thread.sleep(500); // well past the timeout and the holder's own hold
                assertEquals(word, v.lockState().word(), "stopped holder was robbed");
                assertEquals(0, v.lockState().takeovers());
                signal("CONT", go.pid());
                v.tryUpdate(c -> c.toBuilder().setValue(c.getValue() + 1).build(), Duration.ofSeconds(20));
                assertTrue(go.waitFor(30, TimeUnit.SECONDS));
                assertEquals(0, go.exitValue(), new String(go.getInputStream().readAllBytes()));
            } finally {
                signal("CONT", go.pid());
                go.destroyForcibly();
            }
            assertEquals(4, v.get().getValue(), "a commit was lost or made twice");
            assertEquals(4, v.generation());
        }
    }

    private static void signal(String name, long pid) throws Exception {
        new ProcessBuilder("kill", "-" + name, Long.toString(pid)).start().waitFor();
    }
}
