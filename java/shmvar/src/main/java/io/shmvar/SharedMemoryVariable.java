package io.shmvar;

import com.google.protobuf.DescriptorProtos.FileDescriptorSet;
import com.google.protobuf.Descriptors;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import io.shmvar.proto.SegmentDescriptor;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.time.Instant;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.UnaryOperator;
import java.util.zip.CRC32C;

import static io.shmvar.LayoutDescriptor.*;
import static io.shmvar.Native.INT;
import static io.shmvar.Native.LONG;

/**
 * A protobuf value of type {@code T} shared with other processes through a System V segment, or a memory-mapped
 * file with the same layout ({@link #createFile}, {@link #openFile}). Writers take the
 * {@link SpinLock}, encode the new value into the inactive slot and publish it by advancing the generation word;
 * {@link #get()} takes no lock. Safe for use by several threads. The Go twin is {@code shmvar.Var[T]}.
 *
 * <pre>{@code
 * try (var counter = SharedVariable.create(0x5eed, Counter.getDefaultInstance())) {
 *     counter.update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
 * }
 * }</pre>
 */
public final class SharedMemoryVariable<T extends Message> implements SharedVariable<T> {

    /** The most bytes an encoded value may take in a segment (layout.proto). */
    public static final int MAX_CAPACITY = LayoutDescriptor.MAX_CAPACITY;
    /** The deepest a value may nest; readers refuse deeper values (PROTOCOL.md, "Values"). */
    public static final int MAX_NESTING_DEPTH = LayoutDescriptor.MAX_NESTING_DEPTH;
    /** Writing attachments a segment has room for at once (PROTOCOL.md, "Attachment table"). */
    public static final int ATTACHMENT_COUNT = LayoutDescriptor.ATTACHMENT_COUNT;
    /** This library's layout version, major &lt;&lt; 16 | minor. */
    public static final int LAYOUT_VERSION = LayoutDescriptor.LAYOUT_VERSION;

    /** A layout version word as "major.minor". */
    public static String formatVersion(int version) {
        return LayoutDescriptor.formatVersion(version);
    }

    /** The value of the kernel setting /proc/sys/kernel/NAME (for example "shm_rmid_forced"), or null if unreadable. */
    public static String kernelLimit(String name) {
        return Native.kernelLimit(name);
    }

    private static final long CLOSED = 1L << 62;

    /** The System V segment's key, which errors name; 0 for other backings. */
    private final int key;
    /** Where the memory comes from: a segment, a file (see {@link Mapping}). */
    private final Mapping mapping;
    /** The attachment table: this attachment's entry and the other entries' liveness. */
    private final Attachments attachments;
    /** This attachment's lock word, {@code index << 32 | incarnation}; 0 for a read-only attachment. */
    private final long identity;
    private final ByteBuffer memory;
    /** The address of memory's first byte, for futexes. */
    private final long base;
    private final Geometry geometry;
    private final SegmentDescriptor descriptor;
    private final Descriptors.Descriptor messageDescriptor;
    /** The two slots: reading a value out, encoding one in. */
    private final Slots<T> slots;
    private final boolean readOnly;
    private final WaitStrategy wait;
    private final SpinLock lock;
    /** Operations in flight, plus {@link #CLOSED} once detaching: close waits for the count to drain. */
    private final AtomicLong users = new AtomicLong();
    /** Values this attachment committed, for {@link #stats()}. */
    private final java.util.concurrent.atomic.LongAdder commits = new java.util.concurrent.atomic.LongAdder();
    /** What close waits on, without spinning, for the operations in flight to end. */
    private final Object drained = new Object();
    /** Made once: a lock wait asks it without allocating. */
    private final Waiting.Stop stop = new Stop();
    /** Set when an access to the mapped file faulted: it was truncated under this attachment. */
    private volatile boolean faulted;
    /** Set by a close that stopped waiting for operations after a fault: the mapping is then left in place. */
    private boolean leaveMapped;
    /** The last value committed or decoded, by generation (PROTOCOL.md, "Caching"). */
    private final Cache<T> cache = new Cache<>();

    /** What validation found in a segment: its regions, its descriptor and the type values are decoded as. */
    record Validated<T>(Geometry geometry, SegmentDescriptor descriptor, Descriptors.Descriptor messageDescriptor,
                        Parser<T> parser) {
    }

    /**
     * Wraps a validated segment in {@code mapping}; a writing attachment claims an attachment entry through the
     * mapping's keeper here (and throws, holding nothing, if it cannot: the caller detaches).
     */
    private SharedMemoryVariable(Mapping mapping, int key, Validated<T> v, boolean readOnly, WaitStrategy wait) {
        this.key = key;
        this.mapping = mapping;
        ByteBuffer memory = mapping.memory();
        this.memory = memory;
        this.base = Native.addressOf(memory);
        this.geometry = v.geometry();
        this.descriptor = v.descriptor();
        this.messageDescriptor = v.messageDescriptor();
        this.readOnly = readOnly;
        this.wait = wait;
        this.attachments = new Attachments(memory, key, mapping.keeper());
        this.identity = readOnly ? 0 : attachments.claim();
        this.lock = new SpinLock(memory, key, identity, attachments);
        this.slots = new Slots<>(memory, key, geometry, descriptor, messageDescriptor, v.parser());
    }

    /** Creates a segment under {@code key} holding the empty value of {@code prototype}'s type, mode 0600. */
    public static <T extends Message> SharedMemoryVariable<T> create(int key, T prototype) {
        return create(key, prototype, Options.defaults());
    }

    /**
     * Creates a segment under {@code key} holding the empty value of {@code prototype}'s type. Fails with
     * errno EEXIST if the key is taken.
     */
    @SuppressWarnings("unchecked")
    public static <T extends Message> SharedMemoryVariable<T> create(int key, T prototype, Options options) {
        if (key == 0) {
            throw ShmException.of("create", key, ShmException.Reason.INVALID_ARGUMENT,
                "key 0 is IPC_PRIVATE, which no other process can open; pick a non-zero key");
        }
        if (options.capacity() < 1 || options.capacity() > MAX_CAPACITY) {
            throw ShmException.of("create", key, ShmException.Reason.INVALID_ARGUMENT,
                "capacity=" + options.capacity() + " outside 1.." + MAX_CAPACITY);
        }
        Descriptors.Descriptor type = prototype.getDescriptorForType();
        SegmentDescriptor descriptor = describe(key, type, options.capacity());
        byte[] raw = descriptor.toByteArray();
        if (raw.length > MAX_DESCRIPTOR_LENGTH) {
            throw ShmException.of("create", key, ShmException.Reason.TOO_LARGE,
                "descriptor of " + raw.length + " bytes exceeds " + MAX_DESCRIPTOR_LENGTH);
        }
        Geometry g = Geometry.of(options.capacity(), raw.length);
        int mode = options.mode() & 0777;
        int perm = mode == 0 ? 0600 : mode;
        int id = Native.shmget(key, g.segmentLength(), Native.IPC_CREAT | Native.IPC_EXCL | perm);
        int semid;
        long address;
        try {
            semid = createSemaphores(key, perm);
        } catch (ShmException e) {
            Native.shmRemove(key, id);
            throw e;
        }
        try {
            address = Native.shmat(key, id, false);
        } catch (ShmException e) {
            Native.shmRemove(key, id);
            Native.semRemove(semid);
            throw e;
        }
        ByteBuffer m = Native.wrap(address, g.segmentLength());
        try {
            initialise(m, g, raw);
            if (options.ephemeral()) {
                Native.shmRemove(key, id);
            }
            return new SharedMemoryVariable<>(new SysvMapping(key, id, semid, address, m), key,
                new Validated<>(g, descriptor, type, (Parser<T>) prototype.getParserForType()), false,
                options.waitStrategy());
        } catch (RuntimeException e) {
            try {
                Native.shmRemove(key, id);
            } catch (ShmException removedAlready) {
                // ephemeral
            }
            Native.semRemove(semid);
            Native.shmdt(key, address);
            throw e;
        }
    }

    /**
     * Creates the attachment semaphores under {@code key}, all 0 (PROTOCOL.md, "Creating", step 3). A set left over
     * from a removed segment is removed and created again if none of its semaphores is held.
     */
    private static int createSemaphores(int key, int perm) {
        int flags = Native.IPC_CREAT | Native.IPC_EXCL | perm;
        int semid = Native.semLookup(key, ATTACHMENT_COUNT, flags);
        if (semid == -Native.EEXIST) {
            int old = Native.semLookup(key, 0, 0);
            if (old >= 0) {
                if (!ours(key, old)) {
                    throw Native.semError("semget", key, Native.EEXIST);
                }
                if (!idle(key, old)) {
                    throw ShmException.nativeError("semget", key, Native.EEXIST,
                        "a semaphore set with this key is still used by attachments of a removed segment");
                }
                Native.semRemove(old);
            }
            semid = Native.semLookup(key, ATTACHMENT_COUNT, flags);
        }
        if (semid < 0) {
            throw Native.semError("semget", key, -semid);
        }
        return semid;
    }

    /** Whether the set has as many semaphores as a set of ours: another program's set is never removed. */
    private static boolean ours(int key, int semid) {
        try {
            return Native.semStat(key, semid).count() == ATTACHMENT_COUNT;
        } catch (ShmException e) {
            return false;
        }
    }

    /** Whether every semaphore of the set, one of ours, is 0; false when the kernel cannot tell. */
    private static boolean idle(int key, int semid) {
        for (int i = 0; i < ATTACHMENT_COUNT; i++) {
            if (Native.semValue(semid, i) != 0) {
                return false;
            }
        }
        return true;
    }

    /**
     * Finds the attachment semaphores of the segment under {@code key} for a writing open and applies the
     * segment's owner and mode checks to them (PROTOCOL.md, "Opening and validation", step 7).
     */
    private static int openSemaphores(int key, Options options) {
        int semid = Native.semLookup(key, 0, 0);
        if (semid == -Native.ENOENT) {
            throw ShmException.of("open", key, ShmException.Reason.CORRUPT,
                "no semaphore set under this key (it keeps the attachments' liveness)");
        }
        if (semid < 0) {
            throw Native.semError("semget", key, -semid);
        }
        Native.SemaphoreInfo info = Native.semStat(key, semid);
        if (info.count() != ATTACHMENT_COUNT) {
            throw ShmException.of("open", key, ShmException.Reason.CORRUPT,
                "semaphore set has " + info.count() + " semaphores, want " + ATTACHMENT_COUNT);
        }
        checkOwnerAndMode(info.uid(), info.cuid(), info.mode(), options, "semaphore set", key);
        return semid;
    }

    /** The descriptor of a new segment holding {@code type}. */
    static SegmentDescriptor describe(Descriptors.Descriptor type, int capacity) {
        return describe(0, type, capacity);
    }

    /** The descriptor of a new segment under {@code key} (0 for a file); refuses a type openers would refuse. */
    static SegmentDescriptor describe(int key, Descriptors.Descriptor type, int capacity) {
        Set<FileDescriptor> files = new HashSet<>();
        addDependencies(type.getFile(), files);
        String redefined = LayoutDescriptor.redefinedWellKnownType(files);
        if (redefined != null) {
            throw ShmException.of("create", key, ShmException.Reason.INVALID_ARGUMENT, redefined);
        }
        return SegmentDescriptor.newBuilder()
            .setLayoutVersion(LAYOUT_VERSION)
            .setMessageType(type.getFullName())
            .setSchema(schemaOf(type).toByteString())
            .setCapacity(capacity)
            .setCreatorPid((int) ProcessHandle.current().pid())
            .setCreatedUnixNanos(nowNanos())
            .setCreator("java")
            .build();
    }

    /**
     * Creates the file at {@code path} holding the empty value of {@code prototype}'s type, laid out exactly as a
     * System V segment, and maps it: a path under /dev/shm gives a fast name-addressed segment, a regular file one
     * that outlives a reboot (see {@link #sync()}). Fails with errno EEXIST if the path exists.
     */
    @SuppressWarnings("unchecked")
    public static <T extends Message> SharedMemoryVariable<T> createFile(java.nio.file.Path path, T prototype,
                                                                  Options options) {
        String p = path.toString();
        if (options.capacity() < 1 || options.capacity() > MAX_CAPACITY) {
            throw ShmException.of("create", 0, ShmException.Reason.INVALID_ARGUMENT,
                "capacity=" + options.capacity() + " outside 1.." + MAX_CAPACITY).at(p);
        }
        Descriptors.Descriptor type = prototype.getDescriptorForType();
        SegmentDescriptor descriptor = describe(type, options.capacity());
        byte[] raw = descriptor.toByteArray();
        Geometry g = Geometry.of(options.capacity(), raw.length);
        int mode = options.mode() & 0777;
        int fd = Native.open(p, Native.O_RDWR | Native.O_CREAT | Native.O_EXCL, mode == 0 ? 0600 : mode);
        long address = -1;
        try {
            Native.fchmod(p, fd, mode == 0 ? 0600 : mode); // the umask must not change what was asked
            Native.reserve(p, fd, g.segmentLength());
            address = Native.mmap(p, fd, g.segmentLength(), false);
            ByteBuffer m = Native.wrap(address, g.segmentLength());
            initialise(m, g, raw);
            // The descriptor stays open: its OFD lock on our attachment entry lives as long as it does.
            return new SharedMemoryVariable<>(new FileMapping(p, fd, address, m), 0,
                new Validated<>(g, descriptor, type, (Parser<T>) prototype.getParserForType()), false,
                options.waitStrategy());
        } catch (RuntimeException e) {
            if (address != -1) {
                Native.munmap(p, address, g.segmentLength());
            }
            Native.unlink(p);
            Native.close(fd);
            throw e instanceof ShmException se ? se.at(p) : e;
        }
    }

    /** Maps the file at {@code path}, validates it and checks that it holds {@code prototype}'s type. */
    @SuppressWarnings("unchecked")
    public static <T extends Message> SharedMemoryVariable<T> openFile(java.nio.file.Path path, T prototype,
                                                                Options options) {
        String want = prototype.getDescriptorForType().getFullName();
        return mapFile(path.toString(), options, (d, type) -> {
            requireType(0, d, want);
            return new Typed<>(prototype.getDescriptorForType(), (Parser<T>) prototype.getParserForType());
        });
    }

    /** Maps the file at {@code path} and decodes values with the schema stored in it. */
    public static SharedMemoryVariable<DynamicMessage> openDynamicFile(java.nio.file.Path path, Options options) {
        return mapFile(path.toString(), options, (d, type) -> {
            if (options.type() != null) {
                requireType(0, d, options.type());
            }
            return new Typed<>(type, DynamicMessage.getDefaultInstance(type).getParserForType());
        });
    }

    private static <T extends Message> SharedMemoryVariable<T> mapFile(String path, Options options, TypeCheck<T> typeCheck) {
        // O_NONBLOCK: opening a FIFO would otherwise block until a writer came; it changes nothing for the regular
        // file the next check insists on.
        int fd = Native.open(path, (options.readOnly() ? Native.O_RDONLY : Native.O_RDWR) | Native.O_NOFOLLOW
            | Native.O_NONBLOCK | Native.O_NOCTTY, 0);
        try {
            if (!Native.isRegularFile(fd)) {
                throw ShmException.of("open", 0, ShmException.Reason.NOT_SHMVAR, "not a regular file").at(path);
            }
            SegmentInfo info = Native.fileStat(path, fd);
            // A creator sizes its file in one call (posix_fallocate) after creating it empty: an empty file may be
            // one still being created, as a System V segment with a zero version word is. Wait for it the same way.
            long deadline = System.nanoTime() + options.initWait().toNanos();
            while (info.size() == 0 && System.nanoTime() - deadline < 0) {
                java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
                info = Native.fileStat(path, fd);
            }
            if (info.size() == 0) {
                throw ShmException.of("open", 0, ShmException.Reason.NOT_INITIALISED,
                    LayoutDescriptor.notInitialised(options.initWait())).at(path);
            }
            LayoutDescriptor.checkSegmentSize(0, info.size());
            try {
                checkOwnerAndMode(info.uid(), info.uid(), info.mode(), options, "file", 0);
            } catch (ShmException e) {
                throw e.at(path);
            }
            long address = Native.mmap(path, fd, info.size(), options.readOnly());
            ByteBuffer m = Native.wrap(address, info.size());
            try {
                Validated<T> v = validate(0, m, options, typeCheck);
                // The descriptor stays open: a writer's OFD lock lives as long as it does, and a reader asks
                // about the others' locks through it.
                return new SharedMemoryVariable<>(new FileMapping(path, fd, address, m), 0, v, options.readOnly(),
                    options.waitStrategy());
            } catch (RuntimeException e) {
                Native.munmap(path, address, info.size());
                throw e;
            }
        } catch (RuntimeException e) {
            Native.close(fd);
            throw e instanceof ShmException se ? se.at(path) : e;
        }
    }

    /** Writes the header and descriptor into zeroed memory and signals it ready (LayoutDescriptor). */
    static void initialise(ByteBuffer m, Geometry g, byte[] descriptor) {
        fillHeader(m, g, descriptor);
        signalReady(m);
    }

    /** Opens the segment under {@code key} and checks that it holds {@code prototype}'s type. */
    public static <T extends Message> SharedMemoryVariable<T> open(int key, T prototype) {
        return open(key, prototype, Options.defaults());
    }

    /** Opens the segment under {@code key}, validates it and checks that it holds {@code prototype}'s type. */
    @SuppressWarnings("unchecked")
    public static <T extends Message> SharedMemoryVariable<T> open(int key, T prototype, Options options) {
        String want = prototype.getDescriptorForType().getFullName();
        return attach(key, options, (d, type) -> {
            requireType(key, d, want);
            return new Typed<>(prototype.getDescriptorForType(), (Parser<T>) prototype.getParserForType());
        });
    }

    /**
     * Opens the segment under {@code key} and decodes values with the schema stored in it; when
     * {@link Options#type()} is set, the segment must hold that type.
     */
    public static SharedMemoryVariable<DynamicMessage> openDynamic(int key, Options options) {
        return attach(key, options, (d, type) -> {
            if (options.type() != null) {
                requireType(key, d, options.type());
            }
            return new Typed<>(type, DynamicMessage.getDefaultInstance(type).getParserForType());
        });
    }

    /** How many times openOrCreate tries again when the segment or file it found vanished before it could open it. */
    private static final int OPEN_OR_CREATE_ATTEMPTS = 8;

    /**
     * Opens the segment under {@code key} if it exists, else creates it: exclusive creation decides between
     * concurrent callers, and the losers open what the winner made (waiting, as open does, until it is ready).
     */
    public static <T extends Message> SharedMemoryVariable<T> openOrCreate(int key, T prototype, Options options) {
        return openOrCreate(() -> create(key, prototype, options), () -> open(key, prototype, options));
    }

    /** {@link #openOrCreate(int, Message, Options)} for a mapped file. */
    public static <T extends Message> SharedMemoryVariable<T> openOrCreateFile(java.nio.file.Path path, T prototype,
                                                                        Options options) {
        return openOrCreate(() -> createFile(path, prototype, options), () -> openFile(path, prototype, options));
    }

    private static <T extends Message> SharedMemoryVariable<T> openOrCreate(
        java.util.function.Supplier<SharedMemoryVariable<T>> create, java.util.function.Supplier<SharedMemoryVariable<T>> open) {
        for (int attempt = 1; ; attempt++) {
            try {
                return create.get();
            } catch (ShmException e) {
                if (e.reason() != ShmException.Reason.NATIVE || e.errno() != Native.EEXIST) {
                    throw e;
                }
            }
            try {
                return open.get();
            } catch (ShmException e) {
                // removed between our create and our open: try again
                if (e.reason() != ShmException.Reason.NATIVE || e.errno() != Native.ENOENT
                    || attempt == OPEN_OR_CREATE_ATTEMPTS) {
                    throw e;
                }
            }
        }
    }

    private static void requireType(int key, SegmentDescriptor d, String want) {
        if (!d.getMessageType().equals(want)) {
            throw ShmException.of("open", key, ShmException.Reason.TYPE_MISMATCH,
                "segment holds " + d.getMessageType() + ", asked for " + want);
        }
    }

    /**
     * Removes the segment under {@code key} and its semaphore set without validating them, for segments too damaged
     * to open; also removes a semaphore set left alone under the key. Fails with ENOENT only if neither exists.
     */
    public static void removeKey(int key) {
        ShmException missing = null;
        try {
            Native.shmRemove(key, Native.shmget(key, 0, 0));
        } catch (ShmException e) {
            if (e.errno() != Native.ENOENT) {
                throw e;
            }
            missing = e;
        }
        int semid = Native.semLookup(key, 0, 0);
        if (semid >= 0) {
            int errno = Native.semRemove(semid);
            if (errno != 0 && errno != Native.EINVAL && errno != Native.EIDRM) {
                throw Native.semError("semctl(IPC_RMID)", key, errno);
            }
        } else if (semid != -Native.ENOENT) {
            throw Native.semError("semget", key, -semid);
        } else if (missing != null) {
            throw missing;
        }
    }

    record Typed<T>(Descriptors.Descriptor descriptor, Parser<T> parser) {
    }

    interface TypeCheck<T> {
        Typed<T> check(SegmentDescriptor descriptor, Descriptors.Descriptor stored);
    }

    private static <T extends Message> SharedMemoryVariable<T> attach(int key, Options options, TypeCheck<T> typeCheck) {
        if (key == 0) {
            throw ShmException.of("open", key, ShmException.Reason.INVALID_ARGUMENT,
                "key 0 is IPC_PRIVATE; pass the key the segment was created with");
        }
        int id = Native.shmget(key, 0, 0);
        SegmentInfo info = Native.shmStat(key, id);
        LayoutDescriptor.checkSegmentSize(key, info.size());
        checkOwnerAndMode(info.uid(), info.cuid(), info.mode(), options, "segment", key);
        long address = Native.shmat(key, id, options.readOnly());
        try {
            ByteBuffer m = Native.wrap(address, info.size());
            Validated<T> v = validate(key, m, options, typeCheck);
            int semid;
            if (options.readOnly()) {
                // Only to report liveness: a reader that cannot find the set reports every holder alive.
                semid = Math.max(-1, Native.semLookup(key, 0, 0));
            } else {
                semid = openSemaphores(key, options);
            }
            SharedMemoryVariable<T> variable = new SharedMemoryVariable<>(new SysvMapping(key, id, semid, address, m), key, v,
                options.readOnly(), options.waitStrategy());
            if (options.ephemeral()) {
                try {
                    Native.shmRemove(key, id);
                } catch (RuntimeException e) {
                    variable.attachments.release();
                    throw e;
                }
            }
            return variable;
        } catch (RuntimeException e) {
            Native.shmdt(key, address);
            throw e;
        }
    }

    /**
     * The owner and mode checks of open; {@code what} is "segment", "semaphore set" or "file". Both the owner and the
     * creator must be this process's user: a creator keeps full access whoever it makes the owner.
     */
    private static void checkOwnerAndMode(int uid, int cuid, int mode, Options options, String what, int key) {
        int euid = Native.geteuid();
        if (!options.anyOwner() && uid != euid) {
            throw ShmException.of("open", key, ShmException.Reason.PERMISSION, what + " is owned by uid "
                + Integer.toUnsignedString(uid) + ", this process runs as uid " + Integer.toUnsignedString(euid)
                + "; accept it with withAnyOwner (--any-owner)");
        }
        if (!options.anyOwner() && cuid != euid) {
            throw ShmException.of("open", key, ShmException.Reason.PERMISSION, what + " is owned by uid "
                + Integer.toUnsignedString(uid) + " (created by uid " + Integer.toUnsignedString(cuid)
                + "), this process runs as uid " + Integer.toUnsignedString(euid)
                + "; accept it with withAnyOwner (--any-owner)");
        }
        if (!options.anyMode() && (mode & 0002) != 0) {
            throw ShmException.of("open", key, ShmException.Reason.PERMISSION, String.format(
                "%s mode %04o lets any user write it; accept it with withAnyMode (--any-mode)", what, mode & 0777));
        }
    }

    /**
     * Validates {@code m}, an attached segment or any image of one. The first size check covers only the lines before
     * the attachment table, so that a segment of an older layout is refused for its version, not its size.
     */
    static <T extends Message> Validated<T> validate(int key, ByteBuffer m, Options options, TypeCheck<T> typeCheck) {
        LayoutDescriptor.checkSegmentSize(key, m.capacity());
        int version = awaitVersion(m, options.initWait());
        Geometry g = readGeometry(key, m, version, options.initWait());
        SegmentDescriptor d = readDescriptor(key, m, g, version);
        Descriptors.Descriptor stored = messageDescriptorOf(key, d);
        Typed<T> typed = typeCheck.check(d, stored);
        return new Validated<>(g, d, typed.descriptor(), typed.parser());
    }

    /**
     * Validates an image of a segment held in private memory {@code m} and decodes with its stored schema; for tests.
     * It claims attachment entry 0 of the image, with no kernel object behind it.
     */
    static SharedMemoryVariable<DynamicMessage> validateDynamic(ByteBuffer m) {
        Options options = Options.defaults().withInitWait(Duration.ZERO);
        Validated<DynamicMessage> v = validate(1, m, options,
            (d, type) -> new Typed<>(type, DynamicMessage.getDefaultInstance(type).getParserForType()));
        return new SharedMemoryVariable<>(new MemoryMapping(m), 1, v, false, options.waitStrategy());
    }

    /** The segment's key. */
    public int key() {
        return key;
    }

    /** The descriptor stored in the segment at creation. */
    public SegmentDescriptor descriptor() {
        return descriptor;
    }

    /** The type values are decoded as. */
    public Descriptors.Descriptor messageDescriptor() {
        return messageDescriptor;
    }

    /** The most bytes an encoded value may take. */
    public int capacity() {
        return (int) geometry.capacity();
    }

    /** The number of values committed since creation. */
    public long generation() {
        enter("generation");
        try {
            return (long) LONG.getAcquire(memory, GENERATION_OFFSET);
        } catch (InternalError e) {
            throw fault("generation", e);
        } finally {
            exit();
        }
    }

    /** The mapped file of a file-backed variable, or null for a System V segment. */
    public String path() {
        return mapping.path();
    }

    /**
     * Flushes a file-backed variable to its file (msync): once it returns, the last committed value survives a
     * crash of the machine. Does nothing for System V segments, which live in memory only.
     */
    public void sync() {
        enter("sync");
        try {
            mapping.sync();
        } finally {
            exit();
        }
    }

    /** A copy of the last committed value; takes no lock. */
    public T get() {
        enter("get");
        try {
            T cached = cache.get((long) LONG.getAcquire(memory, GENERATION_OFFSET));
            return cached != null ? cached : read("get");
        } catch (ShmException e) {
            throw mapping.name(e);
        } catch (InternalError e) {
            throw fault("get", e);
        } finally {
            exit();
        }
    }

    /** The last committed value exactly as it is encoded in the segment, after the same checks as {@link #get()}. */
    public byte[] getEncoded() {
        enter("get");
        try {
            Slots.Scratch scratch = slots.copyActive("get");
            byte[] buf = scratch.buf;
            int n = scratch.length;
            slots.parse(scratch, "get"); // the same checks as get
            return java.util.Arrays.copyOf(buf, n);
        } catch (ShmException e) {
            throw mapping.name(e);
        } catch (InternalError e) {
            throw fault("get", e);
        } finally {
            exit();
        }
    }

    /** Commits {@code value}, waiting for the lock as long as it takes. */
    public void set(T value) {
        update(null, "set", current -> value, false);
    }

    /**
     * Commits {@code fn(current)} under the lock and returns it. When {@code fn} throws, nothing is committed, the
     * lock is released and the exception propagates.
     */
    public T update(UnaryOperator<T> fn) {
        return update(null, "update", fn, true);
    }

    /** {@link #update} that gives up with {@link ShmException.Reason#TIMEOUT}, naming the holder, after timeout. */
    public T tryUpdate(UnaryOperator<T> fn, Duration timeout) {
        return update(timeout, "update", fn, true);
    }

    @Override
    public Stats stats() {
        enter("stats");
        try {
            return new Stats((long) LONG.getAcquire(memory, GENERATION_OFFSET), commits.sum(),
                (long) LONG.getAcquire(memory, CONTENDED_COUNT_OFFSET), (long) LONG.getAcquire(memory, TAKEOVER_COUNT_OFFSET),
                Duration.ofNanos(lock.waitNanos()));
        } catch (InternalError e) {
            throw fault("stats", e);
        } finally {
            exit();
        }
    }

    /** A snapshot of the lock word and its counters. */
    public LockState lockState() {
        enter("inspect");
        try {
            return lock.state();
        } catch (InternalError e) {
            throw fault("inspect", e);
        } finally {
            exit();
        }
    }

    /** A live writing attachment of the segment: its entry in the attachment table and the pid recorded there. */
    public record Attachment(int index, int pid, boolean inOtherNamespace) {
        /** "pid P", or "pid P in another PID namespace" (where the pid means another process than here). */
        public String describe() {
            return Attachments.describePid(pid, inOtherNamespace);
        }
    }

    /**
     * The live writing attachments, in entry order: the entries claimed at least once whose kernel object says they
     * are held (or cannot tell, which a read-only attachment that did not find the semaphore set reports for all).
     */
    public java.util.List<Attachment> attachments() {
        enter("inspect");
        try {
            java.util.List<Attachment> live = new java.util.ArrayList<>();
            for (int i = 0; i < ATTACHMENT_COUNT; i++) {
                if (attachments.incarnation(i) != 0 && attachments.entryHeld(i)) {
                    live.add(new Attachment(i, attachments.pid(i), attachments.inOtherNamespace(i)));
                }
            }
            return live;
        } catch (InternalError e) {
            throw fault("inspect", e);
        } finally {
            exit();
        }
    }

    /** This attachment's lock word, {@code index << 32 | incarnation}; 0 for a read-only attachment. */
    public long identity() {
        return identity;
    }

    /** Asks the kernel about the segment or file. */
    public SegmentInfo stat() {
        return mapping.stat();
    }

    /**
     * Detaches the segment, after operations in flight end, giving its attachment entry back; it stays in the system
     * for other processes. The last attachment of an ephemeral segment also removes the semaphore set.
     */
    @Override
    public void close() {
        if (!detach()) {
            return;
        }
        try {
            attachments.release();
        } finally {
            mapping.detach(leaveMapped);
        }
    }

    /**
     * Marks the segment for removal, which the kernel carries out at the last detach, removes its semaphore set at
     * once, and detaches it; for a file, unlinks it. Attachments still using a removed set can no longer tell
     * whether a lock holder is alive, so they never take the lock over: remove segments nobody uses any more.
     */
    public void remove() {
        if (!detach()) {
            throw mapping.name(ShmException.of("remove", key, ShmException.Reason.CLOSED, ""));
        }
        try {
            attachments.release();
            mapping.remove();
        } finally {
            mapping.detach(leaveMapped);
        }
    }

    /** Marks this variable closed and waits for operations in flight; false if it was closed already. */
    private boolean detach() {
        long before = users.getAndAdd(CLOSED);
        if ((before & CLOSED) != 0) {
            users.getAndAdd(-CLOSED);
            return false;
        }
        if (mapping.address() != 0) {
            // Waiters of this process re-check at once and see the variable closed; those of other processes wake
            // for nothing and sleep again. The words move first, so that a waiter about to sleep on their old value
            // does not sleep through the wake (a read-only attachment cannot move them; nor is a file touched that
            // shrank: a faulting atomic can abort the JVM).
            if (!readOnly && mapping.reaches(memory.capacity())) {
                INT.getAndAdd(memory, LOCK_FUTEX_OFFSET, 1);
                INT.getAndAdd(memory, GENERATION_FUTEX_OFFSET, 1);
            }
            Native.futexWake(base + LOCK_FUTEX_OFFSET, Integer.MAX_VALUE);
            Native.futexWake(base + GENERATION_FUTEX_OFFSET, Integer.MAX_VALUE);
        }
        long start = System.nanoTime();
        synchronized (drained) {
            while (users.get() != CLOSED) {
                // The JVM may deliver the InternalError of a fault late, past an operation's exit() (or into the next
                // operation's enter()): its count can be lost, and nothing may have seen the fault. So once a while
                // has passed, a file that shrank (asked again here) ends the wait as a seen fault does; the mapping
                // is then left in place for whatever may still touch it.
                if (System.nanoTime() - start > FAULTED_CLOSE_WAIT_NANOS
                    && (faulted || !mapping.reaches(memory.capacity()))) {
                    faulted = true;
                    leaveMapped = true;
                    break;
                }
                try {
                    drained.wait(10);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt(); // close still finishes: operations in flight end at once
                }
            }
        }
        return true;
    }

    /** How long close waits for operations in flight once an access faulted. */
    private static final long FAULTED_CLOSE_WAIT_NANOS = 100_000_000L;

    /**
     * A fault while touching the mapped file (it was truncated under this attachment; the JVM reports a faulting
     * unsafe access as an InternalError) as the library's exception; anything else is rethrown.
     */
    private ShmException fault(String op, InternalError e) {
        ShmException truncated = mapping.onFault(op, e);
        faulted = true;
        return truncated;
    }

    private void enter(String op) {
        if ((users.incrementAndGet() & CLOSED) != 0) {
            exit();
            throw mapping.name(ShmException.of(op, key, ShmException.Reason.CLOSED, ""));
        }
        // A file truncated under this attachment makes accesses past its new end fault. The JVM turns some faults
        // into an InternalError (see fault) but aborts on others (an atomic in the interpreter, the CRC32C
        // intrinsic): so every operation first asks the mapping (for a file, its size: one lseek) and touches
        // nothing if it shrank.
        ShmException shrunk;
        try {
            shrunk = mapping.stillMapped(op);
        } catch (InternalError e) {
            // the InternalError of a fault in an earlier operation, delivered late: at this native call
            exit();
            throw fault(op, e);
        }
        if (shrunk != null) {
            exit();
            faulted = true;
            throw shrunk;
        }
    }

    private void exit() {
        if (users.decrementAndGet() == CLOSED) {
            synchronized (drained) {
                drained.notifyAll();
            }
        }
    }

    /** What a wait of this variable asks between its sleeps (see {@link Waiting.Stop}). */
    private final class Stop implements Waiting.Stop {
        @Override
        public void check(String op) {
            if ((users.get() & CLOSED) != 0) {
                throw ShmException.of(op, key, ShmException.Reason.CLOSED, "closed while waiting");
            }
            Waiting.interrupted(op, key);
            mapped(op);
        }

        @Override
        public void mapped(String op) {
            ShmException shrunk = mapping.stillMapped(op);
            if (shrunk != null) {
                faulted = true;
                throw shrunk;
            }
        }
    }

    private T update(Duration timeout, String op, UnaryOperator<T> fn, boolean needCurrent) {
        enter(op);
        try {
            if (readOnly) {
                throw ShmException.of(op, key, ShmException.Reason.INVALID_ARGUMENT, "segment is attached read-only");
            }
            lock.acquire(timeout, wait, op, stop);
            long g;
            T next;
            Throwable failure = null;
            try {
                g = (long) LONG.getAcquire(memory, GENERATION_OFFSET);
                T current = null;
                if (needCurrent) {
                    current = cache.get(g);
                    if (current == null) {
                        current = read(op);
                    }
                }
                next = fn.apply(current);
                commit(g, next, op);
            } catch (Throwable e) {
                failure = e;
                throw e;
            } finally {
                try {
                    // After a fault, the lock line may have gone with the file's end: touching it would fault again.
                    if (!(failure instanceof InternalError) || mapping.reaches(LOCK_WORD_OFFSET + Long.BYTES)) {
                        lock.release();
                    }
                } catch (ShmException | InternalError e) {
                    // After a lost lock the release fails too: the first error is the one to report.
                    if (failure == null) {
                        throw e;
                    }
                    failure.addSuppressed(e);
                }
            }
            commits.increment();
            cache.put(g + 1, next); // after the release: the pair stays right even if another commit follows
            return next;
        } catch (ShmException e) {
            throw mapping.name(e);
        } catch (InternalError e) {
            throw fault(op, e);
        } finally {
            exit();
        }
    }

    /** Reads the value: copies the active slot, then parses the copy, and caches it. */
    private T read(String op) {
        Slots.Scratch scratch = slots.copyActive(op);
        T value = slots.parse(scratch, op);
        cache.put(scratch.generation, value);
        return value;
    }

    /**
     * Encodes {@code value} into the inactive slot and publishes it by advancing the generation from {@code g},
     * unless the lock was taken from this attachment (PROTOCOL.md, "Writing"): then it fails with
     * {@link ShmException.Reason#LOCK_LOST} and publishes nothing.
     */
    private void commit(long g, T value, String op) {
        checkLockHeld(op);
        long now = (long) LONG.getAcquire(memory, GENERATION_OFFSET);
        if (now != g) {
            throw ShmException.of(op, key, ShmException.Reason.LOCK_LOST, String.format(
                "generation moved from %d to %d under the lock holder; nothing was committed", g, now));
        }
        long next = g + 1;
        slots.write(next, value, op);
        checkLockHeld(op);
        long witness = (long) LONG.compareAndExchange(memory, GENERATION_OFFSET, g, next); // the commit point
        if (witness != g) {
            throw ShmException.of(op, key, ShmException.Reason.LOCK_LOST, String.format(
                "generation moved from %d to %d under the lock holder; nothing was committed", g, witness));
        }
        if ((int) INT.getVolatile(memory, GENERATION_WAITERS_OFFSET) != 0) {
            INT.getAndAdd(memory, GENERATION_FUTEX_OFFSET, 1);
            Native.futexWake(base + GENERATION_FUTEX_OFFSET, Integer.MAX_VALUE);
        }
    }

    /** Fails with {@link ShmException.Reason#LOCK_LOST} unless the lock word still holds this attachment's identity. */
    private void checkLockHeld(String op) {
        long word = (long) LONG.getAcquire(memory, LOCK_WORD_OFFSET);
        if (word != identity) {
            throw ShmException.of(op, key, ShmException.Reason.LOCK_LOST, String.format(
                "lock word is 0x%016x, not this attachment's 0x%016x; nothing was committed", word, identity));
        }
    }

    /**
     * Waits until the generation moves past {@code after}, or {@code timeout} passes, and returns the generation it
     * saw; throws {@link ShmException.Reason#TIMEOUT} if it did not move. With {@link WaitStrategy#SPIN_THEN_PARK} a
     * watcher sleeps on a futex that every commit wakes.
     */
    public long awaitChange(long after, Duration timeout) {
        enter("await");
        try {
            long start = System.nanoTime();
            long timeoutNanos = timeout.toNanos();
            long futex = base + GENERATION_FUTEX_OFFSET;
            boolean virtual = Waiting.virtual();

            for (int rounds = 1; ; rounds++) {
                long g = (long) LONG.getVolatile(memory, GENERATION_OFFSET);
                if (g != after) {
                    return g;
                }
                Thread.onSpinWait();
                if (rounds % 32 != 0) {
                    continue;
                }
                long elapsed = System.nanoTime() - start;
                long left = timeoutNanos - elapsed;
                if (left <= 0) {
                    throw mapping.name(ShmException.of("await", key, ShmException.Reason.TIMEOUT,
                        "generation still " + after + " after " + timeout.toMillis() + "ms"));
                }
                stop.check("await");
                if (elapsed < SpinLock.SPIN_NANOS) {
                    continue;
                }
                if (wait == WaitStrategy.SPIN) {
                    Thread.yield();
                } else if (readOnly || virtual) {
                    // A read-only attachment cannot announce itself to committers, and a virtual thread must not
                    // sleep in the kernel: both sleep in short turns.
                    Waiting.sleep(virtual, futex, (int) INT.getVolatile(memory, GENERATION_FUTEX_OFFSET),
                        Math.min(left, Waiting.READ_ONLY_TURN_NANOS));
                } else {
                    int sequence = (int) INT.getVolatile(memory, GENERATION_FUTEX_OFFSET);
                    INT.getAndAdd(memory, GENERATION_WAITERS_OFFSET, 1);
                    // close moves the futex word after it marks the variable closed: with the sequence read first,
                    // this either sees the mark or sleeps on a word that has moved or will be woken.
                    if ((long) LONG.getVolatile(memory, GENERATION_OFFSET) == after && (users.get() & CLOSED) == 0) {
                        // Turns short enough to see an interrupt soon: a thread in futex(2) cannot be interrupted.
                        Native.futexWait(futex, sequence, Math.min(left, Waiting.CHANGE_TURN_NANOS));
                    }
                    stop.mapped("await"); // a file truncated during the sleep: do not touch it again
                    INT.getAndAdd(memory, GENERATION_WAITERS_OFFSET, -1);
                }
            }
        } catch (InternalError e) {
            throw fault("await", e);
        } finally {
            exit();
        }
    }

    /** The file of {@code type} and everything it imports, dependencies first. */
    private static void addDependencies(FileDescriptor file, Set<FileDescriptor> files) {
        if (files.add(file)) {
            for (FileDescriptor dependency : file.getDependencies()) {
                addDependencies(dependency, files);
            }
        }
    }

    static FileDescriptorSet schemaOf(Descriptors.Descriptor type) {
        FileDescriptorSet.Builder set = FileDescriptorSet.newBuilder();
        addFile(type.getFile(), set, new HashSet<>());
        return set.build();
    }

    private static void addFile(FileDescriptor file, FileDescriptorSet.Builder set, Set<String> seen) {
        if (!seen.add(file.getName())) {
            return;
        }
        for (FileDescriptor dependency : file.getDependencies()) {
            addFile(dependency, set, seen);
        }
        set.addFile(file.toProto());
    }

    private static long nowNanos() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000_000L + now.getNano();
    }
}
