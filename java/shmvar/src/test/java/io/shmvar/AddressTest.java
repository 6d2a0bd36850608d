package io.shmvar;

import io.shmvar.examples.Counter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.URI;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.*;

/** openOrCreate, addresses and stats: the API a service written against {@link SharedVariable} uses. */
class AddressTest {
    private final TestSegments segments = new TestSegments();

    @AfterEach
    void removeSegments() {
        segments.close();
    }

    @Test
    void shouldLetExactlyOneOfManyConcurrentCallersCreate() throws Exception {
        int key = segments.newKey();
        int callers = 8;
        ExecutorService pool = Executors.newFixedThreadPool(callers);
        CountDownLatch start = new CountDownLatch(1);
        List<Future<SharedMemoryVariable<Counter>>> opened = new ArrayList<>();
        try {
            for (int i = 0; i < callers; i++) {
                opened.add(pool.submit(() -> {
                    start.await();
                    return SharedVariable.openOrCreate(key, Counter.getDefaultInstance(), Options.defaults());
                }));
            }
            start.countDown();
            List<SharedMemoryVariable<Counter>> vars = new ArrayList<>();
            for (Future<SharedMemoryVariable<Counter>> f : opened) {
                vars.add(f.get());
            }
            for (SharedMemoryVariable<Counter> v : vars) {
                v.update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
            }
            // one segment: every caller's update landed on the same value
            assertEquals(callers, vars.get(0).get().getValue());
            assertEquals(callers, vars.get(callers - 1).generation());
            vars.forEach(SharedMemoryVariable::close);
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void shouldRefuseAnExistingSegmentOfAnotherType() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            ShmException e = assertThrows(ShmException.class, () -> SharedVariable.openOrCreate(key,
                io.shmvar.examples.AllTypes.getDefaultInstance(), Options.defaults()));
            assertEquals(ShmException.Reason.TYPE_MISMATCH, e.reason(), e.getMessage());
        }
    }

    @Test
    void shouldReachTheSameSegmentByKeyAndByAddress() {
        int key = segments.newKey();
        URI address = URI.create("shm:" + ShmException.formatKey(key));
        try (SharedVariable<Counter> a = SharedVariable.openOrCreate(address, Counter.getDefaultInstance(), Options.defaults());
             SharedVariable<Counter> b = SharedVariable.open(key, Counter.getDefaultInstance())) {
            a.set(Counter.newBuilder().setValue(7).build());
            assertEquals(7, b.get().getValue());
            assertEquals("shmvar.examples.v1.Counter",
                SharedVariable.openDynamic(address, Options.defaults().withReadOnly(true)).descriptor().getMessageType());
        }
    }

    @Test
    void shouldReachAFileByAddress(@TempDir Path dir) {
        URI address = dir.resolve("v").toUri();
        try (SharedVariable<Counter> a = SharedVariable.create(address, Counter.getDefaultInstance(), Options.defaults());
             SharedVariable<Counter> b = SharedVariable.openOrCreate(address, Counter.getDefaultInstance(), Options.defaults())) {
            b.update(c -> c.toBuilder().setValue(c.getValue() + 2).build());
            assertEquals(2, a.get().getValue());
        }
    }

    @Test
    void shouldRefuseAnAddressItCannotReachInOneLine() {
        for (String bad : new String[] {"etcd://127.0.0.1:1/x", "shm:0", "shm:nope", "shm:0x100000000", "0x5eed"}) {
            ShmException e = assertThrows(ShmException.class,
                () -> SharedVariable.open(URI.create(bad), Counter.getDefaultInstance(), Options.defaults()), bad);
            assertEquals(ShmException.Reason.INVALID_ARGUMENT, e.reason(), bad + ": " + e.getMessage());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }

    /** shm:KEY takes the key as the commands do (ShmException.parseKey, Go's ParseKey), no looser. */
    @Test
    void shouldReadTheKeyOfAnAddressAsTheCommandsDo() {
        assertEquals(0x5eed, ShmException.parseKey("0x5eed"));
        assertEquals(0xffffffff, ShmException.parseKey("4294967295"));
        assertEquals(0x5d000003, ShmException.parseKey("0x00005d000003")); // hex may carry leading zeros
        for (String bad : new String[] {"010", "+1", "1_0", " 1", "0x", "0xfffffffff", "99999999999"}) {
            ShmException e = assertThrows(ShmException.class, () -> ShmException.parseKey(bad), bad);
            assertEquals(ShmException.Reason.INVALID_ARGUMENT, e.reason(), bad);
            ShmException viaAddress = assertThrows(ShmException.class,
                () -> SharedVariable.open(URI.create("shm:" + bad.replace(" ", "%20")), Counter.getDefaultInstance(),
                    Options.defaults()), bad);
            assertEquals(ShmException.Reason.INVALID_ARGUMENT, viaAddress.reason(), bad);
        }
    }

    @Test
    void shouldCountCommitsContentionAndLockWait() throws Exception {
        int key = segments.newKey();
        try (var a = SharedVariable.create(key, Counter.getDefaultInstance());
             var b = SharedVariable.open(key, Counter.getDefaultInstance())) {
            for (int i = 0; i < 5; i++) {
                a.update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
            }
            CountDownLatch holding = new CountDownLatch(1);
            Thread holder = new Thread(() -> a.update(c -> {
                holding.countDown();
                try {
                    Thread.sleep(50);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return c.toBuilder().setValue(c.getValue() + 1).build();
            }));
            holder.start();
            holding.await();
            b.update(c -> c.toBuilder().setValue(c.getValue() + 1).build()); // waits for a's holder
            holder.join();

            SharedVariable.Stats sa = a.stats(), sb = b.stats();
            assertEquals(7, sa.generation());
            assertEquals(6, sa.commits());
            assertEquals(1, sb.commits());
            assertTrue(sb.contendedAcquisitions() >= 1, sb.toString());
            assertEquals(sa.contendedAcquisitions(), sb.contendedAcquisitions(), "the segment's counter, seen by both");
            assertEquals(0, sb.takeovers());
            assertTrue(sb.lockWait().toMillis() >= 20, "b waited about 50ms for the holder: " + sb);
        }
    }
}
