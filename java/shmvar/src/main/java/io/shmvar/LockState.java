package io.shmvar;

/**
 * A snapshot of the lock word and its counters, for inspect: the holder's attachment entry, the pid recorded in it
 * (in the holder's own PID namespace), whether that namespace is another than ours (or unknown), and whether the
 * holder is alive as a waiter would judge it.
 */
public record LockState(long word, int holderIndex, int holderPid, boolean holderInOtherNamespace, boolean holderAlive,
                        boolean livenessKnown, long contended, long takeovers) {
    /**
     * "alive", "dead" or "liveness unknown" (no kernel object to ask: a read-only attachment that found no
     * semaphore set; {@link #holderAlive()} is then true, as for the lock, but means nothing).
     */
    public String holderLiveness() {
        return !livenessKnown ? "liveness unknown" : holderAlive ? "alive" : "dead";
    }

    /** "attachment I, pid P", "attachment I, pid P in another PID namespace", or "free". */
    public String holder() {
        return word == 0 ? "free" : describe(Integer.toUnsignedLong(holderIndex), holderPid, holderInOtherNamespace);
    }

    static String describe(long index, int pid, boolean inOtherNamespace) {
        if (index >= LayoutDescriptor.ATTACHMENT_COUNT) {
            return "attachment " + index + ", which does not exist";
        }
        return "attachment " + index + ", " + Attachments.describePid(pid, inOtherNamespace);
    }
}
