package io.shmvar;

import java.nio.ByteBuffer;

/**
 * An attached System V shared-memory segment under a key, with the semaphore set under the same key that keeps the
 * attachments' liveness. The Go twin is {@code sysvMapping} in {@code go-peer/shmvar/sysv.go}.
 */
final class SysvMapping implements Mapping {
    private final int key;
    private final int id;
    /** The segment's semaphore set, or -1 when there is none or it is not known. */
    private final int semid;
    private final long address;
    private final ByteBuffer memory;
    /** Set by remove, which removed the semaphore set itself. */
    private boolean removed;

    SysvMapping(int key, int id, int semid, long address, ByteBuffer memory) {
        this.key = key;
        this.id = id;
        this.semid = semid;
        this.address = address;
        this.memory = memory;
    }

    @Override
    public ByteBuffer memory() {
        return memory;
    }

    @Override
    public long address() {
        return address;
    }

    @Override
    public SegmentInfo stat() {
        return Native.shmStat(key, id);
    }

    /** The semaphores; a read-only attachment that did not find the set cannot tell, and counts every entry held. */
    @Override
    public Attachments.Keeper keeper() {
        return semid >= 0 ? new Semaphores(key, semid) : Attachments.UNKNOWN;
    }

    /** Does nothing: a System V segment lives in memory only. */
    @Override
    public void sync() {
    }

    /** Marks the segment for removal, which the kernel carries out at the last detach, and removes its semaphores. */
    @Override
    public void remove() {
        removed = true;
        Native.shmRemove(key, id);
        if (semid >= 0) { // its own set, by id: a set under the key may belong to a newer segment
            int errno = Native.semRemove(semid);
            if (errno != 0 && errno != Native.EINVAL && errno != Native.EIDRM && errno != Native.ENOENT) {
                throw Native.semError("semctl(IPC_RMID)", key, errno);
            }
        }
    }

    /**
     * Detaches the segment. A segment that the detach left destroyed (marked for removal, as an ephemeral one is, with
     * no attachment left) takes its semaphore set along. Asking after the detach, by id, leaves no gap for two last
     * closers to both miss.
     */
    @Override
    public void detach(boolean leaveMapped) {
        Native.shmdt(key, address);
        if (semid >= 0 && !removed) {
            try {
                Native.shmStat(key, id);
            } catch (ShmException e) {
                if (e.errno() == Native.EINVAL || e.errno() == Native.EIDRM) {
                    Native.semRemove(semid);
                }
            }
        }
    }

    /** Semaphore {@code index} of the set {@code semid} under the segment's key, raised with SEM_UNDO. */
    record Semaphores(int key, int semid) implements Attachments.Keeper {
        @Override
        public boolean claim(int index) {
            int errno = Native.semClaim(semid, index);
            if (errno == Native.EAGAIN) {
                return false;
            }
            if (errno != 0) {
                throw Native.semError("semop", key, errno);
            }
            return true;
        }

        @Override
        public void release(int index) {
            Native.semRelease(semid, index);
        }

        @Override
        public boolean held(int index) {
            return Native.semValue(semid, index) != 0; // -errno counts as held
        }
    }
}
