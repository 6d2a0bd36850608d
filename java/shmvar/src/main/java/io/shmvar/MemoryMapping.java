package io.shmvar;

import java.nio.ByteBuffer;

/**
 * A segment image in private memory: the backing of tests, which no other process can attach. It has no kernel object:
 * claims always succeed and every entry counts as held; there is nothing to sync, remove or release. The Go twin is
 * {@code memoryMapping} in {@code go-peer/shmvar/memory.go}.
 */
final class MemoryMapping implements Mapping {
    /** Claims always succeed and every entry counts as held. */
    static final Attachments.Keeper PRIVATE = new Attachments.Keeper() {
        @Override
        public boolean claim(int index) {
            return true;
        }

        @Override
        public void release(int index) {
        }

        @Override
        public boolean held(int index) {
            return true;
        }
    };

    private final ByteBuffer memory;

    MemoryMapping(ByteBuffer memory) {
        this.memory = memory;
    }

    @Override
    public ByteBuffer memory() {
        return memory;
    }

    @Override
    public long address() {
        return 0;
    }

    @Override
    public SegmentInfo stat() {
        return new SegmentInfo(-1, memory.capacity(), 0, 0, 0, 0, 0, 0, 0, false);
    }

    @Override
    public Attachments.Keeper keeper() {
        return PRIVATE;
    }

    @Override
    public void sync() {
    }

    @Override
    public void remove() {
    }

    @Override
    public void detach(boolean leaveMapped) {
    }
}
