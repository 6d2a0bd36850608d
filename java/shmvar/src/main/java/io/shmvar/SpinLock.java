package io.shmvar;

import io.shmvar.proto.ProtocolTiming;

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
 * The lock word at {@link LayoutDescriptor#LOCK_WORD_OFFSET}: 0 when free, else the holder's attachment identity
 * {@code index << 32 | incarnation} (PROTOCOL.md, "Attachments"), taken by compare-and-set from 0. Each writing
 * attachment has its own identity, shared by its threads. A waiter that finds the holder's attachment entry released
 * or claimed again, which the kernel keeps (a System V semaphore with SEM_UNDO, or an open-file-description lock),
 * takes the lock over with one compare-and-set on the exact word it saw; a live holder is never robbed.
 * The Go twin is {@code go-peer/shmvar/lock.go}.
 */
final class SpinLock {
    // The protocol's timings, from enum ProtocolTiming in proto/shmvar/v1/protocol.proto (microseconds).
    /** Busy waiting before yielding or parking. */
    static final long SPIN_NANOS = ProtocolTiming.SPIN_MICROS_VALUE * 1_000L;
    /** How often a waiter checks its deadline and the holder's liveness. */
    static final long CHECK_EVERY_NANOS = ProtocolTiming.CHECK_EVERY_MICROS_VALUE * 1_000L;
    /** The longest park, so that liveness checks go on. */
    static final long PARK_NANOS = ProtocolTiming.LOCK_PARK_MAX_MICROS_VALUE * 1_000L;

    /** Says whether the attachment a lock word names is alive; the attachment table implements it. */
    interface Liveness {
        /** For a non-zero lock word: whether its attachment is alive; true when the kernel cannot tell. */
        boolean alive(long word);
    }

    private final ByteBuffer memory;
    private final long address;
    private final int key;
    /** This attachment's lock word; 0 for a read-only attachment, which never locks. */
    private final long identity;
    private final Attachments attachments;
    /** Time spent waiting in {@link #acquire}, for {@link SharedVariable#stats()}. */
    private final java.util.concurrent.atomic.LongAdder waitNanos = new java.util.concurrent.atomic.LongAdder();

    SpinLock(ByteBuffer memory, int key, long identity, Attachments attachments) {
        this.memory = memory;
        this.address = Native.addressOf(memory);
        this.key = key;
        this.identity = identity;
        this.attachments = attachments;
    }

    /** This attachment's lock word. */
    long identity() {
        return identity;
    }

    /** Whether the attachment a non-zero lock word names is alive; our own identity always is. */
    private boolean holderAlive(long word) {
        return word == identity || attachments.alive(word);
    }

    /** "attachment I, pid P" or "attachment I, pid P in another PID namespace" for a non-zero lock word. */
    private String holder(long word) {
        long index = word >>> 32;
        return LockState.describe(index, attachments.pid(index), attachments.inOtherNamespace(index));
    }

    /**
     * Takes the lock, waiting up to {@code timeout} (null: forever) or until {@code stop}, asked after every park or
     * yield, throws (the variable is closing, the thread was interrupted). Returns whether it was taken over from a
     * dead holder; throws {@link ShmException.Reason#TIMEOUT} naming the live holder.
     */
    boolean acquire(Duration timeout, WaitStrategy strategy, String op, Waiting.Stop stop) {
        long identity = this.identity;
        if (LONG.compareAndSet(memory, LOCK_WORD_OFFSET, 0L, identity)) {
            return false;
        }
        long start = System.nanoTime();
        try {
            return acquireSlowly(start, timeout, strategy, op, stop);
        } finally {
            waitNanos.add(System.nanoTime() - start);
        }
    }

    /** The time this attachment's threads spent waiting for the lock, in nanoseconds (uncontended takes count 0). */
    long waitNanos() {
        return waitNanos.sum();
    }

    private boolean acquireSlowly(long start, Duration timeout, WaitStrategy strategy, String op, Waiting.Stop stop) {
        long identity = this.identity;
        long timeoutNanos = timeout == null ? Long.MAX_VALUE : timeout.toNanos();
        long nextCheck = start + CHECK_EVERY_NANOS;
        boolean virtual = Waiting.virtual();
        for (int rounds = 1; ; rounds++) {
            long word = (long) LONG.getVolatile(memory, LOCK_WORD_OFFSET);
            if (word == 0) {
                if (LONG.compareAndSet(memory, LOCK_WORD_OFFSET, 0L, identity)) {
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
                park(virtual, timeout == null ? PARK_NANOS : Math.min(PARK_NANOS, Math.max(1_000, start + timeoutNanos - now)),
                    op, stop);
            }
            stop.check(op);
            if (now - nextCheck < 0) {
                continue;
            }
            nextCheck = now + CHECK_EVERY_NANOS;
            // Our own word means another thread of this attachment holds the lock: wait for it.
            if (word != identity && !attachments.alive(word)) {
                if (LONG.compareAndSet(memory, LOCK_WORD_OFFSET, word, identity)) {
                    LONG.getAndAdd(memory, TAKEOVER_COUNT_OFFSET, 1L);
                    LONG.getAndAdd(memory, CONTENDED_COUNT_OFFSET, 1L);
                    return true;
                }
                continue;
            }
            if (now - start > timeoutNanos) {
                throw new ShmException("lock", key, ShmException.Reason.TIMEOUT, 0, attachments.pid(word >>> 32),
                    "held by " + holder(word) + ", which is alive");
            }
        }
    }

    /**
     * Sleeps on the lock futex until a release wakes it, at most {@code nanos}. Announcing the waiter before
     * re-checking the lock word, against a releaser that frees the word before reading the waiter count, means
     * that one of the two always sees the other: no wake-up is lost.
     */
    private void park(boolean virtual, long nanos, String op, Waiting.Stop stop) {
        if (virtual) {
            Waiting.sleep(true, 0, 0, nanos); // parks without announcing itself: releasers need not wake it
            return;
        }
        // The atomic below cannot be undone by a fault handler (a truncated file aborts the JVM there): ask the
        // mapping right before it, so that only a truncation in the next few instructions can reach it.
        stop.mapped(op);
        int sequence = (int) INT.getVolatile(memory, LOCK_FUTEX_OFFSET);
        INT.getAndAdd(memory, LOCK_WAITERS_OFFSET, 1);
        if ((long) LONG.getVolatile(memory, LOCK_WORD_OFFSET) != 0) {
            Native.futexWait(address + LOCK_FUTEX_OFFSET, sequence, nanos);
        }
        stop.mapped(op); // a file truncated during the sleep: do not touch it again
        INT.getAndAdd(memory, LOCK_WAITERS_OFFSET, -1);
    }

    /**
     * Frees the lock, waking one parked waiter if there is one; fails with {@link ShmException.Reason#LOCK_LOST} if
     * the word no longer holds our identity.
     */
    void release() {
        long witness = (long) LONG.compareAndExchange(memory, LOCK_WORD_OFFSET, identity, 0L);
        if (witness != identity) {
            throw ShmException.of("unlock", key, ShmException.Reason.LOCK_LOST, String.format(
                "lock word 0x%016x is not ours (0x%016x)", witness, identity));
        }
        if ((int) INT.getVolatile(memory, LOCK_WAITERS_OFFSET) != 0) {
            INT.getAndAdd(memory, LOCK_FUTEX_OFFSET, 1);
            Native.futexWake(address + LOCK_FUTEX_OFFSET, 1);
        }
    }

    LockState state() {
        long word = (long) LONG.getVolatile(memory, LOCK_WORD_OFFSET);
        long contended = (long) LONG.getVolatile(memory, CONTENDED_COUNT_OFFSET);
        long takeovers = (long) LONG.getVolatile(memory, TAKEOVER_COUNT_OFFSET);
        if (word == 0) {
            return new LockState(0, -1, 0, false, false, attachments.livenessKnown(), contended, takeovers);
        }
        long index = word >>> 32;
        return new LockState(word, (int) index, attachments.pid(index), attachments.inOtherNamespace(index),
            holderAlive(word), attachments.livenessKnown(), contended, takeovers);
    }
}
