package io.shmvar;

import java.nio.ByteBuffer;

/**
 * Where a variable's memory comes from (PROTOCOL.md, "Backings"): a System V segment ({@link SysvMapping}), a
 * memory-mapped file ({@link FileMapping}) or private memory ({@link MemoryMapping}, for tests). A
 * {@link SharedVariable} holds one and runs the protocol over its memory without asking which it is; whatever differs
 * between backings is a method here. The Go twin is the {@code mapping} interface of {@code go-peer/shmvar/mapping.go}.
 */
interface Mapping {
    /** The segment's bytes, attached or mapped. */
    ByteBuffer memory();

    /** The address of the memory's first byte; 0 for private memory, which no other process shares. */
    long address();

    /** What the kernel says about the segment or file: its real size, owner, creator and mode. */
    SegmentInfo stat();

    /** What keeps the liveness of the attachment table's entries (semaphores, file locks). */
    Attachments.Keeper keeper();

    /** Makes the memory durable; does nothing for backings that live in memory only. */
    void sync();

    /**
     * Removes the backing's name (key, path) so that no new process finds it; attachments keep the memory until
     * they detach. The caller has given its attachment entry back.
     */
    void remove();

    /**
     * Releases the memory and whatever this attachment holds open; the caller has given its attachment entry back.
     * With {@code leaveMapped}, operations may still touch the memory (after a fault): a backing that can fault then
     * leaves it in place.
     */
    void detach(boolean leaveMapped);

    /**
     * Makes {@code e} say which segment it is about: a file-backed one names its path; by default the key is there
     * already.
     */
    default ShmException name(ShmException e) {
        return e;
    }

    /** The mapped file, or null. */
    default String path() {
        return null;
    }

    /**
     * A fault {@code e} while touching the memory (a file truncated under this attachment; the JVM reports a faulting
     * unsafe access as an InternalError) as the library's exception; a backing that cannot fault (the default)
     * rethrows it.
     */
    default ShmException onFault(String op, InternalError e) {
        throw e;
    }

    /**
     * The exception to fail {@code op} with when the memory can no longer be touched (a file truncated below its
     * mapping), or null; null by default, for backings that cannot shrink. Operations and waits ask it before
     * touching.
     */
    default ShmException stillMapped(String op) {
        return null;
    }

    /** Whether the memory up to {@code end} can still be touched (a truncated file may have lost it); by default yes. */
    default boolean reaches(long end) {
        return true;
    }
}
