package io.shmvar;

import com.kenai.jffi.MemoryIO;
import jnr.ffi.LibraryLoader;
import jnr.ffi.Platform;
import jnr.ffi.Runtime;
import jnr.ffi.annotations.Out;
import jnr.ffi.annotations.SaveError;
import jnr.ffi.types.intptr_t;
import jnr.ffi.types.size_t;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * Every call into the kernel: System V shared memory through jnr-ffi, and the process identity the lock records.
 * The Go twin is {@code go-peer/shmvar/native.go}.
 */
public final class Native {
    /** The libc calls this library makes, mirroring their C prototypes. */
    public interface LibC {
        @SaveError
        int shmget(int key, @size_t long size, int shmflg);

        /** Returns the address, or -1 on failure. */
        @SaveError
        @intptr_t
        long shmat(int shmid, @intptr_t long shmaddr, int shmflg);

        @SaveError
        int shmdt(@intptr_t long shmaddr);

        /** buf is a {@code struct shmid_ds} for IPC_STAT, or null for IPC_RMID. */
        @SaveError
        int shmctl(int shmid, int cmd, @Out byte[] buf);

        String strerror(int errnum);

        int geteuid();

        @SaveError
        int open(String path, int flags, int mode);

        @SaveError
        int close(int fd);

        @SaveError
        int fchmod(int fd, int mode);

        @SaveError
        int ftruncate(int fd, long length);

        /** Returns the address, or -1 (MAP_FAILED). Plain longs: C long is size_t and off_t on LP64. */
        @SaveError
        long mmap(jnr.ffi.Pointer addr, long length, int prot, int flags, int fd, long offset);

        @SaveError
        int munmap(long addr, long length);

        @SaveError
        int msync(long addr, long length, int flags);

        @SaveError
        int unlink(String path);

        /** syscall(2), used only for futex(2) on words of the segment. */
        @SaveError
        long syscall(long number, @intptr_t long uaddr, int op, int val, @intptr_t long timeout,
                     @intptr_t long uaddr2, int val3);
    }

    // Linux's values (include/uapi/linux/ipc.h, shm.h), the same on every architecture.
    static final int IPC_CREAT = 01000;
    static final int IPC_EXCL = 02000;
    static final int IPC_RMID = 0;
    static final int IPC_STAT = 2;
    static final int SHM_RDONLY = 010000;

    // open(2) flags: O_NOFOLLOW differs between x86_64 and the asm-generic ABI of aarch64.
    static final int O_RDONLY = 0, O_RDWR = 02, O_CREAT = 0100, O_EXCL = 0200, O_CLOEXEC = 02000000;
    static final int O_NOFOLLOW = Platform.getNativePlatform().getCPU() == Platform.CPU.AARCH64 ? 0100000 : 0400000;
    static final int PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1, MS_SYNC = 4;

    static final int EPERM = 1, ENOENT = 2, EINTR = 4, ENOMEM = 12, EACCES = 13, EEXIST = 17, EINVAL = 22,
        ENOSPC = 28, EIDRM = 43;

    private static final Map<Integer, String> ERRNO_NAMES = Map.ofEntries(
        Map.entry(EPERM, "EPERM"), Map.entry(ENOENT, "ENOENT"), Map.entry(EINTR, "EINTR"),
        Map.entry(ENOMEM, "ENOMEM"), Map.entry(EACCES, "EACCES"), Map.entry(14, "EFAULT"),
        Map.entry(EEXIST, "EEXIST"), Map.entry(EINVAL, "EINVAL"), Map.entry(23, "ENFILE"),
        Map.entry(24, "EMFILE"), Map.entry(ENOSPC, "ENOSPC"), Map.entry(EIDRM, "EIDRM"));

    /** struct shmid_ds as glibc lays it out on 64-bit Linux (x86_64 and aarch64). */
    private static final int SHMID_DS_LENGTH = 128;
    private static final int SHM_PERM_UID = 4, SHM_PERM_GID = 8, SHM_PERM_MODE = 20, SHM_SEGSZ = 48,
        SHM_CPID = 80, SHM_LPID = 84, SHM_NATTCH = 88;

    private static final LibC LIBC;
    private static final Runtime RUNTIME;
    private static final long SYS_FUTEX;
    // Shared futexes (no FUTEX_PRIVATE_FLAG): the kernel keys them by the shared page, so a waker in one process
    // reaches a sleeper in another.
    private static final int FUTEX_WAIT = 0, FUTEX_WAKE = 1;
    /** Each thread's struct timespec for futex timeouts. */
    private static final ThreadLocal<ByteBuffer> TIMESPEC =
        ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(16).order(ByteOrder.nativeOrder()));

    static {
        Platform platform = Platform.getNativePlatform();
        if (platform.getOS() != Platform.OS.LINUX || platform.addressSize() != 64
            || ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new UnsupportedOperationException("shmvar needs 64-bit little-endian Linux, not "
                + platform.getOS() + "/" + platform.getCPU());
        }
        LIBC = LibraryLoader.create(LibC.class).load("c");
        RUNTIME = Runtime.getRuntime(LIBC);
        SYS_FUTEX = platform.getCPU() == Platform.CPU.AARCH64 ? 98 : 202; // asm-generic / x86_64 unistd.h
    }

    private Native() {
    }

    /** What IPC_STAT says about a segment. */
    public record SegmentInfo(int id, long size, int uid, int gid, int mode, int cpid, int lpid, long attached,
                              boolean removed) {
    }

    /** SHM_DEST from linux/shm.h: the segment is marked for removal and goes at the last detach. */
    private static final int SHM_DEST = 01000;

    static int shmget(int key, long size, int flags) {
        int id = LIBC.shmget(key, size, flags);
        if (id < 0) {
            throw nativeError("shmget", key, lastErrno(), (flags & IPC_CREAT) != 0, size);
        }
        return id;
    }

    static SegmentInfo shmStat(int key, int id) {
        byte[] buf = new byte[SHMID_DS_LENGTH];
        if (LIBC.shmctl(id, IPC_STAT, buf) < 0) {
            throw nativeError("shmctl(IPC_STAT)", key, lastErrno(), false, 0);
        }
        ByteBuffer b = ByteBuffer.wrap(buf).order(ByteOrder.LITTLE_ENDIAN);
        return new SegmentInfo(id, b.getLong(SHM_SEGSZ), b.getInt(SHM_PERM_UID), b.getInt(SHM_PERM_GID),
            b.getShort(SHM_PERM_MODE) & 0777, b.getInt(SHM_CPID), b.getInt(SHM_LPID), b.getLong(SHM_NATTCH),
            (b.getShort(SHM_PERM_MODE) & SHM_DEST) != 0);
    }

    /** Attaches the segment and returns its address. */
    static long shmat(int key, int id, boolean readOnly) {
        long address = LIBC.shmat(id, 0, readOnly ? SHM_RDONLY : 0);
        if (address == -1L) {
            throw nativeError("shmat", key, lastErrno(), false, 0);
        }
        return address;
    }

    static void shmdt(int key, long address) {
        if (LIBC.shmdt(address) < 0) {
            throw nativeError("shmdt", key, lastErrno(), false, 0);
        }
    }

    static void shmRemove(int key, int id) {
        if (LIBC.shmctl(id, IPC_RMID, null) < 0) {
            throw nativeError("shmctl(IPC_RMID)", key, lastErrno(), false, 0);
        }
    }

    /**
     * Atomic access to the mapped words: compare-and-set to acquire, release store to unlock and publish, acquire
     * load to read. Every atomic offset is a multiple of its size and the segment is page aligned.
     */
    static final VarHandle LONG = MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    static final VarHandle INT = MethodHandles.byteBufferViewVarHandle(int[].class, ByteOrder.LITTLE_ENDIAN);

    static int geteuid() {
        return LIBC.geteuid();
    }

    /** A file opened with open(2); close it. */
    static int open(String path, int flags, int mode) {
        int fd = LIBC.open(path, flags | O_CLOEXEC, mode);
        if (fd < 0) {
            throw fileError("open", path, lastErrno());
        }
        return fd;
    }

    static void close(int fd) {
        LIBC.close(fd);
    }

    static void fchmod(String path, int fd, int mode) {
        if (LIBC.fchmod(fd, mode) < 0) {
            throw fileError("fchmod", path, lastErrno());
        }
    }

    static void ftruncate(String path, int fd, long length) {
        if (LIBC.ftruncate(fd, length) < 0) {
            throw fileError("ftruncate", path, lastErrno());
        }
    }

    static long mmap(String path, int fd, long length, boolean readOnly) {
        long address = LIBC.mmap(null, length, readOnly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (address == -1L) {
            throw fileError("mmap", path, lastErrno());
        }
        return address;
    }

    static void munmap(String path, long address, long length) {
        if (LIBC.munmap(address, length) < 0) {
            throw fileError("munmap", path, lastErrno());
        }
    }

    static void msync(String path, long address, long length) {
        if (LIBC.msync(address, length, MS_SYNC) < 0) {
            throw fileError("msync", path, lastErrno());
        }
    }

    static void unlink(String path) {
        if (LIBC.unlink(path) < 0) {
            throw fileError("unlink", path, lastErrno());
        }
    }

    /** What fstat says about an open file, read through /proc/self/fd so that it is the file we opened. */
    static SegmentInfo fileStat(String path, int fd) {
        return fileAttributes("fstat", path, java.nio.file.Path.of("/proc/self/fd/" + fd));
    }

    /** Whether an open file is a regular file. */
    static boolean isRegularFile(int fd) {
        return java.nio.file.Files.isRegularFile(java.nio.file.Path.of("/proc/self/fd/" + fd));
    }

    /** What stat says about the file at path, without following a final link. */
    static SegmentInfo fileStat(String path) {
        return fileAttributes("stat", path, java.nio.file.Path.of(path), java.nio.file.LinkOption.NOFOLLOW_LINKS);
    }

    private static SegmentInfo fileAttributes(String function, String path, java.nio.file.Path file,
                                              java.nio.file.LinkOption... options) {
        try {
            Map<String, Object> a = java.nio.file.Files.readAttributes(file, "unix:size,uid,gid,mode", options);
            return new SegmentInfo(-1, (Long) a.get("size"), (Integer) a.get("uid"), (Integer) a.get("gid"),
                (Integer) a.get("mode") & 0777, 0, 0, 0, false);
        } catch (java.nio.file.NoSuchFileException e) {
            throw fileError(function, path, ENOENT);
        } catch (IOException | UnsupportedOperationException e) {
            throw ShmException.nativeError(function, 0, 0, e.toString()).at(path);
        }
    }

    static ShmException fileError(String function, String path, int errno) {
        String detail = switch (errno) {
            case EEXIST -> "the file already exists; remove it with 'rm --file " + path + "'";
            case ENOENT -> "no such file; create it with 'create --file " + path + "'";
            case EACCES, EPERM -> "permission denied";
            default -> "";
        };
        return ShmException.nativeError(function, 0, errno, detail).at(path);
    }

    /** The address of a direct buffer's first byte. */
    static long addressOf(ByteBuffer buffer) {
        return MemoryIO.getInstance().getDirectBufferAddress(buffer);
    }

    /** Sleeps while the 32-bit word at {@code address} holds {@code value}, at most {@code nanos}. */
    static void futexWait(long address, int value, long nanos) {
        ByteBuffer ts = TIMESPEC.get();
        ts.putLong(0, nanos / 1_000_000_000L).putLong(8, nanos % 1_000_000_000L);
        LIBC.syscall(SYS_FUTEX, address, FUTEX_WAIT, value, addressOf(ts), 0, 0);
    }

    /** Wakes up to {@code count} sleepers on the 32-bit word at {@code address}. */
    static void futexWake(long address, int count) {
        LIBC.syscall(SYS_FUTEX, address, FUTEX_WAKE, count, 0, 0, 0);
    }

    /** A direct buffer over attached memory; it must not be touched after {@link #shmdt}. */
    static ByteBuffer wrap(long address, long size) {
        return MemoryIO.getInstance().newDirectByteBuffer(address, Math.toIntExact(size)).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static int lastErrno() {
        return jnr.ffi.LastError.getLastError(RUNTIME);
    }

    static String strerror(int errno) {
        String s = LIBC.strerror(errno);
        return s == null ? "errno " + errno : s;
    }

    static String errnoName(int errno) {
        return ERRNO_NAMES.getOrDefault(errno, "errno " + errno);
    }

    /** Turns a failed libc call into an exception with advice a person can act on. */
    static ShmException nativeError(String function, int key, int errno, boolean creating, long size) {
        String k = ShmException.formatKey(key);
        String detail = switch (errno) {
            case EEXIST -> "a segment with this key already exists; remove it with 'rm --key " + k
                + "' or 'ipcrm -M " + k + "'";
            case ENOENT -> "no segment with this key; create it with 'create --key " + k + "'";
            case EINVAL -> creating
                ? "size " + size + " is outside the kernel's limits: shmmax=" + kernelLimit("shmmax")
                    + " bytes (/proc/sys/kernel/shmmax), shmmin=1"
                : function.equals("shmget") ? "a segment with this key exists but is smaller than asked for" : "";
            case ENOSPC -> "a system-wide limit is reached: shmmni=" + kernelLimit("shmmni") + " segments or shmall="
                + kernelLimit("shmall") + " pages in all (/proc/sys/kernel)";
            case ENOMEM -> "not enough memory for the segment";
            case EACCES, EPERM -> "permission denied: the segment's owner and mode do not let this user use it";
            case EIDRM -> "the segment was removed";
            default -> "";
        };
        return ShmException.nativeError(function, key, errno, detail);
    }

    /** One of the kernel's System V limits, for error messages. */
    static String kernelLimit(String name) {
        try (java.io.FileInputStream in = new java.io.FileInputStream("/proc/sys/kernel/" + name)) {
            return new String(in.readAllBytes(), StandardCharsets.US_ASCII).strip();
        } catch (IOException e) {
            return "unknown";
        }
    }

    /** The part of /proc/PID/stat the lock needs. */
    record ProcStat(char state, long startTicks) {
        /** What readProcStat returns when it cannot tell: the lock must then treat the holder as alive. */
        static final ProcStat UNKNOWN = new ProcStat('?', -1);
    }

    /**
     * Reads /proc/PID/stat: null when the process is gone, {@link ProcStat#UNKNOWN} when the file could not be read
     * for another reason. FileInputStream, unlike NIO channels, is not closed by a thread interrupt, which would
     * otherwise make a live holder look dead.
     */
    static ProcStat readProcStat(long pid) {
        String stat;
        try (java.io.FileInputStream in = new java.io.FileInputStream("/proc/" + pid + "/stat")) {
            stat = new String(in.readAllBytes(), StandardCharsets.ISO_8859_1);
        } catch (java.io.FileNotFoundException gone) {
            return null;
        } catch (IOException e) {
            return ProcStat.UNKNOWN;
        }
        // comm may hold spaces and parentheses: the fields start after the last ')'.
        int close = stat.lastIndexOf(')');
        if (close < 0) {
            return ProcStat.UNKNOWN;
        }
        String[] fields = stat.substring(close + 1).trim().split(" +");
        // fields[0] is field 3 (state); starttime is field 22.
        if (fields.length < 20 || fields[0].length() != 1) {
            return ProcStat.UNKNOWN;
        }
        try {
            return new ProcStat(fields[0].charAt(0), Long.parseUnsignedLong(fields[19]));
        } catch (NumberFormatException e) {
            return ProcStat.UNKNOWN;
        }
    }
}
