package io.shmvar;

import io.shmvar.proto.ErrorKind;
import io.shmvar.proto.Protocol;

/**
 * The one exception of this library. It names the failed {@link #function()} (a libc call such as {@code shmget} or
 * an operation such as {@code open}), the {@link #errno()} (0 when the failure is not a libc one), the segment's
 * {@link #key()} and a {@link #reason()} that says what kind of failure it was. The Go twin is {@code *shmvar.Error},
 * whose sentinels match the reasons one for one.
 */
public class ShmException extends RuntimeException {
    /**
     * What went wrong: one constant per {@link ErrorKind} of {@code proto/shmvar/v1/protocol.proto}, of the same name
     * and in the same order, whose {@link #text()} is the kind's {@code (shmvar.v1.text)} option. Go's twins are the
     * sentinel errors ({@code ErrCorrupt} and so on), a {@code unix.Errno} for {@link #NATIVE} and the context's
     * error for {@link #INTERRUPTED}.
     */
    public enum Reason {
        /** A libc call failed; {@link #errno()} says why, and the message prints it in place of the text. */
        NATIVE(ErrorKind.NATIVE),
        /** The segment does not start with the shmvar magic. */
        NOT_SHMVAR(ErrorKind.NOT_SHMVAR),
        /** The header was still zero after the wait for its creator. */
        NOT_INITIALISED(ErrorKind.NOT_INITIALISED),
        /** The segment's layout major version differs from this library's, or it uses a feature flag it lacks. */
        LAYOUT_VERSION(ErrorKind.LAYOUT_VERSION),
        /** The segment holds another payload type than asked for. */
        TYPE_MISMATCH(ErrorKind.TYPE_MISMATCH),
        /** A header, descriptor or slot failed validation. */
        CORRUPT(ErrorKind.CORRUPT),
        /** An encoded value does not fit the capacity. */
        TOO_LARGE(ErrorKind.TOO_LARGE),
        /**
         * The lock was not acquired, or the generation did not move, in time; for the lock
         * {@link ShmException#holderPid()} names the holder.
         */
        TIMEOUT(ErrorKind.TIMEOUT),
        /**
         * The lock was taken from this holder while it held it, which only a peer breaking the protocol (or a bug)
         * can do: nothing was committed, and the value the other committed stays.
         */
        LOCK_LOST(ErrorKind.LOCK_LOST),
        /** All attachment entries of the segment are held by live writing attachments: no writing open is possible. */
        ATTACHMENTS_FULL(ErrorKind.ATTACHMENTS_FULL),
        /** Readers kept losing the race with writers until the deadline. */
        BUSY(ErrorKind.BUSY),
        /**
         * A wait for the lock or for a change was interrupted (the thread's interrupt flag is kept); Go's twin is the
         * context's error ({@code context.Canceled}).
         */
        INTERRUPTED(ErrorKind.INTERRUPTED),
        /** The segment's owner or mode is not what the caller accepts. */
        PERMISSION(ErrorKind.PERMISSION),
        /** The variable was used after close or remove. */
        CLOSED(ErrorKind.CLOSED),
        /** A caller passed an unusable argument. */
        INVALID_ARGUMENT(ErrorKind.INVALID_ARGUMENT),
        /**
         * Not Linux on x86-64 or arm64 (64-bit, little-endian): thrown when the native binding loads, so the JVM reports
         * an {@code ExceptionInInitializerError} caused by it.
         */
        UNSUPPORTED_PLATFORM(ErrorKind.UNSUPPORTED_PLATFORM),
        /** A remote backing did not answer in time (etcd: no endpoint answered, or no leader). */
        UNAVAILABLE(ErrorKind.UNAVAILABLE);

        private final ErrorKind kind;
        private final String text;

        Reason(ErrorKind kind) {
            this.kind = kind;
            this.text = kind.getValueDescriptor().getOptions().getExtension(Protocol.text);
        }

        /** The kind this reason stands for in the protocol. */
        public ErrorKind kind() {
            return kind;
        }

        /** What both languages print for this reason, from protocol.proto. */
        public String text() {
            return text;
        }
    }

    private final String function;
    private final int errno;
    private final int key;
    private final Reason reason;
    private final int holderPid;
    private final String detail;
    private String path;

    ShmException(String function, int key, Reason reason, int errno, int holderPid, String detail) {
        this.function = function;
        this.errno = errno;
        this.key = key;
        this.reason = reason;
        this.holderPid = holderPid;
        this.detail = detail;
    }

    /** Names the mapped file of a file-backed variable; returns this. */
    ShmException at(String path) {
        if (path != null) {
            this.path = path;
        }
        return this;
    }

    @Override
    public String getMessage() {
        String where = path != null ? " file=" + path : " key=" + formatKey(key);
        return message(function, where, reason, errno, detail);
    }

    /** What follows the kind's text in the message: the particulars. */
    String detail() {
        return detail;
    }

    static ShmException of(String function, int key, Reason reason, String detail) {
        return new ShmException(function, key, reason, 0, 0, detail);
    }

    static ShmException nativeError(String function, int key, int errno, String detail) {
        return new ShmException(function, key, Reason.NATIVE, errno, 0, detail);
    }

    private static String message(String function, String where, Reason reason, int errno, String detail) {
        StringBuilder sb = new StringBuilder(function).append(where).append(": ");
        if (reason == Reason.NATIVE) {
            sb.append(Native.strerror(errno)).append(" (").append(Native.errnoName(errno)).append(')');
        } else {
            sb.append(reason.text());
        }
        if (detail != null && !detail.isEmpty()) {
            sb.append(": ").append(detail);
        }
        return sb.toString();
    }

    /** Formats a key the way {@code ipcs} prints it. */
    public static String formatKey(int key) {
        return String.format("0x%08x", key);
    }

    /**
     * Parses a System V key by the grammar both commands share (README, "Commands"; Go's {@code ParseKey}): decimal
     * without a leading zero, or 0x/0X and hex digits, in 1..0xffffffff. Anything else (010, 0o12, 0b1010, 1_0, +1,
     * spaces: 010 would be octal to some readers and decimal to others) fails with {@link Reason#INVALID_ARGUMENT}.
     */
    public static int parseKey(String s) {
        String digits = s;
        int radix = 10;
        if (s.length() > 2 && s.charAt(0) == '0' && (s.charAt(1) == 'x' || s.charAt(1) == 'X')) {
            digits = s.substring(2);
            radix = 16;
        } else if (s.length() > 1 && s.charAt(0) == '0') {
            digits = ""; // a leading zero: refused as ambiguous
        }
        boolean valid = !digits.isEmpty();
        for (int i = 0; valid && i < digits.length(); i++) {
            char c = digits.charAt(i);
            valid = c >= '0' && c <= '9' || radix == 16 && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F');
        }
        java.math.BigInteger n = valid ? new java.math.BigInteger(digits, radix) : java.math.BigInteger.ZERO;
        if (n.signum() == 0 || n.bitLength() > 32) {
            throw of("parse", 0, Reason.INVALID_ARGUMENT, "key \"" + s + "\" is not a number in 1..0xffffffff: write it "
                + "in decimal without a leading zero (1..4294967295) or as 0x-hex (0x1..0xffffffff)");
        }
        return n.intValue();
    }

    /** The libc function or operation that failed. */
    public String function() {
        return function;
    }

    /** The errno of a failed libc call, or 0. */
    public int errno() {
        return errno;
    }

    /** The segment's key; 0 for a file-backed variable. */
    public int key() {
        return key;
    }

    /** The mapped file of a file-backed variable, or null. */
    public String path() {
        return path;
    }

    public Reason reason() {
        return reason;
    }

    /**
     * For a lock {@link Reason#TIMEOUT}: the pid recorded in the holder's attachment entry, in the holder's own PID
     * namespace (see the message, which says when that is not ours); otherwise 0.
     */
    public int holderPid() {
        return holderPid;
    }
}
