package io.shmvar;

import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import io.shmvar.LayoutDescriptor.Geometry;
import io.shmvar.examples.AllTypes;
import io.shmvar.examples.Counter;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.Size;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertNotNull;

/**
 * Property tests over random and mutated segment images, the Java side of go-peer's FuzzOpenAndGet: validation,
 * the lock-free read and a locked update may only ever throw {@link ShmException}; never another exception, a JVM
 * crash or an access outside the image.
 */
class SegmentImagePropertyTest {
    /** One write of a hostile peer: a value at an offset, as a byte, an int or a long. */
    record Poke(int offset, long value, int width) {
    }

    static ByteBuffer image(Message value) {
        byte[] raw = SharedMemoryVariable.describe(value.getDescriptorForType(), 256).toByteArray();
        Geometry g = Geometry.of(256, raw.length);
        ByteBuffer m = ByteBuffer.allocateDirect((int) g.segmentLength()).order(ByteOrder.LITTLE_ENDIAN);
        SharedMemoryVariable.initialise(m, g, raw);
        SharedMemoryVariable.validateDynamic(m).set(DynamicMessage.newBuilder(value.getDescriptorForType())
            .mergeFrom(value).build());
        return m;
    }

    /** Validates, reads and updates the image; only ShmException may come out. */
    private static void exercise(ByteBuffer m) {
        SharedMemoryVariable<DynamicMessage> v;
        try {
            v = SharedMemoryVariable.validateDynamic(m);
        } catch (ShmException expected) {
            return;
        }
        try {
            assertNotNull(v.get());
        } catch (ShmException expected) {
            // a typed refusal
        }
        m.putLong(LayoutDescriptor.LOCK_WORD_OFFSET, 0); // a hostile lock word would only make us wait
        try {
            v.tryUpdate(x -> x, Duration.ofMillis(1));
        } catch (ShmException expected) {
            // a typed refusal
        }
    }

    @Property(tries = 300)
    void randomBytesGiveOnlyTypedErrors(@ForAll @Size(max = 8192) byte[] bytes) {
        ByteBuffer m = ByteBuffer.allocateDirect(bytes.length).order(ByteOrder.LITTLE_ENDIAN);
        m.put(0, bytes);
        exercise(m);
    }

    @Property(tries = 2000)
    void mutatedImagesGiveOnlyTypedErrors(@ForAll("pokes") List<Poke> pokes, @ForAll boolean allTypes) {
        ByteBuffer m = image(allTypes
            ? AllTypes.newBuilder().setFString("ü").addRInt64(1).setChild(AllTypes.newBuilder().setFBool(true)).build()
            : Counter.newBuilder().setValue(42).setLastWriter("seed").build());
        for (Poke p : pokes) {
            int offset = Math.floorMod(p.offset(), m.capacity() - p.width() + 1);
            switch (p.width()) {
                case 1 -> m.put(offset, (byte) p.value());
                case 4 -> m.putInt(offset, (int) p.value());
                default -> m.putLong(offset, p.value());
            }
        }
        exercise(m);
    }

    @Provide
    Arbitrary<List<Poke>> pokes() {
        // Offsets favour the header and slot headers, values favour boundaries.
        Arbitrary<Integer> offsets = Arbitraries.frequencyOf(
            net.jqwik.api.Tuple.of(3, Arbitraries.integers().between(0, LayoutDescriptor.HEADER_LENGTH).map(o -> o & ~3)),
            net.jqwik.api.Tuple.of(2, Arbitraries.integers().between(0, 1 << 16)));
        Arbitrary<Long> values = Arbitraries.oneOf(
            Arbitraries.of(0L, 1L, -1L, 0xffffffffL, Long.MAX_VALUE, Long.MIN_VALUE, 1L << 31, 1L << 32, 512L, 4096L),
            Arbitraries.longs());
        Arbitrary<Integer> widths = Arbitraries.of(1, 4, 8);
        return Combinators.combine(offsets, values, widths).as(Poke::new).list().ofMinSize(1).ofMaxSize(8);
    }
}
