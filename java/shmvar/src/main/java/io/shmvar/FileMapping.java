package io.shmvar;

import java.nio.ByteBuffer;

import static io.shmvar.LayoutDescriptor.attachmentEntry;

/**
 * A memory-mapped file: a path under /dev/shm for a fast name-addressed segment, or a regular file when the value must
 * outlive a reboot. The descriptor stays open while attached: its open file description carries this attachment's lock
 * on its entry, and a reader asks about the others' locks through it. The Go twin is {@code fileMapping} in
 * {@code go-peer/shmvar/file.go}.
 *
 * <p>A process that truncates the file makes every access past its new end fault. The JVM turns some faults into an
 * InternalError ({@link #onFault}) but aborts on others (an atomic in the interpreter, the CRC32C intrinsic): so every
 * operation first asks the file's size, one lseek ({@link #stillMapped}), and touches nothing if it shrank.
 */
final class FileMapping implements Mapping {
    private final String path;
    private final int fd;
    private final long address;
    private final ByteBuffer memory;

    FileMapping(String path, int fd, long address, ByteBuffer memory) {
        this.path = path;
        this.fd = fd;
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
        return Native.fileStat(path);
    }

    @Override
    public Attachments.Keeper keeper() {
        return new FileLocks(path, fd);
    }

    /** Flushes the mapping to the file (msync). */
    @Override
    public void sync() {
        Native.msync(path, address, memory.capacity());
    }

    /** Unlinks the file; attachments keep their mappings. */
    @Override
    public void remove() {
        Native.unlink(path);
    }

    /** Unmaps the file, unless operations may still touch it, and closes the descriptor, which drops its locks. */
    @Override
    public void detach(boolean leaveMapped) {
        try {
            if (!leaveMapped) {
                Native.munmap(path, address, memory.capacity());
            }
        } finally {
            Native.close(fd);
        }
    }

    @Override
    public ShmException name(ShmException e) {
        return e.at(path);
    }

    @Override
    public String path() {
        return path;
    }

    @Override
    public ShmException onFault(String op, InternalError e) {
        return truncated(op);
    }

    @Override
    public ShmException stillMapped(String op) {
        return Native.fileSize(fd) < memory.capacity() ? truncated(op) : null;
    }

    @Override
    public boolean reaches(long end) {
        return Native.fileSize(fd) >= end;
    }

    private ShmException truncated(String op) {
        return ShmException.of(op, 0, ShmException.Reason.CORRUPT, "file was truncated under this attachment: size="
            + Native.fileSize(fd) + ", mapped=" + memory.capacity()).at(path);
    }

    /** An open-file-description lock on the entry's first byte, through this attachment's own descriptor. */
    record FileLocks(String path, int fd) implements Attachments.Keeper {
        @Override
        public boolean claim(int index) {
            int errno = Native.ofdLock(fd, Native.F_WRLCK, attachmentEntry(index));
            if (errno == Native.EAGAIN || errno == Native.EACCES) {
                return false;
            }
            if (errno != 0) {
                throw Native.fileError("fcntl(F_OFD_SETLK)", path, errno);
            }
            return true;
        }

        @Override
        public void release(int index) {
            Native.ofdLock(fd, Native.F_UNLCK, attachmentEntry(index));
        }

        @Override
        public boolean held(int index) {
            return Native.ofdLocked(fd, attachmentEntry(index));
        }
    }
}
