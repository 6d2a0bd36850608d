package io.shmvar.micrometer;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tag;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.binder.MeterBinder;
import io.shmvar.SharedVariable;
import io.shmvar.ShmException;

import java.util.concurrent.TimeUnit;
import java.util.function.ToDoubleFunction;

/**
 * Binds a {@link SharedVariable}'s counters to a Micrometer registry, tagged {@code variable=NAME}:
 * {@code shmvar.generation} (gauge), {@code shmvar.commits}, {@code shmvar.contended.acquisitions},
 * {@code shmvar.takeovers} and {@code shmvar.lock.wait} (seconds) as function counters. Each reading asks
 * {@link SharedVariable#stats()}; a closed variable reads as NaN rather than failing the scrape. The Go twin is the
 * Prometheus collector in {@code go-peer/metrics}.
 *
 * <pre>{@code
 * new SharedVariableMetrics(counter, "orders-config").bindTo(registry);
 * }</pre>
 */
public final class SharedVariableMetrics implements MeterBinder {
    private final SharedVariable<?> variable;
    private final Tags tags;

    public SharedVariableMetrics(SharedVariable<?> variable, String name, Tag... extraTags) {
        this.variable = variable;
        this.tags = Tags.of("variable", name).and(extraTags);
    }

    @Override
    public void bindTo(MeterRegistry registry) {
        Gauge.builder("shmvar.generation", variable, read(s -> s.generation()))
            .description("values committed since the variable was created, by any process")
            .tags(tags).register(registry);
        FunctionCounter.builder("shmvar.commits", variable, read(s -> s.commits()))
            .description("values this process committed").tags(tags).register(registry);
        FunctionCounter.builder("shmvar.contended.acquisitions", variable, read(s -> s.contendedAcquisitions()))
            .description("lock acquisitions that had to wait, by any process").tags(tags).register(registry);
        FunctionCounter.builder("shmvar.takeovers", variable, read(s -> s.takeovers()))
            .description("locks taken over from a dead holder, by any process").tags(tags).register(registry);
        FunctionCounter.builder("shmvar.lock.wait", variable,
                read(s -> s.lockWait().toNanos() / (double) TimeUnit.SECONDS.toNanos(1)))
            .baseUnit("seconds").description("time this process's threads waited for the lock")
            .tags(tags).register(registry);
    }

    private static ToDoubleFunction<SharedVariable<?>> read(ToDoubleFunction<SharedVariable.Stats> f) {
        return v -> {
            try {
                return f.applyAsDouble(v.stats());
            } catch (ShmException closedOrGone) {
                return Double.NaN;
            }
        };
    }
}
