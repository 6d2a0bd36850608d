package io.shmvar;

import io.shmvar.examples.Counter;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Random;
import java.util.function.Consumer;
import java.util.zip.CRC32C;

import static io.shmvar.LayoutDescriptor.*;
import static org.junit.jupiter.api.Assertions.*;

class LayoutValidationTest {
    private final TestSegments segments = new TestSegments();

    @AfterEach
    void removeSegments() {
        segments.close();
    }

    private int valid() {
        int key = segments.newKey();
        SharedVariable.create(key, Counter.getDefaultInstance()).close();
        return key;
    }

    private int damaged(Consumer<ByteBuffer> damage) {
        int key = valid();
        TestSegments.poke(key, damage);
        return key;
    }

    /** Opens the segment, expects a refusal and checks that the segment's bytes were left alone. */
    private static void assertRefused(int key, ShmException.Reason reason, String message) {
        byte[] before = TestSegments.snapshot(key);
        ShmException e = assertThrows(ShmException.class, () -> SharedVariable.openDynamic(key,
            Options.defaults().withInitWait(Duration.ofMillis(20))));
        assertEquals(reason, e.reason(), e.getMessage());
        assertTrue(e.getMessage().contains(message), e.getMessage() + " lacks " + message);
        assertFalse(e.getMessage().contains("\n"), "one line");
        assertArrayEquals(before, TestSegments.snapshot(key), "a refused open changed the segment");
    }

    @Test
    void shouldRefuseTooSmallSegment() {
        assertRefused(segments.rawSegment(100, null), ShmException.Reason.CORRUPT,
            "segment too small: size=100, header needs 512");
    }

    @Test
    void shouldRefuseAllZeros() {
        assertRefused(segments.rawSegment(8192, null), ShmException.Reason.NOT_INITIALISED, "magic and version are zero");
    }

    @Test
    void shouldRefuseRandomBytes() {
        int key = segments.rawSegment(8192, m -> {
            byte[] noise = new byte[m.capacity()];
            new Random(1).nextBytes(noise);
            m.put(0, noise);
        });
        assertRefused(key, ShmException.Reason.NOT_SHMVAR, "magic=0x");
    }

    @Test
    void shouldRefuseNewerMajorVersionShowingBoth() {
        assertRefused(damaged(m -> m.putInt(LAYOUT_VERSION_OFFSET, 3 << 16)), ShmException.Reason.LAYOUT_VERSION,
            "app=2.0 segment=3.0");
    }

    /** A whole segment of layout 1.0: a 512-byte header, no attachment table, smaller than a 2.0 header. */
    @Test
    void shouldRefuseVersionOneSegmentForItsVersionNotItsSize() {
        int key = segments.rawSegment(1024, m -> {
            m.putInt(MAGIC_OFFSET, MAGIC);
            m.putInt(HEADER_LENGTH_OFFSET, 512);
            m.putInt(LAYOUT_VERSION_OFFSET, 1 << 16);
        });
        assertRefused(key, ShmException.Reason.LAYOUT_VERSION, "layout version mismatch: app=2.0 segment=1.0");
        assertRefused(damaged(m -> m.putInt(LAYOUT_VERSION_OFFSET, 1 << 16)), ShmException.Reason.LAYOUT_VERSION,
            "app=2.0 segment=1.0");
    }

    @Test
    void shouldRefuseUnknownFeatureFlagsNamingThem() {
        int key = damaged(m -> m.putInt(FLAGS_OFFSET, 0x80000004));
        assertRefused(key, ShmException.Reason.LAYOUT_VERSION, "layout version mismatch: segment uses feature flags "
            + "0x80000004 that this peer does not know (app=2.0 knows 0x00000000)");
        ShmException e = assertThrows(ShmException.class, () -> SharedVariable.openDynamic(key,
            Options.defaults().withReadOnly(true)));
        assertEquals(ShmException.Reason.LAYOUT_VERSION, e.reason());
        assertTrue(e.getMessage().endsWith(String.format("segment uses feature flags 0x%08x that this peer does not "
            + "know (app=%s knows 0x%08x)", 0x80000004, formatVersion(LAYOUT_VERSION), KNOWN_FLAGS)), e.getMessage());
    }

    /** The descriptor checks, and every other refusal, are in the conformance corpus that both languages run. */
    @Test
    void shouldLeaveTheBytesOfASegmentWithAGarbledDescriptorAlone() {
        assertRefused(damaged(m -> {
            for (int i = HEADER_LENGTH; i < HEADER_LENGTH + 16; i++) {
                m.put(i, (byte) 0xff);
            }
        }), ShmException.Reason.CORRUPT, "descriptor CRC32C mismatch");
    }

    @Test
    void shouldRefuseCorruptSlots() {
        assertCorruptSlot((m, s) -> m.putInt(s + SLOT_LENGTH_OFFSET, 1 << 31), "exceeds capacity");
        assertCorruptSlot((m, s) -> m.put(s + SLOT_HEADER_LENGTH, (byte) (m.get(s + SLOT_HEADER_LENGTH) ^ 0x40)),
            "CRC32C mismatch");
        assertCorruptSlot((m, s) -> m.putLong(s + SLOT_GENERATION_OFFSET, 7), "slot 0 generation=7");
        assertCorruptSlot((m, s) -> {
            m.put(s + SLOT_HEADER_LENGTH, (byte) 0xff); // field 31, wire type 7: no such wire type
            CRC32C crc = new CRC32C();
            crc.update(m.slice(s + SLOT_HEADER_LENGTH, m.getInt(s + SLOT_LENGTH_OFFSET)));
            m.putInt(s + SLOT_CRC_OFFSET, (int) crc.getValue());
        }, "does not decode");
    }

    private interface SlotDamage {
        void apply(ByteBuffer m, int slot0);
    }

    private void assertCorruptSlot(SlotDamage damage, String message) {
        int key = segments.newKey();
        try (var v = SharedVariable.create(key, Counter.getDefaultInstance())) {
            v.set(Counter.newBuilder().setValue(1).build());
            v.set(Counter.newBuilder().setValue(2).setLastWriter("x").build()); // generation 2: slot 0 active
            TestSegments.poke(key, m -> damage.apply(m, (int) m.getLong(SLOT0_OFFSET_OFFSET)));
            // The writer's own attachment may serve generation 2 from its cache; getEncoded and every other
            // attachment re-read the slot.
            ShmException e = assertThrows(ShmException.class, v::getEncoded);
            assertEquals(ShmException.Reason.CORRUPT, e.reason());
            assertTrue(e.getMessage().contains(message), e.getMessage() + " lacks " + message);
            try (var r = SharedVariable.open(key, Counter.getDefaultInstance())) {
                e = assertThrows(ShmException.class, r::get);
                assertEquals(ShmException.Reason.CORRUPT, e.reason());
                assertTrue(e.getMessage().contains(message), e.getMessage() + " lacks " + message);
                assertEquals(ShmException.Reason.CORRUPT, assertThrows(ShmException.class, () -> r.update(c -> c)).reason());
                assertEquals(2, v.generation());
                // The writer builds on its cached generation 2, which the damage did not touch; the next read on
                // this thread, whose decoder just failed, parses the new value.
                String longer = "y".repeat(300); // longer than the bytes the failed parse was limited to
                v.update(c -> c.toBuilder().setValue(c.getValue() + 1).setLastWriter(longer).build());
                assertEquals(3, r.get().getValue());
                assertEquals(longer, r.get().getLastWriter());
            }
        }
    }
}
