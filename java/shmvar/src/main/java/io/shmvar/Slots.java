package io.shmvar;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.CodedOutputStream;
import com.google.protobuf.Descriptors;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import io.shmvar.LayoutDescriptor.Geometry;
import io.shmvar.proto.ProtocolTiming;
import io.shmvar.proto.SegmentDescriptor;

import java.io.IOException;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.util.zip.CRC32C;

import static io.shmvar.LayoutDescriptor.*;
import static io.shmvar.Native.LONG;

/**
 * The two slots of a segment (PROTOCOL.md, "Reading", "Writing"): copying the active one out under the seqlock
 * check and parsing the copy, and encoding a value into the inactive one, with the checks values get on the way in
 * and out. Publishing and the lock are the variable's. The Go twin is {@code slots.go}.
 */
final class Slots<T extends Message> {
    /** How long a reader keeps retrying while writers move the generation under it (protocol.proto). */
    static final long READ_RETRY_NANOS = ProtocolTiming.READ_RETRY_LIMIT_MICROS_VALUE * 1_000L;
    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);
    /** Encoded values up to this size are scanned for '?' to rule out unpaired surrogates cheaply. */
    private static final int UTF16_SCAN_LIMIT = 4096;
    /** The encoder's buffer: values up to this size reach the slot in one copy, larger ones in several. */
    private static final int ENCODE_BUFFER = 4096;
    /** The decoder's buffer, likewise. */
    private static final int DECODE_BUFFER = 4096;

    /**
     * A thread's copy of the active slot: the bytes, their length and the generation they were committed at; and the
     * decoder that parses it, kept from one read to the next (so that a read allocates only the message), which
     * reads the copy through this stream. A decoder that failed is replaced.
     */
    static final class Scratch extends java.io.InputStream {
        byte[] buf = new byte[256];
        int length;
        long generation;
        private int next;
        CodedInputStream decoder = newDecoder(this);

        /** Rewinds the stream to the start of the copy for the decoder. */
        CodedInputStream rewind() {
            next = 0;
            return decoder;
        }

        @Override
        public int read() {
            return next < length ? buf[next++] & 0xff : -1;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (len == 0) {
                return 0;
            }
            if (next >= length) {
                return -1;
            }
            int n = Math.min(len, length - next);
            System.arraycopy(buf, next, b, off, n);
            next += n;
            return n;
        }

        @Override
        public int available() {
            return length - next;
        }
    }

    /** An output stream over one slot's payload in the segment, which refuses to write past it. */
    private static final class SlotWriter extends java.io.OutputStream {
        private final ByteBuffer memory;
        private int position;
        private int end;
        /**
         * The CRC32C of what was written since moveTo, computed from the bytes on their way in: the CRC32C intrinsic
         * never reads the mapping, where a fault (a truncated file) would abort the JVM instead of throwing.
         */
        private final CRC32C crc = new CRC32C();
        /** Whether to look for '?' in what is written; and whether one was seen since moveTo. */
        private boolean scan;
        boolean question;

        SlotWriter(ByteBuffer memory) {
            this.memory = memory;
        }

        void moveTo(int start, int end, boolean scan) {
            this.position = start;
            this.end = end;
            this.scan = scan;
            this.question = false;
            crc.reset();
        }

        @Override
        public void write(int b) throws IOException {
            if (position >= end) {
                throw new IOException("encoding overruns the slot");
            }
            memory.put(position++, (byte) b);
            crc.update(b);
            question |= scan && (byte) b == '?';
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            if (len > end - position) {
                throw new IOException("encoding overruns the slot by " + (len - (end - position)) + " bytes");
            }
            memory.put(position, b, off, len);
            crc.update(b, off, len);
            position += len;
            for (int i = off; scan && !question && i < off + len; i++) {
                question = b[i] == '?';
            }
        }
    }

    private final ByteBuffer memory;
    /** The System V segment's key, which errors name; 0 for other backings. */
    private final int key;
    private final Geometry geometry;
    private final SegmentDescriptor descriptor;
    private final Descriptors.Descriptor messageDescriptor;
    private final Parser<T> parser;
    /** Values of this type can nest deeper than MAX_NESTING_DEPTH (a recursive type): write measures each one. */
    private final boolean deep;
    /** For each message type reachable from messageDescriptor, the fields that hold or lead to UTF-8-checked strings. */
    private final java.util.Map<Descriptors.Descriptor, Descriptors.FieldDescriptor[]> stringFields;
    /** Where the encoder writes: the payload of the slot being committed. Used only under the lock. */
    private final SlotWriter slotWriter;

    /**
     * commit's encoder, kept from one commit to the next so that an update allocates nothing beyond its messages;
     * it writes through a small reused buffer into slotWriter. Replaced after a failed encode. Used under the lock.
     */
    private CodedOutputStream encoder;

    Slots(ByteBuffer memory, int key, Geometry geometry, SegmentDescriptor descriptor,
          Descriptors.Descriptor messageDescriptor, Parser<T> parser) {
        this.memory = memory;
        this.key = key;
        this.geometry = geometry;
        this.descriptor = descriptor;
        this.messageDescriptor = messageDescriptor;
        this.parser = parser;
        this.deep = staticDepth(messageDescriptor, new java.util.HashMap<>()) > MAX_NESTING_DEPTH;
        this.stringFields = stringFields(messageDescriptor);
        this.slotWriter = new SlotWriter(memory);
        this.encoder = CodedOutputStream.newInstance(slotWriter, ENCODE_BUFFER);
    }

    /**
     * Encodes {@code value} straight into the slot of generation {@code next} and writes its length, CRC32C and
     * generation; publishing (the generation word) is the caller's. Refuses, writing nothing a reader would take, a
     * value of another type, one nesting deeper than readers accept, one larger than the capacity, and one whose
     * strings protobuf-java would silently damage.
     */
    void write(long next, T value, String op) {
        if (value == null) {
            throw ShmException.of(op, key, ShmException.Reason.INVALID_ARGUMENT, "value is null");
        }
        if (value.getDescriptorForType() != messageDescriptor
            && !value.getDescriptorForType().getFullName().equals(descriptor.getMessageType())) {
            throw ShmException.of(op, key, ShmException.Reason.TYPE_MISMATCH, "value is "
                + value.getDescriptorForType().getFullName() + ", segment holds " + descriptor.getMessageType());
        }
        if (deep && nestingDepth(value, MAX_NESTING_DEPTH) > MAX_NESTING_DEPTH) { // readers would refuse it
            throw ShmException.of(op, key, ShmException.Reason.INVALID_ARGUMENT, "value nests deeper than "
                + MAX_NESTING_DEPTH + " levels, which readers refuse (PROTOCOL.md, \"Values\"); nothing was committed");
        }
        int size = value.getSerializedSize();
        if (size > geometry.capacity()) {
            throw ShmException.of(op, key, ShmException.Reason.TOO_LARGE,
                "encoded size=" + size + ", capacity=" + geometry.capacity());
        }
        int off = (int) geometry.slot(next);
        int start = off + SLOT_HEADER_LENGTH;
        boolean strings = !stringFields.isEmpty();
        slotWriter.moveTo(start, start + size, strings && size <= UTF16_SCAN_LIMIT);
        try {
            value.writeTo(encoder);
            encoder.flush();
        } catch (IOException | RuntimeException e) {
            encoder = CodedOutputStream.newInstance(slotWriter, ENCODE_BUFFER); // drop what the failed encode left
            throw ShmException.of(op, key, ShmException.Reason.INVALID_ARGUMENT, "value does not encode: " + e);
        }
        if (slotWriter.position != start + size) {
            throw ShmException.of(op, key, ShmException.Reason.INVALID_ARGUMENT,
                "value encoded to " + (slotWriter.position - start) + " bytes, not its serialized size " + size);
        }
        // protobuf-java writes an unpaired surrogate as '?': a small value with no '?' in its bytes has none, and
        // only the others are searched, field by field (which costs a reflective call per string).
        if (strings && (size > UTF16_SCAN_LIMIT || slotWriter.question)) {
            String bad = invalidString(value, stringFields);
            if (bad != null) { // protobuf-java wrote '?' for it: refuse rather than store what was not asked
                throw ShmException.of(op, key, ShmException.Reason.INVALID_ARGUMENT, "field " + bad
                    + " contains invalid UTF-8 (an unpaired surrogate); nothing was committed");
            }
        }
        memory.putInt(off + SLOT_LENGTH_OFFSET, size);
        memory.putInt(off + SLOT_CRC_OFFSET, (int) slotWriter.crc.getValue());
        memory.putLong(off + SLOT_GENERATION_OFFSET, next);
    }

    /**
     * Copies the active slot into this thread's scratch buffer and returns its length: the length is read once and
     * bounds-checked, the bytes copied, the generation re-checked (retrying if it moved), then the slot's generation
     * and CRC32C verified.
     */
    Scratch copyActive(String op) {
        Scratch scratch = SCRATCH.get();
        byte[] buf = scratch.buf;
        long deadline = 0;
        for (int attempt = 0; ; attempt++) {
            long g1 = (long) LONG.getAcquire(memory, GENERATION_OFFSET);
            int off = (int) geometry.slot(g1);
            long n = Integer.toUnsignedLong(memory.getInt(off + SLOT_LENGTH_OFFSET));
            if (n <= geometry.capacity()) {
                if (buf.length < n) {
                    buf = new byte[(int) Math.max(n, Math.min(2L * buf.length, geometry.capacity()))];
                    scratch.buf = buf;
                }
                memory.get(off + SLOT_HEADER_LENGTH, buf, 0, (int) n);
            }
            int crc = memory.getInt(off + SLOT_CRC_OFFSET);
            long slotGeneration = memory.getLong(off + SLOT_GENERATION_OFFSET);
            VarHandle.acquireFence();
            long g2 = (long) LONG.getAcquire(memory, GENERATION_OFFSET);
            if (g2 != g1) {
                if (attempt == 0) {
                    deadline = System.nanoTime() + READ_RETRY_NANOS;
                } else if (attempt % 64 == 0 && System.nanoTime() - deadline > 0) {
                    throw ShmException.of(op, key, ShmException.Reason.BUSY,
                        "generation kept moving for " + READ_RETRY_NANOS / 1_000_000 + "ms");
                }
                continue;
            }
            if (n > geometry.capacity()) {
                throw ShmException.of(op, key, ShmException.Reason.CORRUPT,
                    "slot " + (g1 & 1) + " length=" + n + " exceeds capacity=" + geometry.capacity());
            }
            if (slotGeneration != g1) {
                throw ShmException.of(op, key, ShmException.Reason.CORRUPT,
                    "slot " + (g1 & 1) + " generation=" + slotGeneration + ", header generation=" + g1);
            }
            CRC32C c = new CRC32C();
            c.update(buf, 0, (int) n);
            if ((int) c.getValue() != crc) {
                throw ShmException.of(op, key, ShmException.Reason.CORRUPT,
                    "slot " + (g1 & 1) + " CRC32C mismatch at generation " + g1);
            }
            scratch.length = (int) n;
            scratch.generation = g1;
            return scratch;
        }
    }

    /** A decoder over the first {@code length} bytes of {@code buf}, which copies what it keeps; as below. */
    private static CodedInputStream newDecoder(byte[] buf, int length) {
        CodedInputStream decoder = CodedInputStream.newInstance(buf, 0, length);
        decoder.setRecursionLimit(MAX_NESTING_DEPTH);
        return decoder;
    }

    /** A decoder over {@code in} that refuses values nested deeper than {@link LayoutDescriptor#MAX_NESTING_DEPTH}. */
    private static CodedInputStream newDecoder(java.io.InputStream in) {
        CodedInputStream decoder = CodedInputStream.newInstance(in, DECODE_BUFFER);
        decoder.setRecursionLimit(MAX_NESTING_DEPTH);
        return decoder;
    }

    /**
     * The deepest a value of {@code type} can nest (PROTOCOL.md, "Values"), or {@code MAX_NESTING_DEPTH + 1} if it
     * can nest deeper: through a recursive type, or extensions, which the descriptor does not bound.
     */
    static int staticDepth(Descriptors.Descriptor type, java.util.Map<String, Integer> memo) {
        Integer known = memo.get(type.getFullName());
        if (known != null) {
            return known;
        }
        int unbounded = MAX_NESTING_DEPTH + 1;
        memo.put(type.getFullName(), unbounded); // while on the stack: a cycle is unbounded
        int deepest = type.isExtendable() ? unbounded : 0;
        for (Descriptors.FieldDescriptor field : type.getFields()) {
            if (deepest >= unbounded) {
                break;
            }
            if (field.getJavaType() == Descriptors.FieldDescriptor.JavaType.MESSAGE) {
                // a map entry is a message too: its value is one deeper
                deepest = Math.max(deepest, 1 + staticDepth(field.getMessageType(), memo));
            }
        }
        deepest = Math.min(deepest, unbounded);
        memo.put(type.getFullName(), deepest);
        return deepest;
    }

    /**
     * How deep {@code m} nests (PROTOCOL.md, "Values"): 0 for a message with no message set in it, 1 more for each
     * message field value, group and map entry on the way down. It stops measuring below {@code limit}, returning
     * more than {@code limit} for a value deeper than that.
     */
    static int nestingDepth(Message m, int limit) {
        if (limit < 0) {
            return 0;
        }
        int deepest = 0;
        for (java.util.Map.Entry<Descriptors.FieldDescriptor, Object> e : m.getAllFields().entrySet()) {
            if (e.getKey().getJavaType() != Descriptors.FieldDescriptor.JavaType.MESSAGE) {
                continue;
            }
            if (e.getKey().isRepeated()) { // map fields too: a list of entries
                for (Object element : (java.util.List<?>) e.getValue()) {
                    deepest = Math.max(deepest, 1 + nestingDepth((Message) element, limit - 1));
                    if (deepest > limit) {
                        return deepest;
                    }
                }
            } else {
                deepest = Math.max(deepest, 1 + nestingDepth((Message) e.getValue(), limit - 1));
            }
            if (deepest > limit) {
                return deepest;
            }
        }
        return deepest;
    }

    /**
     * For each message type reachable from {@code type}, the fields that hold strings readers check for UTF-8
     * ({@code needsUtf8Check}: proto3) or messages that can; empty when no value of {@code type} holds such a string.
     */
    static java.util.Map<Descriptors.Descriptor, Descriptors.FieldDescriptor[]> stringFields(Descriptors.Descriptor type) {
        java.util.Map<Descriptors.Descriptor, java.util.List<Descriptors.FieldDescriptor>> all = new java.util.IdentityHashMap<>();
        java.util.ArrayDeque<Descriptors.Descriptor> todo = new java.util.ArrayDeque<>(java.util.List.of(type));
        while (!todo.isEmpty()) {
            Descriptors.Descriptor d = todo.pop();
            if (all.putIfAbsent(d, new java.util.ArrayList<>()) == null) {
                for (Descriptors.FieldDescriptor f : d.getFields()) {
                    if (f.getJavaType() == Descriptors.FieldDescriptor.JavaType.MESSAGE) {
                        todo.push(f.getMessageType());
                    }
                }
            }
        }
        // A type leads to checked strings if one of its fields is one, or is a message type that leads to them.
        java.util.Set<Descriptors.Descriptor> leads = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (boolean grew = true; grew; ) {
            grew = false;
            for (Descriptors.Descriptor d : all.keySet()) {
                for (Descriptors.FieldDescriptor f : d.getFields()) {
                    boolean relevant = f.getType() == Descriptors.FieldDescriptor.Type.STRING && f.needsUtf8Check()
                        || f.getJavaType() == Descriptors.FieldDescriptor.JavaType.MESSAGE && leads.contains(f.getMessageType());
                    if (relevant && !all.get(d).contains(f)) {
                        all.get(d).add(f);
                        leads.add(d);
                        grew = true;
                    }
                }
            }
        }
        java.util.Map<Descriptors.Descriptor, Descriptors.FieldDescriptor[]> plan = new java.util.IdentityHashMap<>();
        if (leads.contains(type)) {
            all.forEach((d, fields) -> plan.put(d, fields.toArray(new Descriptors.FieldDescriptor[0])));
        }
        return plan;
    }

    /**
     * The full name of a field of {@code m} holding a string that is not valid UTF-16, so not encodable as UTF-8
     * (an unpaired surrogate, which protobuf-java would silently encode as '?'); null if there is none.
     */
    static String invalidString(Message m, java.util.Map<Descriptors.Descriptor, Descriptors.FieldDescriptor[]> plan) {
        Descriptors.FieldDescriptor[] fields = plan.get(m.getDescriptorForType());
        if (fields == null) { // a type compiled apart from the segment's: look at it afresh
            plan = stringFields(m.getDescriptorForType());
            fields = plan.getOrDefault(m.getDescriptorForType(), new Descriptors.FieldDescriptor[0]);
        }
        for (Descriptors.FieldDescriptor f : fields) {
            int n = f.isRepeated() ? m.getRepeatedFieldCount(f) : f.getJavaType() != Descriptors.FieldDescriptor.JavaType.MESSAGE || m.hasField(f) ? 1 : 0;
            for (int i = 0; i < n; i++) {
                Object value = f.isRepeated() ? m.getRepeatedField(f, i) : m.getField(f);
                String bad = value instanceof Message sub ? invalidString(sub, plan)
                    : value instanceof String str && !wellFormed(str) ? f.getFullName() : null;
                if (bad != null) {
                    return bad;
                }
            }
        }
        return null;
    }

    /**
     * The full name of a field of {@code value} holding a string that readers would refuse once encoded (an unpaired
     * surrogate in a proto3 string), or null: what {@link #set} refuses with {@code INVALID_ARGUMENT}.
     */
    public static String invalidUtf8Field(Message value) {
        return invalidString(value, stringFields(value.getDescriptorForType()));
    }

    private static boolean wellFormed(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isSurrogate(c)) {
                if (!Character.isHighSurrogate(c) || i + 1 == s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) {
                    return false;
                }
                i++;
            }
        }
        return true;
    }

    /** Parses a validated copy, bounded by its length. */
    T parse(Scratch scratch, String op) {
        // A value larger than the decoder's buffer is parsed straight from the copy: through the stream, a large
        // bytes field would be read in buffer-sized chunks and copied twice more (make bench: a 4 MiB one took ten
        // times the copy and CRC32C, and three times with this).
        CodedInputStream in = scratch.length > DECODE_BUFFER ? newDecoder(scratch.buf, scratch.length) : scratch.rewind();
        try {
            in.resetSizeCounter();
            int outer = in.pushLimit(scratch.length);
            T value = parser.parseFrom(in);
            in.checkLastTagWas(0); // an end-group tag would stop the parse early
            if (in.getTotalBytesRead() != scratch.length) {
                throw new InvalidProtocolBufferException(
                    "parse stopped at byte " + in.getTotalBytesRead() + " of " + scratch.length);
            }
            in.popLimit(outer);
            return value;
        } catch (InvalidProtocolBufferException e) {
            scratch.decoder = newDecoder(scratch);
            throw ShmException.of(op, key, ShmException.Reason.CORRUPT,
                "value does not decode as " + descriptor.getMessageType() + ": " + e.getMessage());
        } catch (RuntimeException e) {
            // a hostile schema may trip the dynamic parser
            scratch.decoder = newDecoder(scratch);
            throw ShmException.of(op, key, ShmException.Reason.CORRUPT,
                "value does not decode as " + descriptor.getMessageType() + ": " + e);
        }
    }
}
