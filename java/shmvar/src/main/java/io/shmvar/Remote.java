package io.shmvar;

import static io.shmvar.LayoutDescriptor.MAX_NESTING_DEPTH;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.Descriptors;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import io.shmvar.proto.SegmentDescriptor;

/**
 * What a backing kept outside this host (the etcd module, {@code io.shmvar.etcd}) takes from the library: the schema
 * record a segment stores, the checks every writer and reader applies to values (PROTOCOL.md, "Values"), and
 * {@link ShmException}s that name an address instead of a key. The Go twin is {@code shmvar.Describe} and
 * {@code shmvar.ValueCodec} (go-peer/shmvar/address.go).
 */
public final class Remote {
    private Remote() {
    }

    /** The schema record of a new variable holding {@code type}: the descriptor a segment would store. */
    public static SegmentDescriptor describe(Descriptors.Descriptor type, int capacity) {
        return SharedMemoryVariable.describe(type, capacity);
    }

    /** Encodes, checks and decodes the values of one variable as the shared-memory backings do. */
    public static final class Codec {
        private final SegmentDescriptor record;
        private final Descriptors.Descriptor type;
        private final Message prototype; // the compiled type's, or null for the stored schema's dynamic type
        private final boolean deep;

        private Codec(SegmentDescriptor record, Descriptors.Descriptor type, Message prototype) {
            this.record = record;
            this.type = type;
            this.prototype = prototype;
            this.deep = Slots.staticDepth(type, new java.util.HashMap<>()) > MAX_NESTING_DEPTH;
        }

        /**
         * Checks a stored schema record (its schema must build, as an opener's check: else {@code CORRUPT}) and
         * returns the codec for its values: of {@code prototype}'s compiled type, whose full name must be the stored
         * one (else {@code TYPE_MISMATCH}, naming both), or with a null prototype of the schema's dynamic type.
         */
        public static Codec of(SegmentDescriptor record, Message prototype, String op, String address) {
            Descriptors.Descriptor stored;
            try {
                stored = LayoutDescriptor.messageDescriptorOf(0, record);
            } catch (ShmException e) {
                throw error(op, address, e.reason(), detailOf(e));
            }
            if (prototype == null) {
                return new Codec(record, stored, null);
            }
            String want = prototype.getDescriptorForType().getFullName();
            if (!record.getMessageType().equals(want)) {
                throw error(op, address, ShmException.Reason.TYPE_MISMATCH,
                    "variable holds " + record.getMessageType() + ", asked for " + want);
            }
            return new Codec(record, prototype.getDescriptorForType(), prototype.getDefaultInstanceForType());
        }

        public SegmentDescriptor record() {
            return record;
        }

        public Descriptors.Descriptor type() {
            return type;
        }

        /** The empty value. */
        public Message empty() {
            return prototype != null ? prototype : DynamicMessage.getDefaultInstance(type);
        }

        /** Decodes {@code data} with the readers' nesting limit; {@code CORRUPT} if it does not decode. */
        public Message decode(byte[] data, String op, String address) {
            try {
                CodedInputStream in = CodedInputStream.newInstance(data);
                in.setRecursionLimit(MAX_NESTING_DEPTH);
                Message m = prototype != null
                    ? prototype.getParserForType().parseFrom(in)
                    : DynamicMessage.parseFrom(type, in);
                in.checkLastTagWas(0);
                return m;
            } catch (java.io.IOException | RuntimeException e) {
                throw error(op, address, ShmException.Reason.CORRUPT,
                    "value does not decode as " + record.getMessageType() + ": " + e.getMessage());
            }
        }

        /**
         * Checks {@code value} as a commit does (type, nesting, UTF-8, capacity) and encodes it; throws
         * {@code INVALID_ARGUMENT}, {@code TYPE_MISMATCH} or {@code TOO_LARGE}, having written nothing.
         */
        public ByteString encode(Message value, String op, String address) {
            if (value == null) {
                throw error(op, address, ShmException.Reason.INVALID_ARGUMENT, "value is null");
            }
            if (!value.getDescriptorForType().getFullName().equals(record.getMessageType())) {
                throw error(op, address, ShmException.Reason.TYPE_MISMATCH, "value is "
                    + value.getDescriptorForType().getFullName() + ", variable holds " + record.getMessageType());
            }
            if (deep && Slots.nestingDepth(value, MAX_NESTING_DEPTH) > MAX_NESTING_DEPTH) {
                throw error(op, address, ShmException.Reason.INVALID_ARGUMENT, "value nests deeper than "
                    + MAX_NESTING_DEPTH + " levels, which readers refuse (PROTOCOL.md, \"Values\"); nothing was committed");
            }
            String bad = Slots.invalidUtf8Field(value);
            if (bad != null) {
                throw error(op, address, ShmException.Reason.INVALID_ARGUMENT,
                    "field " + bad + " holds a string that is not valid UTF-8 (an unpaired surrogate); nothing was committed");
            }
            ByteString out = value.toByteString();
            if (out.size() > record.getCapacity()) {
                throw error(op, address, ShmException.Reason.TOO_LARGE,
                    "encoded size=" + out.size() + ", capacity=" + record.getCapacity());
            }
            return out;
        }
    }

    /** The detail of {@code e}: its message after the reason's text. */
    private static String detailOf(ShmException e) {
        String m = e.getMessage();
        int i = m.indexOf(e.reason().text());
        if (i < 0) {
            return m;
        }
        String rest = m.substring(i + e.reason().text().length());
        return rest.startsWith(": ") ? rest.substring(2) : rest;
    }

    /** Errno of "the variable exists" (EEXIST) and "there is no such variable" (ENOENT), as for segments. */
    public static final int EEXIST = 17, ENOENT = 2;

    /**
     * A {@link ShmException} of {@code reason} about the variable at {@code address}: its message reads
     * {@code op address: text: detail}.
     */
    public static ShmException error(String op, String address, ShmException.Reason reason, String detail) {
        return new AddressedException(op, address, reason, 0, false, detail);
    }

    /**
     * {@code EEXIST} or {@code ENOENT} (reason {@code NATIVE}, as {@code shmget}'s): the variable exists, or does
     * not.
     */
    public static ShmException errno(String op, String address, int errno, String detail) {
        return new AddressedException(op, address, ShmException.Reason.NATIVE, errno, false, detail);
    }

    /** No endpoint answered in time, or the cluster had no leader: reason {@code UNAVAILABLE}. */
    public static ShmException unavailable(String op, String address, String detail) {
        return new AddressedException(op, address, ShmException.Reason.UNAVAILABLE, 0, true, detail);
    }

    /** Whether {@code e} says that no endpoint of a remote backing answered. */
    public static boolean isUnavailable(Throwable e) {
        return e instanceof AddressedException a && a.unavailable;
    }

    private static final class AddressedException extends ShmException {
        private static final long serialVersionUID = 1L;
        private final String address;
        private final boolean unavailable;
        private final String text;
        private final String detail;

        AddressedException(String op, String address, Reason reason, int errno, boolean unavailable, String detail) {
            super(op, 0, reason, errno, 0, detail);
            this.address = address;
            this.unavailable = unavailable;
            this.detail = detail == null ? "" : detail;
            this.text = unavailable ? "etcd unavailable"
                : errno == EEXIST ? "variable exists"
                : errno == ENOENT ? "no such variable"
                : reason.text();
        }

        /** The variable's address. */
        @Override
        public String path() {
            return address;
        }

        @Override
        public String getMessage() {
            return function() + " " + address + ": " + text + (detail.isEmpty() ? "" : ": " + detail);
        }
    }
}
