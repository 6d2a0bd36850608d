package io.shmvar;

import com.google.protobuf.AnyProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorSet;
import com.google.protobuf.Descriptors;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.DurationProto;
import com.google.protobuf.EmptyProto;
import com.google.protobuf.FieldMaskProto;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.StructProto;
import com.google.protobuf.TimestampProto;
import com.google.protobuf.WrappersProto;
import io.shmvar.proto.SegmentDescriptor;
import io.shmvar.proto.SegmentLayout;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.zip.CRC32C;

import static io.shmvar.Native.INT;

/**
 * Where everything lies in a shmvar segment. Every number comes from the {@code SegmentLayout} enum generated
 * from {@code proto/shmvar/v1/layout.proto}; proto/PROTOCOL.md explains each word. The Go twin is
 * {@code go-peer/shmvar/layout.go}.
 *
 * <pre>
 *   0        128      256        384      512           1536         1536+D   slot0         slot1
 *   +--------+--------+----------+--------+-------------+------------+--------+-------------+-------------+
 *   |identity| lock   |generation|reserved| attachment  | descriptor | pad 64 | hdr | value | hdr | value |
 *   |        |        |          |        | table 64x16 |            |        |             |             |
 *   +--------+--------+----------+--------+-------------+------------+--------+-------------+-------------+
 *
 *   identity (0..127)
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +---------------------------------------------------------------+
 *   |                 magic "SVAR"              (u32 @0)            |
 *   |     layout version: major &lt;&lt; 16 | minor   (u32 @4, last)      |
 *   |                 header length = 1536      (u32 @8)            |
 *   |         flags, none known yet (KNOWN_FLAGS = 0) (u32 @12)     |
 *   |                 capacity                  (u64 @16)           |
 *   |                 descriptor offset         (u64 @24)           |
 *   |                 descriptor length         (u64 @32)           |
 *   |                 slot 0 offset             (u64 @40)           |
 *   |                 slot 1 offset             (u64 @48)           |
 *   |                 segment length            (u64 @56)           |
 *   |                 descriptor crc32c         (u32 @64)           |
 *   +---------------------------------------------------------------+
 *   lock (128..255): lock word u64 @128 (attachment index &lt;&lt; 32 | incarnation) | lock futex u32 @136 |
 *                    lock waiters u32 @140 | contended u64 @144 | takeovers u64 @152
 *   generation (256..383): generation u64 @256 | generation futex u32 @264 | generation waiters u32 @268
 *   attachment table (512..1535): 64 entries of 16 bytes, entry i at 512 + 16 * i:
 *                    incarnation u32 @+0 | pid u32 @+4 | pid namespace inode u64 @+8
 *                    (liveness: semaphore i of the set under the key, or an OFD lock on the entry's first byte)
 *   slot header: length u32 @+0 | crc32c u32 @+4 | generation u64 @+8 | payload @+16
 * </pre>
 */
final class LayoutDescriptor {
    public static final int MAGIC_OFFSET = SegmentLayout.MAGIC_OFFSET_VALUE;
    public static final int LAYOUT_VERSION_OFFSET = SegmentLayout.LAYOUT_VERSION_OFFSET_VALUE;
    public static final int HEADER_LENGTH_OFFSET = SegmentLayout.HEADER_LENGTH_OFFSET_VALUE;
    public static final int FLAGS_OFFSET = SegmentLayout.FLAGS_OFFSET_VALUE;
    public static final int CAPACITY_OFFSET = SegmentLayout.CAPACITY_OFFSET_VALUE;
    public static final int DESCRIPTOR_OFFSET_OFFSET = SegmentLayout.DESCRIPTOR_OFFSET_OFFSET_VALUE;
    public static final int DESCRIPTOR_LENGTH_OFFSET = SegmentLayout.DESCRIPTOR_LENGTH_OFFSET_VALUE;
    public static final int SLOT0_OFFSET_OFFSET = SegmentLayout.SLOT0_OFFSET_OFFSET_VALUE;
    public static final int SLOT1_OFFSET_OFFSET = SegmentLayout.SLOT1_OFFSET_OFFSET_VALUE;
    public static final int SEGMENT_LENGTH_OFFSET = SegmentLayout.SEGMENT_LENGTH_OFFSET_VALUE;
    public static final int DESCRIPTOR_CRC_OFFSET = SegmentLayout.DESCRIPTOR_CRC_OFFSET_VALUE;

    public static final int LOCK_WORD_OFFSET = SegmentLayout.LOCK_WORD_OFFSET_VALUE;
    public static final int LOCK_FUTEX_OFFSET = SegmentLayout.LOCK_FUTEX_OFFSET_VALUE;
    public static final int LOCK_WAITERS_OFFSET = SegmentLayout.LOCK_WAITERS_OFFSET_VALUE;
    public static final int CONTENDED_COUNT_OFFSET = SegmentLayout.CONTENDED_COUNT_OFFSET_VALUE;
    public static final int TAKEOVER_COUNT_OFFSET = SegmentLayout.TAKEOVER_COUNT_OFFSET_VALUE;

    public static final int GENERATION_OFFSET = SegmentLayout.GENERATION_OFFSET_VALUE;
    public static final int GENERATION_FUTEX_OFFSET = SegmentLayout.GENERATION_FUTEX_OFFSET_VALUE;
    public static final int GENERATION_WAITERS_OFFSET = SegmentLayout.GENERATION_WAITERS_OFFSET_VALUE;

    public static final int ATTACHMENT_TABLE_OFFSET = SegmentLayout.ATTACHMENT_TABLE_OFFSET_VALUE;
    public static final int ATTACHMENT_COUNT = SegmentLayout.ATTACHMENT_COUNT_VALUE;
    public static final int ATTACHMENT_LENGTH = SegmentLayout.ATTACHMENT_LENGTH_VALUE;
    public static final int ATTACHMENT_INCARNATION_OFFSET = SegmentLayout.ATTACHMENT_INCARNATION_OFFSET_VALUE;
    public static final int ATTACHMENT_PID_OFFSET = SegmentLayout.ATTACHMENT_PID_OFFSET_VALUE;
    public static final int ATTACHMENT_PID_NAMESPACE_OFFSET = SegmentLayout.ATTACHMENT_PID_NAMESPACE_OFFSET_VALUE;

    public static final int HEADER_LENGTH = SegmentLayout.HEADER_LENGTH_VALUE;

    public static final int SLOT_LENGTH_OFFSET = SegmentLayout.SLOT_LENGTH_OFFSET_VALUE;
    public static final int SLOT_CRC_OFFSET = SegmentLayout.SLOT_CRC_OFFSET_VALUE;
    public static final int SLOT_GENERATION_OFFSET = SegmentLayout.SLOT_GENERATION_OFFSET_VALUE;
    public static final int SLOT_HEADER_LENGTH = SegmentLayout.SLOT_HEADER_LENGTH_VALUE;
    public static final int SLOT_ALIGNMENT = SegmentLayout.SLOT_ALIGNMENT_VALUE;

    public static final int MAGIC = SegmentLayout.MAGIC_VALUE;
    public static final int LAYOUT_VERSION_MAJOR = SegmentLayout.LAYOUT_VERSION_MAJOR_VALUE;
    public static final int LAYOUT_VERSION_MINOR = SegmentLayout.LAYOUT_VERSION_MINOR_VALUE;
    public static final int LAYOUT_VERSION = LAYOUT_VERSION_MAJOR << 16 | LAYOUT_VERSION_MINOR;
    /** The feature bits of {@link #FLAGS_OFFSET} this layout version defines; an opener refuses any other bit. */
    public static final int KNOWN_FLAGS = SegmentLayout.KNOWN_FLAGS_VALUE;

    public static final int DEFAULT_CAPACITY = SegmentLayout.DEFAULT_CAPACITY_VALUE;
    public static final int MAX_CAPACITY = SegmentLayout.MAX_CAPACITY_VALUE;
    public static final int MAX_DESCRIPTOR_LENGTH = SegmentLayout.MAX_DESCRIPTOR_LENGTH_VALUE;
    /**
     * How deep a value may nest, the top-level message being at depth 0 (PROTOCOL.md, "Values"): protobuf-java's
     * recursion limit counts the same way.
     */
    public static final int MAX_NESTING_DEPTH = SegmentLayout.MAX_NESTING_DEPTH_VALUE;

    private LayoutDescriptor() {
    }

    /** The offset of attachment entry {@code index} in the table. */
    static int attachmentEntry(int index) {
        return ATTACHMENT_TABLE_OFFSET + index * ATTACHMENT_LENGTH;
    }

    /** Formats a layout version word as {@code major.minor}. */
    public static String formatVersion(int version) {
        return (version >>> 16) + "." + (version & 0xffff);
    }

    static long alignUp(long n, long alignment) {
        return (n + alignment - 1) & -alignment;
    }

    /**
     * The size of the largest valid segment: {@link #MAX_CAPACITY} in each slot and a descriptor of
     * {@link #MAX_DESCRIPTOR_LENGTH}. Opening refuses anything larger, System V segment or file, before mapping it.
     */
    static final long MAX_SEGMENT_LENGTH = Geometry.of(MAX_CAPACITY, MAX_DESCRIPTOR_LENGTH).segmentLength();

    /**
     * Step 1 of opening (PROTOCOL.md): the real size of a segment or file must hold the lines before the attachment
     * table and be no larger than {@link #MAX_SEGMENT_LENGTH}.
     */
    static void checkSegmentSize(int key, long size) {
        if (size < ATTACHMENT_TABLE_OFFSET) {
            throw corrupt(key, "segment too small: size=" + size + ", header needs " + ATTACHMENT_TABLE_OFFSET);
        }
        if (size > MAX_SEGMENT_LENGTH) {
            throw corrupt(key, "segment size=" + size + " is larger than any shmvar segment (at most "
                + MAX_SEGMENT_LENGTH + " bytes)");
        }
    }

    /** Why a segment or file still empty after the wait is refused; the wait as Go prints a duration. */
    static String notInitialised(Duration wait) {
        return "magic and version are zero after " + goDuration(wait)
            + " (a creator died or this is not a shmvar segment)";
    }

    /** A duration of whole milliseconds as Go's time.Duration prints it: 200ms, 1s, 1.5s. */
    static String goDuration(Duration d) {
        long ms = d.toMillis();
        if (ms == 0) {
            return "0s";
        }
        if (ms < 1000) {
            return ms + "ms";
        }
        return java.math.BigDecimal.valueOf(ms, 3).stripTrailingZeros().toPlainString() + "s";
    }

    /** Where the regions of one segment lie; created from sizes or read and validated from a header. */
    record Geometry(long capacity, long descriptorOffset, long descriptorLength, long slot0, long slot1,
                    long segmentLength) {

        static Geometry of(long capacity, long descriptorLength) {
            long slotLength = alignUp(SLOT_HEADER_LENGTH + capacity, SLOT_ALIGNMENT);
            long slot0 = alignUp(HEADER_LENGTH + descriptorLength, SLOT_ALIGNMENT);
            return new Geometry(capacity, HEADER_LENGTH, descriptorLength, slot0, slot0 + slotLength,
                slot0 + 2 * slotLength);
        }

        long slot(long generation) {
            return (generation & 1) == 0 ? slot0 : slot1;
        }
    }

    /** Waits up to {@code initWait} for a creator to store the version word, which it stores last. */
    static int awaitVersion(ByteBuffer m, Duration initWait) {
        int version = (int) INT.getAcquire(m, LAYOUT_VERSION_OFFSET);
        long deadline = System.nanoTime() + initWait.toNanos();
        while (version == 0 && System.nanoTime() - deadline < 0) {
            java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
            version = (int) INT.getAcquire(m, LAYOUT_VERSION_OFFSET);
        }
        return version;
    }

    /**
     * Writes the header and the descriptor of a new segment into zeroed memory: everything but the version word,
     * which {@link #signalReady} stores last. Slot 0 holds the empty value (length 0, CRC 0) for generation 0, which
     * zeroed memory already is.
     */
    static void fillHeader(ByteBuffer m, Geometry g, byte[] descriptor) {
        m.putInt(MAGIC_OFFSET, MAGIC);
        m.putInt(HEADER_LENGTH_OFFSET, HEADER_LENGTH);
        m.putLong(CAPACITY_OFFSET, g.capacity());
        m.putLong(DESCRIPTOR_OFFSET_OFFSET, g.descriptorOffset());
        m.putLong(DESCRIPTOR_LENGTH_OFFSET, g.descriptorLength());
        m.putLong(SLOT0_OFFSET_OFFSET, g.slot0());
        m.putLong(SLOT1_OFFSET_OFFSET, g.slot1());
        m.putLong(SEGMENT_LENGTH_OFFSET, g.segmentLength());
        m.put((int) g.descriptorOffset(), descriptor);
        CRC32C crc = new CRC32C();
        crc.update(descriptor);
        m.putInt(DESCRIPTOR_CRC_OFFSET, (int) crc.getValue());
    }

    /** Stores the version word, last and with release semantics: from here openers accept the segment. */
    static void signalReady(ByteBuffer m) {
        INT.setRelease(m, LAYOUT_VERSION_OFFSET, LAYOUT_VERSION);
    }

    /**
     * Checks the identity words of {@code m} read after {@link #awaitVersion}: the magic, the version word (0: the
     * creator never finished; another major: {@code app=X segment=Y}) and the feature flags.
     */
    static void checkVersion(int key, ByteBuffer m, int version, Duration initWait) {
        int magic = m.getInt(MAGIC_OFFSET);
        if (magic != MAGIC) {
            if (magic == 0 && version == 0) {
                throw corrupt(key, ShmException.Reason.NOT_INITIALISED, notInitialised(initWait));
            }
            throw corrupt(key, ShmException.Reason.NOT_SHMVAR, String.format("magic=0x%08x, want 0x%08x", magic, MAGIC));
        }
        if (version == 0) {
            throw corrupt(key, ShmException.Reason.NOT_INITIALISED,
                "version is zero after " + goDuration(initWait) + " (creator died before finishing)");
        }
        if (version >>> 16 != LAYOUT_VERSION_MAJOR) {
            throw corrupt(key, ShmException.Reason.LAYOUT_VERSION,
                "app=" + formatVersion(LAYOUT_VERSION) + " segment=" + formatVersion(version));
        }
        int unknownFlags = m.getInt(FLAGS_OFFSET) & ~KNOWN_FLAGS;
        if (unknownFlags != 0) {
            throw corrupt(key, ShmException.Reason.LAYOUT_VERSION, String.format(
                "segment uses feature flags 0x%08x that this peer does not know (app=%s knows 0x%08x)",
                unknownFlags, formatVersion(LAYOUT_VERSION), KNOWN_FLAGS));
        }
    }

    /**
     * Validates the identity line of {@code m}, whose capacity is the segment's real size as IPC_STAT reports it,
     * and returns the regions. Each value is read once and bounded by the size or {@link #MAX_CAPACITY} before it
     * takes part in any sum, so no check can overflow.
     */
    static Geometry readGeometry(int key, ByteBuffer m, int version, Duration initWait) {
        long size = m.capacity();
        checkVersion(key, m, version, initWait);
        int headerLength = m.getInt(HEADER_LENGTH_OFFSET);
        if (headerLength != HEADER_LENGTH) {
            throw corrupt(key, "header length=" + Integer.toUnsignedString(headerLength) + ", want " + HEADER_LENGTH);
        }
        long capacity = m.getLong(CAPACITY_OFFSET);
        long descriptorOffset = m.getLong(DESCRIPTOR_OFFSET_OFFSET);
        long descriptorLength = m.getLong(DESCRIPTOR_LENGTH_OFFSET);
        long[] slots = {m.getLong(SLOT0_OFFSET_OFFSET), m.getLong(SLOT1_OFFSET_OFFSET)};
        long segmentLength = m.getLong(SEGMENT_LENGTH_OFFSET);
        if (Long.compareUnsigned(capacity, MAX_CAPACITY) > 0) {
            throw corrupt(key, "capacity=" + Long.toUnsignedString(capacity) + " exceeds maximum " + MAX_CAPACITY);
        }
        if (Long.compareUnsigned(segmentLength, size) > 0) {
            throw corrupt(key, "header claims segment length=" + Long.toUnsignedString(segmentLength)
                + ", real size=" + size);
        }
        if (descriptorOffset != HEADER_LENGTH) {
            throw corrupt(key, "descriptor offset=" + Long.toUnsignedString(descriptorOffset) + ", want " + HEADER_LENGTH);
        }
        if (descriptorLength == 0 || Long.compareUnsigned(descriptorLength, MAX_DESCRIPTOR_LENGTH) > 0) {
            throw corrupt(key, "descriptor length=" + Long.toUnsignedString(descriptorLength)
                + " outside 1.." + MAX_DESCRIPTOR_LENGTH);
        }
        if (descriptorOffset + descriptorLength > size) {
            throw corrupt(key, "descriptor [" + descriptorOffset + ",+" + descriptorLength
                + ") outside segment size=" + size);
        }
        for (int i = 0; i < 2; i++) {
            long off = slots[i];
            if (off % SLOT_ALIGNMENT != 0 || Long.compareUnsigned(off, descriptorOffset + descriptorLength) < 0
                || Long.compareUnsigned(off, size) > 0 || size - off < SLOT_HEADER_LENGTH + capacity) {
                throw corrupt(key, "slot " + i + " offset=" + Long.toUnsignedString(off) + " (capacity=" + capacity
                    + ") outside segment size=" + size + " or overlapping the descriptor");
            }
        }
        if (Math.abs(slots[1] - slots[0]) < SLOT_HEADER_LENGTH + capacity) {
            throw corrupt(key, "slots at " + slots[0] + " and " + slots[1] + " overlap (capacity=" + capacity + ")");
        }
        return new Geometry(capacity, descriptorOffset, descriptorLength, slots[0], slots[1], segmentLength);
    }

    /** Copies, decodes and checks the SegmentDescriptor. */
    static SegmentDescriptor readDescriptor(int key, ByteBuffer m, Geometry g, int version) {
        byte[] raw = new byte[(int) g.descriptorLength()];
        m.get((int) g.descriptorOffset(), raw);
        java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
        crc.update(raw);
        if ((int) crc.getValue() != m.getInt(DESCRIPTOR_CRC_OFFSET)) {
            throw corrupt(key, "descriptor CRC32C mismatch");
        }
        SegmentDescriptor d;
        try {
            d = SegmentDescriptor.parseFrom(raw);
        } catch (InvalidProtocolBufferException e) {
            throw corrupt(key, "descriptor does not decode: " + e.getMessage());
        }
        if (d.getLayoutVersion() != version) {
            throw corrupt(key, "descriptor layout version=" + formatVersion(d.getLayoutVersion()) + ", header="
                + formatVersion(version));
        }
        if (d.getCapacity() != g.capacity()) {
            throw corrupt(key, "descriptor capacity=" + Long.toUnsignedString(d.getCapacity()) + ", header="
                + g.capacity());
        }
        return d;
    }

    /** Resolves the payload's message type from the schema stored in the descriptor. */
    static Descriptors.Descriptor messageDescriptorOf(int key, SegmentDescriptor d) {
        try {
            FileDescriptorSet set = FileDescriptorSet.parseFrom(d.getSchema());
            Map<String, FileDescriptorProto> byName = new HashMap<>();
            for (FileDescriptorProto file : set.getFileList()) {
                byName.put(file.getName(), file);
            }
            Map<String, FileDescriptor> built = new HashMap<>();
            for (FileDescriptorProto file : set.getFileList()) {
                build(file, byName, built, new HashSet<>());
            }
            String redefined = redefinedWellKnownType(built.values());
            if (redefined != null) {
                throw corrupt(key, redefined);
            }
            for (FileDescriptorProto file : set.getFileList()) {
                Descriptors.Descriptor type = findMessage(built.get(file.getName()).getMessageTypes(), d.getMessageType());
                if (type != null) {
                    return type;
                }
            }
            throw corrupt(key, "schema has no message \"" + d.getMessageType() + "\"");
        } catch (InvalidProtocolBufferException e) {
            throw corrupt(key, "schema does not decode: " + e.getMessage());
        } catch (Descriptors.DescriptorValidationException | IllegalArgumentException e) {
            throw corrupt(key, "schema is not valid: " + e.getMessage());
        } catch (ShmException e) {
            throw e;
        } catch (RuntimeException e) {
            // The schema is untrusted input handed to protobuf-java's builder, which does not expect hostile
            // descriptors and may throw anything (NullPointerException has been seen).
            throw corrupt(key, "schema is not valid: " + e);
        }
    }

    /**
     * The files of the types that JSON and text format (JsonFormat, TextFormat, Go's protojson and prototext) handle
     * by full name, assuming their fields: a schema must not redefine them (PROTOCOL.md, "Values"). Same order as Go.
     */
    private static final List<FileDescriptor> WELL_KNOWN_FILES = List.of(AnyProto.getDescriptor(),
        DurationProto.getDescriptor(), EmptyProto.getDescriptor(), FieldMaskProto.getDescriptor(),
        StructProto.getDescriptor(), TimestampProto.getDescriptor(), WrappersProto.getDescriptor());

    /**
     * Why {@code files} may not be used, if one of them defines a message or enum under the name of a well-known
     * type with other fields, oneofs or values (the formatters would use fields that are not there); else null.
     */
    static String redefinedWellKnownType(Collection<FileDescriptor> files) {
        Map<String, Descriptors.GenericDescriptor> defined = new HashMap<>();
        for (FileDescriptor file : files) {
            collect(file.getMessageTypes(), file.getEnumTypes(), defined);
        }
        for (FileDescriptor wk : WELL_KNOWN_FILES) {
            for (Descriptors.Descriptor want : wk.getMessageTypes()) {
                Descriptors.GenericDescriptor got = defined.get(want.getFullName());
                if (got != null && !(got instanceof Descriptors.Descriptor m && sameMessage(m, want))) {
                    return "schema redefines well-known type " + want.getFullName() + ": it differs from " + wk.getName();
                }
            }
            for (Descriptors.EnumDescriptor want : wk.getEnumTypes()) {
                Descriptors.GenericDescriptor got = defined.get(want.getFullName());
                if (got != null && !(got instanceof Descriptors.EnumDescriptor e && sameEnum(e, want))) {
                    return "schema redefines well-known type " + want.getFullName() + ": it differs from " + wk.getName();
                }
            }
        }
        return null;
    }

    private static void collect(List<Descriptors.Descriptor> messages, List<Descriptors.EnumDescriptor> enums,
                                Map<String, Descriptors.GenericDescriptor> into) {
        for (Descriptors.EnumDescriptor e : enums) {
            into.putIfAbsent(e.getFullName(), e);
        }
        for (Descriptors.Descriptor m : messages) {
            into.putIfAbsent(m.getFullName(), m);
            collect(m.getNestedTypes(), m.getEnumTypes(), into);
        }
    }

    /** Whether {@code got} has {@code want}'s fields (number, name, type, label, type name, oneof) and nested messages. */
    private static boolean sameMessage(Descriptors.Descriptor got, Descriptors.Descriptor want) {
        if (got.getFields().size() != want.getFields().size()
            || got.getNestedTypes().size() != want.getNestedTypes().size()) {
            return false;
        }
        for (Descriptors.FieldDescriptor w : want.getFields()) {
            Descriptors.FieldDescriptor g = got.findFieldByNumber(w.getNumber());
            if (g == null || !g.getName().equals(w.getName()) || g.getType() != w.getType()
                || g.isRepeated() != w.isRepeated() || g.isRequired() != w.isRequired()
                || w.getJavaType() == Descriptors.FieldDescriptor.JavaType.MESSAGE
                    && !g.getMessageType().getFullName().equals(w.getMessageType().getFullName())
                || w.getJavaType() == Descriptors.FieldDescriptor.JavaType.ENUM
                    && !g.getEnumType().getFullName().equals(w.getEnumType().getFullName())
                || (g.getContainingOneof() == null) != (w.getContainingOneof() == null)
                || w.getContainingOneof() != null
                    && !g.getContainingOneof().getName().equals(w.getContainingOneof().getName())) {
                return false;
            }
        }
        for (Descriptors.Descriptor w : want.getNestedTypes()) {
            Descriptors.Descriptor g = got.findNestedTypeByName(w.getName());
            if (g == null || !sameMessage(g, w)) {
                return false;
            }
        }
        return true;
    }

    /** Whether {@code got} has {@code want}'s values. */
    private static boolean sameEnum(Descriptors.EnumDescriptor got, Descriptors.EnumDescriptor want) {
        if (got.getValues().size() != want.getValues().size()) {
            return false;
        }
        for (Descriptors.EnumValueDescriptor w : want.getValues()) {
            Descriptors.EnumValueDescriptor g = got.findValueByNumber(w.getNumber());
            if (g == null || !g.getName().equals(w.getName())) {
                return false;
            }
        }
        return true;
    }

    private static Descriptors.Descriptor findMessage(java.util.List<Descriptors.Descriptor> types, String fullName) {
        for (Descriptors.Descriptor type : types) {
            if (type.getFullName().equals(fullName)) {
                return type;
            }
            Descriptors.Descriptor nested = findMessage(type.getNestedTypes(), fullName);
            if (nested != null) {
                return nested;
            }
        }
        return null;
    }

    private static FileDescriptor build(FileDescriptorProto file, Map<String, FileDescriptorProto> byName,
                                        Map<String, FileDescriptor> built, Set<String> visiting)
        throws Descriptors.DescriptorValidationException {
        FileDescriptor done = built.get(file.getName());
        if (done != null) {
            return done;
        }
        if (!visiting.add(file.getName())) {
            throw new IllegalStateException("import cycle at " + file.getName());
        }
        FileDescriptor[] dependencies = new FileDescriptor[file.getDependencyCount()];
        for (int i = 0; i < dependencies.length; i++) {
            FileDescriptorProto dependency = byName.get(file.getDependency(i));
            if (dependency == null) {
                throw new IllegalStateException(file.getName() + " imports " + file.getDependency(i)
                    + ", which the schema lacks");
            }
            dependencies[i] = build(dependency, byName, built, visiting);
        }
        FileDescriptor result = FileDescriptor.buildFrom(file, dependencies);
        SchemaRules.check(file, result);
        built.put(file.getName(), result);
        return result;
    }

    private static ShmException corrupt(int key, String detail) {
        return corrupt(key, ShmException.Reason.CORRUPT, detail);
    }

    private static ShmException corrupt(int key, ShmException.Reason reason, String detail) {
        return ShmException.of("open", key, reason, detail);
    }
}
