package io.shmvar;

import java.nio.ByteBuffer;
import java.time.Duration;

import static io.shmvar.LayoutDescriptor.CONTENDED_COUNT_OFFSET;
import static io.shmvar.LayoutDescriptor.LOCK_FUTEX_OFFSET;
import static io.shmvar.LayoutDescriptor.LOCK_WAITERS_OFFSET;
import static io.shmvar.LayoutDescriptor.LOCK_WORD_OFFSET;
import static io.shmvar.LayoutDescriptor.TAKEOVER_COUNT_OFFSET;
import static io.shmvar.Native.INT;
import static io.shmvar.Native.LONG;

/**
 * The lock word at {@link LayoutDescriptor#LOCK_WORD_OFFSET}: 0 when free, else the holder's identity
 * {@code pid << 32 | (process start time in clock ticks & 0xffffffff)}, taken by compare-and-set from 0.
 * A waiter that finds the holder's process gone, a zombie, or another process under the same pid (the start time
 * differs) takes the lock over with one compare-and-set on the exact word it saw; a live holder is never robbed.
 * The Go twin is {@code go-peer/shmvar/lock.go}.
 */
public final class SpinLock {
    /** Busy waiting before yielding or parking. */
    static final long SPIN_NANOS = 20_000;
    /** How often a waiter checks its deadline and the holder's liveness. */
    private static final long CHECK_EVERY_NANOS = 1_000_000;
    /** The longest park, so that liveness checks go on. */
    private static final long PARK_NANOS = 2_000_000;

    private static final long IDENTITY;

    static {
        long pid = ProcessHandle.current().pid();
        Native.ProcStat self = Native.readProcStat(pid);
        if (self == null || self == Native.ProcStat.UNKNOWN) {
            throw new IllegalStateException("cannot read /proc/" + pid + "/stat, which the lock needs");
        }
        IDENTITY = lockWord(pid, self.startTicks());
    }

    private final ByteBuffer memory;
    private final long address;
    private final int key;

    SpinLock(ByteBuffer memory, int key) {
        this.memory = memory;
        this.address = Native.addressOf(memory);
        this.key = key;
    }

    /** This process's lock word. */
    public static long identity() {
        return IDENTITY;
    }

    static long lockWord(long pid, long startTicks) {
        return pid << 32 | (startTicks & 0xffffffffL);
    }

    /** The pid recorded in a lock word. */
    public static int holderPid(long word) {
        return (int) (word >>> 32);
    }

    /** Whether the process recorded in a non-zero lock word still runs: same pid, same start time, not a zombie. */
    public static boolean holderAlive(long word) {
        if (word == IDENTITY) {
            return true;
        }
        Native.ProcStat stat = Native.readProcStat(Integer.toUnsignedLong(holderPid(word)));
        if (stat == null || stat.state() == 'Z' || stat.state() == 'X') {
            return false;
        }
        if (stat == Native.ProcStat.UNKNOWN) {
            return true; // never rob a holder we cannot see
        }
        return (stat.startTicks() & 0xffffffffL) == (word & 0xffffffffL);
    }

    /**
     * Takes the lock, waiting up to {@code timeout} (null: forever). Returns whether it was taken over from a dead
     * holder; throws {@link ShmException.Reason#TIMEOUT} naming the live holder.
     */
    boolean acquire(Duration timeout, WaitStrategy strategy) {
        if (LONG.compareAndSet(memory, LOCK_WORD_OFFSET, 0L, IDENTITY)) {
            return false;
        }
        long start = System.nanoTime();
        long timeoutNanos = timeout == null ? Long.MAX_VALUE : timeout.toNanos();
        long nextCheck = start + CHECK_EVERY_NANOS;
        for (int rounds = 1; ; rounds++) {
            long word = (long) LONG.getVolatile(memory, LOCK_WORD_OFFSET);
            if (word == 0) {
                if (LONG.compareAndSet(memory, LOCK_WORD_OFFSET, 0L, IDENTITY)) {
                    LONG.getAndAdd(memory, CONTENDED_COUNT_OFFSET, 1L);
                    return false;
                }
                continue;
            }
            Thread.onSpinWait();
            if (rounds % 32 != 0) {
                continue; // busy wait: the holder usually releases within a microsecond
            }
            long now = System.nanoTime();
            if (now - start < SPIN_NANOS) {
                continue;
            }
            if (strategy == WaitStrategy.SPIN) {
                Thread.yield();
            } else {
                park(timeout == null ? PARK_NANOS : Math.min(PARK_NANOS, Math.max(1_000, start + timeoutNanos - now)));
            }
            if (now - nextCheck < 0) {
                continue;
            }
            nextCheck = now + CHECK_EVERY_NANOS;
            if (word != IDENTITY && !holderAlive(word)) {
                if (LONG.compareAndSet(memory, LOCK_WORD_OFFSET, word, IDENTITY)) {
                    LONG.getAndAdd(memory, TAKEOVER_COUNT_OFFSET, 1L);
                    LONG.getAndAdd(memory, CONTENDED_COUNT_OFFSET, 1L);
                    return true;
                }
                continue;
            }
            if (now - start > timeoutNanos) {
                int pid = holderPid(word);
                throw new ShmException("lock", key, ShmException.Reason.TIMEOUT, 0, pid,
                    "held by pid " + pid + ", which is alive");
            }
        }
    }

    /**
     * Sleeps on the lock futex until a release wakes it, at most {@code nanos}. Announcing the waiter before
     * re-checking the lock word, against a releaser that frees the word before reading the waiter count, means
     * that one of the two always sees the other: no wake-up is lost.
     */
    private void park(long nanos) {
        int sequence = (int) INT.getVolatile(memory, LOCK_FUTEX_OFFSET);
        INT.getAndAdd(memory, LOCK_WAITERS_OFFSET, 1);
        if ((long) LONG.getVolatile(memory, LOCK_WORD_OFFSET) != 0) {
            Native.futexWait(address + LOCK_FUTEX_OFFSET, sequence, nanos);
        }
        INT.getAndAdd(memory, LOCK_WAITERS_OFFSET, -1);
    }

    /** Frees the lock, waking one parked waiter if there is one; fails if the word no longer holds our identity. */
    void release() {
        if (!LONG.compareAndSet(memory, LOCK_WORD_OFFSET, IDENTITY, 0L)) {
            throw ShmException.of("unlock", key, ShmException.Reason.CORRUPT, String.format(
                "lock word 0x%016x is not ours (0x%016x)", (long) LONG.getVolatile(memory, LOCK_WORD_OFFSET), IDENTITY));
        }
        if ((int) INT.getVolatile(memory, LOCK_WAITERS_OFFSET) != 0) {
            INT.getAndAdd(memory, LOCK_FUTEX_OFFSET, 1);
            Native.futexWake(address + LOCK_FUTEX_OFFSET, 1);
        }
    }

    /** A snapshot of the lock word and its counters, for inspect. */
    public record State(long word, int holderPid, boolean holderAlive, long contended, long takeovers) {
    }

    State state() {
        long word = (long) LONG.getVolatile(memory, LOCK_WORD_OFFSET);
        return new State(word, word == 0 ? 0 : holderPid(word), word != 0 && holderAlive(word),
            (long) LONG.getVolatile(memory, CONTENDED_COUNT_OFFSET), (long) LONG.getVolatile(memory, TAKEOVER_COUNT_OFFSET));
    }
}
