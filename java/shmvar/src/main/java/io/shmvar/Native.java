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
 * Every call into the kernel: System V shared memory and semaphores, mapped files and their open-file-description
 * locks, and futexes, through jnr-ffi.
 * The Go twin is {@code go-peer/shmvar/native.go}.
 */
final class Native {
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

        /** Returns 0 or an errno (it does not set errno). */
        int posix_fallocate(int fd, long offset, long length);

        @SaveError
        long lseek(int fd, long offset, int whence);

        /** Returns the address, or -1 (MAP_FAILED). Plain longs: C long is size_t and off_t on LP64. */
        @SaveError
        long mmap(jnr.ffi.Pointer addr, long length, int prot, int flags, int fd, long offset);

        @SaveError
        int munmap(long addr, long length);

        @SaveError
        int msync(long addr, long length, int flags);

        @SaveError
        int unlink(String path);

        @SaveError
        int semget(int key, int nsems, int semflg);

        /** sops is the address of an array of nsops {@code struct sembuf}. */
        @SaveError
        int semop(int semid, @intptr_t long sops, @size_t long nsops);

        /** fcntl(2) with a pointer argument: the address of a {@code struct flock}. */
        @SaveError
        int fcntl(int fd, int cmd, @intptr_t long arg);

        /** syscall(2), used for futex(2) on words of the segment and for semctl(2). */
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
    // include/uapi/linux/ipc.h, sem.h
    static final int IPC_NOWAIT = 04000, SEM_UNDO = 0x1000, GETVAL = 12;
    // fcntl.h: open-file-description locks, the same on x86_64 and aarch64
    static final int F_OFD_GETLK = 36, F_OFD_SETLK = 37;
    static final short F_WRLCK = 1, F_UNLCK = 2, SEEK_SET = 0;

    // open(2) flags: O_NOFOLLOW differs between x86_64 and the asm-generic ABI of aarch64.
    static final int O_RDONLY = 0, O_RDWR = 02, O_CREAT = 0100, O_EXCL = 0200, O_NOCTTY = 0400, O_NONBLOCK = 04000,
        O_CLOEXEC = 02000000;
    static final int SEEK_END = 2;
    static final int O_NOFOLLOW = Platform.getNativePlatform().getCPU() == Platform.CPU.AARCH64 ? 0100000 : 0400000;
    static final int PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1, MS_SYNC = 4;

    static final int EPERM = 1, ENOENT = 2, EINTR = 4, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EEXIST = 17,
        EINVAL = 22, ENOSPC = 28, EIDRM = 43;

    private static final Map<Integer, String> ERRNO_NAMES = Map.ofEntries(
        Map.entry(EPERM, "EPERM"), Map.entry(ENOENT, "ENOENT"), Map.entry(EINTR, "EINTR"),
        Map.entry(EAGAIN, "EAGAIN"), Map.entry(9, "EBADF"),
        Map.entry(ENOMEM, "ENOMEM"), Map.entry(EACCES, "EACCES"), Map.entry(14, "EFAULT"),
        Map.entry(EEXIST, "EEXIST"), Map.entry(EINVAL, "EINVAL"), Map.entry(23, "ENFILE"),
        Map.entry(24, "EMFILE"), Map.entry(ENOSPC, "ENOSPC"), Map.entry(EIDRM, "EIDRM"));

    /** struct shmid_ds as glibc lays it out on 64-bit Linux (x86_64 and aarch64). */
    private static final int SHMID_DS_LENGTH = 128;
    private static final int SHM_PERM_UID = 4, SHM_PERM_GID = 8, SHM_PERM_CUID = 12, SHM_PERM_MODE = 20, SHM_SEGSZ = 48,
        SHM_CPID = 80, SHM_LPID = 84, SHM_NATTCH = 88;

    private static final LibC LIBC;
    private static final Runtime RUNTIME;
    private static final long SYS_FUTEX;
    private static final long SYS_SEMCTL;
    /** Where sem_nsems lies in struct semid64_ds, which semctl(IPC_STAT) fills. */
    private static final int SEM_NSEMS;
    /** struct semid64_ds is 104 bytes on x86_64, 88 on aarch64. */
    private static final int SEMID_DS_LENGTH = 128;
    /** Each thread's struct flock for the OFD lock calls: l_type @0, l_whence @2, l_start @8, l_len @16, l_pid @24. */
    private static final ThreadLocal<ByteBuffer> FLOCK =
        ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(32).order(ByteOrder.nativeOrder()));
    /** Each thread's array of two struct sembuf {u16 sem_num, s16 sem_op, s16 sem_flg}. */
    private static final ThreadLocal<ByteBuffer> SEMBUF =
        ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(16).order(ByteOrder.nativeOrder()));
    // Shared futexes (no FUTEX_PRIVATE_FLAG): the kernel keys them by the shared page, so a waker in one process
    // reaches a sleeper in another.
    private static final int FUTEX_WAIT = 0, FUTEX_WAKE = 1;
    /** Each thread's struct timespec for futex timeouts. */
    private static final ThreadLocal<ByteBuffer> TIMESPEC =
        ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(16).order(ByteOrder.nativeOrder()));

    static {
        Platform platform = Platform.getNativePlatform();
        // The system call numbers and struct layouts below are those of x86-64 and arm64 (asm-generic), as in Go.
        if (platform.getOS() != Platform.OS.LINUX || platform.addressSize() != 64
            || ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN
            || (platform.getCPU() != Platform.CPU.X86_64 && platform.getCPU() != Platform.CPU.AARCH64)) {
            throw ShmException.of("load", 0, ShmException.Reason.UNSUPPORTED_PLATFORM,
                "shmvar runs on linux/amd64 and linux/arm64, this is " + platform.getOS() + "/" + platform.getCPU());
        }
        LIBC = LibraryLoader.create(LibC.class).load("c");
        RUNTIME = Runtime.getRuntime(LIBC);
        boolean arm = platform.getCPU() == Platform.CPU.AARCH64;
        SYS_FUTEX = arm ? 98 : 202; // asm-generic / x86_64 unistd.h
        SYS_SEMCTL = arm ? 191 : 66;
        SEM_NSEMS = arm ? 64 : 80; // struct semid64_ds: asm-generic / x86_64 sembuf.h
    }

    private Native() {
    }

    /** What IPC_STAT says about a semaphore set. */
    record SemaphoreInfo(int id, long count, int uid, int cuid, int mode) {
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
        return new SegmentInfo(id, b.getLong(SHM_SEGSZ), b.getInt(SHM_PERM_UID), b.getInt(SHM_PERM_CUID),
            b.getInt(SHM_PERM_GID),
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

    /** The semaphore set under key: its id, or -errno when semget fails. */
    static int semLookup(int key, int nsems, int flags) {
        int id = LIBC.semget(key, nsems, flags);
        return id < 0 ? -lastErrno() : id;
    }

    /** semget that throws. */
    static int semget(int key, int nsems, int flags) {
        int id = semLookup(key, nsems, flags);
        if (id < 0) {
            throw semError("semget", key, -id);
        }
        return id;
    }

    static ShmException semError(String function, int key, int errno) {
        String k = ShmException.formatKey(key);
        String detail = switch (errno) {
            case ENOENT -> "no semaphore set with this key";
            case EEXIST -> "a semaphore set with this key already exists; remove it with 'rm --force --key " + k
                + "' or 'ipcrm -S " + k + "'";
            case ENOSPC -> "a system-wide limit on semaphores is reached (/proc/sys/kernel/sem)";
            case EACCES, EPERM -> "permission denied: the semaphore set's owner and mode do not let this user use it";
            case EIDRM, EINVAL -> "the semaphore set was removed";
            default -> "";
        };
        return ShmException.nativeError(function, key, errno, detail);
    }

    /** semctl(2) through syscall(2): glibc's is variadic. Returns the result, or -errno. */
    private static long semctl(int semid, int index, int cmd, long arg) {
        long r = LIBC.syscall(SYS_SEMCTL, semid, index, cmd, arg, 0, 0);
        return r < 0 ? -lastErrno() : r;
    }

    static SemaphoreInfo semStat(int key, int semid) {
        ByteBuffer b = ByteBuffer.allocateDirect(SEMID_DS_LENGTH).order(ByteOrder.LITTLE_ENDIAN);
        long r = semctl(semid, 0, IPC_STAT, addressOf(b));
        if (r < 0) {
            throw semError("semctl(IPC_STAT)", key, (int) -r);
        }
        return new SemaphoreInfo(semid, b.getLong(SEM_NSEMS), b.getInt(SHM_PERM_UID), b.getInt(SHM_PERM_CUID),
            b.getShort(SHM_PERM_MODE) & 0777);
    }

    /** The value of semaphore index, or -errno. */
    static long semValue(int semid, int index) {
        return semctl(semid, index, GETVAL, 0);
    }

    /** IPC_RMID of a semaphore set; returns 0 or the errno. */
    static int semRemove(int semid) {
        long r = semctl(semid, 0, IPC_RMID, 0);
        return r < 0 ? (int) -r : 0;
    }

    /**
     * Claims semaphore index: waits for nothing, raises it from 0 to 1 with SEM_UNDO, both or neither. Returns 0, or
     * the errno (EAGAIN: another holds it).
     */
    static int semClaim(int semid, int index) {
        ByteBuffer ops = SEMBUF.get();
        ops.putShort(0, (short) index).putShort(2, (short) 0).putShort(4, (short) IPC_NOWAIT);
        ops.putShort(6, (short) index).putShort(8, (short) 1).putShort(10, (short) (SEM_UNDO | IPC_NOWAIT));
        return LIBC.semop(semid, addressOf(ops), 2) < 0 ? lastErrno() : 0;
    }

    /** Lowers semaphore index back to 0, undoing its SEM_UNDO adjustment; returns 0 or the errno. */
    static int semRelease(int semid, int index) {
        ByteBuffer ops = SEMBUF.get();
        ops.putShort(0, (short) index).putShort(2, (short) -1).putShort(4, (short) (SEM_UNDO | IPC_NOWAIT));
        return LIBC.semop(semid, addressOf(ops), 1) < 0 ? lastErrno() : 0;
    }

    /** F_OFD_SETLK of {@code type} on the one byte at {@code offset}; returns 0 or the errno. */
    static int ofdLock(int fd, short type, long offset) {
        ByteBuffer lock = flock(type, offset);
        return LIBC.fcntl(fd, F_OFD_SETLK, addressOf(lock)) < 0 ? lastErrno() : 0;
    }

    /** Whether another open file description holds a lock on the byte at {@code offset}; true if the query fails. */
    static boolean ofdLocked(int fd, long offset) {
        ByteBuffer lock = flock(F_WRLCK, offset);
        if (LIBC.fcntl(fd, F_OFD_GETLK, addressOf(lock)) < 0) {
            return true;
        }
        return lock.getShort(0) != F_UNLCK;
    }

    private static ByteBuffer flock(short type, long offset) {
        ByteBuffer lock = FLOCK.get();
        lock.putShort(0, type).putShort(2, SEEK_SET).putInt(4, 0).putLong(8, offset).putLong(16, 1).putLong(24, 0);
        return lock;
    }

    /** The inode number of this process's PID namespace ({@code /proc/self/ns/pid} reads pid:[N]), or 0. */
    static long pidNamespace() {
        try {
            String link = java.nio.file.Files.readSymbolicLink(java.nio.file.Path.of("/proc/self/ns/pid")).toString();
            if (link.startsWith("pid:[") && link.endsWith("]")) {
                return Long.parseUnsignedLong(link.substring(5, link.length() - 1));
            }
        } catch (IOException | RuntimeException e) {
            // unknown
        }
        return 0;
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

    /**
     * Gives the new file fd its length with every block allocated (glibc's posix_fallocate: fallocate(2), or zeros
     * written where the file system has no fallocate), so that no store into the mapping can fault for lack of space.
     */
    static void reserve(String path, int fd, long length) {
        int errno = LIBC.posix_fallocate(fd, 0, length);
        if (errno != 0) {
            ShmException e = fileError("fallocate", path, errno);
            if (errno == ENOSPC) {
                e = ShmException.nativeError("fallocate", 0, errno, "no space left for the file's " + length
                    + " bytes on its file system; nothing was created").at(path);
            }
            throw e;
        }
    }

    /** The size of the open file fd (lseek to its end: one system call), or -1 if it cannot be told. */
    static long fileSize(int fd) {
        return LIBC.lseek(fd, 0, SEEK_END);
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
            return new SegmentInfo(-1, (Long) a.get("size"), (Integer) a.get("uid"), (Integer) a.get("uid"),
                (Integer) a.get("gid"),
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
    public static String kernelLimit(String name) {
        try (java.io.FileInputStream in = new java.io.FileInputStream("/proc/sys/kernel/" + name)) {
            return new String(in.readAllBytes(), StandardCharsets.US_ASCII).strip();
        } catch (IOException e) {
            return "unknown";
        }
    }
}
