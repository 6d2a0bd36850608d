package io.shmvar;

import com.google.protobuf.DescriptorProtos.DescriptorProto;
import com.google.protobuf.DescriptorProtos.EnumDescriptorProto;
import com.google.protobuf.DescriptorProtos.FieldDescriptorProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorProto;
import com.google.protobuf.Descriptors;
import com.google.protobuf.Descriptors.FieldDescriptor;

import java.util.HashSet;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * The rules a stored schema must keep beyond decoding and linking (PROTOCOL.md, "Validation", step 5): those protoc
 * and Go's descriptor builder (protodesc) enforce and protobuf-java's {@code FileDescriptor.buildFrom} lets pass, so
 * that both peers refuse the same schemas. Each failure is one line, for "schema is not valid: ...".
 */
final class SchemaRules {
    private static final Pattern IDENTIFIER = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");
    private static final Pattern FULL_NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*");
    private static final Set<String> SYNTAXES = Set.of("", "proto2", "proto3", "editions");

    private SchemaRules() {
    }

    /** Checks {@code proto}, which protobuf-java built into {@code file}; throws IllegalArgumentException. */
    static void check(FileDescriptorProto proto, Descriptors.FileDescriptor file) {
        if (!SYNTAXES.contains(proto.getSyntax())) {
            throw new IllegalArgumentException("file " + quote(proto.getName()) + " has invalid syntax " + quote(proto.getSyntax()));
        }
        if (!proto.getPackage().isEmpty() && !FULL_NAME.matcher(proto.getPackage()).matches()) {
            throw new IllegalArgumentException("file " + quote(proto.getName()) + " has invalid package " + quote(proto.getPackage()));
        }
        boolean proto3 = proto.getSyntax().equals("proto3");
        for (int i = 0; i < proto.getMessageTypeCount(); i++) {
            message(proto.getMessageType(i), file.getMessageTypes().get(i), proto3);
        }
        for (int i = 0; i < proto.getEnumTypeCount(); i++) {
            enumType(proto.getEnumType(i), file.getEnumTypes().get(i), proto3);
        }
        for (int i = 0; i < proto.getExtensionCount(); i++) {
            field(proto.getExtension(i), file.getExtensions().get(i), proto3);
        }
    }

    private static void message(DescriptorProto proto, Descriptors.Descriptor message, boolean proto3) {
        name(proto.getName(), message.getFullName());
        for (DescriptorProto.ExtensionRange r : proto.getExtensionRangeList()) {
            range("extension", message, r.getStart(), r.getEnd());
        }
        for (DescriptorProto.ReservedRange r : proto.getReservedRangeList()) {
            range("reserved", message, r.getStart(), r.getEnd());
        }
        for (int i = 0; i < proto.getFieldCount(); i++) {
            FieldDescriptor f = message.getFields().get(i);
            field(proto.getField(i), f, proto3);
            if (f.getJavaType() == FieldDescriptor.JavaType.MESSAGE && f.getMessageType().getOptions().getMapEntry()) {
                map(f);
            }
        }
        for (int i = 0; i < proto.getOneofDeclCount(); i++) {
            name(proto.getOneofDecl(i).getName(), message.getFullName());
        }
        for (Descriptors.OneofDescriptor oneof : message.getOneofs()) {
            int first = oneof.getField(0).getIndex();
            for (int i = 1; i < oneof.getFieldCount(); i++) {
                if (oneof.getField(i).getIndex() != first + i) {
                    throw new IllegalArgumentException("oneof " + quote(oneof.getFullName()) + " must have consecutively declared fields");
                }
            }
        }
        for (int i = 0; i < proto.getNestedTypeCount(); i++) {
            message(proto.getNestedType(i), message.getNestedTypes().get(i), proto3);
        }
        for (int i = 0; i < proto.getEnumTypeCount(); i++) {
            enumType(proto.getEnumType(i), message.getEnumTypes().get(i), proto3);
        }
        for (int i = 0; i < proto.getExtensionCount(); i++) {
            field(proto.getExtension(i), message.getExtensions().get(i), proto3);
        }
    }

    private static void field(FieldDescriptorProto proto, FieldDescriptor f, boolean proto3) {
        name(proto.getName(), f.getFullName());
        String what = "field " + quote(f.getFullName());
        // A label or type number outside its enum: protobuf-java keeps it as an unknown field and reads the default,
        // Go keeps the number and refuses it; both refuse it here. (Bytes of the wrong wire type are ignored by both.)
        if (hasUnknownNumber(proto, FieldDescriptorProto.LABEL_FIELD_NUMBER)) {
            throw new IllegalArgumentException(what + " has an invalid cardinality (label)");
        }
        if (hasUnknownNumber(proto, FieldDescriptorProto.TYPE_FIELD_NUMBER)) {
            throw new IllegalArgumentException(what + " has an invalid type");
        }
        if (proto.getNumber() < 1 || proto.getNumber() > 536_870_911) {
            throw new IllegalArgumentException(what + " has invalid number " + proto.getNumber());
        }
        if (proto3 && proto.getLabel() == FieldDescriptorProto.Label.LABEL_REQUIRED) {
            throw new IllegalArgumentException(what + " is required, which proto3 does not allow");
        }
        if (proto.getType() == FieldDescriptorProto.Type.TYPE_GROUP && proto3 && !mapEntry(f.getContainingType())
            && !mapEntry(f.getMessageType())) {
            // (protobuf-go lets a group that is or sits in a map entry pass; so do we)
            throw new IllegalArgumentException(what + " is a group, which proto3 does not allow");
        }
        if (proto.getType() == FieldDescriptorProto.Type.TYPE_GROUP && !proto3) {
            Descriptors.Descriptor group = f.getMessageType();
            if (!sameScope(f, group) || !Character.isUpperCase(group.getName().charAt(0))
                || !f.getName().equals(group.getName().toLowerCase(java.util.Locale.ROOT))) {
                throw new IllegalArgumentException(what + " is an invalid group");
            }
        }
        if (proto.hasOneofIndex() && proto.getLabel() != FieldDescriptorProto.Label.LABEL_OPTIONAL) {
            throw new IllegalArgumentException(what + " belongs in a oneof and must be optional");
        }
        if (proto.getProto3Optional()) {
            if (!proto3) {
                throw new IllegalArgumentException(what + " is proto3 optional outside proto3 syntax");
            }
            if (proto.getLabel() != FieldDescriptorProto.Label.LABEL_OPTIONAL) {
                throw new IllegalArgumentException(what + " is proto3 optional without optional cardinality");
            }
            if (f.getContainingOneof() == null || f.getContainingOneof().getFieldCount() != 1) {
                throw new IllegalArgumentException(what + " is proto3 optional outside a single-field oneof");
            }
        }
    }

    /** A map field and its entry message, exactly as protoc makes them. */
    private static void map(FieldDescriptor f) {
        Descriptors.Descriptor entry = f.getMessageType();
        String why = null;
        if (!sameScope(f, entry)) {
            why = "entry message declared in another scope";
        } else if (!entry.getName().equals(mapEntryName(f.getName()))) {
            why = "entry message name is not " + mapEntryName(f.getName());
        } else if (!f.isRepeated()) {
            why = "field is not repeated";
        } else if (entry.getFields().size() != 2) {
            why = "entry message does not have exactly two fields";
        } else if (!entry.toProto().getExtensionRangeList().isEmpty() || !entry.getNestedTypes().isEmpty()
            || !entry.getEnumTypes().isEmpty() || !entry.getExtensions().isEmpty()) {
            why = "entry message has nested declarations";
        } else if (!entryField(entry.getFields().get(0), "key", 1)) {
            why = "invalid key field";
        } else if (!entryField(entry.getFields().get(1), "value", 2)) {
            why = "invalid value field";
        } else {
            switch (entry.getFields().get(0).getType()) {
                case BOOL, INT32, SINT32, SFIXED32, INT64, SINT64, SFIXED64, UINT32, FIXED32, UINT64, FIXED64, STRING -> {
                }
                default -> why = "invalid key type " + entry.getFields().get(0).getType();
            }
            FieldDescriptor value = entry.getFields().get(1);
            if (why == null && value.getJavaType() == FieldDescriptor.JavaType.ENUM
                && !value.getEnumType().getValues().isEmpty() && value.getEnumType().getValues().get(0).getNumber() != 0) {
                why = "enum value type's first value is not zero";
            }
        }
        if (why != null) {
            throw new IllegalArgumentException("field " + quote(f.getFullName()) + " is an invalid map: " + why);
        }
    }

    /** A field number range, end exclusive: within 1..536870911 and not empty. */
    private static void range(String kind, Descriptors.Descriptor message, int start, int end) {
        if (start < 1 || end <= start || end > 536_870_912) {
            throw new IllegalArgumentException("message " + quote(message.getFullName()) + " has an invalid " + kind
                + " range " + start + " to " + end);
        }
    }

    private static boolean mapEntry(Descriptors.Descriptor m) {
        return m != null && m.getOptions().getMapEntry();
    }

    private static boolean hasUnknownNumber(FieldDescriptorProto proto, int field) {
        var unknown = proto.getUnknownFields().getField(field);
        return unknown != null && !unknown.getVarintList().isEmpty();
    }

    private static boolean entryField(FieldDescriptor f, String name, int number) {
        return f.getName().equals(name) && f.getNumber() == number && !f.isRepeated() && !f.isRequired()
            && f.getContainingOneof() == null && !f.toProto().hasDefaultValue();
    }

    private static void enumType(EnumDescriptorProto proto, Descriptors.EnumDescriptor e, boolean proto3) {
        name(proto.getName(), e.getFullName());
        String what = "enum " + quote(e.getFullName());
        if (proto.getValueCount() == 0) {
            throw new IllegalArgumentException(what + " has no values");
        }
        Set<Integer> numbers = new HashSet<>();
        boolean aliases = false;
        for (var v : proto.getValueList()) {
            name(v.getName(), e.getFullName());
            if (!v.hasNumber()) {
                throw new IllegalArgumentException("enum value " + quote(e.getFullName() + "." + v.getName()) + " has no number");
            }
            if (!numbers.add(v.getNumber())) {
                aliases = true;
                if (!proto.getOptions().getAllowAlias()) {
                    throw new IllegalArgumentException(what + " has conflicting values on number " + v.getNumber()
                        + " and does not allow aliases");
                }
            }
        }
        if (proto.getOptions().getAllowAlias() && !aliases) {
            throw new IllegalArgumentException(what + " allows aliases, but none were found");
        }
        if (proto3 && proto.getValue(0).getNumber() != 0) {
            throw new IllegalArgumentException(what + " is open (proto3) and its first value is not zero");
        }
    }

    private static void name(String name, String where) {
        if (!IDENTIFIER.matcher(name).matches()) {
            throw new IllegalArgumentException(quote(where) + " declares an invalid name " + quote(name));
        }
    }

    private static boolean sameScope(FieldDescriptor f, Descriptors.Descriptor m) {
        return m.getContainingType() == f.getContainingType() && m.getFile() == f.getFile();
    }

    /** protoc's name for the entry message of map field {@code field}: camel case, then "Entry". */
    static String mapEntryName(String field) {
        StringBuilder b = new StringBuilder();
        boolean upper = true;
        for (char c : field.toCharArray()) {
            if (c == '_') {
                upper = true;
            } else if (upper) {
                b.append(Character.toUpperCase(c));
                upper = false;
            } else {
                b.append(c);
            }
        }
        return b.append("Entry").toString();
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            b.append(c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? String.valueOf(c) : String.format("\\u%04x", (int) c));
        }
        return b.append('"').toString();
    }
}
