package io.shmvar;

import io.shmvar.examples.AllTypes;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Flips random bytes all over a segment from this JVM while bin/go-peer check reads and re-opens it in a loop: the
 * Go side may only report validation errors, never panic. hostile_test.go does the reverse with bin/java-peer.
 */
class HostileMutatorTest {
    private final TestSegments segments = new TestSegments();

    @AfterEach
    void removeSegments() {
        segments.close();
    }

    @Test
    void goReaderSurvivesHostileMutator() throws Exception {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, AllTypes.getDefaultInstance())) {
            v.set(TestSegments.allTypesSample());
        }
        AtomicBoolean stop = new AtomicBoolean();
        Thread mutator = new Thread(() -> TestSegments.poke(key, m -> scribble(m, stop)));
        mutator.start();
        TestSegments.Run run;
        try {
            run = TestSegments.runGo("check", "--key", ShmException.formatKey(key), "--duration", "3s");
        } finally {
            stop.set(true);
            mutator.join();
        }
        Matcher m = Pattern.compile("check: reads=(\\d+) ok=(\\d+)").matcher(run.out());
        assertTrue(run.exit() == 0 || run.exit() == 1, "exit " + run.exit() + ": " + run.stderr());
        assertTrue(m.find(), "no summary: " + run.out() + run.stderr());
        assertFalse(run.stderr().contains("panic"), run.stderr());
        assertTrue(run.stderr().isEmpty() || run.stderr().indexOf('\n') == run.stderr().length() - 1, run.stderr());
        assertTrue(Long.parseLong(m.group(1)) >= 100, run.out());
        System.out.println("go-peer under a hostile mutator: " + run.out().strip());
    }

    /**
     * Mostly scribbles where peers legitimately write (the lock and generation lines and the slots), now and then
     * anywhere; every few flips puts the segment back so that some reads and opens succeed between the attacks.
     */
    private static void scribble(ByteBuffer m, AtomicBoolean stop) {
        ThreadLocalRandom r = ThreadLocalRandom.current();
        byte[] pristine = new byte[m.capacity()];
        m.get(0, pristine);
        int slot0 = (int) m.getLong(LayoutDescriptor.SLOT0_OFFSET_OFFSET);
        for (int i = 0; !stop.get(); i++) {
            int at = switch (r.nextInt(10)) {
                case 0 -> r.nextInt(m.capacity());
                case 1, 2 -> LayoutDescriptor.LOCK_WORD_OFFSET
                    + r.nextInt(LayoutDescriptor.HEADER_LENGTH - LayoutDescriptor.LOCK_WORD_OFFSET);
                default -> slot0 + r.nextInt(m.capacity() - slot0);
            };
            m.put(at, (byte) (m.get(at) ^ (1 + r.nextInt(255))));
            if (i % 20 == 0) {
                LockSupport.parkNanos(50_000); // the damage stands for a while
                m.put(0, pristine);
                LockSupport.parkNanos(50_000);
            }
        }
    }
}
