package io.shmvar;

import io.shmvar.proto.Counter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;

import static org.junit.jupiter.api.Assertions.*;

class SpinLockTest {
    private final TestSegments segments = new TestSegments();

    @AfterEach
    void removeSegments() {
        segments.close();
    }

    @Test
    void shouldRecordPidAndStartTimeInIdentity() {
        long pid = ProcessHandle.current().pid();
        assertEquals(pid, SpinLock.holderPid(SpinLock.identity()));
        assertTrue(SpinLock.holderAlive(SpinLock.identity()));
        // Same pid, another start time: a different process that reused the pid.
        assertFalse(SpinLock.holderAlive(SpinLock.identity() ^ 1));
    }

    @Test
    void shouldTimeOutNamingLiveHolderThenTakeOverWhenItDies() throws Exception {
        int key = segments.newKey();
        Process sleeper = new ProcessBuilder("sleep", "30").start();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            long live = identityOf(sleeper.pid());
            TestSegments.poke(key, m -> m.putLong(LayoutDescriptor.LOCK_WORD_OFFSET, live));

            ShmException e = assertThrows(ShmException.class, () -> v.tryUpdate(c -> c, Duration.ofMillis(50)));
            assertEquals(ShmException.Reason.TIMEOUT, e.reason());
            assertEquals(sleeper.pid(), e.holderPid());
            assertTrue(e.getMessage().contains("held by pid " + sleeper.pid() + ", which is alive"), e.getMessage());

            sleeper.destroyForcibly().waitFor();
            Counter c = v.tryUpdate(x -> x.toBuilder().setValue(x.getValue() + 1).build(), Duration.ofSeconds(1));
            assertEquals(1, c.getValue());
            SpinLock.State state = v.lockState();
            assertEquals(1, state.takeovers());
            assertEquals(0, state.word());
        } finally {
            sleeper.destroyForcibly();
        }
    }

    /** The lock word of process {@code pid}, as the protocol defines it. */
    static long identityOf(long pid) {
        Native.ProcStat stat = Native.readProcStat(pid);
        assertNotNull(stat, "no /proc/" + pid + "/stat");
        return pid << 32 | (stat.startTicks() & 0xffffffffL);
    }
}
