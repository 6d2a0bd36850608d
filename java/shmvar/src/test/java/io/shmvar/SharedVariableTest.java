package io.shmvar;

import io.shmvar.examples.AllTypes;
import io.shmvar.examples.Counter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class SharedVariableTest {
    private final TestSegments segments = new TestSegments();

    @AfterEach
    void removeSegments() {
        segments.close();
    }

    @Test
    void shouldStartEmptyAndShareCommittedValues() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance());
             var other = SharedVariable.open(key, Counter.getDefaultInstance())) {
            assertEquals(Counter.getDefaultInstance(), v.get());
            v.set(Counter.newBuilder().setValue(41).setLastWriter("test").build());
            assertEquals(1, v.generation());
            assertEquals(41, other.get().getValue());
            assertEquals("test", other.get().getLastWriter());
        }
    }

    /** Each attachment caches the value it last committed or read; another attachment's commit must show. */
    @Test
    void shouldSeeEveryOtherAttachmentsCommitDespiteCache() {
        int key = segments.newKey();
        try (var a = SharedVariable.create(key, Counter.getDefaultInstance());
             var b = SharedVariable.open(key, Counter.getDefaultInstance())) {
            List<SharedMemoryVariable<Counter>> vars = List.of(a, b);
            java.util.Random rng = new java.util.Random(12);
            for (int i = 1; i <= 3000; i++) {
                Counter got = vars.get(rng.nextInt(2)).update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
                assertEquals(i, got.getValue());
                for (var r : vars) {
                    for (int k = rng.nextInt(3); k >= 0; k--) {
                        assertEquals(i, r.get().getValue(), "a read after update " + i);
                    }
                }
            }
        }
    }

    /**
     * The value is the number of commits, so a get must return one committed between the generations read just
     * before and just after it: a cached value paired with the wrong generation would fall outside.
     */
    @Test
    void shouldNeverServeAValueFromAnotherGenerationUnderConcurrency() throws Exception {
        int key = segments.newKey();
        int each = 3000;
        try (var a = SharedVariable.create(key, Counter.getDefaultInstance());
             var b = SharedVariable.open(key, Counter.getDefaultInstance())) {
            var stop = new java.util.concurrent.atomic.AtomicBoolean();
            var failure = new java.util.concurrent.atomic.AtomicReference<String>();
            List<Thread> threads = new ArrayList<>();
            for (var w : List.of(a, b)) {
                threads.add(new Thread(() -> {
                    for (int i = 0; i < each; i++) {
                        w.update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
                    }
                }));
                threads.add(new Thread(() -> {
                    while (!stop.get() && failure.get() == null) {
                        long before = w.generation();
                        long value = w.get().getValue();
                        long after = w.generation();
                        if (value < before || value > after) {
                            failure.set("read " + value + " between generations " + before + " and " + after);
                        }
                    }
                }));
            }
            threads.forEach(Thread::start);
            for (int i = 0; i < threads.size(); i += 2) {
                threads.get(i).join();
            }
            stop.set(true);
            for (Thread t : threads) {
                t.join();
            }
            assertNull(failure.get());
            assertEquals(2L * each, a.get().getValue());
        }
    }

    @Test
    void shouldCountEveryUpdateFromManyThreads() throws InterruptedException {
        int key = segments.newKey();
        int threads = 4, each = 2000;
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            List<Thread> workers = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                Thread w = new Thread(() -> {
                    for (int i = 0; i < each; i++) {
                        v.update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
                    }
                });
                workers.add(w);
                w.start();
            }
            for (Thread w : workers) {
                w.join();
            }
            assertEquals(threads * each, v.get().getValue());
            assertEquals(threads * each, v.generation());
        }
    }

    @Test
    void shouldCommitNothingAndReleaseLockWhenUpdateFunctionThrows() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            v.set(Counter.newBuilder().setValue(5).build());
            IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> v.update(c -> {
                throw new IllegalStateException("boom");
            }));
            assertEquals("boom", thrown.getMessage());
            assertEquals(5, v.get().getValue());
            assertEquals(1, v.generation());
            assertEquals(0, v.lockState().word(), "lock released");
            assertEquals(6, v.tryUpdate(c -> c.toBuilder().setValue(6).build(), Duration.ofMillis(100)).getValue());
        }
    }

    @Test
    void shouldRefuseValueLargerThanCapacity() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance(),
            Options.defaults().withCapacity(8))) {
            ShmException e = assertThrows(ShmException.class,
                () -> v.set(Counter.newBuilder().setValue(1).setLastWriter("far too long for eight bytes").build()));
            assertEquals(ShmException.Reason.TOO_LARGE, e.reason());
            assertTrue(e.getMessage().contains("capacity=8"), e.getMessage());
            assertEquals(0, v.generation());
        }
    }

    /**
     * commit encodes through a reused 4 KiB buffer; values larger than it reach the slot in several pieces. A reader
     * parses values up to 4 KiB through its reused decoder and larger ones straight from its copy.
     */
    @Test
    void shouldCommitValuesLargerThanTheEncodeBuffer() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance(),
                 Options.defaults().withCapacity(64 * 1024));
             var other = SharedVariable.open(key, Counter.getDefaultInstance())) {
            for (int length : new int[] {10, 4090, 4096, 5000, 40_000, 3}) {
                String text = "x".repeat(length - 1) + length % 10;
                v.set(Counter.newBuilder().setValue(length).setLastWriter(text).build());
                Counter got = other.get();
                assertEquals(length, got.getValue());
                assertEquals(text, got.getLastWriter());
                assertArrayEquals(got.toByteArray(), other.getEncoded());
            }
        }
    }

    @Test
    void shouldCarryFunctionErrnoAndKey() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            ShmException e = assertThrows(ShmException.class,
                () -> SharedVariable.create(key, Counter.getDefaultInstance()));
            assertEquals("shmget", e.function());
            assertEquals(Native.EEXIST, e.errno());
            assertEquals(key, e.key());
            assertEquals("shmget key=" + ShmException.formatKey(key) + ": File exists (EEXIST): a segment with this "
                + "key already exists; remove it with 'rm --key " + ShmException.formatKey(key) + "' or 'ipcrm -M "
                + ShmException.formatKey(key) + "'", e.getMessage());
        }
        int missing = segments.newKey();
        ShmException e = assertThrows(ShmException.class, () -> SharedVariable.open(missing, Counter.getDefaultInstance()));
        assertEquals(Native.ENOENT, e.errno());
        ShmException tooBig = assertThrows(ShmException.class, () -> SharedVariable.create(missing,
            Counter.getDefaultInstance(), Options.defaults().withCapacity(LayoutDescriptor.MAX_CAPACITY + 1)));
        assertEquals(ShmException.Reason.INVALID_ARGUMENT, tooBig.reason());
    }

    @Test
    void shouldRefuseWrongType() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            ShmException e = assertThrows(ShmException.class, () -> SharedVariable.open(key, AllTypes.getDefaultInstance()));
            assertEquals(ShmException.Reason.TYPE_MISMATCH, e.reason());
            assertTrue(e.getMessage().endsWith("segment holds shmvar.examples.v1.Counter, asked for shmvar.examples.v1.AllTypes"),
                e.getMessage());
        }
    }

    @Test
    void shouldFailAfterCloseAndRemove() {
        int key = segments.newKey();
        var v = SharedVariable.create(key, Counter.getDefaultInstance());
        v.remove();
        assertEquals(ShmException.Reason.CLOSED, assertThrows(ShmException.class, v::get).reason());
        v.close(); // a second close is harmless
        assertEquals(Native.ENOENT, assertThrows(ShmException.class, () -> Native.shmget(key, 0, 0)).errno());
    }

    @Test
    void shouldReadAnyTypeThroughStoredSchema() throws Exception {
        int key = segments.newKey();
        AllTypes sample = TestSegments.allTypesSample();
        try (var v = SharedVariable.create(key, AllTypes.getDefaultInstance());
             var dynamic = SharedVariable.openDynamic(key, Options.defaults().withReadOnly(true))) {
            v.set(sample);
            assertEquals(sample, AllTypes.parseFrom(dynamic.get().toByteArray()));
            ShmException e = assertThrows(ShmException.class, () -> dynamic.set(dynamic.get()));
            assertEquals(ShmException.Reason.INVALID_ARGUMENT, e.reason());
        }
    }

    @Test
    void shouldFreeEphemeralSegmentWithItsLastUser() {
        int key = segments.newKey();
        int id;
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance(),
            Options.defaults().withEphemeral(true))) {
            assertEquals(Native.ENOENT, assertThrows(ShmException.class, () -> Native.shmget(key, 0, 0)).errno(),
                "no new process can find it by key");
            v.set(Counter.newBuilder().setValue(3).build());
            assertEquals(3, v.get().getValue());
            assertTrue(v.stat().removed());
            id = v.stat().id();
        }
        assertEquals(Native.EINVAL, assertThrows(ShmException.class, () -> Native.shmStat(key, id)).errno(),
            "the segment outlived its last user");
    }

    @Test
    void shouldReturnTheStoredBytes() throws Exception {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            Counter want = Counter.newBuilder().setValue(7).setLastWriter("ü").build();
            v.set(want);
            assertArrayEquals(want.toByteArray(), v.getEncoded());
        }
    }
}
