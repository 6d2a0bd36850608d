package io.shmvar;

import com.google.protobuf.Descriptors.EnumValueDescriptor;
import io.shmvar.proto.ErrorKind;
import io.shmvar.proto.Protocol;
import io.shmvar.proto.ProtocolTiming;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The error kinds and timings of this library are those of {@code proto/shmvar/v1/protocol.proto}. The Go twin is
 * {@code go-peer/shmvar/protocol_test.go}.
 */
class ProtocolTest {

    @Test
    void shouldHaveOneReasonPerErrorKindInOrder() {
        List<String> kinds = ErrorKind.getDescriptor().getValues().stream()
            .filter(v -> v.getNumber() != 0)
            .map(EnumValueDescriptor::getName)
            .toList();
        List<String> reasons = Arrays.stream(ShmException.Reason.values()).map(Enum::name).toList();
        assertEquals(kinds, reasons, "ShmException.Reason must list ErrorKind's kinds, in protocol.proto's order");
        for (ShmException.Reason reason : ShmException.Reason.values()) {
            assertEquals(reason.name(), reason.kind().name(), reason + " stands for another kind");
            String text = reason.kind().getValueDescriptor().getOptions().getExtension(Protocol.text);
            assertFalse(text.isEmpty(), "protocol.proto gives " + reason.kind() + " no text");
            assertEquals(text, reason.text(), reason + ": text");
            if (reason != ShmException.Reason.NATIVE) { // prints the errno instead
                assertEquals("open key=0x00000001: " + text, ShmException.of("open", 1, reason, null).getMessage());
            }
        }
    }

    @Test
    void shouldTakeTimingsFromTheProtocol() {
        Map<String, Long> used = new HashMap<>(Map.of(
            "SPIN_MICROS", SpinLock.SPIN_NANOS,
            "CHECK_EVERY_MICROS", SpinLock.CHECK_EVERY_NANOS,
            "LOCK_PARK_MAX_MICROS", SpinLock.PARK_NANOS,
            "READ_ONLY_TURN_MICROS", Waiting.READ_ONLY_TURN_NANOS,
            "READ_RETRY_LIMIT_MICROS", Slots.READ_RETRY_NANOS,
            "INIT_WAIT_DEFAULT_MICROS", Options.defaults().initWait().toNanos()));
        for (EnumValueDescriptor timing : ProtocolTiming.getDescriptor().getValues()) {
            long nanos = timing.getNumber() * 1_000L;
            switch (timing.getName()) {
                case "PROTOCOL_TIMING_UNSPECIFIED" -> {
                }
                // A bound, not a number to use: Java parks in shorter turns, to see interrupts sooner.
                case "CHANGE_PARK_MAX_MICROS" -> assertTrue(Waiting.CHANGE_TURN_NANOS <= nanos,
                    "Java's change-wait turn of " + Waiting.CHANGE_TURN_NANOS + " ns exceeds the protocol's " + nanos);
                default -> {
                    Long got = used.remove(timing.getName());
                    assertNotNull(got, "ProtocolTiming " + timing.getName() + " is not used by this library");
                    assertEquals(nanos, got, timing.getName() + " in nanoseconds");
                }
            }
        }
        assertEquals(Map.of(), used, "not timings of protocol.proto");
    }
}
