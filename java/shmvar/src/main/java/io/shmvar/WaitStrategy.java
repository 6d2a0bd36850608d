package io.shmvar;

/** How a lock waiter, and a change watcher, waits. The Go twin is {@code shmvar.WaitStrategy}. */
public enum WaitStrategy {
    /** Spin briefly, then sleep on a futex in the segment until woken; the default. */
    SPIN_THEN_PARK,
    /** Never sleep: spin, then yield the processor; fastest to answer, at the price of a busy core. */
    SPIN
}
