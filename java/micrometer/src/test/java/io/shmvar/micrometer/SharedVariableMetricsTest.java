package io.shmvar.micrometer;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.shmvar.SharedMemoryVariable;
import io.shmvar.SharedVariable;
import io.shmvar.examples.Counter;
import org.junit.jupiter.api.Test;

import java.util.concurrent.ThreadLocalRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SharedVariableMetricsTest {
    @Test
    void shouldExportTheVariablesCountersAndNaNOnceClosed() {
        int key = 0x5a000000 | ThreadLocalRandom.current().nextInt(0x1000000);
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        SharedMemoryVariable<Counter> v = SharedVariable.create(key, Counter.getDefaultInstance());
        try {
            new SharedVariableMetrics(v, "orders").bindTo(registry);
            for (int i = 0; i < 3; i++) {
                v.update(c -> c.toBuilder().setValue(c.getValue() + 1).build());
            }
            assertEquals(3.0, registry.get("shmvar.generation").tag("variable", "orders").gauge().value());
            assertEquals(3.0, registry.get("shmvar.commits").tag("variable", "orders").functionCounter().count());
            assertEquals(0.0, registry.get("shmvar.takeovers").functionCounter().count());
            assertEquals(0.0, registry.get("shmvar.contended.acquisitions").functionCounter().count());
            assertTrue(registry.get("shmvar.lock.wait").functionCounter().count() >= 0.0);
        } finally {
            v.remove();
        }
        assertTrue(Double.isNaN(registry.get("shmvar.generation").gauge().value()), "a removed variable reads as NaN");
    }
}
