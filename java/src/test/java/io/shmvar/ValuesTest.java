package io.shmvar;

import io.shmvar.proto.AllTypes;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

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
                 SharedVariable.Options.defaults().withReadOnly(true))) {
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
}
