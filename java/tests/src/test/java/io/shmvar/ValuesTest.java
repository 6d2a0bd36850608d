package io.shmvar;

import com.google.protobuf.DescriptorProtos.DescriptorProto;
import com.google.protobuf.DescriptorProtos.FieldDescriptorProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorSet;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.DynamicMessage;
import io.shmvar.LayoutDescriptor.Geometry;
import io.shmvar.examples.AllTypes;
import io.shmvar.proto.SegmentDescriptor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import static io.shmvar.LayoutDescriptor.MAX_NESTING_DEPTH;
import static org.junit.jupiter.api.Assertions.*;

/** Values both languages must agree on: how deep a value may nest, which schemas are refused, which strings are valid. */
class ValuesTest {
    private final TestSegments segments = new TestSegments();

    @AfterEach
    void removeSegments() {
        segments.close();
    }

    /** An AllTypes whose innermost message is at {@code depth} (the top-level message is at depth 0). */
    static AllTypes nested(int depth) {
        AllTypes m = AllTypes.newBuilder().setFInt32(depth).build();
        for (int i = 0; i < depth; i++) {
            m = AllTypes.newBuilder().setChild(m).build();
        }
        return m;
    }

    @Test
    void shouldRefuseToCommitValuesNestedDeeperThanReadersAccept() throws Exception {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, AllTypes.getDefaultInstance());
             var reader = SharedVariable.open(key, AllTypes.getDefaultInstance(),
                 Options.defaults().withReadOnly(true))) {
            AllTypes tooDeep = nested(MAX_NESTING_DEPTH + 1);
            ShmException e = assertThrows(ShmException.class, () -> v.set(tooDeep));
            assertEquals(ShmException.Reason.INVALID_ARGUMENT, e.reason());
            assertTrue(e.getMessage().contains("nests deeper than 100 levels"), e.getMessage());
            e = assertThrows(ShmException.class, () -> v.update(c -> tooDeep));
            assertEquals(ShmException.Reason.INVALID_ARGUMENT, e.reason());
            assertEquals(0, v.generation(), "a refused value was committed");

            AllTypes deepest = nested(MAX_NESTING_DEPTH);
            v.set(deepest);
            assertEquals(deepest, reader.get());
            // Go reads the deepest value Java commits (it refused depth 100 when it counted differently).
            TestSegments.Run go = TestSegments.mustRunGo("get", "--key", ShmException.formatKey(key), "--format", "binary");
            assertEquals(deepest, AllTypes.parseFrom(com.google.protobuf.CodedInputStream.newInstance(go.stdout())));
        }
    }

    private static FieldDescriptorProto field(String name, int number, FieldDescriptorProto.Type type, String typeName) {
        FieldDescriptorProto.Builder f = FieldDescriptorProto.newBuilder().setName(name).setNumber(number).setJsonName(name)
            .setLabel(FieldDescriptorProto.Label.LABEL_OPTIONAL).setType(type);
        return (typeName == null ? f : f.setTypeName(typeName)).build();
    }

    /** A schema that redefines google.protobuf.Any (no fields 1 and 2) and Timestamp, and a message holding such an Any. */
    static FileDescriptorSet hostileSchema() {
        FileDescriptorProto evil = FileDescriptorProto.newBuilder().setName("evil/wkt.proto").setPackage("google.protobuf")
            .setSyntax("proto3")
            .addMessageType(DescriptorProto.newBuilder().setName("Any").addField(field("x", 3, FieldDescriptorProto.Type.TYPE_INT32, null)))
            .addMessageType(DescriptorProto.newBuilder().setName("Timestamp")
                .addField(field("seconds", 1, FieldDescriptorProto.Type.TYPE_STRING, null))
                .addField(field("nanos", 2, FieldDescriptorProto.Type.TYPE_INT32, null)))
            .build();
        FileDescriptorProto holder = FileDescriptorProto.newBuilder().setName("evil/holder.proto").setPackage("evil")
            .setSyntax("proto3").addDependency("evil/wkt.proto")
            .addMessageType(DescriptorProto.newBuilder().setName("Holder")
                .addField(field("a", 1, FieldDescriptorProto.Type.TYPE_MESSAGE, ".google.protobuf.Any")))
            .build();
        return FileDescriptorSet.newBuilder().addFile(evil).addFile(holder).build();
    }

    @Test
    void shouldRefuseASchemaThatRedefinesAWellKnownType() throws Exception {
        for (String type : List.of("google.protobuf.Any", "google.protobuf.Timestamp", "evil.Holder")) {
            byte[] raw = SegmentDescriptor.newBuilder().setLayoutVersion(LayoutDescriptor.LAYOUT_VERSION)
                .setMessageType(type).setSchema(hostileSchema().toByteString()).setCapacity(256).setCreator("go")
                .build().toByteArray();
            Geometry g = Geometry.of(256, raw.length);
            ByteBuffer m = ByteBuffer.allocateDirect((int) g.segmentLength()).order(ByteOrder.LITTLE_ENDIAN);
            SharedMemoryVariable.initialise(m, g, raw);
            ShmException e = assertThrows(ShmException.class, () -> SharedMemoryVariable.validateDynamic(m), type);
            assertEquals(ShmException.Reason.CORRUPT, e.reason());
            assertTrue(e.getMessage().endsWith("segment corrupt: schema redefines well-known type google.protobuf.Any: "
                + "it differs from google/protobuf/any.proto"), e.getMessage());
        }
        // Nor is such a segment created.
        FileDescriptor wkt = FileDescriptor.buildFrom(hostileSchema().getFile(0), new FileDescriptor[0]);
        FileDescriptor holder = FileDescriptor.buildFrom(hostileSchema().getFile(1), new FileDescriptor[] {wkt});
        int key = segments.newKey();
        ShmException e = assertThrows(ShmException.class,
            () -> SharedVariable.create(key, DynamicMessage.getDefaultInstance(holder.findMessageTypeByName("Holder"))));
        assertEquals(ShmException.Reason.INVALID_ARGUMENT, e.reason());
        assertTrue(e.getMessage().contains("schema redefines well-known type google.protobuf.Any"), e.getMessage());
    }

    @Test
    void shouldRefuseToCommitStringsThatAreNotValidUtf8() {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, AllTypes.getDefaultInstance())) {
            String lone = "ok\uD800"; // an unpaired surrogate: protobuf-java would encode it as '?'
            for (AllTypes bad : List.of(AllTypes.newBuilder().setFString(lone).build(),
                AllTypes.newBuilder().setChild(AllTypes.newBuilder().addRString("fine").addRString(lone)).build(),
                AllTypes.newBuilder().putMStringInt64(lone, 1).build())) {
                ShmException e = assertThrows(ShmException.class, () -> v.set(bad));
                assertEquals(ShmException.Reason.INVALID_ARGUMENT, e.reason());
                assertTrue(e.getMessage().contains("contains invalid UTF-8"), e.getMessage());
                e = assertThrows(ShmException.class, () -> v.update(c -> bad));
                assertEquals(ShmException.Reason.INVALID_ARGUMENT, e.reason());
                DynamicMessage dynamic = DynamicMessage.newBuilder(AllTypes.getDescriptor()).mergeFrom(bad).build();
                assertEquals("shmvar.examples.v1.AllTypes." + (bad.hasChild() ? "r_string" : bad.getFString().isEmpty()
                    ? "MStringInt64Entry.key" : "f_string"), SharedVariable.invalidUtf8Field(dynamic));
            }
            assertEquals(0, v.generation(), "an invalid string was committed");
            AllTypes good = AllTypes.newBuilder().setFString("caf\u00e9 \uD83D\uDE00").build(); // a pair is fine
            v.set(good);
            assertEquals(good, v.get());
        }
    }
}
