package io.shmvar;

import io.shmvar.proto.ProtocolTiming;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.concurrent.locks.LockSupport;

/**
 * How a thread sleeps while it waits for the lock or for a change, and what stops the wait. A platform thread sleeps
 * on the futex in the segment; a virtual thread (JDK 21 and later) never does, since a thread in a native call pins
 * its carrier: it parks with {@link LockSupport#parkNanos}, which lets the carrier run other virtual threads, and
 * polls. An interrupt stops a wait with {@link ShmException.Reason#INTERRUPTED}, the interrupt flag kept; closing the
 * variable stops it with {@link ShmException.Reason#CLOSED}. The Go twin is {@code go-peer/shmvar/wait.go}.
 */
final class Waiting {
    /**
     * A platform thread's longest futex sleep while waiting for a change: how soon it sees an interrupt. Java's own
     * choice, well under the protocol's bound ({@code ProtocolTiming.CHANGE_PARK_MAX_MICROS}, 1 s).
     */
    static final long CHANGE_TURN_NANOS = 50_000_000;
    /** A read-only watcher's longest futex sleep: it cannot announce itself to committers (protocol.proto). */
    static final long READ_ONLY_TURN_NANOS = ProtocolTiming.READ_ONLY_TURN_MICROS_VALUE * 1_000L;
    /** A virtual thread's longest park between two looks at the segment. */
    private static final long VIRTUAL_TURN_NANOS = 2_000_000;
    /** {@code Thread.isVirtual()}, present from JDK 21 on; null before. */
    private static final MethodHandle IS_VIRTUAL = isVirtualHandle();

    private Waiting() {
    }

    private static MethodHandle isVirtualHandle() {
        try {
            return MethodHandles.publicLookup().findVirtual(Thread.class, "isVirtual", MethodType.methodType(boolean.class));
        } catch (ReflectiveOperationException e) {
            return null;
        }
    }

    /** Whether the current thread is a virtual thread. */
    static boolean virtual() {
        if (IS_VIRTUAL == null) {
            return false;
        }
        try {
            return (boolean) IS_VIRTUAL.invokeExact(Thread.currentThread());
        } catch (Throwable e) {
            return false;
        }
    }

    /**
     * Sleeps while the 32-bit word at {@code address} holds {@code value}, at most {@code nanos}: on the futex, or,
     * on a virtual thread, parked for at most {@link #VIRTUAL_TURN_NANOS} without touching the futex.
     */
    static void sleep(boolean virtual, long address, int value, long nanos) {
        if (virtual) {
            LockSupport.parkNanos(Math.min(nanos, VIRTUAL_TURN_NANOS));
        } else {
            Native.futexWait(address, value, nanos);
        }
    }

    /** What a wait asks between its sleeps: each throws to stop the wait of operation {@code op}. */
    interface Stop {
        /** The variable is closing, the thread was interrupted, or {@link #mapped} fails. */
        void check(String op);

        /**
         * The mapped file still holds all the mapping (a System V segment always does): asked before touching the
         * segment's atomic words again after a sleep, since a faulting atomic can abort the JVM.
         */
        void mapped(String op);
    }

    /** The usual stop: the variable is closing, or the thread was interrupted (its flag is kept). */
    static void interrupted(String op, int key) {
        if (Thread.currentThread().isInterrupted()) {
            throw ShmException.of(op, key, ShmException.Reason.INTERRUPTED, "the waiting thread was interrupted");
        }
    }
}
