package io.shmvar;

import io.shmvar.examples.Counter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static io.shmvar.LayoutDescriptor.*;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The attachment table: lock-lost commits, a full table, the creator-uid policy and the semaphore set's life. */
class AttachmentTest {
    private final TestSegments segments = new TestSegments();

    @AfterEach
    void removeSegments() {
        segments.close();
    }

    private static Counter counter(long value, String writer) {
        return Counter.newBuilder().setValue(value).setLastWriter(writer).build();
    }

    @Test
    void shouldFailWithLockLostAndCommitNothingWhenTheLockWordIsRobbed() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance());
             var other = SharedVariable.open(key, Counter.getDefaultInstance())) {
            v.set(counter(1, "before"));
            long robber = other.identity();
            ShmException e = assertThrows(ShmException.class, () -> v.update(c -> {
                TestSegments.poke(key, m -> assertTrue(Native.LONG.compareAndSet(m, LOCK_WORD_OFFSET, v.identity(), robber)));
                return counter(99, "holder");
            }));
            assertEquals(ShmException.Reason.LOCK_LOST, e.reason(), e.getMessage());
            assertEquals("update", e.function(), "the commit's error, not the release's");
            assertTrue(e.getMessage().endsWith(String.format("lock lost: lock word is 0x%016x, not this attachment's "
                + "0x%016x; nothing was committed", robber, v.identity())), e.getMessage());
            assertEquals(1, e.getSuppressed().length, "the failed release is kept, suppressed");
            assertTrue(e.getSuppressed()[0].getMessage().contains("is not ours"), e.getSuppressed()[0].getMessage());
            assertEquals(robber, v.lockState().word(), "the holder did not free the robber's word");
            assertEquals(1, v.generation());
            assertEquals(counter(1, "before"), v.get());
            assertEquals(counter(1, "before"), other.get());
            assertArrayEquals(counter(1, "before").toByteArray(), other.getEncoded());
            TestSegments.poke(key, m -> m.putLong(LOCK_WORD_OFFSET, 0));
            assertEquals(2, v.update(c -> c.toBuilder().setValue(c.getValue() + 1).build()).getValue());
        }
    }

    @Test
    void shouldKeepTheRobbersCommitWhenTheLockIsLost() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance());
             var robber = SharedVariable.open(key, Counter.getDefaultInstance())) {
            v.set(counter(1, "before"));
            // The robber frees the holder's word, commits, and leaves the word free.
            ShmException e = assertThrows(ShmException.class, () -> v.update(c -> {
                TestSegments.poke(key, m -> m.putLong(LOCK_WORD_OFFSET, 0));
                robber.set(counter(7, "robber"));
                return counter(99, "holder");
            }));
            assertEquals(ShmException.Reason.LOCK_LOST, e.reason());
            assertTrue(e.getMessage().endsWith(String.format("lock word is 0x%016x, not this attachment's 0x%016x; "
                + "nothing was committed", 0L, v.identity())), e.getMessage());
            assertEquals(2, v.generation());
            assertEquals(counter(7, "robber"), v.get());
            assertEquals(counter(7, "robber"), robber.get());
            assertEquals(0, v.lockState().word());

            // The robber commits and puts the holder's word back: the generation check catches it.
            e = assertThrows(ShmException.class, () -> v.update(c -> {
                TestSegments.poke(key, m -> m.putLong(LOCK_WORD_OFFSET, 0));
                robber.set(counter(8, "robber again"));
                TestSegments.poke(key, m -> m.putLong(LOCK_WORD_OFFSET, v.identity()));
                return counter(99, "holder");
            }));
            assertEquals(ShmException.Reason.LOCK_LOST, e.reason());
            assertTrue(e.getMessage().endsWith("generation moved from 2 to 3 under the lock holder; nothing was "
                + "committed"), e.getMessage());
            assertEquals(3, v.generation());
            assertEquals(counter(8, "robber again"), v.get(), "no stale cache claims the new generation");
            assertArrayEquals(counter(8, "robber again").toByteArray(), v.getEncoded());
            assertEquals(0, v.lockState().word(), "the word was ours again, so it was freed");
            assertEquals(9, v.update(c -> c.toBuilder().setValue(c.getValue() + 1).build()).getValue());
        }
    }

    @Test
    void shouldRefuseTheWriterAfterAllEntriesAreTaken() {
        int key = segments.newKey();
        List<SharedMemoryVariable<Counter>> open = new ArrayList<>();
        try {
            open.add(SharedVariable.create(key, Counter.getDefaultInstance()));
            for (int i = 1; i < ATTACHMENT_COUNT; i++) {
                open.add(SharedVariable.open(key, Counter.getDefaultInstance()));
            }
            ShmException e = assertThrows(ShmException.class, () -> SharedVariable.open(key, Counter.getDefaultInstance()));
            assertEquals(ShmException.Reason.ATTACHMENTS_FULL, e.reason());
            assertTrue(e.getMessage().endsWith("attachments full: all " + ATTACHMENT_COUNT
                + " attachment entries are held by live processes"), e.getMessage());
            try (var reader = SharedVariable.open(key, Counter.getDefaultInstance(),
                Options.defaults().withReadOnly(true))) {
                assertEquals(ATTACHMENT_COUNT, reader.attachments().size());
            }
            open.remove(17).close();
            try (var again = SharedVariable.open(key, Counter.getDefaultInstance())) {
                assertEquals(17, again.identity() >>> 32);
                again.set(counter(5, "65th"));
            }
            assertEquals(5, open.get(0).get().getValue());
        } finally {
            open.forEach(SharedVariable::close);
        }
    }

    @Test
    void shouldRefuseTheWriterOfAFullFile() throws Exception {
        Path file = Files.createTempFile(Path.of("/dev/shm"), "shmvar-full-test-", "");
        Files.delete(file);
        List<SharedMemoryVariable<Counter>> open = new ArrayList<>();
        try {
            open.add(SharedVariable.createFile(file, Counter.getDefaultInstance(), Options.defaults()));
            for (int i = 1; i < ATTACHMENT_COUNT; i++) {
                open.add(SharedVariable.openFile(file, Counter.getDefaultInstance(), Options.defaults()));
            }
            ShmException e = assertThrows(ShmException.class,
                () -> SharedVariable.openFile(file, Counter.getDefaultInstance(), Options.defaults()));
            assertEquals(ShmException.Reason.ATTACHMENTS_FULL, e.reason());
            open.remove(3).close();
            try (var again = SharedVariable.openFile(file, Counter.getDefaultInstance(), Options.defaults())) {
                assertEquals(3, again.identity() >>> 32);
            }
        } finally {
            open.forEach(SharedVariable::close);
            Files.deleteIfExists(file);
        }
    }

    @Test
    void shouldRemoveTheSemaphoreSetWithTheSegment() {
        int key = segments.newKey();
        var v = SharedVariable.create(key, Counter.getDefaultInstance());
        assertTrue(TestSegments.hasSemaphores(key));
        assertEquals(ATTACHMENT_COUNT, Native.semStat(key, Native.semLookup(key, 0, 0)).count());
        v.remove();
        assertFalse(TestSegments.hasSemaphores(key));

        SharedVariable.create(key, Counter.getDefaultInstance()).close();
        assertTrue(TestSegments.hasSemaphores(key), "a plain close keeps the set");
        SharedVariable.removeKey(key);
        assertFalse(TestSegments.hasSemaphores(key));
        assertEquals(Native.ENOENT, assertThrows(ShmException.class, () -> SharedVariable.removeKey(key)).errno());

        // A set left alone under a key: removeKey clears it, and create replaces one nobody holds.
        Native.semget(key, ATTACHMENT_COUNT, Native.IPC_CREAT | 0600);
        SharedVariable.removeKey(key);
        assertFalse(TestSegments.hasSemaphores(key));
        int leftover = Native.semget(key, ATTACHMENT_COUNT, Native.IPC_CREAT | 0600);
        try (var created = SharedVariable.create(key, Counter.getDefaultInstance())) {
            assertNotEquals(leftover, Native.semLookup(key, 0, 0));
            created.set(counter(1, "x"));
        }
    }

    @Test
    void shouldRefuseToCreateOverASetStillHeldByAnAttachmentOfARemovedSegment() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            Native.shmRemove(key, Native.shmget(key, 0, 0)); // removed behind our back; the set and our claim remain
            ShmException e = assertThrows(ShmException.class, () -> SharedVariable.create(key, Counter.getDefaultInstance()));
            assertEquals(Native.EEXIST, e.errno());
            assertEquals("semget", e.function());
            assertTrue(e.getMessage().endsWith("a semaphore set with this key is still used by attachments of a "
                + "removed segment"), e.getMessage());
            assertEquals(Native.ENOENT, assertThrows(ShmException.class, () -> Native.shmget(key, 0, 0)).errno(),
                "the failed create removed its segment");
        }
    }

    @Test
    void shouldRemoveTheSemaphoreSetWithTheLastAttachmentOfAnEphemeralSegment() {
        int key = segments.newKey();
        var v = SharedVariable.create(key, Counter.getDefaultInstance());
        var w = SharedVariable.open(key, Counter.getDefaultInstance(), Options.defaults().withEphemeral(true));
        v.close();
        assertTrue(TestSegments.hasSemaphores(key), "another attachment still uses the set");
        w.set(counter(3, "last"));
        w.close();
        assertFalse(TestSegments.hasSemaphores(key));
    }

    @Test
    void shouldRefuseAWritingOpenWithoutTheSemaphoreSet() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            Native.semRemove(Native.semLookup(key, 0, 0));
            ShmException e = assertThrows(ShmException.class, () -> SharedVariable.open(key, Counter.getDefaultInstance()));
            assertEquals(ShmException.Reason.CORRUPT, e.reason());
            assertTrue(e.getMessage().contains("no semaphore set under this key"), e.getMessage());
            try (var reader = SharedVariable.open(key, Counter.getDefaultInstance(),
                Options.defaults().withReadOnly(true))) {
                assertEquals(0, reader.get().getValue());
                assertEquals(1, reader.attachments().size(), "liveness unknown: the creator's entry counts as alive");
            }
        }
    }

    /**
     * A segment created by another user and then handed to us with IPC_SET: its owner is us, its creator is not. The
     * creator keeps full access, so it counts as another owner.
     */
    @Test
    void shouldRefuseASegmentCreatedByAnotherUser() throws Exception {
        assumeTrue(Native.geteuid() == 0, "needs root to act as another user");
        assumeTrue(Files.isExecutable(Path.of("/usr/bin/setpriv")) && Files.isExecutable(Path.of("/usr/bin/python3")));
        int key = segments.newKey();
        byte[] raw = SharedMemoryVariable.describe(Counter.getDescriptor(), DEFAULT_CAPACITY).toByteArray();
        Geometry g = Geometry.of(DEFAULT_CAPACITY, raw.length);
        String script = String.join("\n",
            "import ctypes, sys",
            "libc = ctypes.CDLL(None, use_errno=True)",
            "key, size = " + key + ", " + g.segmentLength(),
            "i = libc.shmget(key, ctypes.c_size_t(size), 0o1000 | 0o2000 | 0o600)",
            "s = libc.semget(key, " + ATTACHMENT_COUNT + ", 0o1000 | 0o2000 | 0o600)",
            "if i < 0 or s < 0: sys.exit('shmget/semget: errno %d' % ctypes.get_errno())",
            "buf = ctypes.create_string_buffer(128)",
            "if libc.shmctl(i, 2, buf) < 0: sys.exit('IPC_STAT')",
            "buf[4:8] = (0).to_bytes(4, 'little')",
            "if libc.shmctl(i, 1, buf) < 0: sys.exit('IPC_SET: errno %d' % ctypes.get_errno())");
        Process p = new ProcessBuilder("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
            script).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), out);
        TestSegments.poke(key, m -> SharedMemoryVariable.initialise(m, g, raw));
        SegmentInfo info = Native.shmStat(key, Native.shmget(key, 0, 0));
        assertEquals(0, info.uid());
        assertEquals(65534, info.cuid());

        ShmException e = assertThrows(ShmException.class, () -> SharedVariable.open(key, Counter.getDefaultInstance()));
        assertEquals(ShmException.Reason.PERMISSION, e.reason());
        assertTrue(e.getMessage().endsWith("segment is owned by uid 0 (created by uid 65534), this process runs as uid 0; "
            + "accept it with withAnyOwner (--any-owner)"), e.getMessage());
        try (var v = SharedVariable.open(key, Counter.getDefaultInstance(),
            Options.defaults().withAnyOwner(true))) {
            v.set(counter(1, "accepted"));
        }
        try (var reader = SharedVariable.open(key, Counter.getDefaultInstance(),
            Options.defaults().withReadOnly(true).withAnyOwner(true))) {
            assertEquals(1, reader.get().getValue());
        }
    }
}
