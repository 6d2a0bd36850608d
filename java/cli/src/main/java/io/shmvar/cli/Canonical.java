package io.shmvar.cli;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.EnumValueDescriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Message;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Comparator;
import java.util.List;

/**
 * The canonical renderings of a value, which go-peer writes byte for byte the same (README, "Output formats"; Go:
 * {@code go-peer/cmd/go-peer/canon.go}). Both: fields in field-number order; a field without presence only when it is
 * not zero (a float is zero only when all its bits are: -0 is printed); map entries sorted by key (numbers by value,
 * strings by their UTF-8 bytes); unknown fields and extensions left out; well-known types printed as plain messages.
 * Floating-point numbers are the shortest decimal that reads back to the same float or double, written as
 * ECMAScript's Number.toString does (1e+21, 0.000001, 1e-7, 100, 1.5).
 */
final class Canonical {
    private Canonical() {
    }

    /**
     * The value in protobuf text format on one line: fields separated by one space, name: value, name { ... } for
     * messages, one entry per element of a repeated field, strings with " \ and control bytes escaped (\n \r \t,
     * others as three octal digits) and other UTF-8 as is, bytes with every byte outside printable ASCII as three
     * octal digits.
     */
    static String text(Message m) {
        StringBuilder b = new StringBuilder();
        textFields(b, m);
        return b.toString();
    }

    /**
     * The value as compact JSON: protobuf's JSON mapping (lowerCamelCase names, 64-bit integers as strings, bytes as
     * base64, enums by name) with no space, fields in field-number order, NaN and infinities as "NaN", "Infinity" and
     * "-Infinity".
     */
    static String json(Message m) {
        StringBuilder b = new StringBuilder();
        jsonMessage(b, m);
        return b.toString();
    }

    private static List<FieldDescriptor> fields(Message m) {
        List<FieldDescriptor> out = new ArrayList<>();
        for (FieldDescriptor fd : m.getDescriptorForType().getFields()) {
            if (present(m, fd)) {
                out.add(fd);
            }
        }
        out.sort(Comparator.comparingInt(FieldDescriptor::getNumber));
        return out;
    }

    private static boolean present(Message m, FieldDescriptor fd) {
        if (fd.isRepeated()) {
            return m.getRepeatedFieldCount(fd) > 0;
        }
        if (fd.hasPresence()) {
            return m.hasField(fd);
        }
        Object v = m.getField(fd);
        return switch (fd.getJavaType()) {
            case BOOLEAN -> (Boolean) v;
            case ENUM -> ((EnumValueDescriptor) v).getNumber() != 0;
            case INT -> (Integer) v != 0;
            case LONG -> (Long) v != 0;
            case FLOAT -> Float.floatToRawIntBits((Float) v) != 0;
            case DOUBLE -> Double.doubleToRawLongBits((Double) v) != 0;
            case STRING -> !((String) v).isEmpty();
            case BYTE_STRING -> !((ByteString) v).isEmpty();
            case MESSAGE -> m.hasField(fd);
        };
    }

    private static boolean unsigned(FieldDescriptor fd) {
        return switch (fd.getType()) {
            case UINT32, FIXED32, UINT64, FIXED64 -> true;
            default -> false;
        };
    }

    /** A map's entries, ordered: false before true, numbers by value, strings by their UTF-8 bytes. */
    private static List<Message> sortedEntries(Message m, FieldDescriptor fd) {
        FieldDescriptor kd = fd.getMessageType().findFieldByNumber(1);
        List<Message> entries = new ArrayList<>();
        for (int i = 0; i < m.getRepeatedFieldCount(fd); i++) {
            entries.add((Message) m.getRepeatedField(fd, i));
        }
        // a key given twice on the wire: the last one wins, as in a map
        List<Message> unique = new ArrayList<>();
        for (int i = entries.size() - 1; i >= 0; i--) {
            Object k = entries.get(i).getField(kd);
            if (unique.stream().noneMatch(e -> e.getField(kd).equals(k))) {
                unique.add(entries.get(i));
            }
        }
        unique.sort((x, y) -> compareKeys(kd, x.getField(kd), y.getField(kd)));
        return unique;
    }

    private static int compareKeys(FieldDescriptor kd, Object a, Object b) {
        return switch (kd.getJavaType()) {
            case BOOLEAN -> Boolean.compare((Boolean) a, (Boolean) b);
            case STRING -> Arrays.compareUnsigned(((String) a).getBytes(StandardCharsets.UTF_8),
                ((String) b).getBytes(StandardCharsets.UTF_8));
            case INT -> unsigned(kd) ? Integer.compareUnsigned((Integer) a, (Integer) b) : Integer.compare((Integer) a, (Integer) b);
            case LONG -> unsigned(kd) ? Long.compareUnsigned((Long) a, (Long) b) : Long.compare((Long) a, (Long) b);
            default -> 0;
        };
    }

    private static void textFields(StringBuilder b, Message m) {
        boolean first = true;
        for (FieldDescriptor fd : fields(m)) {
            String name = fd.getName();
            if (fd.isMapField()) {
                FieldDescriptor kd = fd.getMessageType().findFieldByNumber(1), vd = fd.getMessageType().findFieldByNumber(2);
                for (Message e : sortedEntries(m, fd)) {
                    first = sep(b, first);
                    b.append(name).append(" { key: ");
                    textScalar(b, kd, e.getField(kd));
                    b.append(' ');
                    textSingle(b, "value", vd, e.getField(vd));
                    b.append(" }");
                }
            } else if (fd.isRepeated()) {
                for (int i = 0; i < m.getRepeatedFieldCount(fd); i++) {
                    first = sep(b, first);
                    textSingle(b, name, fd, m.getRepeatedField(fd, i));
                }
            } else {
                first = sep(b, first);
                textSingle(b, name, fd, m.getField(fd));
            }
        }
    }

    private static boolean sep(StringBuilder b, boolean first) {
        if (!first) {
            b.append(' ');
        }
        return false;
    }

    private static void textSingle(StringBuilder b, String name, FieldDescriptor fd, Object v) {
        if (fd.getJavaType() == FieldDescriptor.JavaType.MESSAGE) {
            String inner = text((Message) v);
            b.append(name).append(inner.isEmpty() ? " {}" : " { " + inner + " }");
            return;
        }
        b.append(name).append(": ");
        textScalar(b, fd, v);
    }

    private static void textScalar(StringBuilder b, FieldDescriptor fd, Object v) {
        switch (fd.getJavaType()) {
            case STRING -> textQuote(b, ((String) v).getBytes(StandardCharsets.UTF_8), false);
            case BYTE_STRING -> textQuote(b, ((ByteString) v).toByteArray(), true);
            case ENUM -> b.append(enumName((EnumValueDescriptor) v));
            case FLOAT, DOUBLE -> {
                double f = ((Number) v).doubleValue();
                if (Double.isNaN(f)) {
                    b.append("nan");
                } else if (Double.isInfinite(f)) {
                    b.append(f > 0 ? "inf" : "-inf");
                } else {
                    b.append(fd.getJavaType() == FieldDescriptor.JavaType.FLOAT ? formatFloat((Float) v) : formatDouble(f));
                }
            }
            default -> b.append(scalarString(fd, v));
        }
    }

    /** An enum value's name, or its number when the schema does not name it. */
    private static String enumName(EnumValueDescriptor v) {
        return v.getType().findValueByNumber(v.getNumber()) != null ? v.getName() : Integer.toString(v.getNumber());
    }

    private static String scalarString(FieldDescriptor fd, Object v) {
        return switch (fd.getJavaType()) {
            case INT -> unsigned(fd) ? Integer.toUnsignedString((Integer) v) : Integer.toString((Integer) v);
            case LONG -> unsigned(fd) ? Long.toUnsignedString((Long) v) : Long.toString((Long) v);
            default -> String.valueOf(v);
        };
    }

    private static void textQuote(StringBuilder b, byte[] s, boolean binary) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (byte x : s) {
            int c = x & 0xff;
            String esc = switch (c) {
                case '"' -> "\\\"";
                case '\\' -> "\\\\";
                case '\n' -> "\\n";
                case '\r' -> "\\r";
                case '\t' -> "\\t";
                default -> c < 0x20 || c == 0x7f || binary && c >= 0x80 ? String.format("\\%03o", c) : null;
            };
            if (esc != null) {
                out.writeBytes(esc.getBytes(StandardCharsets.US_ASCII));
            } else {
                out.write(c);
            }
        }
        b.append('"').append(new String(out.toByteArray(), StandardCharsets.UTF_8)).append('"');
    }

    static String formatDouble(double f) {
        return shortest(f, false);
    }

    static String formatFloat(float f) {
        return shortest(f, true);
    }

    /**
     * The shortest decimal (fewest significant digits, rounded half to even) that parses back to f (as a float when
     * single), in ECMAScript's Number.toString layout. f is finite. Go's twin: canonFloat.
     */
    private static String shortest(double f, boolean single) {
        if (f == 0) {
            return Double.doubleToRawLongBits(f) < 0 ? "-0" : "0";
        }
        BigDecimal exact = new BigDecimal(f), r = exact;
        for (int p = 1; p <= 17; p++) {
            r = exact.round(new MathContext(p, RoundingMode.HALF_EVEN));
            String s = r.toString();
            if (single ? Float.parseFloat(s) == (float) f : Double.parseDouble(s) == f) {
                break;
            }
        }
        BigDecimal stripped = r.stripTrailingZeros();
        String digits = stripped.unscaledValue().abs().toString();
        int n = digits.length() - stripped.scale(); // f = 0.DIGITS x 10^n
        return esNumber(f < 0, digits, n);
    }

    /** Lays out 0.DIGITS x 10^n as ECMAScript's Number::toString does. */
    static String esNumber(boolean negative, String digits, int n) {
        int k = digits.length();
        String out;
        if (k <= n && n <= 21) {
            out = digits + "0".repeat(n - k);
        } else if (0 < n && n <= 21) {
            out = digits.substring(0, n) + "." + digits.substring(n);
        } else if (-6 < n && n <= 0) {
            out = "0." + "0".repeat(-n) + digits;
        } else {
            out = digits.substring(0, 1) + (k > 1 ? "." + digits.substring(1) : "") + "e" + (n - 1 < 0 ? "-" : "+")
                + Math.abs(n - 1);
        }
        return negative ? "-" + out : out;
    }

    private static void jsonMessage(StringBuilder b, Message m) {
        b.append('{');
        boolean first = true;
        for (FieldDescriptor fd : fields(m)) {
            if (!first) {
                b.append(',');
            }
            first = false;
            jsonString(b, fd.getJsonName());
            b.append(':');
            if (fd.isMapField()) {
                FieldDescriptor kd = fd.getMessageType().findFieldByNumber(1), vd = fd.getMessageType().findFieldByNumber(2);
                b.append('{');
                boolean firstEntry = true;
                for (Message e : sortedEntries(m, fd)) {
                    if (!firstEntry) {
                        b.append(',');
                    }
                    firstEntry = false;
                    jsonString(b, scalarString(kd, e.getField(kd)));
                    b.append(':');
                    jsonSingle(b, vd, e.getField(vd));
                }
                b.append('}');
            } else if (fd.isRepeated()) {
                b.append('[');
                for (int i = 0; i < m.getRepeatedFieldCount(fd); i++) {
                    if (i > 0) {
                        b.append(',');
                    }
                    jsonSingle(b, fd, m.getRepeatedField(fd, i));
                }
                b.append(']');
            } else {
                jsonSingle(b, fd, m.getField(fd));
            }
        }
        b.append('}');
    }

    private static void jsonSingle(StringBuilder b, FieldDescriptor fd, Object v) {
        switch (fd.getJavaType()) {
            case MESSAGE -> jsonMessage(b, (Message) v);
            case STRING -> jsonString(b, (String) v);
            case BYTE_STRING -> jsonString(b, Base64.getEncoder().encodeToString(((ByteString) v).toByteArray()));
            case ENUM -> {
                EnumValueDescriptor e = (EnumValueDescriptor) v;
                if (e.getType().findValueByNumber(e.getNumber()) != null) {
                    jsonString(b, e.getName());
                } else {
                    b.append(e.getNumber());
                }
            }
            case LONG -> jsonString(b, scalarString(fd, v));
            case FLOAT, DOUBLE -> {
                double f = ((Number) v).doubleValue();
                if (Double.isNaN(f)) {
                    b.append("\"NaN\"");
                } else if (Double.isInfinite(f)) {
                    b.append(f > 0 ? "\"Infinity\"" : "\"-Infinity\"");
                } else {
                    b.append(fd.getJavaType() == FieldDescriptor.JavaType.FLOAT ? formatFloat((Float) v) : formatDouble(f));
                }
            }
            default -> b.append(scalarString(fd, v));
        }
    }

    /** s as a JSON string: " \ and control characters escaped (\b \f \n \r \t, others as \\u and four hex digits), the rest as is. */
    static void jsonString(StringBuilder b, String s) {
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\b' -> b.append("\\b");
                case '\f' -> b.append("\\f");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        b.append('"');
    }

    static String jsonQuote(String s) {
        StringBuilder b = new StringBuilder();
        jsonString(b, s);
        return b.toString();
    }
}
