package io.shmvar;

import io.shmvar.examples.Counter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static io.shmvar.LayoutDescriptor.*;
import static org.junit.jupiter.api.Assertions.*;

class SpinLockTest {
    private final TestSegments segments = new TestSegments();

    @AfterEach
    void removeSegments() {
        segments.close();
    }

    private static final int PID = (int) ProcessHandle.current().pid();

    @Test
    void shouldGiveEachWritingAttachmentItsOwnIdentity() {
        int key = segments.newKey();
        try (var a = SharedVariable.create(key, Counter.getDefaultInstance());
             var b = SharedVariable.open(key, Counter.getDefaultInstance());
             var reader = SharedVariable.open(key, Counter.getDefaultInstance(),
                 Options.defaults().withReadOnly(true))) {
            assertNotEquals(a.identity(), b.identity());
            assertEquals(0, a.identity() >>> 32, "the creator claims the first entry");
            assertEquals(1, b.identity() >>> 32);
            assertNotEquals(0, (int) a.identity(), "incarnation is never 0");
            assertEquals(0, reader.identity(), "a read-only attachment claims nothing");
            var live = reader.attachments();
            assertEquals(2, live.size(), live.toString());
            assertEquals(new SharedMemoryVariable.Attachment(0, PID, false), live.get(0));
            assertEquals(new SharedMemoryVariable.Attachment(1, PID, false), live.get(1));
            assertEquals("pid " + PID, live.get(0).describe());
            assertEquals(live, a.attachments(), "an attachment sees its own entry alive too");
        }
    }

    @Test
    void shouldExcludeTwoAttachmentsOfOneProcess() throws Exception {
        int key = segments.newKey();
        try (var a = SharedVariable.create(key, Counter.getDefaultInstance());
             var b = SharedVariable.open(key, Counter.getDefaultInstance())) {
            assertExclusion(a, b);
        }
    }

    @Test
    void shouldExcludeTwoAttachmentsOfOneFile() throws Exception {
        Path file = Files.createTempFile(Path.of("/dev/shm"), "shmvar-lock-test-", "");
        Files.delete(file);
        try (var a = SharedVariable.createFile(file, Counter.getDefaultInstance(), Options.defaults());
             var b = SharedVariable.openFile(file, Counter.getDefaultInstance(), Options.defaults());
             var reader = SharedVariable.openFile(file, Counter.getDefaultInstance(),
                 Options.defaults().withReadOnly(true))) {
            assertNotEquals(a.identity(), b.identity());
            assertEquals(2, reader.attachments().size(), reader.attachments().toString());
            assertEquals(2, a.attachments().size(), a.attachments().toString());
            assertExclusion(a, b);
            b.close();
            assertEquals(1, reader.attachments().size(), "a closed attachment's OFD lock is gone");
        } finally {
            Files.deleteIfExists(file);
        }
    }

    /** a holds the lock inside its update; b's bounded update times out naming a's attachment. */
    private static void assertExclusion(SharedMemoryVariable<Counter> a, SharedMemoryVariable<Counter> b) throws Exception {
        CountDownLatch holding = new CountDownLatch(1);
        CountDownLatch letGo = new CountDownLatch(1);
        AtomicReference<Throwable> error = new AtomicReference<>();
        Thread holder = new Thread(() -> {
            try {
                a.update(c -> {
                    holding.countDown();
                    try {
                        letGo.await();
                    } catch (InterruptedException e) {
                        throw new IllegalStateException(e);
                    }
                    return c.toBuilder().setValue(c.getValue() + 1).build();
                });
            } catch (Throwable e) {
                error.set(e);
            }
        });
        holder.start();
        assertTrue(holding.await(10, TimeUnit.SECONDS));
        try {
            ShmException e = assertThrows(ShmException.class, () -> b.tryUpdate(c -> c, Duration.ofMillis(50)));
            assertEquals(ShmException.Reason.TIMEOUT, e.reason());
            assertEquals(PID, e.holderPid());
            assertTrue(e.getMessage().endsWith("held by attachment " + (a.identity() >>> 32) + ", pid " + PID
                + ", which is alive"), e.getMessage());
            LockState state = b.lockState();
            assertEquals(a.identity(), state.word());
            assertTrue(state.holderAlive());
            assertEquals("attachment " + (a.identity() >>> 32) + ", pid " + PID, state.holder());
        } finally {
            letGo.countDown();
            holder.join();
        }
        assertNull(error.get());
        assertEquals(2, b.update(c -> c.toBuilder().setValue(c.getValue() + 1).build()).getValue());
        assertEquals(0, a.lockState().takeovers(), "a live holder was robbed");
    }

    @Test
    void shouldTakeOverFromAnAttachmentWhoseEntryWasReleased() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            var other = SharedVariable.open(key, Counter.getDefaultInstance());
            long word = other.identity();
            TestSegments.poke(key, m -> m.putLong(LOCK_WORD_OFFSET, word)); // as if it died holding the lock
            ShmException e = assertThrows(ShmException.class, () -> v.tryUpdate(c -> c, Duration.ofMillis(30)));
            assertEquals(ShmException.Reason.TIMEOUT, e.reason());
            other.close(); // releases its entry; the lock word still names it
            assertFalse(v.lockState().holderAlive());
            Counter c = v.tryUpdate(x -> x.toBuilder().setValue(x.getValue() + 1).build(), Duration.ofSeconds(1));
            assertEquals(1, c.getValue());
            assertEquals(1, v.lockState().takeovers());
            assertEquals(0, v.lockState().word());
            // A new attachment claims the released entry again, with a new incarnation: the old word stays dead.
            try (var again = SharedVariable.open(key, Counter.getDefaultInstance())) {
                assertEquals(word >>> 32, again.identity() >>> 32);
                assertEquals((int) word + 1, (int) again.identity());
            }
        }
    }

    @Test
    void shouldNameAHolderInAnotherPidNamespace() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance());
             var other = SharedVariable.open(key, Counter.getDefaultInstance())) {
            int entry = ATTACHMENT_TABLE_OFFSET + (int) (other.identity() >>> 32) * ATTACHMENT_LENGTH;
            TestSegments.poke(key, m -> {
                m.putInt(entry + ATTACHMENT_PID_OFFSET, 1);
                m.putLong(entry + ATTACHMENT_PID_NAMESPACE_OFFSET, 12345); // not ours
                m.putLong(LOCK_WORD_OFFSET, other.identity());
            });
            ShmException e = assertThrows(ShmException.class, () -> v.tryUpdate(c -> c, Duration.ofMillis(30)));
            assertTrue(e.getMessage().endsWith("held by attachment 1, pid 1 in another PID namespace, which is alive"),
                e.getMessage());
            assertEquals(1, e.holderPid());
            assertEquals("pid 1 in another PID namespace", v.attachments().get(1).describe());
            TestSegments.poke(key, m -> m.putLong(LOCK_WORD_OFFSET, 0));
        }
    }

    @Test
    void shouldTreatAWordNamingNoEntryAsDead() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            long bogus = (long) ATTACHMENT_COUNT << 32 | 1;
            TestSegments.poke(key, m -> m.putLong(LOCK_WORD_OFFSET, bogus));
            assertEquals("attachment 64, which does not exist", v.lockState().holder());
            assertFalse(v.lockState().holderAlive());
            v.tryUpdate(c -> c, Duration.ofSeconds(1));
            assertEquals(1, v.lockState().takeovers());
        }
    }

    /** A child JVM holds the lock (inside a long update) and is killed: the kernel frees its entry, we take over. */
    @Test
    void shouldTakeOverFromAKilledHolderProcess() throws Exception {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            assertTakeOverFromKilledChild(v, "--key", ShmException.formatKey(key));
        }
    }

    @Test
    void shouldTakeOverFromAKilledHolderProcessOfAFile() throws Exception {
        Path file = Files.createTempFile(Path.of("/dev/shm"), "shmvar-lock-test-", "");
        Files.delete(file);
        try (var v = SharedVariable.createFile(file, Counter.getDefaultInstance(), Options.defaults())) {
            assertTakeOverFromKilledChild(v, "--file", file.toString());
        } finally {
            Files.deleteIfExists(file);
        }
    }

    private static void assertTakeOverFromKilledChild(SharedMemoryVariable<Counter> v, String... target) throws Exception {
        String[] args = new String[target.length + 6];
        System.arraycopy(target, 0, args, 1, target.length);
        args[0] = "incr";
        System.arraycopy(new String[] {"--count", "1", "--hold", "60s", "--quiet"}, 0, args, target.length + 1, 5);
        Process child = TestSegments.startJavaPeer(args);
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            LockState held;
            while (true) {
                held = v.lockState();
                if (held.word() != 0) {
                    break;
                }
                assertTrue(child.isAlive(), () -> "child exited: " + output(child));
                assertTrue(System.nanoTime() < deadline, "the child never took the lock");
                Thread.sleep(5);
            }
            assertEquals(child.pid(), held.holderPid());
            assertTrue(held.holderAlive());
            assertFalse(held.holderInOtherNamespace());
            ShmException e = assertThrows(ShmException.class, () -> v.tryUpdate(c -> c, Duration.ofMillis(50)));
            assertEquals(ShmException.Reason.TIMEOUT, e.reason());
            assertEquals(child.pid(), e.holderPid());
            new ProcessBuilder("kill", "-KILL", Long.toString(child.pid())).start().waitFor();
            assertTrue(child.waitFor(10, TimeUnit.SECONDS));
            assertFalse(v.lockState().holderAlive(), "the kernel released the dead holder's entry");
            Counter c = v.tryUpdate(x -> x.toBuilder().setValue(x.getValue() + 1).build(), Duration.ofSeconds(5));
            assertEquals(1, c.getValue(), "the killed holder committed nothing");
            assertEquals(1, v.lockState().takeovers());
            assertEquals(1, v.attachments().size(), "only our own entry is alive");
        } finally {
            child.destroyForcibly().waitFor();
        }
    }

    private static String output(Process p) {
        try {
            return new String(p.getInputStream().readAllBytes());
        } catch (java.io.IOException e) {
            return e.toString();
        }
    }
}
