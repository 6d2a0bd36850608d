package io.shmvar;

import java.nio.ByteBuffer;

import static io.shmvar.LayoutDescriptor.ATTACHMENT_COUNT;
import static io.shmvar.LayoutDescriptor.ATTACHMENT_INCARNATION_OFFSET;
import static io.shmvar.LayoutDescriptor.ATTACHMENT_PID_NAMESPACE_OFFSET;
import static io.shmvar.LayoutDescriptor.ATTACHMENT_PID_OFFSET;
import static io.shmvar.LayoutDescriptor.attachmentEntry;
import static io.shmvar.Native.INT;

/**
 * One attachment's view of the attachment table (PROTOCOL.md, "Attachments"): the entry it claimed, if any, and the
 * kernel objects that say which entries belong to live attachments. The Go twin is the
 * attachment code in {@code go-peer/shmvar}.
 */
final class Attachments implements SpinLock.Liveness {
    /** The kernel side of the table: semaphores of a System V set, or open-file-description locks on a file. */
    interface Keeper {
        /** Claims entry {@code index}: true if claimed, false if another attachment holds it; throws otherwise. */
        boolean claim(int index);

        /** Gives entry {@code index} back; failures are ignored (the kernel frees it at exit anyway). */
        void release(int index);

        /** Whether entry {@code index} is held by a live attachment; true when the kernel cannot tell. */
        boolean held(int index);
    }

    /** No kernel object to ask (a read-only open that found no semaphore set): every entry counts as held. */
    static final Keeper UNKNOWN = new Keeper() {
        @Override
        public boolean claim(int index) {
            throw new IllegalStateException("no kernel object to claim an attachment entry with");
        }

        @Override
        public void release(int index) {
        }

        @Override
        public boolean held(int index) {
            return true;
        }
    };

    /** This process's PID namespace inode, 0 if unknown. */
    static final long PID_NAMESPACE = Native.pidNamespace();

    private final ByteBuffer memory;
    private final int key;
    private final Keeper keeper;
    /** The entry this attachment claimed, or -1. */
    private int index = -1;
    private long identity;

    Attachments(ByteBuffer memory, int key, Keeper keeper) {
        this.memory = memory;
        this.key = key;
        this.keeper = keeper;
    }

    /** Claims the first free entry and returns this attachment's identity, {@code index << 32 | incarnation}. */
    long claim() {
        for (int i = 0; i < ATTACHMENT_COUNT; i++) {
            if (!keeper.claim(i)) {
                continue;
            }
            int entry = attachmentEntry(i);
            int n = (int) INT.getAcquire(memory, entry + ATTACHMENT_INCARNATION_OFFSET) + 1;
            if (n == 0) {
                n = 1;
            }
            memory.putInt(entry + ATTACHMENT_PID_OFFSET, (int) ProcessHandle.current().pid());
            memory.putLong(entry + ATTACHMENT_PID_NAMESPACE_OFFSET, PID_NAMESPACE);
            INT.setRelease(memory, entry + ATTACHMENT_INCARNATION_OFFSET, n);
            index = i;
            identity = (long) i << 32 | Integer.toUnsignedLong(n);
            return identity;
        }
        throw ShmException.of("open", key, ShmException.Reason.ATTACHMENTS_FULL,
            "all " + ATTACHMENT_COUNT + " attachment entries are held by live processes");
    }

    /** Gives the claimed entry back, if any. */
    void release() {
        if (index >= 0) {
            keeper.release(index);
            index = -1;
        }
    }

    /** This attachment's identity, 0 when it claimed nothing. */
    long identity() {
        return identity;
    }

    /** Whether the attachment named by the non-zero lock word {@code word} is alive (PROTOCOL.md, "Holder alive?"). */
    @Override
    public boolean alive(long word) {
        long i = word >>> 32;
        if (i >= ATTACHMENT_COUNT) {
            return false;
        }
        int entry = attachmentEntry((int) i);
        if ((int) INT.getAcquire(memory, entry + ATTACHMENT_INCARNATION_OFFSET) != (int) word) {
            return false;
        }
        return entryHeld((int) i);
    }

    /**
     * Whether entry {@code i} is held. An OFD lock never conflicts with its own open file description, so the kernel
     * would call our own entry free: it is ours, and alive.
     */
    boolean entryHeld(int i) {
        return i == index || keeper.held(i);
    }

    /** Whether there is a kernel object to ask; when not, every entry counts as held. */
    boolean livenessKnown() {
        return keeper != UNKNOWN;
    }

    int incarnation(int i) {
        return (int) INT.getAcquire(memory, attachmentEntry(i) + ATTACHMENT_INCARNATION_OFFSET);
    }

    /** The pid recorded in entry {@code i} (in the claimer's own PID namespace); 0 when the index names no entry. */
    int pid(long i) {
        return i < 0 || i >= ATTACHMENT_COUNT ? 0 : memory.getInt(attachmentEntry((int) i) + ATTACHMENT_PID_OFFSET);
    }

    /** Whether entry {@code i} was claimed in another (or an unknown) PID namespace than ours. */
    boolean inOtherNamespace(long i) {
        if (i < 0 || i >= ATTACHMENT_COUNT) {
            return true;
        }
        long ns = memory.getLong(attachmentEntry((int) i) + ATTACHMENT_PID_NAMESPACE_OFFSET);
        return ns == 0 || ns != PID_NAMESPACE;
    }

    /** How people see an attachment: {@code pid P}, or {@code pid P in another PID namespace}. */
    static String describePid(int pid, boolean inOtherNamespace) {
        return "pid " + pid + (inOtherNamespace ? " in another PID namespace" : "");
    }
}
